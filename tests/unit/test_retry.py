"""The retry policy as pure values: no network, no clock."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest

from fetchpipe import ConfigError, ErrorKind, RetryPolicy
from fetchpipe.engine import retry
from fetchpipe.engine.retry import Decision, backoff, decide, parse_retry_after

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


@pytest.fixture(autouse=True)
def _real_waits() -> None:
    previous = retry.is_testing()
    retry.set_testing(False)
    yield
    retry.set_testing(previous)


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 4
    assert policy.retry_statuses == frozenset({408, 425, 429, 500, 502, 503, 504})
    with pytest.raises(AttributeError):
        policy.attempts = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [("attempts", 0), ("wait_initial", -1.0), ("wait_max", float("nan")), ("wait_exp_base", 0.5)],
)
def test_bad_values_are_rejected_with_the_field_named(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(wait_initial=0.5, wait_max=3.0)
    rng = random.Random(7)
    for retry_number, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (60, 3.0)]:
        waits = [backoff(policy, retry_number, rng) for _ in range(2000)]
        assert all(0.0 <= w <= cap for w in waits)
        assert max(waits) > cap * 0.95  # draws reach the cap...
        assert min(waits) < cap * 0.05  # ...and come near zero: full jitter, not equal jitter
        assert len(set(waits)) > 1900


def test_backoff_survives_huge_exponents() -> None:
    policy = RetryPolicy(wait_initial=1.0, wait_max=5.0, wait_exp_base=10.0)
    assert 0.0 <= backoff(policy, 10_000, random.Random(1)) <= 5.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("Fri, 02 Jan 2026 03:04:35 GMT", 30.0),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
        ("Fri, 99 Foo 2026 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def _decide(policy: RetryPolicy, **kw: object) -> Decision:
    args: dict[str, object] = {
        "attempt": 1,
        "retryable_method": True,
        "kind": ErrorKind.HTTP_STATUS,
        "status": 503,
        "now": NOW,
        "rng": random.Random(3),
    }
    args.update(kw)
    return decide(policy, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses_retry(status: int) -> None:
    assert _decide(RetryPolicy(), status=status).retry


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_other_statuses_never_retry(status: int) -> None:
    assert not _decide(RetryPolicy(), status=status).retry


@pytest.mark.parametrize(
    ("kind", "retried"),
    [
        (ErrorKind.CONNECT, True),
        (ErrorKind.TIMEOUT, True),
        (ErrorKind.RESET, True),
        (ErrorKind.TRUNCATED, True),
        (ErrorKind.INVALID_JSON, False),
        (ErrorKind.BODY_TOO_LARGE, False),
        (ErrorKind.INVALID_REQUEST, False),
        (ErrorKind.OTHER, False),
    ],
)
def test_transport_errors(kind: ErrorKind, retried: bool) -> None:
    assert _decide(RetryPolicy(), kind=kind, status=None).retry is retried


def test_attempts_are_counted_with_the_first() -> None:
    policy = RetryPolicy(attempts=3)
    assert _decide(policy, attempt=1).retry
    assert _decide(policy, attempt=2).retry
    assert not _decide(policy, attempt=3).retry


def test_non_idempotent_methods_are_not_retried_unless_asked() -> None:
    assert not _decide(RetryPolicy(), retryable_method=False).retry


def test_retry_after_seconds_pauses_the_host() -> None:
    decision = _decide(RetryPolicy(), status=429, retry_after="7")
    assert decision == Decision(retry=True, wait=7.0, pause_host=True)


def test_retry_after_date_pauses_the_host() -> None:
    decision = _decide(RetryPolicy(), status=503, retry_after="Fri, 02 Jan 2026 03:04:15 GMT")
    assert decision.retry and decision.pause_host and decision.wait == pytest.approx(10.0)


def test_retry_after_ignored_on_other_statuses() -> None:
    decision = _decide(RetryPolicy(wait_initial=0.1, wait_max=0.1), status=500, retry_after="60")
    assert decision.retry and not decision.pause_host and decision.wait <= 0.1


def test_malformed_retry_after_falls_back_to_backoff() -> None:
    decision = _decide(RetryPolicy(wait_initial=0.2, wait_max=0.2), status=429, retry_after="x")
    assert decision.retry and not decision.pause_host and 0.0 <= decision.wait <= 0.2


def test_retry_after_over_the_cap_fails_at_once_with_the_time() -> None:
    decision = _decide(RetryPolicy(retry_after_max=60), status=429, retry_after="3600")
    assert not decision.retry
    assert decision.error is ErrorKind.RATE_LIMITED
    assert decision.reason is not None
    assert "rate limited until 2026-01-02T04:04:05Z" in decision.reason


def test_retry_after_over_the_cap_fails_even_on_the_last_attempt() -> None:
    decision = _decide(RetryPolicy(attempts=1, retry_after_max=1), status=429, retry_after="5")
    assert decision.error is ErrorKind.RATE_LIMITED


def test_testing_mode_zeroes_backoff_but_keeps_retry_after() -> None:
    retry.set_testing(True)
    policy = RetryPolicy(wait_initial=10, wait_max=10)
    assert _decide(policy, status=500).wait == 0.0
    assert _decide(policy, status=429, retry_after="2").wait == 2.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9" * 400, 2.0**31),  # capped, not an OverflowError
        ("99999999999999999999", 2.0**31),
        ("2147483649", 2.0**31),  # ten digits, one over the cap
        ("²", None),  # a Unicode digit is not a delta-seconds value
        ("١٢", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 2.0**31),
    ],
)
def test_extreme_retry_after_values_are_read_safely(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, 0.0) == expected


def test_a_retry_after_beyond_any_date_fails_as_rate_limited() -> None:
    decision = decide(
        RetryPolicy(),
        attempt=1,
        retryable_method=True,
        kind=ErrorKind.HTTP_STATUS,
        status=429,
        retry_after="99999999999999999999",
        now=time.time(),
    )
    assert decision.error is ErrorKind.RATE_LIMITED and not decision.retry
