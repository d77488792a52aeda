"""A circuit breaker per host: stop sending to a host that keeps failing, then probe it.

States (as in Hystrix, resilience4j and Envoy's outlier detection, kept small):

- *closed*: requests flow. A failed attempt (no response, or a 5xx) counts, once per request
  (the engine does not count a request's retries again); any other response resets the count.
  ``threshold`` consecutive failures open the circuit.
- *open*: the host is paused for a cool-down (``cooldown``, doubling on each re-opening up to
  ``cooldown_max``). Requests for it wait in their queue; nothing is sent.
- *half-open*: after the cool-down, requests go one at a time: the first is a probe, and the
  first success closes the circuit so the others follow at full concurrency. ``threshold``
  consecutive failures open it again, for a longer cool-down. (A single failed probe does not
  reopen it, as in resilience4j's half-open window: with retries in the queue, the probe is
  often a request that failed before, and reopening on it alone turns a host that fails many
  requests into one request per cool-down.)

429 answers count neither way: ``Retry-After`` pauses the host on its own terms. The breaker is
state of one :class:`~fetchpipe.engine.limits.HostState`; this module holds the policy and the
transitions, free of I/O and of the clock (times are passed in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fetchpipe._exceptions import ConfigError
from fetchpipe._models import ErrorKind
from fetchpipe.engine.retry import is_testing

FAILURE_KINDS = frozenset(
    {ErrorKind.CONNECT, ErrorKind.TIMEOUT, ErrorKind.RESET, ErrorKind.TRUNCATED}
)
"""Transport failures that count against a host (the host did not answer properly)."""


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a host's circuit opens (``threshold`` consecutive failed attempts) and for how long
    it rests before a probe (``cooldown`` seconds, doubling per re-opening, at most
    ``cooldown_max``)."""

    threshold: int = 5
    cooldown: float = 5.0
    cooldown_max: float = 60.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ConfigError(
                f"breaker threshold must be at least 1, got {self.threshold!r}. "
                "HINT: pass breaker=None to switch the circuit breaker off."
            )
        for name in ("cooldown", "cooldown_max"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"breaker {name} must be a number >= 0, got {value!r}.")
        if self.cooldown_max < self.cooldown:
            raise ConfigError(
                f"breaker cooldown_max ({self.cooldown_max!r}) is below cooldown "
                f"({self.cooldown!r})."
            )

    def cooldown_after(self, openings: int) -> float:
        """The rest after the ``openings``-th opening in a row (1 for the first). Zero in
        testing mode, as backoff waits are."""
        if is_testing():
            return 0.0
        return min(self.cooldown_max, self.cooldown * 2.0 ** min(openings - 1, 60))


def counts_as_failure(kind: ErrorKind | None, status: int | None) -> bool | None:
    """True for an attempt that counts against the host, False for one that shows it is up,
    None for one that says nothing (429: the host is up but asks to slow down)."""
    if kind is not None and kind in FAILURE_KINDS:
        return True
    if status is None:
        return None if kind is not None else False
    if status == 429:
        return None
    return status >= 500


class Breaker:
    """The breaker state of one host."""

    __slots__ = ("failures", "half_open", "open_until", "openings")

    def __init__(self) -> None:
        self.failures = 0
        """Consecutive failed attempts while closed."""
        self.openings = 0
        """Openings in a row (reset by a success): sets the next cool-down."""
        self.open_until = 0.0
        """While open: the loop time the cool-down ends (0 when not open)."""
        self.half_open = False

    @property
    def probing(self) -> bool:
        """True while one probe may run alone."""
        return self.half_open

    def success(self) -> None:
        """An attempt showed the host is up: close the circuit."""
        self.failures = 0
        self.openings = 0
        self.half_open = False
        self.open_until = 0.0

    def failure(self, policy: BreakerPolicy, now: float) -> float | None:
        """Count a failed attempt. Returns the end of the cool-down when this opens the
        circuit (the caller pauses the host until then), else None."""
        if self.open_until:  # already open: attempts that were in flight still end
            return None
        self.failures += 1
        if self.failures < policy.threshold:
            return None
        self.half_open = False
        self.failures = 0
        self.openings += 1
        self.open_until = now + policy.cooldown_after(self.openings)
        return self.open_until

    def starting(self, now: float) -> None:
        """An attempt starts on the host: the first after a cool-down is the probe."""
        if self.open_until and now >= self.open_until - 0.001:
            self.open_until = 0.0
            self.half_open = True
