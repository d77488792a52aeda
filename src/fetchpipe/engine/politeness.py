"""A host's pace by what it answers: the limits it publishes, and AIMD on the 429s it does not
explain. One :class:`HostPace` per host state (:class:`~fetchpipe.engine.limits.HostState`
asks it when the host may start, and tells it each start); the run tells it each answer.

**Published limits** (:mod:`~fetchpipe.engine.ratelimit_headers`). Each published window keeps
a *budget*: the requests that may still start before its reset. An answer saying ``remaining``
sets the budget to ``remaining`` less the host's other requests in flight (the server may not
have counted them yet, so the estimate errs low, never high); each start takes one; at 0 the
host holds until the window resets (plus :data:`RESET_MARGIN`), when the budget is the whole
quota less what is still in flight. So a host is sent its quota as soon as it is available and
nothing beyond it: the run reaches each window's end with no 429. An answer from an older
window (its reset sooner than the one in force) is ignored; two answers of one window keep the
lower budget and the sooner reset. A policy that gives a quota and a window but no count left
paces evenly at ``quota / window``.

**The first request.** Before a host has answered, nothing is known of its limits; with 100
requests in flight at once, a host allowing 10 per window would answer 90 of them 429. So a
host's first request goes alone, and the others wait until it ends, at most ``first_wait``
seconds (1 s), then go anyway. The gate is kept small:

- it ends as soon as the first attempt ends, whatever its end (an answer, a connection error,
  a timeout, a cancel: :meth:`HostPace.ended`);
- the requests it held that would have gone with it (as many as the host may have in flight,
  less one) then go *before* a retry of that first request (``fresh_first`` on the host): they
  are sent in the order they would have been sent without the gate, so the circuit breaker,
  which reads first attempts in send order, sees the same run of first attempts; the rest, as
  without the gate, wait their turn with retries that are due (a retry that is due goes
  first: behind a whole queue of first attempts on a slow host it would wait for all of them);
- it applies once per host per :class:`~fetchpipe.Fetcher` (:class:`HostsSeen`): a host whose
  state is forgotten while idle and made again is not gated again, so a host that publishes
  nothing pays one round trip, once;
- it applies only where a burst is possible: a host that may have at most
  :data:`ALONE_UP_TO` requests in flight goes as configured.

**Unpublished limits**: :class:`~fetchpipe.engine.aimd.AdaptivePolicy` (AIMD on the rate), for
a 429, or a 503 with ``Retry-After``, that carries no rate-limit header. A throttle that carries
a ``Retry-After`` pauses the host as it says, and decreases the rate only when throttles are at
least :data:`GUIDED_SHARE` of the host's answers of the last second (a burst into the limit);
a bare 429 always does.

What happened is kept per host in a :class:`~fetchpipe._host_rates.HostRateReport` (only for
hosts where something did: a limit read or learned, a 429 or a 503 with ``Retry-After``, a
pause), for the summaries, ``run --json``, and the run's row in its destination (the report's
"Politeness per host").
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sized
from typing import Protocol

from fetchpipe._host_rates import HostRateReport
from fetchpipe.engine.aimd import AdaptivePolicy, RateMeter
from fetchpipe.engine.ratelimit_headers import Published, Window, read_limits

RESET_MARGIN = 0.05
"""Seconds after a published reset before the host's next request (clocks and timers)."""
UNKNOWN_RESET_WAIT = 1.0
"""A window spent without a known reset: one request after this long, to read it again."""
REMEMBER = 60.0
"""Seconds an idle host's learned pace is kept after it was last used."""
THROTTLE_STATUSES = frozenset({429, 503})
MIN_SAMPLE = 8
"""Answers in the last second below which their share of throttles is not trusted."""
GUIDED_SHARE = 0.25
"""A throttle with a Retry-After (which pauses the host) decreases the rate only when at least
this share of the last second's answers were throttles: an API that sends a Retry-After now and
then (a flaky one, or a shared quota met by chance) is paused, not slowed for the whole run."""
ALONE_UP_TO = 2
"""A host that may have at most this many requests in flight is not gated on its first answer:
a burst of two overruns no published window worth the wait."""
HOSTS_SEEN_MAX = 100_000
"""Hosts :class:`HostsSeen` keeps (the oldest go first): a crawl over millions of hosts keeps
a bounded set, at the cost of a second first-request gate for a host seen long ago."""


