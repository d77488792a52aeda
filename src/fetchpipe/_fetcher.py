"""The Python API: ``Fetcher`` streams results for a stream of requests; ``fetch_all`` collects.

A run is an intake task that pulls from the input into the scheduler's bounded buffer, a fixed
pool of ``max_concurrency`` workers that take startable requests and run one attempt each, and
a bounded results channel that the caller drains. Nothing here grows with the input.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import random
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
)
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from fetchpipe._config import TRANSPORTS as TRANSPORTS
from fetchpipe._config import Limits, Timeouts
from fetchpipe._exceptions import ConfigError, FetchpipeError, InputError, TransportError
from fetchpipe._models import ErrorKind, Provenance, Request, Result, Timings
from fetchpipe.engine.breaker import (
    DEFAULT_BREAKER,
    Breaker,
    BreakerPolicy,
    counts_as_failure,
    down_message,
)
from fetchpipe.engine.cache.http_cache import Hit, HttpCache
from fetchpipe.engine.cache.keys import CacheKey
from fetchpipe.engine.cache.policy import Action
from fetchpipe.engine.cache.storage import Entry
from fetchpipe.engine.channel import Channel
from fetchpipe.engine.gc_tuning import fewer_collections
from fetchpipe.engine.limits import HostOf, HostState
from fetchpipe.engine.retry import (
    DEFAULT_RETRY,
    RETRY_AFTER_STATUSES,
    Decision,
    RetryBudget,
    RetryPolicy,
    decide,
    parse_retry_after,
)
from fetchpipe.engine.scheduler import Scheduler
from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.transport import AiohttpTransport, RawResponse, Transport

T = TypeVar("T")

RequestLike = Request | str
Requests = Iterable[RequestLike] | AsyncIterable[RequestLike]


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Sent to ``on_retry`` each time a failed attempt will be tried again."""

    url: str
    key: str | int | None
    attempt: int
    wait: float
    error: ErrorKind
    status: int | None
    message: str
    pause_host: bool


RetryHook = Callable[[RetryEvent], None]
REMEMBER_FAILURES = 60.0
"""Seconds an idle host's breaker and retry budget are kept after its last failure."""
_NOT_SENT = "not sent: "


class _Item:
    """A request on its way through the engine.

    ``send`` is what goes on the wire (the request plus conditional headers when a stored
    response is being revalidated); ``followers`` are identical requests that arrived while
    this one was in flight and will share its result. ``number`` is the breaker's number of
    the attempt in flight (0: none to report); ``on_budget`` marks a retry the host's retry
    budget let go, whose outcome it must hear; ``failure`` and ``status`` describe the last
    failed attempt while a retry waits.
    """

    __slots__ = (
        "attempt",
        "cache_key",
        "deadline",
        "failure",
        "followers",
        "hit",
        "number",
        "on_budget",
        "request",
        "send",
        "status",
        "timings",
    )

    def __init__(self, request: Request, queued: float) -> None:
        self.request = request
        self.send = request
        self.timings = Timings(queued)
        self.attempt = 0
        self.deadline = 0.0
        self.cache_key: CacheKey | None = None
        self.hit: Hit | None = None
        self.followers: list[_Item] | None = None
        self.number = 0
        self.on_budget = False
        self.failure = ""
        self.status: int | None = None


_DONE: Any = object()


