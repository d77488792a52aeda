"""A misbehaving HTTP server on loopback, in the style of Toxiproxy's toxics.

Toxiproxy sits between a client and a real server and damages the traffic ("toxics"). Here the
server itself misbehaves, down to the byte, so a test needs no proxy: :class:`ToxicServer`
speaks just enough HTTP/1.1 over raw ``asyncio`` streams to answer well or badly, on
``127.0.0.1`` .. ``127.0.0.{hosts}`` (one shared port), and nowhere else.

Toxics are frozen values; every one takes ``times``: it applies to the first ``times``
requests of a key (``None``: to all of them), so "fail the first N times" works for each kind.

==================  ==================================================  ======================
toxic (path name)   what the client sees                                query parameters
==================  ==================================================  ======================
``latency``         the answer after ``latency`` ± ``jitter`` seconds   ``latency``, ``jitter``
``bandwidth``       head and body at ``rate`` bytes per second          ``rate``
``hang``            nothing (``stage=before_headers``) or the head      ``hang``, ``stage``
                    only, for ``hang`` seconds; then the connection
                    is closed
``close``           the connection closed without any response          (none)
``reset_peer``      the head and ``reset_after`` body bytes, then a     ``reset_after``,
                    TCP reset (RST) ``reset_delay`` seconds later       ``reset_delay``
``truncate``        the head (Content-Length lies, or a chunked body)   ``truncate_after``,
                    and ``truncate_after`` body bytes, then a clean     ``chunked``
                    close (FIN)
``slicer``          the whole response in ``slice_size``-byte writes    ``slice_size``,
                    ``slice_delay`` seconds apart                       ``slice_delay``
``burst``           500, 502, 503, 504, 500, ... (``statuses``), then   ``statuses``
                    200 once ``times`` is used up
``retry_after``     ``status`` (429) with a ``Retry-After`` in the      ``form``, ``delay``,
                    given ``form`` (see :data:`RETRY_AFTER_FORMS`)      ``status``, ``value``
==================  ==================================================  ======================

Two ways to pick the toxics of a request, which add up (the path's first):

* by URL: ``/toxic/{name}[+{name}...]?key=k&times=1&...``, e.g.
  ``/toxic/slicer?key=a&slice_size=1&slice_delay=0.001`` or ``/toxic/latency+bandwidth?...``
  (``times`` applies to each toxic of the path; :func:`toxic_path` writes these URLs);
* programmatically: ``server.set_toxics(ResetPeer(times=1), key="a")`` for the requests whose
  ``key`` query parameter is ``a``, on any path, or with ``key=None`` for every request whose
  key has no toxics of its own.

The URL form needs no access to the server object (a server in another process, a CLI run);
the programmatic form keeps the URLs of a test plain. Any path is an endpoint: without toxics a
request gets 200 and :func:`good_body` (valid, deterministic JSON; ``size=N`` pads it to N
bytes). ``GET /__stats`` and ``POST /__reset`` read and clear the counters; they are not counted.

The server counts requests per ``(path, key)`` (:meth:`ToxicServer.count`, used to decide
which requests a toxic applies to) and per host with concurrency high-water marks
(:attr:`ToxicServer.stats`, a :class:`~fetchpipe.sim.stats.FleetStats`), so tests can assert
retries and limits from the server's side. Nothing runs unbounded: a hang lasts at most
``max_hang`` seconds, a whole answer at most ``max_response_seconds``, an idle keep-alive
connection ``keepalive_timeout``, and stopping the server ends everything at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import math
import random
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from types import TracebackType
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from fetchpipe.sim.stats import FleetStats

__all__ = [
    "GARBAGE_RETRY_AFTER",
    "HUGE_RETRY_AFTER",
    "RETRY_AFTER_FORMS",
    "Bandwidth",
    "Burst",
    "Close",
    "Hang",
    "Latency",
    "MixEntry",
    "Plan",
    "ResetPeer",
    "RetryAfter",
    "Slicer",
    "Toxic",
    "ToxicError",
    "ToxicServer",
    "Truncate",
    "applies",
    "burst_status",
    "good_body",
    "latency_delay",
    "parse_toxics",
    "plan_response",
    "retry_after_value",
    "toxic_mix",
    "toxic_path",
]

MAX_HOSTS = 254
MAX_DELAY = 60.0
"""Upper bound of any configured wait (latency, jitter); hangs are bounded by the server."""
MAX_HANG = 3600.0
MAX_BODY = 16 * 1024 * 1024
"""Largest good body (``size``) the server builds."""
MAX_STACK = 8
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


# --- toxics: frozen configuration values --------------------------------------------------------


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
_BY_NAME: dict[str, type[Toxic]] = {cls.name: cls for cls in TOXIC_TYPES}


# --- the pure rules: which toxic applies, what it renders ---------------------------------------


def applies(toxic: Toxic, n: int) -> bool:
    """Whether ``toxic`` acts on request number ``n`` (1-based, per path and key)."""
    return toxic.times is None or n <= toxic.times


def latency_delay(toxic: Latency, key: str, n: int) -> float:
    """The delay of request ``n`` of ``key``: ``latency`` ± ``jitter``, never negative.

    Seeded by key and request number, so the same run waits the same way every time.
    """
    if not toxic.jitter:
        return toxic.latency
    draw = random.Random(f"{key}\x00{n}").uniform(-toxic.jitter, toxic.jitter)
    return max(0.0, toxic.latency + draw)


def burst_status(toxic: Burst, n: int) -> int | None:
    """The 5xx that request ``n`` gets, or ``None`` once the burst is over."""
    if not applies(toxic, n):
        return None
    return toxic.statuses[(n - 1) % len(toxic.statuses)]


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc850(when: int) -> str:
    """``Sunday, 06-Nov-94 08:49:37 GMT`` (obsolete HTTP-date; English whatever the locale)."""
    t = time.gmtime(when)
    return (
        f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year % 100:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _asctime(when: int) -> str:
    """``Sun Nov  6 08:49:37 1994`` (ANSI C asctime, obsolete HTTP-date; always UTC)."""
    t = time.gmtime(when)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}"
    )


def retry_after_value(toxic: RetryAfter, now: float) -> str | None:
    """The ``Retry-After`` header of ``toxic`` at Unix time ``now`` (``None``: no header).

    Dates are rounded up to the next whole second, so they never ask for less than ``delay``.
    """
    form = toxic.form
    ahead = math.ceil(now + toxic.delay)
    if form == "seconds":
        return str(math.ceil(toxic.delay))
    if form == "date":
        return formatdate(ahead, usegmt=True)
    if form == "date_rfc850":
        return _rfc850(ahead)
    if form == "date_asctime":
        return _asctime(ahead)
    if form == "past_date":
        return formatdate(math.floor(now) - PAST_BY, usegmt=True)
    if form == "zero":
        return "0"
    if form == "garbage":
        return GARBAGE_RETRY_AFTER
    if form == "huge":
        return str(HUGE_RETRY_AFTER)
    if form == "raw":
        return toxic.value
    return None  # absent


_PAD = b"0123456789abcdefghijklmnopqrstuvwxyz"


def good_body(key: str, size: int = 0) -> bytes:
    """The JSON of a good answer: ``{"ok":true,"key":...}``, padded to ``size`` bytes.

    A pure function of its arguments, so a test can compare a received body byte for byte.
    The ``pad`` field cycles through digits and letters, so a lost or reordered slice shows;
    a size too small for it is reached with trailing spaces (still valid JSON).
    """
    if not 0 <= size <= MAX_BODY:
        raise ToxicError(f"size must be between 0 and {MAX_BODY}, got {size!r}")
    empty = orjson.dumps({"ok": True, "key": key, "pad": ""})
    if size < len(empty):
        plain = orjson.dumps({"ok": True, "key": key})
        return plain + b" " * max(0, size - len(plain))
    count = size - len(empty)
    pad = (_PAD * (count // len(_PAD) + 1))[:count].decode()
    return orjson.dumps({"ok": True, "key": key, "pad": pad})


def _fault_body(status: int, key: str, n: int) -> bytes:
    return orjson.dumps({"ok": False, "status": status, "key": key, "n": n})


# --- toxic URLs ---------------------------------------------------------------------------------


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _parse_statuses(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


_PARSERS: dict[str, Any] = {
    "latency": float,
    "jitter": float,
    "rate": int,
    "hang": float,
    "stage": str,
    "reset_after": int,
    "reset_delay": float,
    "truncate_after": int,
    "chunked": _parse_bool,
    "slice_size": int,
    "slice_delay": float,
    "statuses": _parse_statuses,
    "form": str,
    "delay": float,
    "status": int,
    "value": str,
    "times": int,
}
_REQUEST_PARAMS = frozenset({"key", "size"})


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _stack_classes(names: str) -> list[type[Toxic]]:
    parts = names.split("+")
    if len(parts) > MAX_STACK:
        raise ToxicError(f"at most {MAX_STACK} toxics per path")
    unknown = [p for p in parts if p not in _BY_NAME]
    if unknown:
        raise ToxicError(f"unknown toxic {unknown[0]!r}; known: {', '.join(sorted(_BY_NAME))}")
    if len(set(parts)) != len(parts):
        raise ToxicError("a toxic may appear only once per path")
    return [_BY_NAME[p] for p in parts]


def parse_toxics(names: str, query: Mapping[str, str]) -> tuple[Toxic, ...]:
    """The toxics of ``/toxic/{names}?{query}``: ``names`` joined by ``+``, fields as params.

    ``key`` and ``size`` belong to the request; any other unknown parameter is an error, so a
    typo never silently tests the wrong thing.
    """
    classes = _stack_classes(names)
    known = set(_REQUEST_PARAMS)
    for cls in classes:
        known.update(f.name for f in dataclasses.fields(cls))
    extra = sorted(set(query) - known)
    if extra:
        raise ToxicError(f"unknown parameter(s) for {names}: {', '.join(extra)}")
    stack: list[Toxic] = []
    for cls in classes:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in query:
                try:
                    kwargs[f.name] = _PARSERS[f.name](query[f.name])
                except ValueError:
                    raise ToxicError(f"{f.name}={query[f.name]!r} is not valid") from None
        stack.append(cls(**kwargs))
    return tuple(stack)


def toxic_path(*toxics: Toxic, key: str | None = None, size: int | None = None) -> str:
    """The path and query that select ``toxics`` (the inverse of :func:`parse_toxics`).

    ``times`` is one parameter for the whole path, so the toxics must agree on it.
    """
    if not toxics:
        raise ToxicError("give at least one toxic")
    _stack_classes("+".join(t.name for t in toxics))  # same rules as the parser
    if len({t.times for t in toxics}) > 1:
        raise ToxicError("toxics in one path share times; set it the same on each")
    params: dict[str, str] = {}
    for toxic in toxics:
        for f in dataclasses.fields(toxic):
            value = getattr(toxic, f.name)
            if value != f.default:
                params[f.name] = _render(value)
    if key is not None:
        params["key"] = key
    if size is not None:
        params["size"] = str(size)
    names = "+".join(t.name for t in toxics)
    return f"/toxic/{names}" + (f"?{urlencode(params)}" if params else "")


# --- the response plan: every decision made before the first byte is written ------------------

Ending = Literal["complete", "close", "hang_before", "hang_after", "truncate", "reset"]
_CHUNK = 32
_LAST_CHUNK = b"0\r\n\r\n"
_BANDWIDTH_TICKS = 20  # pieces per second of a bandwidth-limited response
_UNLIMITED = 1 << 30


@dataclass(frozen=True, slots=True)
class Plan:
    """What the server does for one request.

    Wait ``delay``; then by ``ending``: ``close`` or ``hang_before`` (for ``hang`` seconds)
    send nothing and close; ``hang_after`` sends the head only, hangs, then closes; the others
    send ``head`` and ``body`` (only ``cut`` bytes of it for ``truncate`` and ``reset``) in
    ``piece``-byte writes, ``piece_delay`` seconds apart and no faster than ``rate`` bytes/s,
    then keep the connection (``complete``), close it (``truncate``) or reset it ``reset_delay``
    seconds later (``reset``).
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    delay: float = 0.0
    ending: Ending = "complete"
    hang: float = 0.0
    cut: int | None = None
    reset_delay: float = 0.0
    piece: int = _UNLIMITED
    piece_delay: float = 0.0
    rate: int | None = None

    def head(self, keep_alive: bool) -> bytes:
        """The status line and headers, ``Connection`` included."""
        try:
            reason = http.HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk_encode(payload: bytes) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(payload[i : i + _CHUNK]), payload[i : i + _CHUNK])
        for i in range(0, len(payload), _CHUNK)
    ]
    return b"".join(parts) + _LAST_CHUNK


