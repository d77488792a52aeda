"""The pure rules of the toxics: which request a toxic acts on, and what it makes of it.

Functions of their arguments only (the jitter is drawn from a generator seeded by key and
request number; the time is passed in), so a test can compare an answer byte for byte.
"""

from __future__ import annotations

import math
import random
import time
from email.utils import formatdate

import orjson

from fetchpipe.sim.toxics.values import (
    GARBAGE_RETRY_AFTER,
    HUGE_RETRY_AFTER,
    MAX_BODY,
    PAST_BY,
    Burst,
    Latency,
    RetryAfter,
    Toxic,
    ToxicError,
)


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


def fault_body(status: int, key: str, n: int) -> bytes:
    """The JSON of a fault answer (a burst's 5xx, a Retry-After's status)."""
    return orjson.dumps({"ok": False, "status": status, "key": key, "n": n})
