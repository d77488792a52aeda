"""How an attempt ends: the breaker and retry budget told, a retry queued, or a final result.

:class:`Outcomes` is the half of a run (:class:`~fetchpipe.engine.stream_run.StreamRun`) that
turns what the transport answered into what happens next: the host's circuit breaker and retry
budget hear every attempt's outcome, a failure goes to :func:`~fetchpipe.engine.retry.decide`
(backoff, Retry-After, the host's pause), an open circuit ends the host's queue early, and a
request that is done gets its :class:`~fetchpipe._models.Result` (a stale stored response in
place of a failure, when the cache has a usable one).
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from fetchpipe._config import Limits, Timeouts
from fetchpipe._log import emit, logger
from fetchpipe._models import ErrorKind, Provenance, Result
from fetchpipe.engine.aimd import AdaptivePolicy
from fetchpipe.engine.body_parsing import parse_body
from fetchpipe.engine.breaker import Breaker, BreakerPolicy, down_message
from fetchpipe.engine.cache.http_cache import HttpCache
from fetchpipe.engine.cache.storage import Entry
from fetchpipe.engine.carry import HostCarry
from fetchpipe.engine.item import Item, expired
from fetchpipe.engine.limits import HostState
from fetchpipe.engine.politeness import HostPace, HostRateReport, HostsSeen
from fetchpipe.engine.quotas import HostQuota, QuotaBook
from fetchpipe.engine.retry import (
    RETRY_AFTER_STATUSES,
    Decision,
    RetryPolicy,
    decide,
    parse_retry_after,
)
from fetchpipe.engine.scheduler import Scheduler
from fetchpipe.engine.transports.base import RawResponse

_LOG = logger("engine")
INFO, WARNING = 20, 30  # logging's levels, without a lookup on the way
REMEMBER_FAILURES = 60.0
"""Seconds an idle host's breaker and retry budget are kept after its last failure."""
NOT_SENT = "not sent: "


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


class Owner(Protocol):
    """What a run reads from, and counts on, the ``Fetcher`` that started it."""

    limits: Limits
    timeouts: Timeouts
    retry: RetryPolicy
    breaker: BreakerPolicy | None
    cache: HttpCache | None
    retries_denied: int
    hosts_down: dict[str, int]
    failed_fast: int
    adaptive: AdaptivePolicy | None
    rate_limits: dict[str, HostRateReport]
    hosts_seen: HostsSeen
    quotas: QuotaBook | None
    carry_in: Mapping[str, HostCarry]


