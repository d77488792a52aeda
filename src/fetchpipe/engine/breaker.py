"""A circuit breaker per host: tell a host that is down from one that is flaky, and stop
sending to the one that is down.

States (as in Hystrix, resilience4j and Envoy's outlier detection, kept small):

- *closed*: requests flow. The breaker follows the outcome of every attempt **in the order the
  attempts were sent** (see below) and opens when ``threshold`` first attempts in a row failed
  (no response, or a 5xx), with no attempt between them that showed the host up.
- *open*: for a cool-down (``cooldown``, doubling on each re-opening in a row, up to
  ``cooldown_max``), nothing is sent to the host. What happens to its requests is the policy's
  ``on_open``:

  * ``"fail"`` (the default, as resilience4j, Polly, Envoy and Hystrix do): every request of the
    host that is queued, waiting for a retry, or arriving while the circuit is open ends at once
    as a ``host_down`` result, and a request in flight that fails is not retried. A batch run
    then ends instead of waiting for the host; the results say which requests to run again.
  * ``"wait"``: the requests wait in their queue until the host answers again (no request is
    lost; a run with a host that stays down lasts as long as its cool-downs).

- *half-open*: after the cool-down, attempts go one at a time: the first is a probe, and the
  first success closes the circuit so the others follow at full concurrency. With ``"fail"``
  the probe is the next request for the host (its queue was emptied when the circuit opened, so
  a run with nothing else to do is not kept alive to probe); a failed probe opens the circuit
  again, for a longer cool-down. With ``"wait"`` the queued requests (mostly retries by then)
  are the probes, and ``threshold`` failed attempts in a row open it again (as in resilience4j's
  half-open window: reopening on a single failed retry would turn a host that fails many
  requests into one request per cool-down).

429 answers count neither way: ``Retry-After`` pauses the host on its own terms.

**Down or flaky.** Failing fast costs the queued requests of a host whose circuit opens, so the
opening rule must not mistake a flaky host for a dead one. Three choices make it so:

1. *First attempts only.* A retry that fails says little (it is the same request failing again;
   late in a run, the requests left are mostly retries of the hardest ones), so only a
   request's first attempt counts as a failure; a retry that succeeds still shows the host up.
2. *A long run.* ``threshold`` (20) first attempts in a row must fail. If each first attempt
   fails with probability ``p``, independently, a run of ``k`` failures starts at a given
   attempt with probability at most ``p**k``, so among ``n`` first attempts the chance of a
   false opening is below ``n * p**k``:

   ========  =============  ==============  ===============
   ``p``     n = 160        n = 1,000       n = 10,000
   ========  =============  ==============  ===============
   0.3       6e-9           4e-8            4e-7
   0.4       2e-6           1e-5            1e-4
   0.5       2e-4           1e-3            1e-2
   1.0       opens at the 20th failed request
   ========  =============  ==============  ===============

   A host failing 30-40% of its requests (the flaky API of ``bench faults``, the toxics) is
   practically never taken for down; one failing every request is, after 20 requests. (A rule
   of 5 in a row opens a 30%-failing host within 160 requests in about a quarter of runs, and
   a 40%-failing one in about two thirds.) The bound assumes failures independent of one
   another; failures that come together (an outage of some seconds) are a host down for that
   long, and treated so: ``on_open="wait"`` is the choice for a run that must not lose
   requests to a short outage.
3. *Send order, not completion order.* A flaky API often fails fast (an immediate 503) and
   succeeds slowly: with 100 requests in flight, its 30 failures come back before any success,
   and counted as they complete they would look like 30 failures in a row. The breaker numbers
   attempts as they are sent (:meth:`Breaker.started`) and reads their outcomes in that order,
   holding an early outcome until those sent before it are in (at most :data:`REORDER_LIMIT`;
   beyond that the oldest attempt still in flight is passed over: its failure is not counted,
   its success still closes the circuit). So a run of failures is a run of requests *sent* one
   after the other, which the probability above is about.

The breaker is state of one :class:`~fetchpipe.engine.limits.HostState`; this module holds the
policy and the transitions, free of I/O and of the clock (times are passed in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from fetchpipe._exceptions import ConfigError
from fetchpipe._models import ErrorKind
from fetchpipe.engine.retry import is_testing

FAILURE_KINDS = frozenset(
    {ErrorKind.CONNECT, ErrorKind.TIMEOUT, ErrorKind.RESET, ErrorKind.TRUNCATED}
)
"""Transport failures that count against a host (the host did not answer properly)."""

OnOpen = Literal["fail", "wait"]
ON_OPEN: tuple[str, ...] = get_args(OnOpen)
REORDER_LIMIT = 1024
"""Outcomes held back at most, waiting for an attempt sent before them to end."""

Verdict = bool | None
"""An attempt's outcome for the breaker: True failed, False showed the host up, None neither."""


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a host's circuit opens (``threshold`` first attempts in a row failed, in the order
    they were sent), how long it rests before a probe (``cooldown`` seconds, doubling per
    re-opening, at most ``cooldown_max``), and what its requests do meanwhile (``on_open``:
    ``"fail"`` ends them at once as ``host_down``; ``"wait"`` holds them until it recovers)."""

    threshold: int = 20
    cooldown: float = 5.0
    cooldown_max: float = 60.0
    on_open: OnOpen = "fail"

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
        if self.on_open not in ON_OPEN:
            raise ConfigError(
                f"breaker on_open must be 'fail' or 'wait', got {self.on_open!r}. HINT: 'fail' "
                "ends a down host's requests at once as host_down; 'wait' holds them until it "
                "recovers."
            )

    @property
    def fails_fast(self) -> bool:
        return self.on_open == "fail"

    def cooldown_after(self, openings: int) -> float:
        """The rest after the ``openings``-th opening in a row (1 for the first). Zero in
        testing mode, as backoff waits are."""
        if is_testing():
            return 0.0
        return min(self.cooldown_max, self.cooldown * 2.0 ** min(openings - 1, 60))


DEFAULT_BREAKER = BreakerPolicy()


def counts_as_failure(kind: ErrorKind | None, status: int | None) -> Verdict:
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
    """The breaker state of one host.

    The engine calls :meth:`started` when an attempt is sent (it returns the attempt's number)
    and :meth:`ended` exactly once for every number, whatever became of the attempt.
    """

    __slots__ = (
        "_ahead",
        "_low",
        "_next",
        "_passed",
        "failing_since",
        "failures",
        "half_open",
        "open_until",
        "opened_at",
        "openings",
        "probe_from",
    )

    def __init__(self) -> None:
        self.failures = 0
        """First attempts in a row that failed (closed), or failed attempts (half-open)."""
        self.failing_since = 0.0
        """When the first failure of the current run of failures ended (loop time)."""
        self.openings = 0
        """Openings in a row (reset by a success): sets the next cool-down."""
        self.open_until = 0.0
        """While open: the loop time the cool-down ends (0 when not open)."""
        self.opened_at = 0.0
        """When the circuit last opened (loop time)."""
        self.half_open = False
        self.probe_from = 0
        """Half-open: attempts numbered from here on are probes (earlier ones were in flight
        when the circuit opened)."""
        self._next = 1
        self._low = 1
        """The number of the first attempt whose outcome has not been read yet."""
        self._ahead: dict[int, tuple[Verdict, bool, float]] = {}
        """Outcomes of attempts sent after ``_low``, held until it ends."""
        self._passed: set[int] = set()
        """Attempts passed over while still in flight (see :data:`REORDER_LIMIT`)."""

    @property
    def probing(self) -> bool:
        """True while one probe may run alone."""
        return self.half_open

    def is_open(self, now: float) -> bool:
        """True during the cool-down (nothing may be sent)."""
        return bool(self.open_until) and now < self.open_until - 0.001

    def starting(self, now: float) -> None:
        """An attempt is about to start on the host: the first after a cool-down is the probe."""
        if self.open_until and now >= self.open_until - 0.001:
            self.open_until = 0.0
            self.half_open = True
            self.failures = 0
            self.probe_from = self._next

    def started(self) -> int:
        """Number an attempt that is being sent (in send order)."""
        number = self._next
        self._next = number + 1
        return number

    def ended(
        self, number: int, verdict: Verdict, first: bool, policy: BreakerPolicy, now: float
    ) -> float | None:
        """The outcome of attempt ``number`` (``first``: a request's first attempt). Returns
        the end of the cool-down when this opens the circuit (the caller pauses the host until
        then), else None."""
        if number in self._passed:  # passed over while in flight: only a success still counts
            self._passed.discard(number)
            if verdict is False:
                self.success()
            return None
        if number == self._low:
            self._low = number + 1
            opened = self._read(number, verdict, first, now, policy, now)
            if self._ahead or self._passed:
                opened = self._drain(policy, now) or opened
            return opened
        self._ahead[number] = (verdict, first, now)
        if len(self._ahead) > REORDER_LIMIT:
            self._passed.add(self._low)  # the oldest attempt in flight: read past it
            return self._drain(policy, now)
        return None

    def _drain(self, policy: BreakerPolicy, now: float) -> float | None:
        """Read the held outcomes that are next in send order, passing over the attempts given
        up on. Returns the end of the cool-down if one of them opened the circuit."""
        opened = None
        ahead, passed = self._ahead, self._passed
        while True:
            number = self._low
            if number in passed:
                self._low = number + 1
                continue
            held = ahead.pop(number, None)
            if held is None:
                return opened
            self._low = number + 1
            verdict, first, ended = held
            opened = self._read(number, verdict, first, ended, policy, now) or opened

    def _read(
        self,
        number: int,
        verdict: Verdict,
        first: bool,
        ended: float,
        policy: BreakerPolicy,
        now: float,
    ) -> float | None:
        """Apply one outcome (of an attempt that ended at ``ended``), in send order, at
        ``now``."""
        if verdict is False:
            self.success()
            return None
        if verdict is None:
            return None
        if self.half_open:
            if number < self.probe_from:
                return None  # sent before the circuit opened: says nothing about the probe
            self.failures += 1
            if policy.fails_fast or self.failures >= policy.threshold:
                return self._open(policy, now)
            return None
        if self.open_until or not first:
            return None  # already open, or a retry failing again (see the module docstring)
        self.failures += 1
        if self.failures == 1:
            self.failing_since = ended
        if self.failures >= policy.threshold:
            return self._open(policy, now)
        return None

    def _open(self, policy: BreakerPolicy, now: float) -> float:
        self.half_open = False
        self.failures = 0
        self.openings += 1
        self.opened_at = now
        self.open_until = now + policy.cooldown_after(self.openings)
        return self.open_until

    def success(self) -> None:
        """An attempt showed the host is up: close the circuit."""
        self.failures = 0
        self.openings = 0
        self.half_open = False
        self.open_until = 0.0


def down_message(host: str, breaker: Breaker, policy: BreakerPolicy, clock_offset: float) -> str:
    """Why a request of a host whose circuit is open was not sent (or not retried).

    ``clock_offset`` turns the breaker's loop times into Unix times (``time.time() -
    loop.time()``).
    """

    def at(loop_time: float) -> str:
        return datetime.fromtimestamp(loop_time + clock_offset, tz=UTC).strftime("%H:%M:%S UTC")

    if breaker.openings > 1:
        what = f"probed {breaker.openings - 1} times since, without success"
    else:
        what = f"{policy.threshold} requests in a row failed"
    since = breaker.failing_since or breaker.opened_at
    return (
        f"{host} is down: failing since {at(since)} ({what}); its circuit breaker is open "
        f"until {at(breaker.open_until or breaker.opened_at)}. HINT: to hold the host's "
        "requests until it recovers instead, set the breaker's on_open to 'wait' (fetch "
        "--on-host-down wait; defaults.breaker.on_open: wait in a pipeline file; "
        "BreakerPolicy(on_open='wait') in Python); breaker=None switches the breaker off"
    )
