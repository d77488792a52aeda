"""The AIMD policy: its bounds, its convergence under a fixed capacity, and its checks."""

from __future__ import annotations

import math
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe._exceptions import ConfigError
from fetchpipe.engine.aimd import DEFAULT_ADAPTIVE, ENGAGE_FROM, AdaptivePolicy, RateMeter

POLICIES = st.builds(
    AdaptivePolicy,
    min_per_second=st.floats(0.01, 5),
    increase=st.floats(0.001, 0.5),
    decrease=st.floats(0.05, 0.99),
)
RATES = st.floats(min_value=0.0, max_value=1e6)


@settings(max_examples=300, deadline=None)
@given(
    POLICIES,
    st.one_of(st.none(), st.floats(0.01, 1000)),
    st.lists(st.tuples(st.booleans(), RATES, st.floats(0, 1)), min_size=1, max_size=60),
)
def test_the_rate_never_leaves_floor_and_ceiling(
    policy: AdaptivePolicy,
    ceiling: float | None,
    events: list[tuple[bool, float, float]],
) -> None:
    top = ceiling if ceiling is not None else math.inf
    floor = min(policy.min_per_second, top)
    rate, step = math.inf, 0.0
    for throttled, sent, taken in events:
        if throttled:
            rate = policy.throttled(rate, sent, top, taken)
            step = policy.step(rate)
        elif math.isfinite(rate):
            rate = policy.answered(rate, sent, step, top)
        if math.isfinite(rate):
            assert floor <= rate <= top
        else:  # no rate yet: never after a busy host's throttle, nor within a ceiling
            assert not (throttled and (sent >= ENGAGE_FROM or top < math.inf))


def simulate(
    policy: AdaptivePolicy, capacity: float, seconds: float, dt: float = 0.01
) -> dict[str, float]:
    """A host with a token bucket of one second's worth at ``capacity`` per second, sent
    requests at the learned rate (starting from a burst at ``4 * capacity``), each answered at
    once. Returns what the host took per second, and the share it refused, in the second half."""
    rate, step = math.inf, 0.0
    tokens, debt = capacity, 0.0
    recent: deque[tuple[float, bool]] = deque()  # the last second's answers
    decreased_at = -1.0
    taken = refused = 0
    t = 0.0
    while t < seconds:
        tokens = min(capacity, tokens + capacity * dt)
        debt += (4 * capacity if not math.isfinite(rate) else rate) * dt
        while recent and recent[0][0] <= t - 1:
            recent.popleft()
        while debt >= 1:
            debt -= 1
            ok = tokens >= 1
            tokens -= ok
            recent.append((t, ok))
            sent = len(recent)
            share = sum(a for _, a in recent) / sent if sent >= 8 else 1.0
            if not ok and t > decreased_at:
                decreased_at = t
                rate = policy.throttled(rate, sent, math.inf, share)
                step = policy.step(rate)
            elif ok and math.isfinite(rate):
                rate = policy.answered(rate, sent, step)
            if t >= seconds / 2:
                taken += ok
                refused += not ok
        t += dt
    return {"per_second": taken / (seconds / 2), "refused_share": refused / max(1, taken + refused)}


@settings(max_examples=25, deadline=None)
@given(st.floats(8, 200), st.floats(0.6, 0.9))
def test_under_a_fixed_capacity_it_converges_near_it(capacity: float, decrease: float) -> None:
    policy = AdaptivePolicy(decrease=decrease)
    got = simulate(policy, capacity, seconds=60)
    # Near the capacity, and refused rarely, once past the first seconds.
    assert got["per_second"] >= 0.85 * capacity
    assert got["refused_share"] < 0.05


def test_the_default_policy_keeps_refusals_under_two_percent() -> None:
    got = simulate(DEFAULT_ADAPTIVE, 20, seconds=120)
    assert got["per_second"] >= 0.9 * 20
    assert got["refused_share"] < 0.02


def test_a_throttle_uses_what_the_host_took() -> None:
    policy = AdaptivePolicy(decrease=0.5)
    # The first throttle: sent 100/s of which a fifth was taken, the host takes about 20/s.
    assert policy.throttled(math.inf, 100, taken=0.2) == pytest.approx(10)
    # Later ones take the factor off the rate in force, whatever was measured.
    assert policy.throttled(30, 100) == pytest.approx(15)
    assert policy.throttled(30, 2, taken=0.1) == pytest.approx(15)
    # Too little traffic to learn from: no rate yet (the ceiling, when there is one).
    assert policy.throttled(math.inf, 3) == math.inf
    assert policy.throttled(math.inf, 3, ceiling=10) == 10
    # Once a rate is learned, a throttle with nothing measured still takes the factor off.
    assert policy.throttled(10, 0) == pytest.approx(5)


def test_recovery_is_additive_and_only_while_the_rate_is_used() -> None:
    policy = AdaptivePolicy()
    step = policy.step(20)
    assert step == pytest.approx(0.5)
    # 20 answers at 20/s (one second) add one step.
    rate = 20.0
    for _ in range(20):
        rate = policy.answered(rate, 20, step)
    assert rate == pytest.approx(20.5, abs=0.01)
    # A rate far above what is sent does not grow.
    assert policy.answered(50, 10, step) == 50


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_per_second", 0), ("increase", -1), ("decrease", 1), ("decrease", 0), ("first_wait", -1)],
)
def test_bad_values_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        AdaptivePolicy(**{field: value})


def test_the_rate_meter_counts_the_last_second() -> None:
    meter = RateMeter()
    for i in range(10):
        meter.add(100 + i * 0.1)  # 10 events over one second
    assert meter.rate(100.95) == pytest.approx(10)
    assert meter.rate(101.5) == pytest.approx(5, abs=0.6)  # half the window has passed
    assert meter.rate(103) == 0
