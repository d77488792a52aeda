"""Retry as a value: a frozen policy, pure backoff and Retry-After parsing, no sleeps here.

The engine asks :func:`decide` what to do after each failed attempt and does the waiting
itself, so every rule here is testable without a clock or a network.
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from fetchpipe._exceptions import ConfigError
from fetchpipe._models import ErrorKind

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
RETRYABLE_KINDS = frozenset(
    {ErrorKind.CONNECT, ErrorKind.TIMEOUT, ErrorKind.RESET, ErrorKind.TRUNCATED}
)

_testing = False


def set_testing(enabled: bool) -> None:
    """Zero every backoff wait (Retry-After is still honoured) so test suites stay fast."""
    global _testing
    _testing = enabled


def is_testing() -> bool:
    return _testing


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    ``attempts`` counts every try, the first included. Waits use exponential backoff with full
    jitter: a uniform draw in ``[0, min(wait_max, wait_initial * wait_exp_base ** n)]``.
    A ``Retry-After`` on 429/503 replaces the backoff and pauses the whole host; beyond
    ``retry_after_max`` the request fails at once as rate limited.
    """

    attempts: int = 4
    wait_initial: float = 0.5
    wait_max: float = 30.0
    wait_exp_base: float = 2.0
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    retry_after_max: float = 300.0
    respect_retry_after: bool = True
    budget: float | None = 50.0
    """Retries one host may have outstanding (see :class:`RetryBudget`); None: no budget."""
    budget_refill: float = 0.1
    """Retry tokens a first-attempt success adds to the budget."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(
                f"retry attempts must be at least 1 (the first try), got {self.attempts!r}."
            )
        for name in ("wait_initial", "wait_max", "retry_after_max"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"retry {name} must be a number >= 0, got {value!r}.")
        if self.budget is not None and not (self.budget >= 1 and math.isfinite(self.budget)):
            raise ConfigError(
                f"retry budget must be at least 1 (or None for no budget), got {self.budget!r}."
            )
        if not (0 <= self.budget_refill <= 1):
            raise ConfigError(
                f"retry budget_refill must be between 0 and 1, got {self.budget_refill!r}."
            )
        if self.wait_exp_base < 1:
            raise ConfigError(f"retry wait_exp_base must be >= 1, got {self.wait_exp_base!r}.")
        object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))


DEFAULT_RETRY = RetryPolicy()
RETRY_AFTER_CAP = 2**31
"""The longest Retry-After taken literally, in seconds (about 68 years)."""


def _utc_text(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "a date too far away to show"


class RetryBudget:
    """Retry tokens of one host for a run, so that retries cannot multiply the load on a
    failing API (botocore's retry quota, gRPC's retry throttling).

    One bucket per host rather than one for the run: a run's requests go to many APIs, and an
    API that is down must not spend the retries that another API's passing faults need.

    The bucket starts full with ``capacity`` tokens. Every retry takes one; when none is left,
    the request fails instead of retrying. A request that succeeds after retries gives its
    tokens back (a passing fault costs nothing), and a success at the first attempt adds
    ``refill``. First attempts never need a token. So once the bucket is empty, retries run at
    most ``refill`` per first-attempt success: with 0.1, at most a tenth of the traffic.
    """

    __slots__ = ("capacity", "denied", "refill", "spent", "tokens")

    def __init__(self, capacity: float, refill: float) -> None:
        self.capacity = capacity
        self.refill = refill
        self.tokens = capacity
        self.spent = 0
        """Retries allowed."""
        self.denied = 0
        """Retries refused because the bucket was empty."""

    def take(self) -> bool:
        """Take a token for one retry; False (and counted) when there is none."""
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.spent += 1
            return True
        self.denied += 1
        return False

    def succeeded(self, retries: int) -> None:
        """A request succeeded after ``retries`` retries: give back what it took."""
        gain = float(retries) if retries else self.refill
        self.tokens = min(self.capacity, self.tokens + gain)


def backoff(policy: RetryPolicy, retry_number: int, rng: random.Random | None = None) -> float:
    """Full-jitter wait before retry ``retry_number`` (1 for the first retry)."""
    exponent = max(0, retry_number - 1)
    try:
        cap = policy.wait_initial * policy.wait_exp_base**exponent
    except OverflowError:
        cap = policy.wait_max
    cap = min(policy.wait_max, cap)
    return (rng or random).uniform(0.0, cap)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date).

    ``now`` is the current Unix time. Returns ``None`` for a missing or malformed value
    (the caller falls back to backoff); a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():  # RFC 9110 delta-seconds: ASCII digits only
        # Long strings of digits are capped rather than converted (int() of thousands of digits
        # is slow, and beyond a float's range it overflows); RFC 9111 caps delta-seconds at
        # 2**31 the same way.
        return float(int(text)) if len(text) <= 10 else float(RETRY_AFTER_CAP)
    if text.isdigit():  # other Unicode digits: not a Retry-After value
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover - older Pythons returned None
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(float(RETRY_AFTER_CAP), max(0.0, when.timestamp() - now))


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failed attempt.

    ``retry`` false means the result is final. ``wait`` is the delay before the next attempt;
    ``pause_host`` says the wait came from Retry-After and applies to the whole host.
    ``reason`` explains a final failure that the retry rules themselves caused.
    """

    retry: bool
    wait: float = 0.0
    pause_host: bool = False
    error: ErrorKind | None = None
    reason: str | None = None


GIVE_UP = Decision(retry=False)


def decide(
    policy: RetryPolicy,
    *,
    attempt: int,
    retryable_method: bool,
    kind: ErrorKind,
    status: int | None = None,
    retry_after: str | None = None,
    now: float,
    rng: random.Random | None = None,
) -> Decision:
    """Decide after attempt number ``attempt`` (1-based) failed with ``kind``/``status``.

    ``now`` is the Unix time, used for Retry-After dates and the "rate limited until" message.
    """
    if kind is ErrorKind.HTTP_STATUS:
        if status is None or status not in policy.retry_statuses:
            return GIVE_UP
    elif kind not in RETRYABLE_KINDS:
        return GIVE_UP
    if not retryable_method:
        return GIVE_UP

    delay: float | None = None
    if policy.respect_retry_after and status in RETRY_AFTER_STATUSES:
        delay = parse_retry_after(retry_after, now)
        if delay is not None and delay > policy.retry_after_max:
            until = _utc_text(now + delay)
            return Decision(
                retry=False,
                error=ErrorKind.RATE_LIMITED,
                reason=(
                    f"rate limited until {until} (Retry-After {delay:.0f} s is over "
                    f"retry_after_max {policy.retry_after_max:g} s)"
                ),
            )
    if attempt >= policy.attempts:
        return GIVE_UP
    if delay is not None:
        return Decision(retry=True, wait=delay, pause_host=True)
    wait = 0.0 if _testing else backoff(policy, attempt, rng)
    return Decision(retry=True, wait=wait)
