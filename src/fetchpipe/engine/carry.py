"""A host's politeness state as a value, carried from one engine to the next.

A cluster fetch runs a task's batches one after another, each on a fresh engine (maybe in
another process or on another machine). :class:`HostCarry` is what one batch's engine knew of a
host and the next one must not forget: a Retry-After pause (or a spent quota's hold), the GCRA
meter, the circuit breaker, the retry budget and the rate AIMD learned. Times are wall-clock
(``time.time()``): an engine's loop clock means nothing in another process.

:func:`export_host` reads a :class:`~fetchpipe.engine.limits.HostState` into a value (``None``
when there is nothing to carry); :func:`import_limits` and :func:`import_equipment` put a value
into a new state (the meters when the scheduler makes the state, the breaker, budget and pace
once the engine has given it them). Importing only ever makes a limit stricter: a time already
past changes nothing, and a fresh state keeps whatever is stricter of its own and the carry's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fetchpipe.engine.limits import HostState

REMEMBER = 60.0
"""Seconds a state that came with a carry is kept when idle (as a failing host's is)."""


@dataclass(frozen=True, slots=True)
class HostCarry:
    """What an engine hands on about one host (times: wall clock, ``time.time()``)."""

    paused_until: float = 0.0
    """No start before this: a Retry-After, an open breaker's cool-down, a spent quota."""
    tat: float = 0.0
    """The GCRA meter's theoretical arrival time (see :mod:`fetchpipe.engine.limits`)."""
    interval: float = 0.0
    """The spacing in force when the host's answers raised it above the configured one."""
    rate: float | None = None
    """The rate AIMD learned (requests per second), when the host throttled."""
    breaker_open_until: float = 0.0
    breaker_failures: int = 0
    breaker_openings: int = 0
    budget_tokens: float | None = None
    """The retry budget's tokens, when some were spent."""

    def live(self, now: float) -> HostCarry | None:
        """This carry at wall time ``now``: times in the past dropped, ``None`` when nothing
        is left to carry."""
        carry = HostCarry(
            paused_until=self.paused_until if self.paused_until > now else 0.0,
            tat=self.tat if self.tat > now else 0.0,
            interval=self.interval,
            rate=self.rate,
            breaker_open_until=self.breaker_open_until if self.breaker_open_until > now else 0.0,
            breaker_failures=self.breaker_failures,
            breaker_openings=self.breaker_openings,
            budget_tokens=self.budget_tokens,
        )
        return None if carry == _NOTHING else carry


_NOTHING = HostCarry()


def export_host(state: HostState[Any], clock_offset: float, now: float) -> HostCarry | None:
    """``state`` as a carry; ``clock_offset`` turns its loop times into wall times
    (``time.time() - loop.time()``), ``now`` is the loop time. ``None``: nothing to carry."""
    paused = state.paused_until
    pace = state.pace
    interval = 0.0
    rate: float | None = None
    if pace is not None:
        if not pace.gating:  # (a first request's gate belongs to its run)
            paused = max(paused, pace.hold_until)
        if state.interval > pace.configured_interval:
            interval = state.interval
        if math.isfinite(pace.rate):
            rate = pace.rate
    breaker = state.breaker
    open_until, failures, openings = 0.0, 0, 0
    if breaker is not None:
        if breaker.open_until:
            open_until = breaker.open_until + clock_offset
        failures, openings = breaker.failures, breaker.openings
    budget = state.budget
    tokens = None if budget is None or budget.tokens >= budget.capacity else budget.tokens
    carry = HostCarry(
        paused_until=paused + clock_offset if paused > now else 0.0,
        tat=state.tat + clock_offset if state.tat > now else 0.0,
        interval=interval,
        rate=rate,
        breaker_open_until=open_until,
        breaker_failures=failures,
        breaker_openings=openings,
        budget_tokens=tokens,
    )
    return carry.live(now + clock_offset)


def import_limits(state: HostState[Any], carry: HostCarry, clock_offset: float, now: float) -> None:
    """Put the carry's pause and rate meter into a new ``state`` (loop time ``now``)."""
    until = max(carry.paused_until, carry.breaker_open_until) - clock_offset
    if until > now:
        state.pause(until)
    tat = carry.tat - clock_offset
    if tat > state.tat and tat > now:
        state.tat = tat
    if carry.interval > state.interval:
        state.interval = carry.interval
        state.tolerance = 0.0
    state.remember_until = max(state.remember_until, now + REMEMBER)


def import_equipment(
    state: HostState[Any], carry: HostCarry, clock_offset: float, now: float
) -> None:
    """Put the carry's breaker, retry budget and learned rate into ``state``, once the engine
    has given it them (loop time ``now``). A pause the host's answers asked for (a Retry-After,
    a spent quota; not the breaker's cool-down) that goes on is told to the pace, so that the
    time it holds the host back counts as paused here, as in one engine it would have."""
    breaker = state.breaker
    if breaker is not None:
        breaker.failures = max(breaker.failures, carry.breaker_failures)
        breaker.openings = max(breaker.openings, carry.breaker_openings)
        open_until = carry.breaker_open_until - clock_offset
        if open_until > now and open_until > breaker.open_until:
            breaker.open_until = open_until
            breaker.opened_at = now
            state.pause(open_until)
    budget = state.budget
    if budget is not None and carry.budget_tokens is not None:
        budget.tokens = min(budget.tokens, carry.budget_tokens)
    pace = state.pace
    if pace is None:
        return
    if carry.rate is not None and carry.rate < pace.rate:
        pace.resume(state, carry.rate, now)
    paused_until = carry.paused_until - clock_offset
    if carry.paused_until > carry.breaker_open_until and paused_until > now:
        pace.paused(state, now, paused_until)


def live_carries(carries: Mapping[str, HostCarry], now: float) -> dict[str, HostCarry]:
    """``carries`` at wall time ``now``, those with nothing left dropped."""
    live = {}
    for name, carry in carries.items():
        kept = carry.live(now)
        if kept is not None:
            live[name] = kept
    return live
