"""Per-host meters: concurrency, a rate (GCRA) and a pause, in one small object per host.

The rate uses the Generic Cell Rate Algorithm (GCRA, ITU-T I.371; the "virtual scheduling"
form): a host keeps a theoretical arrival time ``tat``; a request may start at ``now`` when
``now >= tat - tolerance`` and then moves ``tat`` to ``max(tat, now) + interval`` (keeping
``tat`` when ``now`` is only a little late, see ``LATENESS_CREDIT``). With
``interval = 1 / max_per_second`` and ``tolerance = interval * (burst - 1)`` this is a token
bucket of size ``burst`` refilled at ``max_per_second``, kept as one float.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio

    from fetchpipe._config import HostLimits
    from fetchpipe.engine.breaker import Breaker
    from fetchpipe.engine.politeness import HostPace
    from fetchpipe.engine.quotas import HostQuota
    from fetchpipe.engine.retry import RetryBudget

T = TypeVar("T")

# Timers may fire a little early (uvloop rounds to milliseconds): starting within this slack of
# the scheduled time keeps rates exact over time because GCRA never lets tat fall behind.
TIMER_SLACK = 0.001
# ...and a start often comes a little late (the timer, then a worker's turn on the loop). Plain
# GCRA would restart the schedule from the late start and the rate would sag by the lateness;
# crediting up to this much lateness keeps the long-run rate on target, at the price of letting
# one request go this much early after a late one.
LATENESS_CREDIT = 0.01


def host_of(url: str) -> str | None:
    """The lower-case host of an http(s) URL, or ``None`` when the URL is not one.

    A small hand-written split instead of ``yarl.URL``: it runs once per request on the hot
    path, and the transport parses the URL fully anyway.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    authority = rest.split("/", 1)[0]
    if "?" in authority or "#" in authority:
        authority = authority.split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        close = authority.find("]")
        host = authority[: close + 1] if close != -1 else ""
    else:
        host = authority.partition(":")[0]
    return host.lower() or None


class HostOf:
    """``host_of`` that remembers the last URL's beginning up to its path: inputs mostly come
    host by host, and the next URL with the same beginning has the same host, unparsed."""

    __slots__ = ("_host", "_prefix")

    def __init__(self) -> None:
        self._prefix = ""
        self._host = ""

    def __call__(self, url: str) -> str | None:
        if self._prefix and url.startswith(self._prefix):
            return self._host
        host = host_of(url)
        path = url.find("/", url.find("://") + 3)
        if host is not None and path != -1:
            # Everything that decides the host comes before this '/'.
            self._prefix, self._host = url[: path + 1], host
        return host


class HostState(Generic[T]):
    """Everything the engine knows about one host: limits in force and requests waiting.

    ``fresh`` holds first attempts in input order; ``delayed`` is a heap of retries keyed by the
    time they may go again.
    """

    __slots__ = (
        "active",
        "ahead",
        "breaker",
        "budget",
        "delayed",
        "equipped",
        "fresh",
        "fresh_first",
        "group",
        "host",
        "in_ready",
        "interval",
        "lane",
        "lanes",
        "max_concurrency",
        "name",
        "pace",
        "paused_until",
        "quota",
        "remember_until",
        "tat",
        "tolerance",
        "turn",
        "wake_at",
        "wake_handle",
    )

    def __init__(self, name: str, limits: HostLimits, *, host: str | None = None) -> None:
        self.name = name
        self.host = name if host is None else host
        """The host whose limits apply: ``name`` but for a lane or a group (see
        :mod:`fetchpipe.engine.lanes`), which are named after their host and labels."""
        self.max_concurrency = limits.max_concurrency or 0
        self.interval = 1.0 / limits.max_per_second if limits.max_per_second else 0.0
        self.tolerance = self.interval * (limits.burst - 1)
        self.active = 0
        self.tat = 0.0
        self.paused_until = 0.0
        self.fresh: deque[T] = deque()
        self.fresh_first = 0
        """First attempts to take before due retries (those a first-request gate held, see
        :mod:`fetchpipe.engine.politeness`): sent in the order they had without the gate."""
        self.ahead = 0
        """Requests of this host read ahead, waiting outside the engine's buffer (see
        :mod:`fetchpipe.engine.readahead`): the host is not idle while there are any."""
        self.delayed: list[tuple[float, int, T]] = []
        self.in_ready = False
        self.wake_at = 0.0
        self.wake_handle: asyncio.TimerHandle | None = None
        self.equipped = False
        """The engine has given this state its breaker, budget, pace and quota (those it has)."""
        self.breaker: Breaker | None = None
        """Given by the engine with the host's first request (see
        :mod:`fetchpipe.engine.breaker`); None without a breaker."""
        self.remember_until = 0.0
        """Kept (not forgotten when idle) until then: a host that failed recently keeps its
        breaker and retry budget across a lull in its requests."""
        self.budget: RetryBudget | None = None
        """Given by the engine with the host's first request (see
        :class:`fetchpipe.engine.retry.RetryBudget`); None without a budget."""
        self.pace: HostPace | None = None
        """Given by the engine with the host's first request (see
        :mod:`fetchpipe.engine.politeness`): it may hold the host and change its rate."""
        self.quota: HostQuota | None = None
        """The host's quota across runs (:mod:`fetchpipe.engine.quotas`), when it has one."""
        self.lanes: list[HostState[T]] | None = None
        """A group's lanes (:mod:`fetchpipe.engine.lanes`): the group holds the requests, each
        lane a credential's limits; ``turn`` is the lane to look at first next time."""
        self.turn = 0
        self.group: HostState[T] | None = None
        """A lane's group (None for a host or a group); ``lane`` its index among the lanes."""
        self.lane = 0

    @property
    def queue(self) -> HostState[T]:
        """Where this state's requests wait, and whose circuit breaker and retry budget its
        attempts answer to: a lane's group (a host is down, or out of retries, for all its
        credentials at once), else this state itself."""
        group = self.group
        return self if group is None else group

    @property
    def saturated(self) -> bool:
        if 0 < self.max_concurrency <= self.active:
            return True
        breaker = self.breaker
        return breaker is not None and breaker.half_open and self.active > 0

    @property
    def spent(self) -> bool:
        """The quota is spent until its window resets (see :mod:`fetchpipe.engine.quotas`)."""
        quota = self.quota
        return quota is not None and quota.exhausted_until > time.time()

    def start_at(self) -> float:
        """Earliest time a new attempt may start, by pause and rate (concurrency aside)."""
        at = self.paused_until
        if self.interval:
            at = max(at, self.tat - self.tolerance)
        pace = self.pace
        if pace is not None and pace.hold_until > at:
            return pace.hold_until
        return at

    def note_start(self, now: float) -> None:
        self.active += 1
        if self.breaker is not None:
            self.breaker.starting(now)
        if self.pace is not None:
            self.pace.started(self, now)
        if self.interval:
            tat = self.tat
            self.tat = (tat if now - tat <= LATENESS_CREDIT else now) + self.interval

    def pause(self, until: float) -> None:
        if until > self.paused_until:
            self.paused_until = until

    @property
    def has_work(self) -> bool:
        return bool(self.fresh or self.delayed)

    def forgettable(self, now: float) -> bool:
        """True when dropping this state changes nothing: idle, rested, not paused."""
        return (
            not self.active
            and not self.fresh
            and not self.delayed
            and not self.ahead
            and self.paused_until <= now
            and self.tat <= now
            and self.remember_until <= now
            and (self.lanes is None or all(lane.forgettable(now) for lane in self.lanes))
        )
