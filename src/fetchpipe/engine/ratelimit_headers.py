"""The rate limits a server publishes in its response headers, read into pure values.

Three forms are read, whatever the status of the response:

- ``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers -08 to -11):
  Structured Fields lists (RFC 9651). A policy is a name with ``q`` (the quota: requests per
  window) and ``w`` (the window, seconds); ``RateLimit`` gives, per policy name, ``r`` (the
  quota left) and ``t`` (seconds until it is restored). The dictionary form of draft -07
  (``RateLimit: limit=10, remaining=5, reset=3``) is read too. The fields are parsed with
  ``http-sf`` (Mark Nottingham's parser, kept in step with the RFC) rather than by hand.
- ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (GitHub, Twitter/X,
  Discord, many gateways). The reset is epoch seconds at some APIs and delta seconds at others:
  a value of at least :data:`EPOCH_FROM` (2001-09-09) is a time, one of at least
  :data:`EPOCH_MS_FROM` a time in milliseconds, a smaller one a delta. Decimals are accepted.
- ``Retry-After`` (delta seconds or an HTTP-date), through
  :func:`fetchpipe.engine.retry.parse_retry_after`.

A value that does not parse, is negative, or would make the client wait longer than
``retry_after_max`` is ignored (the rest of the headers still count): reading headers never
raises and never asks for a wait beyond the caller's cap.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fetchpipe.engine.retry import parse_retry_after

EPOCH_FROM = 1e9
"""An ``X-RateLimit-Reset`` of at least this is a Unix time (2001-09-09), below it a delta."""
EPOCH_MS_FROM = 1e12
"""...and one of at least this a Unix time in milliseconds (as some APIs send)."""
CLOCK_SKEW = 2.0
"""A server ``Date`` further than this from the local clock: epoch resets are read against
the server's clock instead of ours."""
LEGACY = "x-ratelimit"
"""The policy name given to the ``X-RateLimit-*`` headers."""
LEGACY_SOURCE = "X-RateLimit-*"
"""The :attr:`Window.source` of the ``X-RateLimit-*`` headers."""
MAX_FIELD = 4096
"""Longer header values are ignored rather than parsed."""

_NAMES = (
    "RateLimit",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "Retry-After",
)
_NUMBER = re.compile(r"\s*([0-9]{1,20}(?:\.[0-9]{1,9})?)\s*")


@dataclass(frozen=True, slots=True)
class Window:
    """One published limit: ``limit`` requests per ``window`` seconds, ``remaining`` of them
    left for ``reset`` more seconds. Any of them may be unknown (``None``)."""

    name: str
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    window: float | None = None
    source: str = field(default="RateLimit", compare=False)
    """The header it was read from (not part of the window's value): ``RateLimit-Policy`` (a
    policy, with ``RateLimit``'s count left when given), ``RateLimit`` (a count left with no
    policy), or ``X-RateLimit-*``."""

    @property
    def per_second(self) -> float | None:
        """The rate the policy allows on average, when it says both quota and window."""
        if self.limit is None or not self.window:
            return None
        return self.limit / self.window


@dataclass(frozen=True, slots=True)
class Published:
    """What one response said about the host's limits."""

    windows: tuple[Window, ...] = ()
    retry_after: float | None = None
    """Seconds to wait, from ``Retry-After``, within the cap."""

    @property
    def rate_headers(self) -> bool:
        """The response published a rate limit (not only a Retry-After)."""
        return bool(self.windows)


NOTHING = Published()


def read_limits(
    headers: Mapping[str, str], now: float, *, retry_after_max: float = math.inf
) -> Published:
    """Everything ``headers`` publish about rate limits; ``now`` is the Unix time.

    Windows come from the IETF fields first, then ``X-RateLimit-*``; when both describe the
    same limit (equal quota and quota left) they are one window with the sooner reset (both
    are upper bounds when a server rounds its reset up to whole seconds).
    """
    if getattr(headers, "getall", None) is not None and not any(
        name in headers for name in _NAMES
    ):  # the usual answer: nothing to read (a case-insensitive lookup per name)
        return NOTHING
    windows = _ietf_windows(headers, retry_after_max)
    legacy = _legacy_window(headers, now, retry_after_max)
    if legacy is not None:
        windows = _merge(windows, legacy)
    retry_after = None
    text = _field(headers, "Retry-After")
    if text is not None:
        delay = parse_retry_after(text, now)
        if delay is not None and delay <= retry_after_max:
            retry_after = delay
    if not windows and retry_after is None:
        return NOTHING
    return Published(tuple(windows), retry_after)


# --- the IETF fields ---------------------------------------------------------------------------


