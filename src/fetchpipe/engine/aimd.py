"""Adapting to a limit a host enforces without publishing it: AIMD on the host's rate.

A host that answers 429 (or 503 with ``Retry-After``) without saying its limit is sent
requests at a rate learned the way TCP learns a link's capacity: additive increase,
multiplicative decrease.

- Until the first such answer the host has no learned rate: it goes as fast as its other
  limits let it (nothing changes for a host that never throttles). A throttle sets a rate only
  while the host is sent at least :data:`ENGAGE_FROM` requests a second: below that a 429 says
  little about a rate (a host sent one request a second that answers one 429 is not asking for
  0.9 a second), and Retry-After and the retries' backoff deal with it.
- The first throttle sets the rate to ``decrease`` times what the host *took* in the last
  second: what it was sent (:class:`RateMeter`) times the share of its answers that were no
  throttle. So the first throttle of a burst lands near what the host allows, not near what it
  was sent. Each later throttle multiplies the rate by ``decrease`` (not by a measure: after a
  Retry-After pause the last second's traffic is no measure of anything). Only an attempt sent
  after the last decrease can decrease again (one decrease per round trip, as TCP does once
  per window): the answers to requests already on their way when the rate fell say nothing
  about the new rate.
- Each other answer adds ``step / rate``, so the rate grows by ``step`` requests per second
  per second of answers (additive recovery); ``step`` is ``increase`` (2.5%) of the rate the
  last decrease set, so that recovering from a decrease takes the same few seconds whether the
  host allows 2 or 2,000 requests a second. The rate grows only while it is used: it stays
  within twice what was sent in the last second, plus one.
- Always within ``[min_per_second, ceiling]``; the ceiling is the host's configured
  ``max_per_second`` (or none).

Why 0.9 and 2.5%: against a host that allows ``C`` requests per second, a decrease brings the
rate to about ``0.9 C``; it climbs back to ``C`` in about 4 s and past it until the host's
bucket runs dry, when one throttle brings it back. The mean rate stays above 90% of ``C``
with one 429 every several seconds (measured by ``fetchpipe bench politeness``). A halving
(TCP's 0.5) would average 75% of ``C``. botocore's adaptive retry mode (CUBIC) decreases by
0.7 and grows along a cubic curve; the additive rule is simpler to reason about and, measured,
close enough.

The policy is a frozen value and its rules pure functions of the rates they are given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fetchpipe._exceptions import ConfigError


@dataclass(frozen=True, slots=True)
class AdaptivePolicy:
    """How hosts are paced by what they answer: their published limits and AIMD on 429s.

    ``min_per_second``: the floor of a learned rate. ``increase``: the share of the rate set by
    the last decrease that is added per second of answers. ``decrease``: the factor on a
    throttle (0 < decrease < 1).
    ``first_wait``: how long a host's other requests wait for the answer to its first one
    (whose headers may publish a limit) before they go anyway.
    """

    min_per_second: float = 0.1
    increase: float = 0.025
    decrease: float = 0.9
    first_wait: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_per_second", "increase"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(
                    f"adaptive {name} must be a positive number, got {value!r}. "
                    "HINT: e.g. min_per_second 0.1, increase 0.025"
                )
        if not 0 < self.decrease < 1:
            raise ConfigError(
                f"adaptive decrease must be between 0 and 1 (a factor on the rate), got "
                f"{self.decrease!r}. HINT: 0.9 takes a tenth off the rate on each 429"
            )
        if not (self.first_wait >= 0 and math.isfinite(self.first_wait)):
            raise ConfigError(
                f"adaptive first_wait must be a number of seconds >= 0, got {self.first_wait!r}."
            )

    def throttled(
        self, rate: float, sent_rate: float, ceiling: float = math.inf, taken: float = 1.0
    ) -> float:
        """The rate after a throttle: ``decrease`` times ``rate``; the first time (``rate`` is
        ``inf``), ``decrease`` times what the host took in the last second: ``sent_rate`` times
        ``taken``, the share of its answers that were no throttle; with ``sent_rate`` below
        :data:`ENGAGE_FROM`, no rate yet (``inf``, within the ceiling)."""
        if math.isfinite(rate):
            return self.clamp(rate * self.decrease, ceiling)
        if sent_rate < ENGAGE_FROM:
            return self.clamp(rate, ceiling)  # too little traffic to learn a rate from
        taken = min(1.0, max(0.0, taken))
        return self.clamp(min(ceiling, sent_rate * taken) * self.decrease, ceiling)

    def step(self, rate: float) -> float:
        """Requests per second added per second of answers after a decrease to ``rate``."""
        return self.increase * rate

    def answered(
        self, rate: float, sent_rate: float, step: float, ceiling: float = math.inf
    ) -> float:
        """The rate after an answer that was no throttle: ``step / rate`` more, while the rate
        is used (at most twice ``sent_rate``, plus one)."""
        if rate >= 2.0 * sent_rate + 1.0:
            return self.clamp(rate, ceiling)
        return self.clamp(rate + step / rate, ceiling)

    def clamp(self, rate: float, ceiling: float = math.inf) -> float:
        """``rate`` within ``[min_per_second, ceiling]`` (the ceiling wins if below the floor)."""
        return max(min(rate, ceiling), min(self.min_per_second, ceiling))


DEFAULT_ADAPTIVE = AdaptivePolicy()
ENGAGE_FROM = 8.0
"""Requests sent in the last second from which a first throttle sets a rate."""


class RateMeter:
    """Events per second over the last second, from two one-second counts (the sliding-window
    estimate: the previous second's count weighted by how much of it is still inside the
    window). O(1) time and memory per event, where a log of times would grow with the rate."""

    __slots__ = ("_current", "_previous", "_start")

    def __init__(self) -> None:
        self._start = -math.inf
        self._current = 0
        self._previous = 0

    def add(self, now: float) -> None:
        self._roll(now)
        self._current += 1

    def rate(self, now: float) -> float:
        """Events in the last second (per second)."""
        self._roll(now)
        elapsed = now - self._start
        return self._previous * max(0.0, 1.0 - elapsed) + self._current

    def _roll(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed < 1.0:
            return
        self._previous = self._current if elapsed < 2.0 else 0
        self._current = 0
        self._start = now if elapsed >= 2.0 else self._start + 1.0