class _YieldOnce:
    """``await asyncio.sleep(0)`` without the coroutine frame of ``sleep`` around it."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield  # a bare yield: the task gives the loop one turn


_YIELD = _YieldOnce()


class Fetcher:
    """Fetches a stream of requests at once, within limits, with retries.

    Use as ``async with Fetcher(...) as f: async for result in f.stream(requests): ...``.
    One pooled connection session serves every ``stream()`` call made inside the block.
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
        on_retry: RetryHook | None = None,
        transport: Transport | str | None = None,
        rng: random.Random | None = None,
        cache: HttpCache | None = None,
        breaker: BreakerPolicy | None = DEFAULT_BREAKER,
        security: SecurityPolicy | None = None,
        tune_gc: bool = True,
    ) -> None:
        self.limits = limits or Limits()
        self.tune_gc = tune_gc
        """Collect cyclic garbage less often while streaming (see ``engine.gc_tuning``)."""
        self.security = security
        self.retry = retry
        self.breaker = breaker
        self.retries_denied = 0
        """Retries refused because the host's retry budget was spent."""
        self.hosts_down: dict[str, int] = {}
        """Host -> times its circuit breaker opened (the host kept failing)."""
        self.failed_fast = 0
        """Requests ended as ``host_down`` (not sent, or not retried) by an open breaker."""
        self.timeouts = timeouts or Timeouts()
        self._headers = dict(headers or {})
        self._on_retry = on_retry
        if isinstance(transport, str) and transport not in TRANSPORTS:
            raise ConfigError(
                f"unknown transport {transport!r}. HINT: use one of {', '.join(TRANSPORTS)}"
            )
        self._transport_name = transport if isinstance(transport, str) else "aiohttp"
        self._transport = None if isinstance(transport, str) else transport
        self._owns_transport = self._transport is None
        self._rng = rng or random.Random()
        self.cache = cache

    async def __aenter__(self) -> Fetcher:
        if self.cache is not None:
            self.cache.open()
        if self._transport is None:
            if self._transport_name == "fast":
                # lazy: only the fast transport loads its module (and pyreqwest, an extra)
                from fetchpipe.engine.reqwest_transport import ReqwestTransport

                self._transport = ReqwestTransport(
                    limits=self.limits,
                    timeouts=self.timeouts,
                    headers=self._headers,
                    security=self.security,
                )
            else:
                self._transport = AiohttpTransport(
                    limits=self.limits,
                    timeouts=self.timeouts,
                    headers=self._headers,
                    security=self.security,
                )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_transport and self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self.cache is not None:
            await asyncio.to_thread(self.cache.close)  # waits for queued writes to commit

    async def stream(self, requests: Requests) -> AsyncIterator[Result]:
        """Yield one ``Result`` per request, in completion order.

        Failed requests are results with ``ok`` false. If the input itself raises, the results
        already under way are yielded first, then ``InputError`` is raised from it.
        """
        if self._transport is None:
            raise ConfigError(
                "Fetcher is not open. HINT: use 'async with Fetcher(...) as f:' "
                "or call fetchpipe.fetch_all()."
            )
        tuning = fewer_collections() if self.tune_gc else contextlib.nullcontext()
        with tuning:
            run = _Run(self, self._transport, requests)
            results = run.results
            try:
                while True:
                    result = results.poll()  # most of the time one is waiting: no await
                    if result is None:
                        result = await results.get()
                    if result is _DONE:
                        break
                    yield result
                if run.crash is not None:
                    raise FetchpipeError(
                        f"the fetch stopped early: {run.crash!r}. Results delivered before it "
                        "are complete; the rest were not fetched."
                    ) from run.crash
                if run.input_error is not None:
                    raise InputError(
                        f"reading the requests failed: {run.input_error!r}. "
                        "Results fetched before the failure were delivered."
                    ) from run.input_error
            finally:
                await run.stop()


