"""A host's state carried from one engine to the next, as pure values: times passed in.

Each engine has its own loop clock; a carry is in wall-clock time. Here engine A's loop time
``t`` is wall time ``t + OFFSET_A`` and engine B's is ``t + OFFSET_B``.
"""

from __future__ import annotations

import math
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe._config import HostLimits
from fetchpipe.engine.aimd import DEFAULT_ADAPTIVE
from fetchpipe.engine.breaker import Breaker
from fetchpipe.engine.carry import HostCarry, export_host, import_equipment, import_limits
from fetchpipe.engine.limits import HostState
from fetchpipe.engine.politeness import HostPace
from fetchpipe.engine.retry import RetryBudget

LIMITS = HostLimits(max_per_second=5, burst=3)
OFFSET_A = 1_000_000.0  # wall = loop + offset
OFFSET_B = 999_000.0  # (loop times are never negative)
NOW_A = 50.0  # engine A's loop time at its end


def _state(*, pace: bool = False) -> HostState[int]:
    state: HostState[int] = HostState("api.example.com", LIMITS)
    state.breaker = Breaker()
    state.budget = RetryBudget(50, 0.1)
    if pace:
        state.pace = HostPace(
            DEFAULT_ADAPTIVE,
            read_headers=True,
            aimd=True,
            ceiling=LIMITS.max_per_second,
            reports={},
        )
    return state


def _carried(carry: HostCarry, now_b: float, *, pace: bool = False) -> HostState[int]:
    """A new state of engine B at its loop time ``now_b`` with ``carry`` put in."""
    state = _state(pace=pace)
    import_limits(state, carry, OFFSET_B, now_b)
    import_equipment(state, carry, OFFSET_B, now_b)
    return state


def test_a_state_with_nothing_to_hand_on_exports_nothing() -> None:
    state = _state(pace=True)
    state.paused_until = NOW_A - 1.0  # a pause that ended
    state.tat = NOW_A - 0.5  # a meter at rest
    assert export_host(state, OFFSET_A, NOW_A) is None


def test_a_retry_after_pause_goes_on_in_the_next_engine_by_the_wall_clock() -> None:
    state = _state()
    state.pause(NOW_A + 2.0)
    carry = export_host(state, OFFSET_A, NOW_A)
    assert carry is not None and carry.paused_until == OFFSET_A + NOW_A + 2.0
    assert pickle.loads(pickle.dumps(carry)) == carry  # it crosses processes
    now_b = OFFSET_A + NOW_A + 0.5 - OFFSET_B  # B starts half a second later (wall)
    carried = _carried(carry, now_b)
    assert math.isclose(carried.start_at() - now_b, 1.5)


def test_a_pause_that_ended_meanwhile_is_dropped_and_changes_nothing() -> None:
    carry = HostCarry(paused_until=OFFSET_A + NOW_A + 2.0, tat=OFFSET_A + NOW_A + 0.1)
    later = OFFSET_A + NOW_A + 3.0
    assert carry.live(later) is None
    carried = _carried(carry, later - OFFSET_B)
    fresh = _state()
    assert (carried.paused_until, carried.tat, carried.interval) == (
        fresh.paused_until,
        fresh.tat,
        fresh.interval,
    )


def test_an_open_breaker_stays_open_and_holds_the_host() -> None:
    state = _state()
    assert state.breaker is not None
    state.breaker.open_until = NOW_A + 5.0
    state.breaker.openings = 2
    carry = export_host(state, OFFSET_A, NOW_A)
    assert carry is not None
    now_b = OFFSET_A + NOW_A + 1.0 - OFFSET_B
    carried = _carried(carry, now_b)
    assert carried.breaker is not None and carried.breaker.is_open(now_b)
    assert carried.breaker.openings == 2  # the next opening cools down longer
    assert math.isclose(carried.start_at() - now_b, 4.0)
    assert not carried.breaker.is_open(now_b + 4.01)


def test_a_learned_rate_and_a_spent_retry_budget_go_on() -> None:
    state = _state(pace=True)
    assert state.pace is not None and state.budget is not None
    state.pace.resume(state, 2.0, NOW_A)  # AIMD came down to 2/s
    state.budget.tokens = 3.0
    carry = export_host(state, OFFSET_A, NOW_A)
    assert carry is not None and carry.rate == 2.0 and carry.budget_tokens == 3.0
    carried = _carried(carry, 10.0, pace=True)
    assert carried.pace is not None and carried.pace.rate == 2.0
    assert carried.interval == 0.5  # 2/s, below the configured 5/s
    assert carried.budget is not None and carried.budget.tokens == 3.0


def test_a_gcra_burst_spent_at_the_end_is_not_spent_again() -> None:
    state = _state()
    for _ in range(3):  # the whole burst of 3 at once
        state.note_start(NOW_A)
    state.active = 0
    carry = export_host(state, OFFSET_A, NOW_A)
    assert carry is not None
    now_b = OFFSET_A + NOW_A - OFFSET_B  # B starts at once
    carried = _carried(carry, now_b)
    assert carried.start_at() > now_b  # no fresh burst at the boundary
    assert math.isclose(carried.start_at(), state.start_at() + OFFSET_A - OFFSET_B)


_TIMES = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    pause=_TIMES,
    tat=_TIMES,
    open_for=_TIMES,
    failures=st.integers(0, 30),
    openings=st.integers(0, 5),
    tokens=st.floats(min_value=0.0, max_value=50.0),
    rate=st.none() | st.floats(min_value=0.05, max_value=100.0),
    elapsed=st.floats(min_value=0.0, max_value=12.0),
)
def test_import_of_export_keeps_every_limit_at_least_as_strict(
    pause: float,
    tat: float,
    open_for: float,
    failures: int,
    openings: int,
    tokens: float,
    rate: float | None,
    elapsed: float,
) -> None:
    state = _state(pace=True)
    assert state.breaker is not None and state.budget is not None and state.pace is not None
    state.paused_until = max(0.0, NOW_A + pause)
    state.tat = max(0.0, NOW_A + tat)
    if open_for > 0:  # the engine pauses the host while its circuit is open
        state.breaker.open_until = NOW_A + open_for
        state.pause(state.breaker.open_until)
    state.breaker.failures, state.breaker.openings = failures, openings
    state.budget.tokens = tokens
    if rate is not None:
        state.pace.resume(state, rate, NOW_A)
    carry = export_host(state, OFFSET_A, NOW_A)
    now_b = OFFSET_A + NOW_A + elapsed - OFFSET_B  # B starts `elapsed` seconds later (wall)
    carried = _carried(carry, now_b, pace=True) if carry is not None else _state(pace=True)
    assert carried.breaker is not None and carried.budget is not None
    assert carried.pace is not None
    wall_a = state.start_at() + OFFSET_A
    wall_b = carried.start_at() + OFFSET_B
    start_b = now_b + OFFSET_B
    if wall_a > start_b:  # A's engine would still wait: B waits at least as long
        assert wall_b >= wall_a - 1e-6
    else:  # a wait already over adds none
        assert wall_b <= start_b + 1e-6
    if open_for - elapsed > 1e-3:
        assert carried.breaker.is_open(now_b)
    assert carried.breaker.openings >= openings
    assert carried.breaker.failures >= failures
    assert carried.budget.tokens <= tokens
    assert carried.interval >= state.interval - 1e-12
    assert carried.pace.rate <= state.pace.rate