class Paced(Protocol):
    """What :class:`HostPace` reads and sets on its host's state."""

    name: str
    active: int
    interval: float
    tolerance: float
    remember_until: float
    fresh_first: int
    """First attempts to send before the host's retries (the ones the first-request gate held)."""

    @property
    def fresh(self) -> Sized: ...


class Gated(Protocol):
    """Told when a host's first-request gate opens and closes (the scheduler: a worker idle
    behind a gate is no reason to read the input ahead)."""

    def gate(self, until: float) -> None: ...

    def ungate(self) -> None: ...


class HostsSeen:
    """Hosts whose first attempt has ended, for one :class:`~fetchpipe.Fetcher`: their first
    request does not go alone again when their state is made again (see the module
    docstring). A dict used as an insertion-ordered set, at most :data:`HOSTS_SEEN_MAX` long."""

    __slots__ = ("_hosts", "_max")

    def __init__(self, max_hosts: int = HOSTS_SEEN_MAX) -> None:
        self._hosts: dict[str, None] = {}
        self._max = max_hosts

    def __contains__(self, host: object) -> bool:
        return host in self._hosts

    def __len__(self) -> int:
        return len(self._hosts)

    def add(self, host: str) -> None:
        hosts = self._hosts
        if host in hosts:
            return
        if len(hosts) >= self._max:
            del hosts[next(iter(hosts))]
        hosts[host] = None


class _Budget:
    """One published window's requests left before its reset (loop time)."""

    __slots__ = ("left", "limit", "reset_at", "window")

    def __init__(self, left: int, limit: int | None, reset_at: float, window: float | None):
        self.left = left
        self.limit = limit
        self.reset_at = reset_at
        self.window = window


