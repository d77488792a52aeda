"""Cache keys that separate credentials without ever holding them.

A key is a SHA-256 over the method, the URL with credential query parameters taken out, and a
digest of the credentials (configured headers and query parameters). Two tokens give two keys;
the stored URL shows ``REDACTED`` where a credential was and drops ``user:password@``; no
secret reaches the file.

This differs from :func:`fetchpipe._redact.redact_url` on purpose: two credentials must give two
keys, so their values are hashed into the key (never stored), and the stored URL is the parsed
URL with the request's ``params`` in it. The credential names and ``REDACTED`` are
:mod:`fetchpipe._redact`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from yarl import URL

from fetchpipe._redact import CREDENTIAL_HEADERS, CREDENTIAL_PARAMS, REDACTED


@dataclass(frozen=True, slots=True)
class CacheKey:
    key: str  # hex digest: the primary key in storage
    url: str  # the URL with credential parameters redacted: safe to store and show
    vary_source: Mapping[str, str]  # request headers, lower-case names, for Vary matching


def _digest(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def cache_key(
    method: str,
    url: str,
    params: Mapping[str, str | int | float] | None,
    headers: Mapping[str, str],
    *,
    credential_headers: frozenset[str] = CREDENTIAL_HEADERS,
    credential_params: frozenset[str] = CREDENTIAL_PARAMS,
) -> CacheKey:
    """The key for a request. ``headers`` are all headers sent (defaults and the request's)."""
    if (
        not params
        and "#" not in url
        and "@" not in url
        and not _has_credential_param(url, credential_params)
    ):
        safe_url = url  # the common case, without a full parse: it runs once per request
    else:
        safe_url = _redacted(url, params, credential_params)
    secrets: list[str] = []
    if safe_url != url:
        secrets.extend(_credential_params(url, params, credential_params))
    lower = {name.lower(): value for name, value in headers.items()}
    for name in sorted(credential_headers & lower.keys()):
        secrets.append(f"h:{name}={lower[name]}")
    key = _digest([method.upper(), safe_url, _digest(secrets) if secrets else ""])
    return CacheKey(key, safe_url, lower)


def _has_credential_param(url: str, names: frozenset[str]) -> bool:
    query = url.partition("?")[2]
    if not query or not names:
        return False
    for pair in query.split("&"):
        name = pair.partition("=")[0]
        if "%" in name or "+" in name or name.lower() in names:
            return True  # encoded names take the full parse, to be safe
    return False


def _parsed(url: str, params: Mapping[str, str | int | float] | None) -> URL:
    parsed = URL(url).with_user(None)  # user:password@ never reaches the key or the file
    if params:
        parsed = parsed.extend_query({k: str(v) for k, v in params.items()})
    return parsed.with_fragment(None)


def _credential_params(
    url: str, params: Mapping[str, str | int | float] | None, names: frozenset[str]
) -> list[str]:
    query = _parsed(url, params).query
    found = [f"q:{name}={value}" for name, value in query.items() if name.lower() in names]
    raw = URL(url)
    if raw.user is not None or raw.password is not None:
        found.append(f"u:{raw.user}:{raw.password}")
    return found


def _redacted(
    url: str, params: Mapping[str, str | int | float] | None, names: frozenset[str]
) -> str:
    parsed = _parsed(url, params)
    if parsed.query_string and names:
        query = [
            (name, REDACTED if name.lower() in names else value)
            for name, value in parsed.query.items()
        ]
        parsed = parsed.with_query(query)
    return str(parsed)


def vary_fingerprint(vary: str | None, request_headers: Mapping[str, str]) -> str:
    """A digest of the request's values for the headers named in ``Vary`` (never the values)."""
    if not vary:
        return ""
    names = sorted({n.strip().lower() for n in vary.split(",") if n.strip()})
    return _digest(f"{name}={request_headers.get(name, '')}" for name in names)
