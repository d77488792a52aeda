"""RFC 9111 caching decisions as pure functions: no clock, no I/O.

The engine asks :func:`lookup_decision` what to do with a stored entry before sending, and
:func:`storable` / :func:`freshness_lifetime` what to keep after a response. ``now`` is always
passed in (Unix seconds), so every rule is tested without a network or a clock.

A private cache by default (RFC 9111 §3.5): ``s-maxage`` and ``private`` only matter when the
cache is configured as shared.
"""

from __future__ import annotations

import email.utils
import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass

# Statuses stored when the response allows it. Error responses are never stored (a 404 today
# must not hide the record tomorrow), nor partial content.
STORABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308})
# RFC 9111 §4.2.2: heuristic freshness only for statuses defined as heuristically cacheable.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 300, 301, 308})
HEURISTIC_FRACTION = 0.1
HEURISTIC_MAX = 86_400.0


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The directives of one ``Cache-Control`` header that change what a cache does."""

    max_age: float | None = None
    s_maxage: float | None = None
    no_store: bool = False
    no_cache: bool = False
    must_revalidate: bool = False
    private: bool = False
    public: bool = False
    stale_if_error: float | None = None


def _seconds(value: str) -> float | None:
    value = value.strip().strip('"')
    return float(int(value)) if value.isdigit() else None


@functools.lru_cache(maxsize=1024)
def parse_cache_control(value: str | None) -> CacheControl:
    """Parse ``Cache-Control``; unknown directives are ignored, bad numbers count as absent."""
    if not value:
        return CacheControl()
    found: dict[str, str | None] = {}
    for part in value.split(","):
        name, sep, arg = part.strip().partition("=")
        name = name.strip().lower()
        if name and name not in found:
            found[name] = arg if sep else None

    def number(name: str) -> float | None:
        arg = found.get(name)
        return _seconds(arg) if arg is not None else None

    return CacheControl(
        max_age=number("max-age"),
        s_maxage=number("s-maxage"),
        no_store="no-store" in found,
        no_cache="no-cache" in found,
        must_revalidate="must-revalidate" in found or "proxy-revalidate" in found,
        private="private" in found,
        public="public" in found,
        stale_if_error=number("stale-if-error"),
    )


@functools.lru_cache(maxsize=4096)
def http_date(value: str | None) -> float | None:
    """An HTTP-date as Unix seconds, or ``None`` when missing or malformed.

    Cached: the same few dates repeat across a run's entries, and the parser is slow.
    """
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def freshness_lifetime(
    status: int,
    headers: Mapping[str, str],
    *,
    shared: bool = False,
    default_ttl: float | None = None,
) -> float:
    """Seconds a response stays fresh (RFC 9111 §4.2.1), ``0`` when it must be revalidated.

    ``default_ttl`` applies when the response carries no explicit freshness (an API that sends
    no cache headers); it beats the Last-Modified heuristic but never an explicit directive.
    """
    cc = parse_cache_control(headers.get("Cache-Control"))
    if cc.no_cache:
        return 0.0
    if shared and cc.s_maxage is not None:
        return cc.s_maxage
    if cc.max_age is not None:
        return cc.max_age
    expires = headers.get("Expires")
    if expires is not None:
        when = http_date(expires)
        if when is None:
            return 0.0  # an invalid Expires means "already expired" (§5.3)
        date = http_date(headers.get("Date"))
        return max(0.0, when - date) if date is not None else 0.0
    if default_ttl is not None:
        return default_ttl
    last_modified = http_date(headers.get("Last-Modified"))
    date = http_date(headers.get("Date"))
    if status in HEURISTIC_STATUSES and last_modified is not None and date is not None:
        return min(HEURISTIC_MAX, max(0.0, (date - last_modified) * HEURISTIC_FRACTION))
    return 0.0


def current_age(
    headers: Mapping[str, str], *, request_time: float, response_time: float, now: float
) -> float:
    """The entry's age now (RFC 9111 §4.2.3)."""
    date = http_date(headers.get("Date"))
    apparent_age = max(0.0, response_time - date) if date is not None else 0.0
    age_header = _seconds(headers.get("Age", "") or "")
    age_value = age_header if age_header is not None else 0.0
    corrected_age_value = age_value + (response_time - request_time)
    corrected_initial_age = max(apparent_age, corrected_age_value)
    return corrected_initial_age + max(0.0, now - response_time)