def _ietf_windows(headers: Mapping[str, str], cap: float) -> list[Window]:
    policies: dict[str, Window] = {}
    for name, params in _list_items(_field(headers, "RateLimit-Policy")):
        quota = _whole(params.get("q"))
        window = _whole(params.get("w"))
        policies[name] = Window(
            name, quota, None, None, float(window) if window else None, "RateLimit-Policy"
        )
    windows: list[Window] = []
    text = _field(headers, "RateLimit")
    items = _list_items(text)
    if not items and text is not None:
        items = _draft7_items(text)
    for name, params in items:
        remaining = _whole(params.get("r"))
        reset = _whole(params.get("t"))
        base = policies.pop(name, None) or Window(name)
        if reset is not None and reset > cap:
            continue  # beyond what the caller would wait: of no use for pacing
        windows.append(
            replace(
                base,
                remaining=remaining,
                reset=float(reset) if reset is not None else None,
                limit=base.limit if base.limit is not None else _whole(params.get("limit")),
            )
        )
    windows.extend(p for p in policies.values() if p.limit is not None and p.window)
    return windows


def _list_items(text: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The items of a Structured Fields list as ``(name, parameters)``; [] when it is not one."""
    if text is None:
        return []
    import http_sf  # lazy: start-up time (about 10 ms); most hosts send no RateLimit field

    try:
        parsed = http_sf.parse(text.encode("ascii"), tltype="list")
    except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError):
        return []
    items: list[tuple[str, dict[str, Any]]] = []
    for member in parsed if isinstance(parsed, list) else ():
        if not isinstance(member, tuple) or len(member) != 2:
            continue
        value, params = member
        if isinstance(value, str | http_sf.Token) and isinstance(params, dict):
            items.append((str(value), params))
    return items


def _draft7_items(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Draft -07's ``RateLimit: limit=10, remaining=5, reset=3`` (a dictionary) as one item."""
    import http_sf  # lazy: start-up time

    try:
        parsed = http_sf.parse(text.encode("ascii"), tltype="dictionary")
    except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError):
        return []
    if not isinstance(parsed, dict):
        return []
    params = {
        short: entry[0]
        for key, short in (("limit", "limit"), ("remaining", "r"), ("reset", "t"))
        if isinstance(entry := parsed.get(key), tuple) and entry
    }
    return [("default", params)] if params else []


def _whole(value: object) -> int | None:
    """A non-negative Structured Fields integer; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


# --- X-RateLimit-* -----------------------------------------------------------------------------


def _legacy_window(headers: Mapping[str, str], now: float, cap: float) -> Window | None:
    limit = _count(_field(headers, "X-RateLimit-Limit"))
    remaining = _count(_field(headers, "X-RateLimit-Remaining"))
    text = _field(headers, "X-RateLimit-Reset")
    value = _number(text)
    server_now = _server_now(headers) if value is not None and value >= EPOCH_FROM else None
    reset = reset_seconds(text, now, server_now)
    if reset is not None and reset > cap:
        reset = None
        if remaining == 0:
            return None  # spent until further than the caller waits: nothing to pace by
    if limit is None and remaining is None:
        return None
    return Window(LEGACY, limit, remaining, reset, source=LEGACY_SOURCE)


def _count(text: str | None) -> int | None:
    """A whole number of requests (``"60"``, also ``"60.0"``); None for anything else."""
    value = _number(text)
    if value is None or value != int(value):
        return None
    return int(value)


def _number(text: str | None) -> float | None:
    if text is None or len(text) > 40:
        return None
    match = _NUMBER.fullmatch(text)
    return float(match[1]) if match else None


def reset_seconds(text: str | None, now: float, server_now: float | None = None) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` value: an epoch time (seconds or milliseconds)
    or a delta, told apart by size; a time in the past is 0. ``server_now`` (the response's
    ``Date``) replaces ``now`` for epoch times when the clocks differ by over
    :data:`CLOCK_SKEW`."""
    value = _number(text)
    if value is None:
        return None
    if value < EPOCH_FROM:
        return value
    if value >= EPOCH_MS_FROM:
        value /= 1000.0
    clock = now
    if server_now is not None and abs(server_now - now) > CLOCK_SKEW:
        clock = server_now
    return max(0.0, value - clock)


def _server_now(headers: Mapping[str, str]) -> float | None:
    text = _field(headers, "Date")
    if text is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp()


# --- helpers -----------------------------------------------------------------------------------


def _field(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value (several lines joined by commas, as HTTP combines them); None when
    absent or too long to be a limit."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        values = getall(name, None)
        text = ", ".join(values) if values else None
    else:
        text = headers.get(name)
        if text is None:
            text = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    if text is None or len(text) > MAX_FIELD:
        return None
    return text


def _merge(windows: list[Window], legacy: Window) -> list[Window]:
    for index, window in enumerate(windows):
        if (window.limit, window.remaining) == (legacy.limit, legacy.remaining):
            resets = [r for r in (window.reset, legacy.reset) if r is not None]
            windows[index] = replace(window, reset=min(resets) if resets else None)
            return windows
    return [*windows, legacy]