class _Run:
    """One ``stream()`` call: intake, workers and the results channel."""

    def __init__(self, fetcher: Fetcher, transport: Transport, requests: Requests) -> None:
        self.fetcher = fetcher
        self.transport = transport
        self.policy = fetcher.retry
        self.timeouts = fetcher.timeouts
        self.max_body_size = fetcher.limits.max_body_size
        self.cache = fetcher.cache
        self.default_headers = {k.lower(): v for k, v in fetcher._headers.items()}
        self.inflight: dict[tuple[object, ...], _Item] = {}
        self.host_of = HostOf()
        self.loop = asyncio.get_running_loop()
        self.scheduler: Scheduler[_Item] = Scheduler(fetcher.limits, expired=_expired)
        self.results: Channel[Any] = Channel(fetcher.limits.max_concurrency)
        self.input_error: BaseException | None = None
        self.crash: BaseException | None = None
        self.breaker = fetcher.breaker
        self.fails_fast = self.breaker is not None and self.breaker.fails_fast
        self.equips = self.breaker is not None or self.policy.budget is not None
        self.clock_offset = time.time() - self.loop.time()
        self.dropped: collections.deque[tuple[_Item, Result]] = collections.deque()
        """Results of requests taken out of the queue of a host whose circuit just opened,
        for a worker to deliver."""
        self.intake = asyncio.ensure_future(self._intake(requests))
        self.workers = [
            asyncio.ensure_future(self._worker()) for _ in range(fetcher.limits.max_concurrency)
        ]
        self.supervisor = asyncio.ensure_future(self._supervise())

    async def stop(self) -> None:
        tasks = [self.supervisor, self.intake, *self.workers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self) -> None:
        try:
            await asyncio.gather(self.intake, *self.workers)
        except Exception as exc:  # a bug or a raising hook: stop, and say so to the caller
            self.crash = exc
        await self.results.put(_DONE)

    # --- intake -------------------------------------------------------------------------------

    async def _intake(self, requests: Requests) -> None:
        scheduler = self.scheduler
        admit = self._admit
        try:
            if isinstance(requests, AsyncIterable):
                async for request in requests:
                    if scheduler.full:
                        await scheduler.wait_for_space()
                    if (answered := admit(request)) is not None:
                        await self.results.put(answered)
            else:
                for request in requests:
                    if scheduler.full:
                        await scheduler.wait_for_space()
                    if (answered := admit(request)) is not None:
                        await self.results.put(answered)
        except Exception as exc:
            self.input_error = exc
        finally:
            scheduler.close_input()

    def _admit(self, request: Any) -> Result | None:
        """Queue ``request`` on its host; or its result, when it needs no fetch (it is not a
        request, the cache answers it) and None when it waits on an identical one."""
        now = self.loop.time()
        if isinstance(request, str):
            request = Request.of(request)
        elif not isinstance(request, Request):
            return _failed(
                Request(url=repr(request)[:200]),
                Timings(now, now, 0.0, now),
                0,
                ErrorKind.INVALID_REQUEST,
                f"expected a URL string or a fetchpipe.Request, got {type(request).__name__}",
            )
        host = self.host_of(request.url)
        if host is None:
            return _failed(
                request,
                Timings(now, now, 0.0, now),
                0,
                ErrorKind.INVALID_REQUEST,
                f"{request.url[:200]!r} is not an http(s) URL with a host",
            )
        item = _Item(request, now)
        scheduler = self.scheduler
        cached = self.cache is not None and request.method.upper() == "GET"
        if cached:
            answered = self._consult_cache(item)
            if answered is not None:
                return answered
        if self.fails_fast:
            state = scheduler.host(host)
            if state is not None and state.breaker is not None and state.breaker.is_open(now):
                self.fetcher.failed_fast += 1
                message = _NOT_SENT + self._down(state, state.breaker)
                return self._give_up(item, None, ErrorKind.HOST_DOWN, message)
        if cached:
            shared = _share_key(item)
            if shared is not None and shared in self.inflight:
                leader = self.inflight[shared]
                if leader.followers is None:
                    leader.followers = []
                leader.followers.append(item)
                scheduler.hold()
                return None
            if shared is not None:
                self.inflight[shared] = item
        state = scheduler.add(host, item)
        if self.equips and state.breaker is None and state.budget is None:
            self._equip(state)
        return None

    def _equip(self, host: HostState[_Item]) -> None:
        """Give a new host state its breaker and retry budget (from its first request on, so
        that they hear every outcome)."""
        if self.breaker is not None:
            host.breaker = Breaker()
        budget = self.policy.budget
        if budget is not None:
            host.budget = RetryBudget(budget, self.policy.budget_refill)

    def _consult_cache(self, item: _Item) -> Result | None:
        """Answer from the cache when it can; otherwise prepare ``item`` to be sent."""
        cache = self.cache
        assert cache is not None
        request = item.request
        headers = self.default_headers
        if request.headers:
            headers = {**headers, **{k.lower(): v for k, v in request.headers.items()}}
        key = cache.key(request.method.upper(), request.url, request.params, headers)
        hit = cache.lookup(key, time.time())
        if hit is not None and hit.action is Action.USE:
            cache.used(hit, time.time())
            return self._from_entry(item, hit.entry, Provenance.CACHE, None, hit.headers)
        if cache.offline:
            if hit is not None:
                return self._from_entry(item, hit.entry, Provenance.STALE, "offline: stale entry")
            timings = item.timings
            timings.started = timings.done = item.timings.queued
            return Result(
                request,
                None,
                {},
                None,
                0,
                ErrorKind.NOT_CACHED,
                f"offline, and the cache has no entry for {key.url}",
                timings,
                Provenance.CACHE,
            )
        item.cache_key = key
        item.hit = hit
        if hit is not None and hit.conditional_headers:
            item.send = dataclasses.replace(
                request, headers={**(request.headers or {}), **hit.conditional_headers}
            )
        return None

    def _from_entry(
        self,
        item: _Item,
        entry: Entry,
        source: Provenance,
        message: str | None,
        headers: CIMultiDictProxy[str] | None = None,
    ) -> Result:
        if headers is None:
            headers = CIMultiDictProxy(CIMultiDict(entry.headers))
        raw = RawResponse(entry.status, headers, entry.body, headers.get("Content-Type", ""), 0.0)
        timings = item.timings
        now = self.loop.time()
        if not timings.started:
            timings.started = now
        timings.first_byte = timings.first_byte or now
        timings.done = now
        body = _decode(raw, item.request.expect, strict=False)
        return Result(
            item.request, entry.status, headers, body, item.attempt, None, message, timings, source
        )

    # --- workers ------------------------------------------------------------------------------

    async def _worker(self) -> None:
        scheduler = self.scheduler
        put, offer = self.results.put, self.results.offer
        while True:
            taken = scheduler.take()  # most of the time there is one: no await for it
            if taken is None and (taken := await scheduler.next()) is None:
                break
            host, item = taken
            breaker = host.breaker
            if breaker is not None:
                item.number = breaker.started()
            # Yield once so that the requests freed by one loop iteration's responses are sent
            # together in the next one: the peer is woken once per batch, not once per request.
            # Measured with `fetchpipe bench throughput`: kernel time per request falls by about
            # a third on loopback, and fetchpipe goes from slower than the raw loop to faster.
            await _YIELD
            try:
                result = await self._attempt(host, item)
            finally:
                if item.number:  # the attempt ended without an outcome (it raised)
                    self._outcome(host, item, None)
                # After any retry is queued: a host with a retry waiting is never forgotten.
                scheduler.attempt_done(host)
            if result is not None:
                if item.cache_key is not None:
                    shared = _share_key(item)
                    if shared is not None and self.inflight.get(shared) is item:
                        del self.inflight[shared]
                if not offer(result):
                    await put(result)
                scheduler.finished()
                if item.followers:
                    await self._share(result, item.followers)
            if self.dropped:
                await self._deliver_dropped()

    async def _deliver_dropped(self) -> None:
        """Deliver the results of the requests taken off a down host's queue."""
        dropped = self.dropped
        while dropped:
            item, result = dropped.popleft()
            if item.cache_key is not None:
                shared = _share_key(item)
                if shared is not None and self.inflight.get(shared) is item:
                    del self.inflight[shared]
            await self.results.put(result)
            self.scheduler.finished()
            if item.followers:
                await self._share(result, item.followers)

    async def _share(self, result: Result, followers: list[_Item]) -> None:
        """Give identical requests that waited on this one their copy of its result."""
        for follower in followers:
            t = result.timings
            timings = Timings(follower.timings.queued, t.started, t.first_byte, t.done)
            await self.results.put(
                dataclasses.replace(result, request=follower.request, timings=timings)
            )
            self.scheduler.finished()

    async def _attempt(self, host: HostState[_Item], item: _Item) -> Result | None:
        """Run one attempt; return the final result, or ``None`` when a retry was queued."""
        loop = self.loop
        timings = item.timings
        request = item.request
        now = loop.time()
        if not timings.started:
            timings.started = now
            if self.timeouts.deadline is not None:
                item.deadline = now + self.timeouts.deadline
        total = self.timeouts.total
        if item.deadline:
            remaining = item.deadline - now
            if remaining <= 0:
                self._outcome(host, item, None)  # not sent
                return self._deadline_failure(item, now, "before the next attempt could start")
            if total is None or remaining < total:
                total = remaining
        item.attempt += 1
        request_time = time.time() if self.cache is not None else 0.0
        try:
            response = await self.transport.send(
                item.send, total_timeout=total, max_body_size=self.max_body_size
            )
        except TransportError as exc:
            now = loop.time()
            self._outcome(host, item, counts_as_failure(exc.kind, None))
            if exc.kind is ErrorKind.TIMEOUT and item.deadline and now >= item.deadline - 0.001:
                return self._deadline_failure(item, now, "during an attempt")
            return self._after_failure(host, item, exc.kind, exc.message, None)
        timings.first_byte = response.first_byte
        status = response.status
        if self.equips:
            self._outcome(host, item, status >= 500 if status != 429 else None)
        if status == 304 and item.hit is not None and self.cache is not None:
            entry = self.cache.refreshed(
                item.hit, response.headers, request_time=request_time, response_time=time.time()
            )
            return self._from_entry(item, entry, Provenance.REVALIDATED, None)
        if status < 400:
            try:
                body = _decode(response, request.expect, strict=True)
            except ValueError as exc:
                return self._final(item, response, None, ErrorKind.INVALID_JSON, str(exc))
            if item.cache_key is not None and self.cache is not None:
                self.cache.store(
                    item.cache_key,
                    "GET",
                    status,
                    response.headers,
                    response.body,
                    request_time=request_time,
                    response_time=time.time(),
                )
            return self._final(item, response, body, None, None)
        return self._after_failure(host, item, ErrorKind.HTTP_STATUS, f"HTTP {status}", response)

    def _outcome(self, host: HostState[_Item], item: _Item, failed: bool | None) -> None:
        """Tell the host's retry budget and circuit breaker how the attempt in flight ended:
        ``failed`` True (no response, or a 5xx), False (an answer), None (a 429, or it was never
        sent). Every attempt is reported once. When this opens the circuit, the host is paused
        and, with ``on_open="fail"``, its queue is emptied into ``dropped``."""
        first = item.attempt <= 1
        budget = host.budget
        if item.on_budget:
            item.on_budget = False
            if budget is not None:
                budget.retry_ended(failed)
        elif first and budget is not None:
            budget.first_ended(failed)
        number = item.number
        breaker = host.breaker
        if not number or breaker is None:
            return
        item.number = 0
        policy = self.breaker
        assert policy is not None
        now = self.loop.time()
        if failed:
            host.remember_until = now + REMEMBER_FAILURES
        until = breaker.ended(number, failed, first, policy, now)
        if until is None:
            return
        host.pause(until)
        down = self.fetcher.hosts_down
        down[host.name] = down.get(host.name, 0) + 1
        if self.fails_fast:
            self._drop_queue(host, breaker)

    def _drop_queue(self, host: HostState[_Item], breaker: Breaker) -> None:
        """End every request waiting on ``host`` (its circuit just opened) as ``host_down``."""
        message = self._down(host, breaker)
        for item in self.scheduler.drain(host):
            if item.on_budget:
                self._outcome(host, item, None)
            if item.attempt:
                text = f"{item.failure} ({_attempts(item.attempt)}not retried: {message})"
            else:
                text = _NOT_SENT + message
            self.fetcher.failed_fast += 1
            result = self._give_up(item, None, ErrorKind.HOST_DOWN, text)
            if result.error is not None:
                result.status = item.status  # the last attempt's, when it had an answer
            self.dropped.append((item, result))

    def _down(self, host: HostState[_Item], breaker: Breaker) -> str:
        policy = self.breaker
        assert policy is not None
        return down_message(host.name, breaker, policy, self.clock_offset)

    def _after_failure(
        self,
        host: HostState[_Item],
        item: _Item,
        kind: ErrorKind,
        message: str,
        response: RawResponse | None,
    ) -> Result | None:
        status = response.status if response is not None else None
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after is not None and status in RETRY_AFTER_STATUSES:
            delay = parse_retry_after(retry_after, time.time())
            policy = self.policy
            if policy.respect_retry_after and delay is not None and delay <= policy.retry_after_max:
                self.scheduler.pause(host, delay)  # whether or not this one tries again
        decision = decide(
            self.policy,
            attempt=item.attempt,
            retryable_method=item.request.retryable_method,
            kind=kind,
            status=status,
            retry_after=retry_after,
            now=time.time(),
            rng=self.fetcher._rng,
        )
        if decision.retry:
            now = self.loop.time()
            if item.deadline and now + decision.wait >= item.deadline:
                return self._deadline_failure(
                    item, now, f"while waiting {decision.wait:.3g} s to retry after: {message}"
                )
            breaker = host.breaker
            if self.fails_fast and breaker is not None and breaker.open_until:
                self.fetcher.failed_fast += 1
                down = self._down(host, breaker)
                text = f"{message} ({_attempts(item.attempt)}not retried: {down})"
                return self._give_up(item, response, ErrorKind.HOST_DOWN, text)
            budget = host.budget
            if budget is not None:
                host.remember_until = now + REMEMBER_FAILURES
                if budget.take():
                    item.on_budget = True
                else:
                    self.fetcher.retries_denied += 1
                    decision = Decision(
                        retry=False, reason=f"{message} ({budget.refusal(host.name)})"
                    )
        if decision.retry:
            hook = self.fetcher._on_retry
            if hook is not None:
                hook(
                    RetryEvent(
                        item.request.url,
                        item.request.key,
                        item.attempt,
                        decision.wait,
                        kind,
                        status,
                        message,
                        decision.pause_host,
                    )
                )
            item.failure = message
            item.status = status
            self.scheduler.retry_later(
                host, item, decision.wait, pause_host=decision.pause_host, deadline=item.deadline
            )
            return None
        stale = self._stale(item, message)
        if stale is not None:
            return stale
        if decision.error is not None:
            kind = decision.error
        if decision.reason is not None:
            message = decision.reason
        elif item.attempt > 1:
            message = f"{message} (after {item.attempt} attempts)"
        body = _decode(response, item.request.expect, strict=False) if response else None
        return self._final(item, response, body, kind, message)

    def _stale(self, item: _Item, failure: str) -> Result | None:
        """A stale stored response for a request that failed, when the cache has a usable one."""
        hit = item.hit
        if hit is not None and self.cache is not None and self.cache.stale_usable(hit, time.time()):
            return self._from_entry(
                item,
                hit.entry,
                Provenance.STALE,
                f"served stale after the refresh failed: {failure}",
            )
        return None

    def _give_up(
        self, item: _Item, response: RawResponse | None, kind: ErrorKind, message: str
    ) -> Result:
        """The final result of a request that failed: a stale stored response when the cache
        has a usable one, else the failure."""
        stale = self._stale(item, message)
        if stale is not None:
            return stale
        body = _decode(response, item.request.expect, strict=False) if response else None
        return self._final(item, response, body, kind, message)

    def _final(
        self,
        item: _Item,
        response: RawResponse | None,
        body: Any,
        error: ErrorKind | None,
        message: str | None,
    ) -> Result:
        item.timings.done = self.loop.time()
        if response is None:
            return Result(item.request, None, {}, None, item.attempt, error, message, item.timings)
        return Result(
            item.request,
            response.status,
            response.headers,
            body,
            item.attempt,
            error,
            message,
            item.timings,
            final_url=response.url or None,
        )

    def _deadline_failure(self, item: _Item, now: float, when: str) -> Result:
        deadline = self.timeouts.deadline
        item.timings.done = now
        return Result(
            item.request,
            None,
            {},
            None,
            item.attempt,
            ErrorKind.DEADLINE,
            f"deadline of {deadline:g} s passed {when}",
            item.timings,
        )


