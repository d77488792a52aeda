"""The retry budget and the circuit breaker as pure values: no network, times passed in."""

from __future__ import annotations

import pytest

from fetchpipe._exceptions import ConfigError
from fetchpipe._models import ErrorKind
from fetchpipe.engine.breaker import Breaker, BreakerPolicy, counts_as_failure
from fetchpipe.engine.retry import RetryBudget, RetryPolicy, set_testing


@pytest.fixture
def real_waits() -> None:
    set_testing(False)  # the autouse fixture turns testing mode back on after the test


def test_budget_allows_its_capacity_then_a_tenth_of_the_successes() -> None:
    budget = RetryBudget(capacity=5, refill=0.1)
    assert [budget.take() for _ in range(6)] == [True] * 5 + [False]
    for _ in range(30):  # first-attempt successes elsewhere on the host
        budget.succeeded(0)
    allowed = sum(budget.take() for _ in range(10))
    assert allowed == 3 and budget.denied == 1 + 7 and budget.spent == 8


def test_a_passing_fault_gives_its_tokens_back() -> None:
    budget = RetryBudget(capacity=3, refill=0.1)
    assert budget.take() and budget.take()
    budget.succeeded(2)  # the request landed after two retries
    assert budget.tokens == 3  # never above capacity
    budget.succeeded(0)
    assert budget.tokens == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget": 0.5}, "retry budget must be at least 1"),
        ({"budget": float("inf")}, "retry budget must be at least 1"),
        ({"budget_refill": 1.5}, "budget_refill must be between 0 and 1"),
    ],
)
def test_budget_settings_are_checked(options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(**options)  # type: ignore[arg-type]
    assert RetryPolicy(budget=None).budget is None


@pytest.mark.parametrize(
    ("kind", "status", "verdict"),
    [
        (ErrorKind.CONNECT, None, True),
        (ErrorKind.TIMEOUT, None, True),
        (ErrorKind.RESET, None, True),
        (ErrorKind.TRUNCATED, None, True),
        (None, 503, True),
        (None, 500, True),
        (None, 429, None),
        (None, 404, False),
        (None, 200, False),
        (ErrorKind.INVALID_REQUEST, None, None),
        (ErrorKind.BODY_TOO_LARGE, None, None),
    ],
)
def test_what_counts_against_a_host(
    kind: ErrorKind | None, status: int | None, verdict: bool | None
) -> None:
    assert counts_as_failure(kind, status) is verdict


def test_breaker_opens_after_threshold_and_probes_after_the_cooldown(real_waits: None) -> None:
    policy = BreakerPolicy(threshold=3, cooldown=2.0, cooldown_max=5.0)
    breaker = Breaker()
    assert breaker.failure(policy, now=10.0) is None
    assert breaker.failure(policy, now=10.1) is None
    assert breaker.failure(policy, now=10.2) == pytest.approx(12.2)  # opens for 2 s
    assert breaker.failure(policy, now=10.3) is None  # in flight before it opened: ignored
    breaker.starting(now=11.0)
    assert not breaker.probing  # still cooling down
    breaker.starting(now=12.2)
    assert breaker.probing  # the first attempt after the cool-down goes alone
    # Failing probes reopen it after `threshold` failures, for twice as long, then capped.
    assert breaker.failure(policy, 12.5) is None and breaker.failure(policy, 12.6) is None
    assert breaker.failure(policy, now=12.7) == pytest.approx(16.7)
    breaker.starting(now=16.7)
    for t in (17.0, 17.1):
        breaker.failure(policy, t)
    assert breaker.failure(policy, now=17.2) == pytest.approx(22.2)  # 8 s capped at 5 s
    breaker.starting(now=22.2)
    breaker.success()
    assert not breaker.probing and breaker.openings == 0 and breaker.failures == 0


def test_a_success_resets_the_count_of_consecutive_failures(real_waits: None) -> None:
    policy = BreakerPolicy(threshold=2)
    breaker = Breaker()
    for _ in range(5):
        assert breaker.failure(policy, now=1.0) is None
        breaker.success()
    assert breaker.openings == 0


def test_testing_mode_has_no_cooldown() -> None:
    assert BreakerPolicy(cooldown=5.0).cooldown_after(1) == 0.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 0}, "threshold must be at least 1"),
        ({"cooldown": -1.0}, "cooldown must be a number >= 0"),
        ({"cooldown": 10.0, "cooldown_max": 5.0}, "cooldown_max .* is below cooldown"),
    ],
)
def test_breaker_settings_are_checked(options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BreakerPolicy(**options)  # type: ignore[arg-type]
