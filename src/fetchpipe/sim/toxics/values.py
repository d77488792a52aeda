"""The toxics as frozen values: each kind, its settings and their checks.

Every toxic takes ``times``: it applies to the first ``times`` requests of a key (``None``: to
all of them). A value that cannot be used raises :class:`ToxicError` when it is made, so a
test never runs with a toxic it did not mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

MAX_DELAY = 60.0
"""Upper bound of any configured wait (latency, jitter); hangs are bounded by the server."""
MAX_HANG = 3600.0
MAX_BODY = 16 * 1024 * 1024
"""Largest good body (``size``) the server builds."""
GARBAGE_RETRY_AFTER = "soon, maybe"
HUGE_RETRY_AFTER = 10**9
"""Seconds in the ``huge`` Retry-After form: about 31.7 years, beyond any sane retry cap."""
PAST_BY = 3600
"""How far in the past the ``past_date`` form's HTTP-date lies, in seconds."""

Stage = Literal["before_headers", "after_headers"]
RetryAfterForm = Literal[
    "seconds",
    "date",
    "date_rfc850",
    "date_asctime",
    "past_date",
    "zero",
    "garbage",
    "absent",
    "huge",
    "raw",
]
RETRY_AFTER_FORMS: tuple[str, ...] = get_args(RetryAfterForm)
"""``seconds``: delta-seconds (``delay`` rounded up); ``date``: an IMF-fixdate ``delay``
seconds ahead; ``date_rfc850`` and ``date_asctime``: the same instant in the two obsolete
HTTP-date formats RFC 9110 still asks recipients to accept; ``past_date``: an IMF-fixdate
:data:`PAST_BY` seconds ago; ``zero``: ``0``; ``garbage``: :data:`GARBAGE_RETRY_AFTER`;
``absent``: no header; ``huge``: :data:`HUGE_RETRY_AFTER`; ``raw``: ``value`` as is."""
STAGES: tuple[str, ...] = get_args(Stage)


class ToxicError(ValueError):
    """A toxic's configuration (or a toxic URL) cannot be used."""


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not lo <= value <= hi:  # also rejects nan
        raise ToxicError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")


def _check_times(times: int | None) -> None:
    if times is not None:
        _check_range("times", times, 1, 1 << 31)


@dataclass(frozen=True, slots=True)
class Latency:
    """Delay the whole answer by ``latency`` seconds, give or take up to ``jitter``.

    The jitter is drawn from a generator seeded by key and request number, so a run repeats.
    """

    name: ClassVar[str] = "latency"
    latency: float = 0.1
    jitter: float = 0.0
    times: int | None = None

    def __post_init__(self) -> None:
        _check_range("latency", self.latency, 0.0, MAX_DELAY)
        _check_range("jitter", self.jitter, 0.0, MAX_DELAY)
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """Send the response (head and body) at no more than ``rate`` bytes per second."""

    name: ClassVar[str] = "bandwidth"
    rate: int = 64 * 1024
    times: int | None = None

    def __post_init__(self) -> None:
        _check_range("rate", self.rate, 1, 1 << 30)
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class Hang:
    """Send nothing (``before_headers``) or only the head (``after_headers``) for ``hang``
    seconds, then close. Toxiproxy's ``timeout``; the server caps ``hang`` at its
    ``max_hang`` and ends the hang early when the client closes its end."""

    name: ClassVar[str] = "hang"
    hang: float = 30.0
    stage: Stage = "after_headers"
    times: int | None = None

    def __post_init__(self) -> None:
        _check_range("hang", self.hang, 0.0, MAX_HANG)
        if self.stage not in STAGES:
            raise ToxicError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class Close:
    """Read the request, then close the connection (FIN) without any response."""

    name: ClassVar[str] = "close"
    times: int | None = None

    def __post_init__(self) -> None:
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class ResetPeer:
    """Send the head and ``reset_after`` body bytes, wait ``reset_delay`` s, then reset (RST).

    The body is always cut short, whatever ``reset_after`` says. The short wait lets the client
    read what was sent: a reset may make the peer's kernel drop data it has not read yet.
    """

    name: ClassVar[str] = "reset_peer"
    reset_after: int = 10
    reset_delay: float = 0.05
    times: int | None = None

    def __post_init__(self) -> None:
        _check_range("reset_after", self.reset_after, 0, MAX_BODY)
        _check_range("reset_delay", self.reset_delay, 0.0, 10.0)
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class Truncate:
    """Announce the whole body, send ``truncate_after`` bytes of it, then close cleanly (FIN).

    With ``Content-Length`` the header lies; with ``chunked`` the terminating chunk never comes.
    The body is always cut short, whatever ``truncate_after`` says.
    """

    name: ClassVar[str] = "truncate"
    truncate_after: int = 10
    chunked: bool = False
    times: int | None = None

    def __post_init__(self) -> None:
        _check_range("truncate_after", self.truncate_after, 0, MAX_BODY)
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class Slicer:
    """Write the whole response in ``slice_size``-byte pieces, ``slice_delay`` seconds apart."""

    name: ClassVar[str] = "slicer"
    slice_size: int = 1
    slice_delay: float = 0.001
    times: int | None = None

    def __post_init__(self) -> None:
        _check_range("slice_size", self.slice_size, 1, MAX_BODY)
        _check_range("slice_delay", self.slice_delay, 0.0, 1.0)
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class Burst:
    """Answer ``statuses`` in turn (500, 502, 503, 504, 500, ...), then 200 once ``times``
    requests of the key have had one."""

    name: ClassVar[str] = "burst"
    statuses: tuple[int, ...] = (500, 502, 503, 504)
    times: int | None = None

    def __post_init__(self) -> None:
        if not self.statuses or len(self.statuses) > 100:
            raise ToxicError("statuses must list between 1 and 100 status codes")
        for status in self.statuses:
            _check_range("each of statuses", status, 500, 599)
        _check_times(self.times)


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Answer ``status`` (429, or 503) with a ``Retry-After`` in the given ``form``.

    ``delay`` is the wait asked for by the ``seconds`` and future-date forms; ``value`` is the
    header of the ``raw`` form (any text without control characters, e.g. digits past float
    range). See :data:`RETRY_AFTER_FORMS`.
    """

    name: ClassVar[str] = "retry_after"
    form: RetryAfterForm = "seconds"
    delay: float = 1.0
    status: int = 429
    value: str = ""
    times: int | None = None

    def __post_init__(self) -> None:
        if self.form not in RETRY_AFTER_FORMS:
            raise ToxicError(
                f"form must be one of {', '.join(RETRY_AFTER_FORMS)}, got {self.form!r}"
            )
        _check_range("delay", self.delay, 0.0, 366 * 86400.0)
        _check_range("status", self.status, 400, 599)
        if len(self.value) > 4096 or any(ord(c) < 32 or ord(c) == 127 for c in self.value):
            raise ToxicError("value must be at most 4096 characters, without control characters")
        if self.value and self.form != "raw":
            raise ToxicError("value is only used by the raw form")
        _check_times(self.times)


Toxic = Latency | Bandwidth | Hang | Close | ResetPeer | Truncate | Slicer | Burst | RetryAfter
TOXIC_TYPES: tuple[type[Toxic], ...] = get_args(Toxic)