def has_validator(headers: Mapping[str, str]) -> bool:
    return "ETag" in headers or "Last-Modified" in headers


def storable(
    method: str,
    status: int,
    response_headers: Mapping[str, str],
    *,
    request_no_store: bool = False,
    shared: bool = False,
    default_ttl: float | None = None,
) -> bool:
    """May this response be stored (RFC 9111 §3)? Only successful, final GET responses."""
    if method != "GET" or status not in STORABLE_STATUSES or request_no_store:
        return False
    cc = parse_cache_control(response_headers.get("Cache-Control"))
    if cc.no_store or (shared and cc.private):
        return False
    if response_headers.get("Vary", "").strip() == "*":
        return False
    explicit = (
        cc.max_age is not None
        or (shared and cc.s_maxage is not None)
        or "Expires" in response_headers
        or cc.no_cache
        or cc.public
    )
    return explicit or has_validator(response_headers) or default_ttl is not None


class Action(enum.Enum):
    USE = "use"  # fresh: answer from the cache, send nothing
    REVALIDATE = "revalidate"  # stale with a validator: send a conditional request
    FETCH = "fetch"  # nothing usable: send the request as it is


@dataclass(frozen=True, slots=True)
class Lookup:
    action: Action
    conditional_headers: Mapping[str, str] | None = None


def lookup_decision(
    headers: Mapping[str, str],
    *,
    status: int,
    request_time: float,
    response_time: float,
    now: float,
    shared: bool = False,
    default_ttl: float | None = None,
) -> Lookup:
    """What to do with a stored entry whose Vary already matched the request."""
    lifetime = freshness_lifetime(status, headers, shared=shared, default_ttl=default_ttl)
    age = current_age(headers, request_time=request_time, response_time=response_time, now=now)
    if lifetime > age:
        return Lookup(Action.USE)
    conditional: dict[str, str] = {}
    etag = headers.get("ETag")
    if etag is not None:
        conditional["If-None-Match"] = etag
    last_modified = headers.get("Last-Modified")
    if last_modified is not None:
        conditional["If-Modified-Since"] = last_modified
    if conditional:
        return Lookup(Action.REVALIDATE, conditional)
    return Lookup(Action.FETCH)


def stale_usable_on_error(
    headers: Mapping[str, str],
    *,
    status: int,
    request_time: float,
    response_time: float,
    now: float,
    max_stale: float,
    shared: bool = False,
    default_ttl: float | None = None,
) -> bool:
    """May a stale entry answer when the refresh failed (RFC 5861 ``stale-if-error``)?

    The response's own ``stale-if-error`` wins over ``max_stale``; ``must-revalidate`` forbids.
    """
    cc = parse_cache_control(headers.get("Cache-Control"))
    if cc.must_revalidate:
        return False
    bound = cc.stale_if_error if cc.stale_if_error is not None else max_stale
    lifetime = freshness_lifetime(status, headers, shared=shared, default_ttl=default_ttl)
    age = current_age(headers, request_time=request_time, response_time=response_time, now=now)
    return age - lifetime <= bound


def merge_304(stored: list[tuple[str, str]], fresh: Mapping[str, str]) -> list[tuple[str, str]]:
    """Stored headers updated by a 304's headers (RFC 9111 §4.3.4), Content-Length kept."""
    skip = {"content-length", "content-encoding", "transfer-encoding"}
    replaced = {name.lower() for name in fresh if name.lower() not in skip}
    merged = [(name, value) for name, value in stored if name.lower() not in replaced]
    merged.extend((name, value) for name, value in fresh.items() if name.lower() not in skip)
    return merged