class HostPace:
    """The pace of one host (see the module docstring)."""

    __slots__ = (
        "_accepted",
        "_budgets",
        "_decreased_at",
        "_even",
        "_first_until",
        "_gated",
        "_held_from",
        "_meter",
        "_most_in_flight",
        "_paused_until",
        "_policy",
        "_reports",
        "_seen",
        "_step",
        "_throttles",
        "aimd",
        "ceiling",
        "configured_interval",
        "gating",
        "hold_until",
        "rate",
        "read_headers",
        "report",
    )

    def __init__(
        self,
        policy: AdaptivePolicy,
        *,
        read_headers: bool,
        aimd: bool,
        ceiling: float | None,
        reports: dict[str, HostRateReport],
        first_alone: bool = False,
        most_in_flight: int = 0,
        seen: HostsSeen | None = None,
        gated: Gated | None = None,
    ) -> None:
        """``first_alone``: the host's first request goes alone (the caller decides, see
        :meth:`gates`), the others held until it ends; ``most_in_flight``: how many the host
        may have on their way at once (0: no bound), so how many of those held would have
        gone with the first without the gate; ``seen`` is told when that first attempt ends,
        ``gated`` when the gate opens and when it closes."""
        self._most_in_flight = most_in_flight
        self._policy = policy
        self.read_headers = read_headers
        self.aimd = aimd
        self.ceiling = ceiling if ceiling else math.inf
        self.configured_interval = 1.0 / ceiling if ceiling else 0.0
        self.rate = math.inf
        """The learned rate (AIMD); inf until the host throttles."""
        self.hold_until = 0.0
        """No start before this (loop time): the first request's answer, a spent quota."""
        self._first_until = -1.0 if first_alone else 0.0
        """-1: the first request has not started; 0: no gate (any more); else its end (loop)."""
        self._seen = seen
        self._gated = gated
        self.gating = False
        """The first request is on its way and the gate in force (until :meth:`ended`)."""
        self._accepted = RateMeter()
        self._throttles = RateMeter()
        self._budgets: dict[str, _Budget] = {}
        self._even = 0.0
        self._decreased_at = -math.inf
        self._step = 0.0
        self._meter = RateMeter()
        self._paused_until = 0.0
        self._held_from = -1.0  # -1: no pause in force
        self._reports = reports
        self.report: HostRateReport | None = None

    @staticmethod
    def gates(policy: AdaptivePolicy, *, read_headers: bool, most_in_flight: int) -> bool:
        """Whether a new host's first request goes alone: its headers are read, the policy
        waits for them at all, and the host may have more than :data:`ALONE_UP_TO` requests in
        flight (``most_in_flight``)."""
        return read_headers and policy.first_wait > 0 and most_in_flight > ALONE_UP_TO

    # --- starts --------------------------------------------------------------------------------

    def started(self, host: Paced, now: float) -> None:
        """An attempt starts on ``host`` at ``now`` (loop time)."""
        if self.aimd:
            self._meter.add(now)
        if self._held_from >= 0:  # a pause delayed this start: count it
            self._report(host).paused += max(0.0, min(now, self._paused_until) - self._held_from)
            self._held_from = -1.0
        if self._first_until < 0:
            self._first_until = now + self._policy.first_wait
            self.hold_until = self._first_until
            self.gating = True
            if self._gated is not None:
                self._gated.gate(self._first_until)
            return
        budgets = self._budgets
        if not budgets:
            return
        hold = 0.0
        for budget in budgets.values():
            if now >= budget.reset_at:  # a new window: its whole quota, less what is on its way
                if budget.limit is None:
                    budget.left = 1
                    budget.reset_at = now + UNKNOWN_RESET_WAIT
                else:
                    budget.left = budget.limit - (host.active - 1)
                    budget.reset_at = budget.reset_at + budget.window if budget.window else math.inf
                    if budget.reset_at <= now:  # idle for several windows
                        budget.reset_at = math.inf
            budget.left -= 1
            if budget.left <= 0:
                wait = budget.reset_at if math.isfinite(budget.reset_at) else now + 1.0
                hold = max(hold, wait + RESET_MARGIN)
        if hold > self.hold_until:
            self._pause(host, now, hold)
            self.hold_until = hold

    # --- answers -------------------------------------------------------------------------------

    def answered(
        self,
        host: Paced,
        status: int,
        headers: Mapping[str, str],
        sent_at: float,
        now: float,
        *,
        retry_after_max: float,
    ) -> None:
        """``host`` answered an attempt sent at ``sent_at`` with ``status`` and ``headers``."""
        if self.gating:
            self._first_ended(host, now)
        if status == 429:
            self._report(host).throttled += 1
        published = (
            read_limits(headers, time.time(), retry_after_max=retry_after_max)
            if self.read_headers or status in THROTTLE_STATUSES
            else None
        )
        if status == 503 and published is not None and published.retry_after is not None:
            self._report(host).unavailable += 1
        if published is not None and published.rate_headers and self.read_headers:
            self._read(host, published, now)
        elif self.aimd:
            throttle = status == 429 or (
                status == 503 and published is not None and published.retry_after is not None
            )
            if throttle:
                self._throttles.add(now)
                guided = published is not None and published.retry_after is not None
                if guided and self._taken(now) > 1.0 - GUIDED_SHARE:
                    pass  # a Retry-After paces the host; a few of them are no rate to learn
                elif sent_at >= self._decreased_at:
                    self._decreased_at = now
                    rate = self._policy.throttled(
                        self.rate, self._sent(now), self.ceiling, self._taken(now)
                    )
                    if math.isfinite(rate):
                        self._step = self._policy.step(rate)
                        self._set_rate(host, rate, now)
            elif status < 500:
                self._accepted.add(now)
                if self.rate != math.inf:
                    rate = self._policy.answered(
                        self.rate, self._sent(now), self._step, self.ceiling
                    )
                    self._set_rate(host, rate, now)

    def ended(self, host: Paced, now: float) -> None:
        """An attempt on ``host`` ended, whatever its end (an answer, no response, a cancel):
        the first-request gate, if still in force, ends with it."""
        if self.gating:
            self._first_ended(host, now)

    def paused(self, host: Paced, now: float, until: float) -> None:
        """``host`` is paused until ``until`` (a Retry-After): counted as time paused."""
        self._pause(host, now, until)

    def resume(self, host: Paced, rate: float, now: float) -> None:
        """Start from ``rate``, learned by an earlier engine (see :mod:`fetchpipe.engine.carry`)."""
        self._set_rate(host, rate, now)

    # --- internals -----------------------------------------------------------------------------

    def _first_ended(self, host: Paced, now: float) -> None:
        """The first attempt ended: lift the gate (unless a spent budget holds the host), send
        what it held before any retry, and remember the host as seen."""
        held = now < self._first_until
        self._first_until = 0.0
        self.gating = False
        if self._gated is not None:
            self._gated.ungate()
        if self.hold_until > now:
            self.hold_until = max(
                (b.reset_at + RESET_MARGIN for b in self._budgets.values() if b.left <= 0),
                default=0.0,
            )
        if held:  # those it held that would have gone with it go before any retry of it
            waiting = len(host.fresh)
            most = self._most_in_flight
            host.fresh_first = min(waiting, most - 1) if most else waiting
        if self._seen is not None:
            self._seen.add(host.name)

    def _sent(self, now: float) -> float:
        return self._meter.rate(now)

    def _taken(self, now: float) -> float:
        """The share of the last second's answers that were no throttle (1 with too few)."""
        accepted = self._accepted.rate(now)
        answers = accepted + self._throttles.rate(now)
        return accepted / answers if answers >= MIN_SAMPLE else 1.0

    def _set_rate(self, host: Paced, rate: float, now: float) -> None:
        rate = min(rate, self.ceiling)
        self.rate = rate
        host.interval = max(self.configured_interval, self._even, 1.0 / rate)
        host.tolerance = 0.0
        host.remember_until = max(host.remember_until, now + REMEMBER)
        report = self._report(host)
        report.per_second = rate
        report.learned = True

    def _read(self, host: Paced, published: Published, now: float) -> None:
        """Take in the windows of one answer (see the module docstring)."""
        others = max(0, host.active - 1)
        budgets = self._budgets
        described: list[str] = []
        per_second: float | None = None
        for window in published.windows:
            rate = window.per_second
            if rate is not None:
                per_second = rate if per_second is None else min(per_second, rate)
            if window.limit is not None:
                described.append(_describe(window))
            if window.remaining is None:
                continue
            left = window.remaining - others
            reset_at = now + window.reset if window.reset is not None else math.inf
            budget = budgets.get(window.name)
            if budget is None:
                budgets[window.name] = _Budget(left, window.limit, reset_at, window.window)
                continue
            if budget.window is None:
                budget.window = window.window
            if budget.limit is None:
                budget.limit = window.limit
            if not math.isfinite(budget.reset_at) or reset_at >= budget.reset_at + _tolerance(
                budget.window
            ):
                budget.left, budget.reset_at = left, reset_at  # a new window
            elif reset_at > budget.reset_at - _tolerance(budget.window):
                budget.left = min(budget.left, left)  # the same window: the lower estimate
                budget.reset_at = min(budget.reset_at, reset_at)
            # else: an answer from a window already over
        even = 0.0
        if per_second is not None and not any(w.remaining is not None for w in published.windows):
            even = 1.0 / per_second  # a quota and a window only: go evenly
        if even != self._even:
            self._even = even
            host.interval = max(self.configured_interval, even)
            host.tolerance = 0.0
        hold = max(
            (b.reset_at + RESET_MARGIN for b in budgets.values() if b.left <= 0), default=0.0
        )
        if hold > now and math.isfinite(hold) and hold > self.hold_until:
            self._pause(host, now, hold)
            self.hold_until = hold
        host.remember_until = max(host.remember_until, now + REMEMBER)
        report = self._report(host)
        report.source = "+".join(dict.fromkeys(w.source for w in published.windows))
        if described:
            report.published = ", ".join(described)
        elif report.published is None:
            report.published = "a quota left (no window given)"
        report.per_second = per_second
        report.learned = False

    def _pause(self, host: Paced, now: float, until: float) -> None:
        """Hold ``host`` until ``until``; the time it delays the next start counts as paused
        (a hold that ends with the run delays nothing)."""
        if until <= max(now, self._paused_until):
            return
        if self._held_from < 0 or self._paused_until <= now:
            self._held_from = now  # (an earlier pause that delayed no start is not counted)
        self._paused_until = until
        self._report(host)

    def _report(self, host: Paced) -> HostRateReport:
        report = self.report
        if report is None:
            report = self._reports.get(host.name)
            if report is None:
                configured = self.ceiling if math.isfinite(self.ceiling) else None
                report = self._reports[host.name] = HostRateReport(host.name, configured=configured)
            self.report = report
        return report


def _tolerance(window: float | None) -> float:
    """How far two resets of one window may lie apart (whole-second rounding)."""
    return max(1.0, window / 2) if window else 1.0


def _describe(window: Window) -> str:
    """``10 per 2 s``; ``10 per window`` when the window's length is not given."""
    if window.window:
        return f"{window.limit} per {window.window:g} s"
    return f"{window.limit} per window"


__all__ = ["HostPace", "HostRateReport", "HostsSeen"]
