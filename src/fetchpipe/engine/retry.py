"""Retry as a value: a frozen policy, pure backoff and Retry-After parsing, no sleeps here.

The engine asks :func:`decide` what to do after each failed attempt and does the waiting
itself, so every rule here is testable without a clock or a network.

**The retry budget** (:class:`RetryBudget`, one per host) keeps retries from multiplying the
load on an API that is down, without refusing the retries that a flaky API's passing faults
need. It is charged by *retries that fail*, not by retries taken: a retry is refused only when
retries to that host are themselves failing. This is the retry throttling of gRPC (gRFC A6:
failures take a token, successes give back a fraction, retries stop below a threshold) and of
Google's Cloud client libraries (``retry_throttler::CircuitBreaker``: failed retries cost
tokens, completed requests earn them), read per host and counting retries only:

- the bucket starts full with ``capacity`` tokens (``RetryPolicy.budget``, 50);
- a retry that fails (no response, or a 5xx) takes a token; a retry that gets an answer gives
  one back; a first attempt that succeeds adds ``refill`` (0.1); 429s count neither way;
- a retry may go while a token is left. Until the host has answered anything well, the retries
  under way are also capped at the tokens left: a host down from the start cannot be sent more
  retries than its budget just because all its first attempts failed at the same moment.

Why not count retries taken, as botocore's retry quota does: when many
requests fail at once (a burst of 503s, a 429 that pauses the host with every retry waiting
behind it), the retries under way exhaust such a bucket though each of them would succeed; a
flaky API then loses records that a retry would have saved. Counting failed retries instead,
a request whose fault clears spends nothing (its retries succeed, or the one that fails is paid
back by the one that succeeds), while on a dead API every retry fails: after ``capacity``
failed retries (plus those already under way) the host gets none, and afterwards at most
``refill`` per first-attempt success, a tenth of its traffic.
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
    """Failed retries one host may have before its retries stop (see :class:`RetryBudget`);
    None: no budget."""
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
    """Retry tokens of one host for a run: retries stop when retries to the host are failing
    (see the module docstring for the rule and why).

    One bucket per host rather than one for the run: a run's requests go to many APIs, and an
    API that is down must not spend the retries that another API's passing faults need.
    """

    __slots__ = ("answered", "capacity", "denied", "failed", "pending", "refill", "spent", "tokens")

    def __init__(self, capacity: float, refill: float) -> None:
        self.capacity = capacity
        self.refill = refill
        self.tokens = capacity
        self.pending = 0
        """Retries allowed whose attempt has not ended yet."""
        self.answered = False
        """The host answered an attempt well (anything but no response, a 5xx or a 429)."""
        self.spent = 0
        """Retries allowed."""
        self.failed = 0
        """Retries that failed (each took a token)."""
        self.denied = 0
        """Retries refused."""

    def take(self) -> bool:
        """May one more retry go? True counts it as under way; False counts a refusal."""
        tokens = self.tokens + 1e-9  # ten refills of 0.1 make a whole token
        if tokens >= 1.0 and (self.answered or self.pending + 1 <= tokens):
            self.pending += 1
            self.spent += 1
            return True
        self.denied += 1
        return False

    def retry_ended(self, failed: bool | None) -> None:
        """A retry allowed by :meth:`take` ended: ``failed`` True (no response or a 5xx: it
        takes a token), False (an answer: it gives one back), None (a 429, or it was never
        sent)."""
        if self.pending:
            self.pending -= 1
        if failed:
            self.failed += 1
            self.tokens = max(0.0, self.tokens - 1.0)
        elif failed is not None:
            self.answered = True
            self.tokens = min(self.capacity, self.tokens + 1.0)

    def first_ended(self, failed: bool | None) -> None:
        """A first attempt ended; one that got an answer adds ``refill``."""
        if failed is False:
            self.answered = True
            self.tokens = min(self.capacity, self.tokens + self.refill)

    def refusal(self, host: str) -> str:
        """Why :meth:`take` refused, for the request's error message."""
        if self.tokens + 1e-9 >= 1.0:
            return (
                f"not retried: the retry budget of {host} allows {self.pending} retries under "
                "way while the host has not answered a request yet. HINT: the host may be down; "
                f"{_BUDGET_HINT}"
            )
        return (
            f"not retried: the retry budget of {host} is spent after {self.failed} failed "
            f"retries. HINT: retries to this host keep failing; {_BUDGET_HINT}"
        )


_BUDGET_HINT = (
    "RetryPolicy(budget=...) (fetch --retry-budget N|off, defaults.retry.budget in a pipeline "
    "file) sets how many failed retries a host may have before its retries stop"
)


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
        return float(min(int(text), RETRY_AFTER_CAP) if len(text) <= 10 else RETRY_AFTER_CAP)
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
