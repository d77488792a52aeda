"""Cache keys that separate credentials without ever holding them.

A key is a SHA-256 over the method, the URL with credential query parameters taken out, and a
digest of the credentials (configured headers and query parameters). Two tokens give two keys;
the stored URL shows ``REDACTED`` where a credential was; no secret reaches the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from yarl import URL

DEFAULT_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
DEFAULT_CREDENTIAL_PARAMS = frozenset(
    {"api_key", "apikey", "api-key", "access_token", "token", "key", "secret", "signature"}
)
REDACTED = "REDACTED"


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
    credential_headers: frozenset[str] = DEFAULT_CREDENTIAL_HEADERS,
    credential_params: frozenset[str] = DEFAULT_CREDENTIAL_PARAMS,
) -> CacheKey:
    """The key for a request. ``headers`` are all headers sent (defaults and the request's)."""
    parsed = URL(url)
    if params:
        parsed = parsed.extend_query({k: str(v) for k, v in params.items()})
    parsed = parsed.with_fragment(None)
    secrets: list[str] = []
    if parsed.query_string and credential_params:
        query = []
        for name, value in parsed.query.items():
            if name.lower() in credential_params:
                secrets.append(f"q:{name}={value}")
                query.append((name, REDACTED))
            else:
                query.append((name, value))
        if secrets:
            parsed = parsed.with_query(query)
    lower = {name.lower(): value for name, value in headers.items()}
    for name in sorted(credential_headers & lower.keys()):
        secrets.append(f"h:{name}={lower[name]}")
    safe_url = str(parsed)
    key = _digest([method.upper(), safe_url, _digest(secrets) if secrets else ""])
    return CacheKey(key, safe_url, lower)


def vary_fingerprint(vary: str | None, request_headers: Mapping[str, str]) -> str:
    """A digest of the request's values for the headers named in ``Vary`` (never the values)."""
    if not vary:
        return ""
    names = sorted({n.strip().lower() for n in vary.split(",") if n.strip()})
    return _digest(f"{name}={request_headers.get(name, '')}" for name in names)
