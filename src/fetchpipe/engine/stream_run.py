"""One ``Fetcher.stream()`` call: an intake, a pool of workers and a results channel.

The intake pulls from the input into the scheduler's bounded buffer (a request the cache
answers, or one identical to a request in flight, goes no further); a fixed pool of
``max_concurrency`` workers takes startable requests and runs one attempt each; results go to a
bounded channel that the caller drains. When the buffer is full while a worker has nothing to
do, the intake reads further ahead into per-host queues that spill to a temporary file, and a
feeder moves their requests into the buffer as hosts need them
(:mod:`fetchpipe.engine.readahead`). Nothing in memory grows with the input, and what is read
ahead is bounded by ``Limits.readahead``. How an attempt ends (a retry, a final result) is
:class:`~fetchpipe.engine.outcomes.Outcomes`'.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterable, Generator, Iterable, Mapping
from typing import Any

from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind, Provenance, Request, Result, Timings
from fetchpipe.engine.body_parsing import parse_body
from fetchpipe.engine.breaker import Breaker, counts_as_failure
from fetchpipe.engine.cache.policy import Action
from fetchpipe.engine.carry import import_equipment
from fetchpipe.engine.channel import Channel
from fetchpipe.engine.item import Item, share_key
from fetchpipe.engine.lanes import group_name
from fetchpipe.engine.limits import HostOf, HostState
from fetchpipe.engine.outcomes import NOT_SENT, Outcomes, Owner, RetryHook
from fetchpipe.engine.proxies import PROXY_REFUSED
from fetchpipe.engine.readahead import ReadAhead
from fetchpipe.engine.retry import RetryBudget
from fetchpipe.engine.transports.base import Transport

RequestLike = Request | str
Requests = Iterable[RequestLike] | AsyncIterable[RequestLike]

DONE: Any = object()
"""The last thing on a run's results channel: every result is delivered."""