def _answer(
    active: Sequence[Toxic], key: str, n: int, size: int, now: float
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, extra headers and payload: the first active burst or Retry-After decides."""
    for toxic in active:
        if isinstance(toxic, Burst):
            status = burst_status(toxic, n)
            assert status is not None
            return status, [], _fault_body(status, key, n)
        if isinstance(toxic, RetryAfter):
            value = retry_after_value(toxic, now)
            headers = [] if value is None else [("Retry-After", value)]
            return toxic.status, headers, _fault_body(toxic.status, key, n)
    return 200, [], good_body(key, size)


def _ending(active: Sequence[Toxic], body: bytes, chunked: bool) -> dict[str, Any]:
    """The ending fields of the plan: the most drastic active toxic wins.

    Order: close, hang before headers, hang after headers, then the earliest cut of a reset or
    a truncation (a reset on a tie). A cut always leaves the body incomplete.
    """
    for toxic in active:
        if isinstance(toxic, Close):
            return {"ending": "close"}
    for stage in STAGES:
        for toxic in active:
            if isinstance(toxic, Hang) and toxic.stage == stage:
                ending = "hang_before" if stage == "before_headers" else "hang_after"
                return {"ending": ending, "hang": toxic.hang}
    longest = len(body) - (len(_LAST_CHUNK) if chunked else 1)
    best: dict[str, Any] = {}
    for toxic in active:
        if isinstance(toxic, ResetPeer):
            cut = min(toxic.reset_after, longest)
            if not best or cut <= best["cut"]:
                best = {"ending": "reset", "cut": cut, "reset_delay": toxic.reset_delay}
        elif isinstance(toxic, Truncate):
            cut = min(toxic.truncate_after, longest)
            if not best or cut < best["cut"]:
                best = {"ending": "truncate", "cut": cut}
    return best


def _delivery(active: Sequence[Toxic]) -> dict[str, Any]:
    """Piece size, delay between pieces and rate from the active slicers and bandwidths."""
    piece, piece_delay, rate = _UNLIMITED, 0.0, None
    for toxic in active:
        if isinstance(toxic, Slicer):
            piece = min(piece, toxic.slice_size)
            piece_delay = max(piece_delay, toxic.slice_delay)
        elif isinstance(toxic, Bandwidth):
            rate = toxic.rate if rate is None else min(rate, toxic.rate)
    if rate is not None:
        piece = min(piece, max(1, rate // _BANDWIDTH_TICKS))
    return {"piece": piece, "piece_delay": piece_delay, "rate": rate}


def plan_response(toxics: Sequence[Toxic], *, key: str, n: int, size: int = 0, now: float) -> Plan:
    """Decide how to answer request number ``n`` of ``key`` at Unix time ``now``. Pure."""
    active = [t for t in toxics if applies(t, n)]
    delay = sum(latency_delay(t, key, n) for t in active if isinstance(t, Latency))
    status, headers, payload = _answer(active, key, n, size, now)
    chunked = any(isinstance(t, Truncate) and t.chunked for t in active)
    framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(payload)))
    body = _chunk_encode(payload) if chunked else payload
    return Plan(
        status=status,
        headers=(("Content-Type", "application/json"), framing, *headers),
        body=body,
        delay=delay,
        **_ending(active, body, chunked),
        **_delivery(active),
    )


# --- a mix of every toxic, for mixed tests and benchmarks ---------------------------------------


@dataclass(frozen=True, slots=True)
class MixEntry:
    """One kind of fault in :func:`toxic_mix`: a label, its toxics and the good body's size.

    ``landable`` is false when a well-behaved client must give up (a Retry-After beyond any
    sane cap), so a test or a benchmark knows which failures are right.
    """

    label: str
    toxics: tuple[Toxic, ...]
    size: int | None = None
    landable: bool = True

    def path(self, key: str) -> str:
        """The path and query of this fault for ``key``."""
        return toxic_path(*self.toxics, key=key, size=self.size)


def toxic_mix(*, hang: float = 2.0, delay: float = 1.0) -> tuple[MixEntry, ...]:
    """Every toxic and every Retry-After form, each spoiling only the first request of a key.

    Closes and 5xx bursts spoil the first two (aiohttp retries a close once by itself), so
    every entry but the huge Retry-After lands for a client that retries three times. Hangs
    last ``hang`` seconds; the Retry-After seconds and future dates ask for ``delay`` seconds.
    """

    def retry_after(form: RetryAfterForm, status: int = 429) -> tuple[Toxic, ...]:
        return (RetryAfter(form=form, delay=delay, status=status, times=1),)

    return (
        MixEntry("latency", (Latency(latency=0.1, jitter=0.05, times=1),)),
        MixEntry("bandwidth", (Bandwidth(rate=500_000, times=1),), 50_000),
        MixEntry("slicer", (Slicer(slice_size=1, slice_delay=0.0005, times=1),), 200),
        MixEntry("hang before headers", (Hang(hang=hang, stage="before_headers", times=1),)),
        MixEntry("hang after headers", (Hang(hang=hang, times=1),)),
        MixEntry("close", (Close(times=2),)),
        MixEntry("reset mid-body", (ResetPeer(times=1),), 300),
        MixEntry("truncated", (Truncate(times=1),), 300),
        MixEntry("truncated chunked", (Truncate(chunked=True, times=1),), 300),
        MixEntry("5xx burst", (Burst(times=2),)),
        MixEntry("429 seconds", retry_after("seconds")),
        MixEntry("429 date", retry_after("date")),
        MixEntry("429 rfc850 date", retry_after("date_rfc850")),
        MixEntry("429 asctime date", retry_after("date_asctime")),
        MixEntry("429 past date", retry_after("past_date")),
        MixEntry("429 zero", retry_after("zero")),
        MixEntry("429 garbage", retry_after("garbage")),
        MixEntry("429 absent", retry_after("absent")),
        MixEntry("429 huge", retry_after("huge"), landable=False),
        MixEntry("503 seconds", retry_after("seconds", status=503)),
    )


# --- the server ---------------------------------------------------------------------------------

_MAX_HEAD = 64 * 1024
_MAX_REQUEST_BODY = 1024 * 1024
_MAX_REQUESTS_PER_CONNECTION = 100_000
_BIND_ATTEMPTS = 5
_BACKLOG = 1024


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: dict[str, str]
    keep_alive: bool


def _parse_head(head: bytes) -> tuple[_Request, int]:
    """The request and the length of its body, from the bytes up to the blank line."""
    request_line, *lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise _BadRequest(501, "chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _BadRequest(400, "malformed Content-Length") from None
    if not 0 <= length <= _MAX_REQUEST_BODY:
        raise _BadRequest(413, f"request body over {_MAX_REQUEST_BODY} bytes")
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    split = urlsplit(target)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    return _Request(method.upper(), split.path or "/", query, keep_alive), length


def _size_param(query: Mapping[str, str]) -> int:
    """The ``size`` query parameter: the good body's length in bytes (0: unpadded)."""
    text = query.get("size", "0")
    try:
        size = int(text)
    except ValueError:
        raise ToxicError(f"size={text!r} is not valid") from None
    if not 0 <= size <= MAX_BODY:
        raise ToxicError(f"size must be between 0 and {MAX_BODY}, got {size}")
    return size


async def _read_request(reader: asyncio.StreamReader, idle: float) -> _Request | None:
    """The next request on the connection, or ``None`` when the client is done or ``idle``."""
    try:
        async with asyncio.timeout(idle):
            head = await reader.readuntil(b"\r\n\r\n")
            request, length = _parse_head(head)
            if length:
                await reader.readexactly(length)
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest(431, "request head too large") from None
    return request


async def _hang(reader: asyncio.StreamReader, seconds: float) -> None:
    """Wait ``seconds``, or less when the client closes its end (what it sends is dropped)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass


async def _send(writer: asyncio.StreamWriter, data: bytes, plan: Plan) -> None:
    """Write ``data`` in the plan's pieces, pauses and rate (no pause after the last piece)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    for offset in range(0, len(data), plan.piece):
        piece = data[offset : offset + plan.piece]
        writer.write(piece)
        await writer.drain()
        sent += len(piece)
        if sent >= len(data):
            break
        wait = plan.piece_delay
        if plan.rate is not None:
            wait = max(wait, start + sent / plan.rate - loop.time())
        if wait > 0:
            await asyncio.sleep(wait)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (RST) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ToxicServer:
    """The misbehaving server on ``127.0.0.1`` .. ``127.0.0.{hosts}`` (one port for all).

    Use ``async with ToxicServer(hosts=3) as server:`` on the running loop; see the module's
    documentation for the toxics and how to select them.
    """

    def __init__(
        self,
        hosts: int = 1,
        port: int = 0,
        *,
        max_hang: float = 30.0,
        max_response_seconds: float = 60.0,
        keepalive_timeout: float = 75.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if not 1 <= hosts <= MAX_HOSTS:
            raise ValueError(f"hosts must be between 1 and {MAX_HOSTS}")
        if not 0 <= port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        for name, value in (
            ("max_hang", max_hang),
            ("max_response_seconds", max_response_seconds),
            ("keepalive_timeout", keepalive_timeout),
            ("shutdown_timeout", shutdown_timeout),
        ):
            if not 0 < value <= MAX_HANG:
                raise ValueError(f"{name} must be between 0 and {MAX_HANG:g} seconds")
        self.hosts = hosts
        self.max_hang = max_hang
        self.max_response_seconds = max_response_seconds
        self.keepalive_timeout = keepalive_timeout
        self.stats = FleetStats()
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._toxics: dict[str | None, tuple[Toxic, ...]] = {}
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._port: int | None = None

    # -- toxics and counters ----------------------------------------------------------------

    def set_toxics(self, *toxics: Toxic, key: str | None = None) -> None:
        """Apply ``toxics`` to requests with ``?key=key`` (``None``: every key without its own).

        No toxics removes that key's. Takes effect for the next request; thread-safe.
        """
        with self._lock:
            if toxics:
                self._toxics[key] = tuple(toxics)
            else:
                self._toxics.pop(key, None)

    def clear_toxics(self) -> None:
        """Remove every programmatic toxic (URL toxics are unaffected)."""
        with self._lock:
            self._toxics.clear()

    def count(self, path: str, key: str = "") -> int:
        """Requests received for ``path`` with ``?key=key`` (control paths aside)."""
        with self._lock:
            return self._counts.get((path, key), 0)

    def reset(self) -> None:
        """Forget the request counts and stats (the toxics set stay)."""
        with self._lock:
            self._counts.clear()
        self.stats.reset()

    @property
    def open_connections(self) -> int:
        """Client connections open now."""
        return len(self._connections)

    def _next_count(self, path: str, key: str) -> int:
        with self._lock:
            n = self._counts.get((path, key), 0) + 1
            self._counts[path, key] = n
            return n

    def _toxics_for(self, request: _Request) -> tuple[Toxic, ...]:
        stack: tuple[Toxic, ...] = ()
        if request.path.startswith("/toxic/"):
            stack = parse_toxics(request.path.removeprefix("/toxic/"), request.query)
        key = request.query.get("key", "")
        with self._lock:
            chosen = self._toxics.get(key, self._toxics.get(None, ()))
        return stack + chosen

    # -- addresses --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port of every address (only while running)."""
        if self._port is None:
            raise RuntimeError("toxic server is not running")
        return self._port

    @staticmethod
    def address(host: int) -> str:
        """IP address of host index ``host`` (0-based): ``127.0.0.{host+1}``."""
        if not 0 <= host < MAX_HOSTS:
            raise ValueError(f"host index must be between 0 and {MAX_HOSTS - 1}")
        return f"127.0.0.{host + 1}"

    @property
    def addresses(self) -> list[str]:
        return [self.address(i) for i in range(self.hosts)]

    def base_url(self, host: int = 0) -> str:
        if not 0 <= host < self.hosts:
            raise ValueError(f"host index must be between 0 and {self.hosts - 1}")
        return f"http://{self.address(host)}:{self.port}"

    @property
    def base_urls(self) -> list[str]:
        return [self.base_url(i) for i in range(self.hosts)]

    def url(self, path: str = "/", host: int = 0) -> str:
        """Absolute URL of ``path`` (query string allowed) on host index ``host``."""
        return self.base_url(host) + (path if path.startswith("/") else "/" + path)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every address."""
        if self._servers:
            raise RuntimeError("toxic server is already running")
        attempts = _BIND_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(attempts):
            try:
                await self._bind()
                return
            except OSError:
                await self._close_servers()
                if attempt == attempts - 1:
                    raise

    async def _bind(self) -> None:
        port = self._requested_port
        for host in range(self.hosts):
            server = await asyncio.start_server(
                self._serve_connection,
                self.address(host),
                port,
                limit=_MAX_HEAD,
                backlog=_BACKLOG,
            )
            self._servers.append(server)
            port = int(server.sockets[0].getsockname()[1])
        self._port = port

    async def close(self) -> None:
        """Stop listening, end every connection (hangs included) and wait for them, bounded."""
        self._port = None
        for server in self._servers:
            server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._shutdown_timeout)
        await self._close_servers()

    async def _close_servers(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), self._shutdown_timeout)

    async def __aenter__(self) -> ToxicServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- serving ----------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer requests on one connection until it closes, idles or a toxic ends it."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        sockname = writer.get_extra_info("sockname")
        host = str(sockname[0]) if sockname else ""
        try:
            for _ in range(_MAX_REQUESTS_PER_CONNECTION):
                try:
                    request = await _read_request(reader, self.keepalive_timeout)
                except _BadRequest as exc:
                    await self._reply(writer, exc.status, {"error": str(exc)}, keep_alive=False)
                    break
                if request is None or not await self._handle(request, host, reader, writer):
                    break
        except ConnectionError:
            writer.transport.abort()
        except asyncio.CancelledError:  # the server is stopping: end the connection at once
            writer.transport.abort()
            raise
        finally:
            if not writer.transport.is_closing():
                writer.close()
            self._connections.discard(task)

    async def _handle(
        self,
        request: _Request,
        host: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request; ``True`` when the connection may serve another."""
        if request.path.startswith("/__"):
            return await self._control(request, writer)
        key = request.query.get("key")
        self.stats.request_started(host, request.path, key)
        try:
            try:
                toxics = self._toxics_for(request)
                size = _size_param(request.query)
            except ToxicError as exc:
                await self._reply(writer, 400, {"error": str(exc)}, request.keep_alive)
                return request.keep_alive
            n = self._next_count(request.path, key or "")
            plan = plan_response(toxics, key=key or "", n=n, size=size, now=time.time())
            try:
                async with asyncio.timeout(self.max_response_seconds):
                    return await self._deliver(plan, reader, writer, request.keep_alive)
            except TimeoutError:
                writer.transport.abort()
                return False
        finally:
            self.stats.request_finished(host)

    async def _deliver(
        self,
        plan: Plan,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        """Carry out ``plan``; ``True`` when the connection may serve another request."""
        if plan.delay:
            await asyncio.sleep(plan.delay)
        ending = plan.ending
        hang = min(plan.hang, self.max_hang)
        if ending in ("close", "hang_before"):
            if ending == "hang_before":
                await _hang(reader, hang)
            return False
        keep = keep_alive and ending == "complete"
        head = plan.head(keep)
        if ending == "hang_after":
            await _send(writer, head, plan)
            await _hang(reader, hang)
            return False
        body = plan.body if plan.cut is None else plan.body[: plan.cut]
        await _send(writer, head + body, plan)
        if ending == "reset":
            await asyncio.sleep(plan.reset_delay)
            _reset(writer)
            return False
        return keep

    async def _control(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """``GET /__stats`` and ``POST /__reset``; not counted in the stats."""
        if request.path == "/__stats" and request.method == "GET":
            await self._reply(writer, 200, self.stats.snapshot(), request.keep_alive)
        elif request.path == "/__reset" and request.method == "POST":
            self.reset()
            await self._reply(writer, 200, {"ok": True}, request.keep_alive)
        else:
            await self._reply(writer, 404, {"error": "no such control path"}, request.keep_alive)
        return request.keep_alive

    @staticmethod
    async def _reply(
        writer: asyncio.StreamWriter, status: int, payload: object, keep_alive: bool
    ) -> None:
        body = orjson.dumps(payload)
        headers = (("Content-Type", "application/json"), ("Content-Length", str(len(body))))
        writer.write(Plan(status, headers, body).head(keep_alive) + body)
        await writer.drain()
