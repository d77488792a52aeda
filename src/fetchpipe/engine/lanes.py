"""Lanes: the credentials of a host, each paced on its own, chosen when a request is sent.

An API that limits per token (or per API key) is, to the engine, several hosts in one: each
credential has its own concurrency, rate, Retry-After pause, pace and quota. A request that
carries lanes (``Request.lanes``) waits in its *group* (the host and its lane labels); each
lane is a :class:`~fetchpipe.engine.limits.HostState` of its own, keyed by :func:`lane_name`.
When a worker looks for work, :func:`pick_lane` chooses a lane that may start now, so a lane
that rests (paused, at its rate or concurrency) never holds back a request another lane could
send. Pure: the scheduler calls it, the tests drive it without a loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol


class LaneLike(Protocol):
    """What the picker reads of a lane."""

    @property
    def active(self) -> int: ...

    @property
    def saturated(self) -> bool: ...

    @property
    def spent(self) -> bool: ...

    def start_at(self) -> float: ...


def lane_name(host: str, label: str) -> str:
    """The name a lane's limits, pauses, reports and quota go by: its host and its label."""
    return f"{host} {label}"


def group_name(host: str, labels: Sequence[str]) -> str:
    """The name of the queue of a host's requests that may go on any of ``labels``."""
    return f"{host} [{' | '.join(labels)}]"


def pick_lane(
    lanes: Sequence[LaneLike], now: float, *, slack: float = 0.0, turn: int = 0
) -> tuple[int | None, float]:
    """The lane to send on at ``now``, or when to look again.

    Returns ``(index, now)`` for a lane that may start within ``slack`` of ``now`` (not at its
    concurrency, its pause, rate and pace allowing): of those, the one with the fewest attempts
    in flight, ties going to the first from ``turn`` on (so that equal lanes take turns).
    Otherwise ``(None, when)``: the earliest time a lane not at its concurrency may start, or
    ``math.inf`` when every lane is at its concurrency (an attempt's end frees one).
    A lane whose quota is ``spent`` is passed over, unless every lane's is: then the request
    goes on one, to end as ``quota_exhausted`` at once, as a host's does.
    """
    count = len(lanes)
    best: int | None = None
    best_active = 0
    earliest = math.inf
    spent = [lane.spent for lane in lanes]  # (a clock read each: once per lane)
    every_spent = all(spent)
    for step in range(count):
        index = (turn + step) % count
        lane = lanes[index]
        if lane.saturated or (spent[index] and not every_spent):
            continue
        at = lane.start_at()
        if at > now + slack:
            earliest = min(earliest, at)
            continue
        active = lane.active
        if best is None or active < best_active:
            best, best_active = index, active
    if best is not None:
        return best, now
    return None, earliest