class _YieldOnce:
    """``await asyncio.sleep(0)`` without the coroutine frame of ``sleep`` around it."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield  # a bare yield: the task gives the loop one turn


_YIELD = _YieldOnce()


class StreamRun(Outcomes):
    """One ``stream()`` call: intake, workers and the results channel."""

    def __init__(
        self,
        owner: Owner,
        transport: Transport,
        requests: Requests,
        *,
        headers: Mapping[str, str],
        rng: random.Random,
        on_retry: RetryHook | None,
    ) -> None:
        super().__init__(owner, rng=rng, on_retry=on_retry)
        self.transport = transport
        self.max_body_size = owner.limits.max_body_size
        self.default_headers = {k.lower(): v for k, v in headers.items()}
        self.inflight: dict[tuple[object, ...], Item] = {}
        self.host_of = HostOf()
        self.ahead_host_of = HostOf()
        self.results: Channel[Any] = Channel(owner.limits.max_concurrency)
        self.input_error: BaseException | None = None
        self.crash: BaseException | None = None
        self.equips = (
            self.breaker is not None
            or self.policy.budget is not None
            or self.adaptive is not None
            or self.owner.quotas is not None
        )
        self.readahead: ReadAhead[Item, Result] = ReadAhead(
            self.scheduler,
            limit=owner.limits.readahead,
            max_concurrency=owner.limits.max_concurrency,
            admit=self._admit,
            deliver=self.results.put,
            queue_of=self._queue_of,
            prepare=self._prepare_ahead,
        )
        if self.equips:
            self.scheduler.on_lane = self._equip
        self.intake = asyncio.ensure_future(self._intake(requests))
        self.feeder = asyncio.ensure_future(self.readahead.feed())
        self.workers = [
            asyncio.ensure_future(self._worker()) for _ in range(owner.limits.max_concurrency)
        ]
        self.supervisor = asyncio.ensure_future(self._supervise())

    async def stop(self) -> None:
        tasks = [self.supervisor, self.intake, self.feeder, *self.workers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.readahead.close()

    async def _supervise(self) -> None:
        try:
            await asyncio.gather(self.intake, self.feeder, *self.workers)
        except Exception as exc:  # a bug or a raising hook: stop, and say so to the caller
            self.crash = exc
        finally:
            self.readahead.close()  # the temporary file goes as soon as the run is over
        await self.results.put(DONE)

    # --- intake -------------------------------------------------------------------------------

    async def _intake(self, requests: Requests) -> None:
        scheduler = self.scheduler
        admit = self._admit
        ahead = self.readahead
        queues = ahead.queues
        try:
            if isinstance(requests, AsyncIterable):
                async for request in requests:
                    if (scheduler.full or queues.total) and await ahead.place(request):
                        continue
                    if (answered := admit(request)) is not None:
                        await self.results.put(answered)
            else:
                for request in requests:
                    if (scheduler.full or queues.total) and await ahead.place(request):
                        continue
                    if (answered := admit(request)) is not None:
                        await self.results.put(answered)
        except Exception as exc:
            self.input_error = exc
        finally:
            if ahead.input_done():
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
                now,
                f"expected a URL string or a fetchpipe.Request, got {type(request).__name__}",
            )
        host = self.host_of(request.url)
        if host is None:
            return _failed(request, now, f"{request.url[:200]!r} is not an http(s) URL with a host")
        item = Item(request, now)
        scheduler = self.scheduler
        cached = self.cache is not None and request.method.upper() == "GET"
        if cached:
            answered = self._consult_cache(item)
            if answered is not None:
                return answered
        labels = _labels(request)
        if self.fails_fast:
            state = scheduler.host(group_name(host, labels) if labels else host)
            if state is not None and state.breaker is not None and state.breaker.is_open(now):
                self.owner.failed_fast += 1
                message = NOT_SENT + self._down(state, state.breaker)
                return self._give_up(item, None, ErrorKind.HOST_DOWN, message)
        if cached:
            shared = share_key(item)
            if shared is not None and shared in self.inflight:
                leader = self.inflight[shared]
                if leader.followers is None:
                    leader.followers = []
                leader.followers.append(item)
                scheduler.hold()
                return None
            if shared is not None:
                self.inflight[shared] = item
        state = scheduler.add(host, item, lanes=labels)
        if self.equips and not state.equipped:
            self._equip(state)
        return None

    def _queue_of(self, request: Any) -> str | None:
        """The name of the queue ``request`` waits in (see :attr:`HostState.queue`): its host,
        or its host's group for its lanes; ``None`` when it is not a request."""
        if isinstance(request, str):
            return self.ahead_host_of(request)
        if not isinstance(request, Request) or not isinstance(request.url, str):
            return None
        host = self.ahead_host_of(request.url)
        labels = _labels(request)
        return group_name(host, labels) if host is not None and labels else host

    def _prepare_ahead(self, request: Any) -> HostState[Item] | None:
        """The queue (see :attr:`HostState.queue`) for ``request`` to wait ahead of the
        buffer for; ``None`` when its host's circuit is open and it fails fast (the request is
        failed at once, as at intake)."""
        url = request if isinstance(request, str) else request.url
        host = self.ahead_host_of(url)
        assert host is not None  # (``_queue_of`` found it)
        labels = None if isinstance(request, str) else _labels(request)
        scheduler = self.scheduler
        state = scheduler.group_for(host, labels) if labels else scheduler.state_for(host)
        if self.equips and not state.equipped:
            self._equip(state)
        breaker = state.breaker
        if self.fails_fast and breaker is not None and breaker.is_open(self.loop.time()):
            return None
        return state

    def _equip(self, host: HostState[Item]) -> None:
        """Give a new host state its breaker and retry budget (from its first request on, so
        that they hear every outcome), its pace and its quota. A host's lanes share its group's
        breaker and budget (see :attr:`HostState.queue`); each has a pace and quota of its
        own."""
        host.equipped = True
        if host.group is None:
            if self.breaker is not None:
                host.breaker = Breaker()
            budget = self.policy.budget
            if budget is not None:
                host.budget = RetryBudget(budget, self.policy.budget_refill)
        if host.lanes is None:
            self._equip_pace(host)
        carry = self.scheduler.carry_of(host.name)
        if carry is not None:
            import_equipment(host, carry, self.clock_offset, self.loop.time())

    def _equip_pace(self, host: HostState[Item]) -> None:
        """Give a host or a lane its pace and its quota, when the run has them."""
        if self.adaptive is not None:
            host.pace = self.pace_for(host.name, host.host)
        quotas = self.owner.quotas
        if quotas is not None:
            quota = self.owner.limits.for_host(host.host).quota
            if quota is not None:
                host.quota = quotas.for_host(host.name, quota, setting=host.host)

    def _consult_cache(self, item: Item) -> Result | None:
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

    # --- workers ------------------------------------------------------------------------------

    async def _worker(self) -> None:
        scheduler = self.scheduler
        put, offer = self.results.put, self.results.offer
        while True:
            taken = scheduler.take()  # most of the time there is one: no await for it
            if taken is None and (taken := await scheduler.next()) is None:
                break
            host, item = taken
            breaker = host.breaker if host.group is None else host.group.breaker
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
                pace = host.pace
                if pace is not None and pace.gating:  # a first-request gate ends with it
                    pace.ended(host, self.loop.time())
                # After any retry is queued: a host with a retry waiting is never forgotten.
                scheduler.attempt_done(host)
            if result is not None:
                if item.cache_key is not None:
                    shared = share_key(item)
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
                shared = share_key(item)
                if shared is not None and self.inflight.get(shared) is item:
                    del self.inflight[shared]
            await self.results.put(result)
            self.scheduler.finished()
            if item.followers:
                await self._share(result, item.followers)

    async def _share(self, result: Result, followers: list[Item]) -> None:
        """Give identical requests that waited on this one their copy of its result."""
        for follower in followers:
            t = result.timings
            timings = Timings(follower.timings.queued, t.started, t.first_byte, t.done)
            await self.results.put(
                dataclasses.replace(result, request=follower.request, timings=timings)
            )
            self.scheduler.finished()

    async def _attempt(self, host: HostState[Item], item: Item) -> Result | None:
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
        group = host.group
        if group is not None:  # a lane: the request goes with its credential
            if item.plain is None:
                item.plain = item.send
            lanes = request.lanes
            assert lanes is not None
            item.send = lanes[host.lane].applied(item.plain)
        quota = host.quota
        if quota is not None:
            waiting = host if group is None else group
            count = len(waiting.fresh) + len(waiting.delayed)
            if group is not None:
                count //= len(group.lanes or ())
            if not quota.spend(count + 1):
                if group is not None and self._lane_spent(host, group, item, quota):
                    return None
                return self._quota_spent(host, item, quota)
        item.attempt += 1
        item.sent_at = now
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
        if host.pace is not None:
            self._paced(host, host.pace, item, response)
        if self.equips:
            self._outcome(host, item, status >= 500 if status != 429 else None)
        if status == 304 and item.hit is not None and self.cache is not None:
            entry = self.cache.refreshed(
                item.hit, response.headers, request_time=request_time, response_time=time.time()
            )
            return self._from_entry(item, entry, Provenance.REVALIDATED, None)
        if status < 400:
            try:
                body = parse_body(response, request.expect, strict=True)
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
        message = f"HTTP {status}" if status != 407 else f"HTTP 407: {PROXY_REFUSED}"
        return self._after_failure(host, item, ErrorKind.HTTP_STATUS, message, response)


def _labels(request: Request) -> tuple[str, ...] | None:
    """The labels of ``request``'s lanes (its credentials), or None when it has none."""
    lanes = request.lanes
    return tuple(lane.label for lane in lanes) if lanes else None


def _failed(request: Request, now: float, message: str) -> Result:
    """The result of a request that cannot be sent."""
    timings = Timings(now, now, 0.0, now)
    return Result(request, None, {}, None, 0, ErrorKind.INVALID_REQUEST, message, timings)