def _attempts(count: int) -> str:
    return f"after {count} attempts; " if count > 1 else ""


def _share_key(item: _Item) -> tuple[object, ...] | None:
    """Requests share one fetch only when everything sent and expected is the same."""
    key = item.cache_key
    if key is None:
        return None
    return (key.key, tuple(sorted(key.vary_source.items())), item.request.expect)


def _expired(item: _Item, now: float) -> bool:
    return bool(item.deadline) and now >= item.deadline


def _failed(
    request: Request, timings: Timings, attempts: int, kind: ErrorKind, message: str
) -> Result:
    return Result(request, None, {}, None, attempts, kind, message, timings)


def _decode(response: RawResponse, expect: str, *, strict: bool) -> Any:
    """Parse the body as asked; ``strict`` raises ``ValueError`` for JSON that does not parse."""
    body = response.body
    if expect == "bytes":
        return body
    content_type = response.content_type
    if expect == "json" or (expect == "auto" and "json" in content_type):
        if not body:
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if strict:
                preview = body[:60].decode("utf-8", "replace")
                raise ValueError(
                    f"response is not valid JSON ({exc}); content type {content_type!r}, "
                    f"body starts {preview!r}"
                ) from None
            return body.decode("utf-8", "replace")
    if expect == "text" or content_type.startswith("text/") or not content_type:
        try:
            return body.decode(_charset(content_type), "replace")
        except (LookupError, ValueError):  # a codec that cannot decode bytes (idna, ...)
            return body.decode("utf-8", "replace")
    return body


def _charset(content_type: str) -> str:
    _, sep, rest = content_type.partition("charset=")
    if not sep:
        return "utf-8"
    name = rest.split(";", 1)[0].strip().strip('"') or "utf-8"
    try:
        b"".decode(name, "replace")
    except (LookupError, ValueError):
        return "utf-8"
    return name


# --- running -----------------------------------------------------------------------------------


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to the end on a new event loop (uvloop when installed) and return its value.

    Works where an event loop is already running in this thread (a notebook cell, an async
    web handler): ``main`` then runs on its own loop in a helper thread while this thread
    waits, as ``asyncio.run`` cannot nest.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(main)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_here, main).result()


def _run_here(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop  # lazy: installed on Linux and macOS only; loaded by a run, not by import
    except ImportError:  # pragma: no cover - uvloop is a default dependency on Linux
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def fetch_all(requests: Requests, **options: Any) -> list[Result]:
    """Fetch everything and return the results (completion order). Takes ``Fetcher``'s options.

    Works where an event loop is already running (a notebook cell), as :func:`run` does.
    """

    async def collect() -> list[Result]:
        async with Fetcher(**options) as fetcher:
            return [result async for result in fetcher.stream(requests)]

    return run(collect())