class Outcomes:
    """The outcomes of the attempts of one run, and the results of its requests."""

    def __init__(self, owner: Owner, *, rng: random.Random, on_retry: RetryHook | None) -> None:
        self.owner = owner
        self.rng = rng
        self.on_retry = on_retry
        self.loop = asyncio.get_running_loop()
        self.policy = owner.retry
        self.timeouts = owner.timeouts
        self.cache = owner.cache
        self.breaker = owner.breaker
        self.fails_fast = self.breaker is not None and self.breaker.fails_fast
        self.adaptive = owner.adaptive
        self.scheduler: Scheduler[Item] = Scheduler(
            owner.limits, expired=expired, carry=owner.carry_in
        )
        self.clock_offset = time.time() - self.loop.time()
        self.dropped: collections.deque[tuple[Item, Result]] = collections.deque()
        """Results of requests taken out of the queue of a host whose circuit just opened,
        for a worker to deliver."""

    def _outcome(self, host: HostState[Item], item: Item, failed: bool | None) -> None:
        """Tell the host's retry budget and circuit breaker how the attempt in flight ended:
        ``failed`` True (no response, or a 5xx), False (an answer), None (a 429, or it was never
        sent). Every attempt is reported once. When this opens the circuit, the host is paused
        and, with ``on_open="fail"``, its queue is emptied into ``dropped``. A lane's attempt
        is told to its group's breaker and budget (see :attr:`HostState.queue`)."""
        first = item.attempt <= 1
        host = host.queue
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
        openings = breaker.openings
        until = breaker.ended(number, failed, first, policy, now)
        if until is None:
            if openings and not breaker.openings:
                emit(
                    _LOG,
                    INFO,
                    "host_up",
                    f"{host.host} answers again: its circuit closed",
                    host=host.host,
                )
            return
        host.pause(until)
        emit(
            _LOG,
            WARNING,
            "host_down",
            f"{host.host} is down: its circuit breaker opened for {until - now:.3g} s",
            host=host.host,
            wait=round(until - now, 3),
            openings=breaker.openings,
        )
        down = self.owner.hosts_down
        down[host.host] = down.get(host.host, 0) + 1
        if self.fails_fast:
            self._drop_queue(host, breaker)

    def _drop_queue(self, host: HostState[Item], breaker: Breaker) -> None:
        """End every request waiting on ``host`` (its circuit just opened) as ``host_down``."""
        message = self._down(host, breaker)
        for item in self.scheduler.drain(host):
            if item.on_budget:
                self._outcome(host, item, None)
            if item.attempt:
                text = f"{item.failure} ({_attempts(item.attempt)}not retried: {message})"
            else:
                text = NOT_SENT + message
            self.owner.failed_fast += 1
            result = self._give_up(item, None, ErrorKind.HOST_DOWN, text)
            if result.error is not None:
                result.status = item.status  # the last attempt's, when it had an answer
            self.dropped.append((item, result))

    def _quota_spent(self, host: HostState[Item], item: Item, quota: HostQuota) -> Result:
        """``item`` is not sent: ``host``'s quota is spent (every lane's, for a lane). The
        requests waiting on the host end the same way at once (into ``dropped``), as a down
        host's do."""
        self._outcome(host, item, None)  # not sent
        message = quota.message()
        for waiting in self.scheduler.drain(host.queue):
            if waiting.on_budget:
                self._outcome(host, waiting, None)
            self.dropped.append((waiting, self._quota_result(waiting, message)))
        return self._quota_result(item, message)

    def _quota_result(self, item: Item, message: str) -> Result:
        if item.attempt:  # a retry: the last failure, then why it was not tried again
            message = f"{item.failure}; the retry was {message}"
        return self._give_up(item, None, ErrorKind.QUOTA_EXHAUSTED, message)

    def _lane_spent(
        self, lane: HostState[Item], group: HostState[Item], item: Item, quota: HostQuota
    ) -> bool:
        """``lane``'s quota is spent: True when ``item`` went back to its group for a lane
        whose quota is not (the scheduler passes a spent lane over until its reset)."""
        if all(other.spent for other in group.lanes or ()):
            return False
        self._outcome(lane, item, None)  # not sent
        emit(
            _LOG,
            INFO,
            "host_paused",
            f"{lane.name} rests: {quota.message()}",
            host=lane.name,
            reason="quota",
        )
        self.scheduler.retry_later(lane, item, 0.0, pause_host=False)
        return True

    def _other_lane(
        self, lane: HostState[Item], group: HostState[Item], item: Item, decision: Decision
    ) -> Decision:
        """``lane`` was told to rest (Retry-After): a request that may try again goes back to
        its group at once, for a lane that may start before (the resting one cannot); one
        whose Retry-After is over ``retry_after_max`` too, when another lane may start within
        that time."""
        if decision.retry:
            return Decision(retry=True, wait=0.0)
        if decision.error is not ErrorKind.RATE_LIMITED or item.attempt >= self.policy.attempts:
            return decision
        patience = self.loop.time() + self.policy.retry_after_max
        lanes = group.lanes or ()
        if any(other is not lane and other.start_at() <= patience for other in lanes):
            return Decision(retry=True, wait=0.0)
        return decision

    def pace_for(self, name: str, host: str | None = None) -> HostPace:
        """A new host's pace, by its limits (``HostLimits.adaptive``) and the run's policy
        (``name``: a lane's, of ``host``; see :mod:`fetchpipe.engine.lanes`)."""
        policy = self.adaptive
        assert policy is not None
        owner = self.owner
        limits = owner.limits.for_host(name if host is None else host)
        adaptive = limits.adaptive
        read_headers = adaptive is not False
        most = min(
            limits.max_concurrency or owner.limits.max_concurrency, owner.limits.max_concurrency
        )
        seen = owner.hosts_seen
        return HostPace(
            policy,
            read_headers=read_headers,
            aimd=adaptive is True or (adaptive is None and limits.max_per_second is None),
            ceiling=limits.max_per_second,
            reports=owner.rate_limits,
            first_alone=name not in seen
            and HostPace.gates(policy, read_headers=read_headers, most_in_flight=most),
            most_in_flight=most,
            seen=seen,
            gated=self.scheduler,
        )

    def _paced(
        self, host: HostState[Item], pace: HostPace, item: Item, response: RawResponse
    ) -> None:
        """Tell the host's pace what it answered."""
        pace.answered(
            host,
            response.status,
            response.headers,
            item.sent_at,
            self.loop.time(),
            retry_after_max=self.policy.retry_after_max,
        )

    def _down(self, host: HostState[Item], breaker: Breaker) -> str:
        policy = self.breaker
        assert policy is not None
        return down_message(host.host, breaker, policy, self.clock_offset)

    def _after_failure(
        self,
        host: HostState[Item],
        item: Item,
        kind: ErrorKind,
        message: str,
        response: RawResponse | None,
    ) -> Result | None:
        status = response.status if response is not None else None
        retry_after = response.headers.get("Retry-After") if response is not None else None
        pace = host.pace
        rested = False
        # With a pace, a Retry-After on any error status pauses the host (a 403 of GitHub's
        # secondary limits carries one); without, only on 429 and 503, as ever.
        if retry_after is not None and (pace is not None or status in RETRY_AFTER_STATUSES):
            delay = parse_retry_after(retry_after, time.time())
            policy = self.policy
            if host.group is not None and delay is not None and policy.respect_retry_after:
                delay = min(delay, policy.retry_after_max)  # a lane rests; the others go on
                rested = True
            if policy.respect_retry_after and delay is not None and delay <= policy.retry_after_max:
                self.scheduler.pause(host, delay)  # whether or not this one tries again
                emit(
                    _LOG,
                    INFO,
                    "host_paused",
                    f"{host.name} paused {delay:.3g} s (Retry-After)",
                    url=item.request.url,
                    key=item.request.key,
                    host=host.name,
                    status=status,
                    attempt=item.attempt,
                    wait=round(delay, 3),
                    reason="retry-after",
                )
                if pace is not None:
                    now = self.loop.time()
                    pace.paused(host, now, now + delay)
        decision = decide(
            self.policy,
            attempt=item.attempt,
            retryable_method=item.request.retryable_method,
            kind=kind,
            status=status,
            retry_after=retry_after,
            now=time.time(),
            rng=self.rng,
        )
        if rested and host.group is not None:
            decision = self._other_lane(host, host.group, item, decision)
        if decision.retry:
            now = self.loop.time()
            if item.deadline and now + decision.wait >= item.deadline:
                return self._deadline_failure(
                    item, now, f"while waiting {decision.wait:.3g} s to retry after: {message}"
                )
            keeper = host.queue
            breaker = keeper.breaker
            if self.fails_fast and breaker is not None and breaker.open_until:
                self.owner.failed_fast += 1
                down = self._down(keeper, breaker)
                text = f"{message} ({_attempts(item.attempt)}not retried: {down})"
                return self._give_up(item, response, ErrorKind.HOST_DOWN, text)
            budget = keeper.budget
            if budget is not None:
                keeper.remember_until = now + REMEMBER_FAILURES
                if budget.take():
                    item.on_budget = True
                else:
                    self.owner.retries_denied += 1
                    emit(
                        _LOG,
                        INFO,  # one per request a dead host fails: the summary counts them
                        "retry_refused",
                        f"not retried: {budget.refusal(keeper.host)}",
                        url=item.request.url,
                        key=item.request.key,
                        host=keeper.host,
                        attempt=item.attempt,
                        status=status,
                        error=kind.value,
                    )
                    decision = Decision(
                        retry=False, reason=f"{message} ({budget.refusal(keeper.host)})"
                    )
        if decision.retry:
            request = item.request
            emit(
                _LOG,
                INFO,
                "request_retried",
                f"attempt {item.attempt} failed ({message}); retrying in {decision.wait:.3g} s",
                url=request.url,
                params=request.params,
                key=request.key,
                host=host.name,
                attempt=item.attempt,
                status=status,
                error=kind.value,
                wait=round(decision.wait, 3),
            )
            hook = self.on_retry
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
        body = parse_body(response, item.request.expect, strict=False) if response else None
        return self._final(item, response, body, kind, message)

    def _stale(self, item: Item, failure: str) -> Result | None:
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
        self, item: Item, response: RawResponse | None, kind: ErrorKind, message: str
    ) -> Result:
        """The final result of a request that failed: a stale stored response when the cache
        has a usable one, else the failure."""
        stale = self._stale(item, message)
        if stale is not None:
            return stale
        body = parse_body(response, item.request.expect, strict=False) if response else None
        return self._final(item, response, body, kind, message)

    def _final(
        self,
        item: Item,
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

    def _from_entry(
        self,
        item: Item,
        entry: Entry,
        source: Provenance,
        message: str | None,
        headers: CIMultiDictProxy[str] | None = None,
    ) -> Result:
        """The result of a request answered by a stored response."""
        if headers is None:
            headers = CIMultiDictProxy(CIMultiDict(entry.headers))
        raw = RawResponse(entry.status, headers, entry.body, headers.get("Content-Type", ""), 0.0)
        timings = item.timings
        now = self.loop.time()
        if not timings.started:
            timings.started = now
        timings.first_byte = timings.first_byte or now
        timings.done = now
        body = parse_body(raw, item.request.expect, strict=False)
        return Result(
            item.request, entry.status, headers, body, item.attempt, None, message, timings, source
        )

    def _deadline_failure(self, item: Item, now: float, when: str) -> Result:
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
