"""The retry policy as pure values: no network, no clock."""

from __future__ import annotations

import email.utils
import math
import random
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- properties ---------------------------------------------------------------------------------

_SECONDS = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
_POLICIES = st.builds(
    RetryPolicy,
    wait_initial=_SECONDS,
    wait_max=_SECONDS,
    wait_exp_base=st.floats(min_value=1.0, max_value=1e3, allow_nan=False),
)
_RETRY_NUMBERS = st.integers(min_value=0, max_value=100_000)


def _growth(policy: RetryPolicy, retry_number: int) -> float:
    """``wait_initial * wait_exp_base ** (n - 1)``, infinite where a float cannot hold it."""
    try:
        return policy.wait_initial * policy.wait_exp_base ** max(0, retry_number - 1)
    except OverflowError:
        return math.inf


class _Highest(random.Random):
    """Always draws the top of the range."""

    def uniform(self, a: float, b: float) -> float:
        return b


@settings(max_examples=300, deadline=None)
@given(policy=_POLICIES, retry_number=_RETRY_NUMBERS, seed=st.integers(0, 2**32))
def test_backoff_stays_within_zero_and_the_exponential_cap(
    policy: RetryPolicy, retry_number: int, seed: int
) -> None:
    bound = min(policy.wait_max, _growth(policy, retry_number))
    wait = backoff(policy, retry_number, random.Random(seed))
    assert 0.0 <= wait <= bound
    assert backoff(policy, retry_number, _Highest()) == bound  # the cap itself can be drawn


@settings(max_examples=200, deadline=None)
@given(policy=_POLICIES, retry_number=_RETRY_NUMBERS)
def test_the_backoff_cap_never_shrinks_from_one_retry_to_the_next(
    policy: RetryPolicy, retry_number: int
) -> None:
    assert backoff(policy, retry_number, _Highest()) <= backoff(
        policy, retry_number + 1, _Highest()
    )


# What a server may send: anything, numbers of any size, and dates with fields out of range.
_NUMBERS = st.from_regex(r"\s*[-+]?[0-9]{1,30}(\.[0-9]+)?\s*", fullmatch=True)
_DATE_LIKE = st.builds(
    "{}, {:02d} {} {} {:02d}:{:02d}:{:02d} {}".format,
    st.sampled_from(["Mon", "Fri", "Xyz"]),
    st.integers(0, 99),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo"]),
    st.one_of(st.integers(1900, 9999), st.integers(0, 10**25)),
    *[st.integers(0, 99)] * 3,
    st.one_of(
        st.sampled_from(["GMT", "UTC", "EST", ""]),
        st.integers(-(10**25), 10**25).map("{:+05d}".format),
    ),
)
_RETRY_AFTER_VALUES = st.one_of(st.none(), st.text(max_size=40), _NUMBERS, _DATE_LIKE)


@settings(max_examples=500, deadline=None)
@given(value=_RETRY_AFTER_VALUES, now=st.floats(0, 4e9))
def test_any_retry_after_value_is_none_or_a_wait_within_the_cap(
    value: str | None, now: float
) -> None:
    wait = parse_retry_after(value, now)  # never raises
    assert wait is None or 0.0 <= wait <= retry.RETRY_AFTER_CAP


@settings(max_examples=200, deadline=None)
@given(value=st.text(alphabet=st.characters(exclude_characters="0123456789"), max_size=40))
def test_a_retry_after_without_an_ascii_digit_is_ignored(value: str) -> None:
    """Neither delta-seconds nor an HTTP-date (which has a day and a year) is possible."""
    assert parse_retry_after(value, NOW) is None


@settings(max_examples=300, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=10**30),
    padding=st.sampled_from(["", " ", "\t", "  "]),
)
def test_delta_seconds_read_back_as_themselves_up_to_the_cap(seconds: int, padding: str) -> None:
    text = f"{padding}{seconds}{padding}"
    assert parse_retry_after(text, NOW) == float(min(seconds, retry.RETRY_AFTER_CAP))


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
    now=st.floats(min_value=0, max_value=4e9),
)
def test_an_http_date_reads_back_as_the_seconds_until_it(when: datetime, now: float) -> None:
    when = when.replace(microsecond=0)
    text = email.utils.format_datetime(when, usegmt=True)  # IMF-fixdate, as servers send it
    expected = min(float(retry.RETRY_AFTER_CAP), max(0.0, when.timestamp() - now))
    assert parse_retry_after(text, now) == pytest.approx(expected, abs=1e-6)
