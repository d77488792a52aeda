"""``HttpCache``: what the engine asks before sending and tells after a response."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy

from fetchpipe._exceptions import ConfigError
from fetchpipe._redact import CREDENTIAL_HEADERS, CREDENTIAL_PARAMS
from fetchpipe.engine.cache import DEFAULT_PATH as DEFAULT_PATH
from fetchpipe.engine.cache import policy
from fetchpipe.engine.cache.keys import CacheKey, cache_key, vary_fingerprint
from fetchpipe.engine.cache.storage import Entry, Stats, Storage
from fetchpipe.engine.limits import host_of

CACHEABLE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Hit:
    """A stored entry that matched a request, and what to do with it."""

    entry: Entry
    action: policy.Action
    conditional_headers: Mapping[str, str] | None
    headers: CIMultiDictProxy[str]  # the entry's headers, parsed once for every use


class HttpCache:
    """A persistent HTTP cache in one SQLite file (RFC 9111, private by default).

    ``ttl`` gives a freshness lifetime to responses that carry none; ``ttl_overrides`` does
    the same per host pattern (``"api.x.test"``, ``"*.x.test"``) or URL glob
    (``"https://api.x.test/v1/*"``). ``stale_if_error`` is the most staleness (seconds) a
    stored response may have to answer when its refresh failed (``0`` switches it off).
    ``offline`` answers only from the cache. ``max_size`` (bytes) prunes least recently used
    entries. Requests carrying the configured credential headers or query parameters get keys
    of their own, computed from a hash of the credential; the credential is never stored.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        ttl: float | None = None,
        ttl_overrides: Mapping[str, float] | None = None,
        stale_if_error: float = 86_400.0,
        offline: bool = False,
        max_size: int | None = 1024**3,
        shared: bool = False,
        credential_headers: frozenset[str] = CREDENTIAL_HEADERS,
        credential_params: frozenset[str] = CREDENTIAL_PARAMS,
    ) -> None:
        for name, value in [
            ("ttl", ttl),
            *((f"ttl for {k!r}", v) for k, v in (ttl_overrides or {}).items()),
        ]:
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"cache {name} must be a number of seconds >= 0, got {value!r}.")
        if not (stale_if_error >= 0 and math.isfinite(stale_if_error)):
            raise ConfigError(f"stale_if_error must be seconds >= 0, got {stale_if_error!r}.")
        if max_size is not None and max_size < 1:
            raise ConfigError(
                f"cache max_size must be a positive number of bytes, got {max_size!r}."
            )
        self.path = Path(path)
        self.ttl = ttl
        self.ttl_overrides = dict(ttl_overrides or {})
        self.stale_if_error = stale_if_error
        self.offline = offline
        self.max_size = max_size
        self.shared = shared
        self.credential_headers = frozenset(h.lower() for h in credential_headers)
        self.credential_params = frozenset(p.lower() for p in credential_params)
        self._storage: Storage | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        if self._storage is None:
            self._storage = Storage(self.path, max_size=self.max_size)

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self.open()
        assert self._storage is not None
        return self._storage

    @property
    def note(self) -> str | None:
        """Set when an unreadable cache file was set aside at open."""
        return self._storage.note if self._storage is not None else None

    def stats(self) -> Stats:
        return self.storage.stats()

    # --- decisions ------------------------------------------------------------------------------

    def ttl_for(self, url: str) -> float | None:
        """The configured lifetime for responses without cache headers, for this URL."""
        if self.ttl_overrides:
            host = host_of(url) or ""
            best: tuple[int, float] | None = None
            for pattern, ttl in self.ttl_overrides.items():
                is_url = "/" in pattern
                matches = fnmatch.fnmatchcase(
                    url if is_url else host, pattern if is_url else pattern.lower()
                )
                if matches and (best is None or len(pattern) > best[0]):
                    best = (len(pattern), ttl)
            if best is not None:
                return best[1]
        return self.ttl

    def key(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int | float] | None,
        headers: Mapping[str, str],
    ) -> CacheKey:
        return cache_key(
            method,
            url,
            params,
            headers,
            credential_headers=self.credential_headers,
            credential_params=self.credential_params,
        )

    def lookup(self, key: CacheKey, now: float) -> Hit | None:
        """The stored variant matching the request's Vary headers, with the action to take."""
        for entry in self.storage.get(key.key):
            headers = CIMultiDictProxy(CIMultiDict(entry.headers))
            if entry.vary != vary_fingerprint(headers.get("Vary"), key.vary_source):
                continue
            decision = policy.lookup_decision(
                headers,
                status=entry.status,
                request_time=entry.request_time,
                response_time=entry.response_time,
                now=now,
                shared=self.shared,
                default_ttl=self.ttl_for(entry.url),
            )
            return Hit(entry, decision.action, decision.conditional_headers, headers)
        return None

    def store(
        self,
        key: CacheKey,
        method: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        request_time: float,
        response_time: float,
        request_no_store: bool = False,
    ) -> bool:
        """Keep the response if RFC 9111 allows it; ``True`` when it was queued for storage."""
        ttl = self.ttl_for(key.url)
        if not policy.storable(
            method,
            status,
            headers,
            request_no_store=request_no_store,
            shared=self.shared,
            default_ttl=ttl,
        ):
            return False
        pairs = [(n, v) for n, v in headers.items() if n.lower() not in _NOT_STORED]
        vary = vary_fingerprint(headers.get("Vary"), key.vary_source)
        self.storage.put(
            Entry(key.key, vary, key.url, method, status, pairs, body, request_time, response_time)
        )
        return True

    def refreshed(
        self, hit: Hit, headers: Mapping[str, str], *, request_time: float, response_time: float
    ) -> Entry:
        """The entry after a 304: headers merged, times reset; queued for storage."""
        old = hit.entry
        merged = policy.merge_304(
            old.headers, {n: v for n, v in headers.items() if n.lower() not in _NOT_STORED}
        )
        entry = Entry(
            old.key,
            old.vary,
            old.url,
            old.method,
            old.status,
            merged,
            old.body,
            request_time,
            response_time,
        )
        self.storage.put(entry)
        return entry

    def stale_usable(self, hit: Hit, now: float) -> bool:
        if not self.stale_if_error:
            return False
        entry = hit.entry
        return policy.stale_usable_on_error(
            hit.headers,
            status=entry.status,
            request_time=entry.request_time,
            response_time=entry.response_time,
            now=now,
            max_stale=self.stale_if_error,
            shared=self.shared,
            default_ttl=self.ttl_for(entry.url),
        )

    def used(self, hit: Hit, now: float) -> None:
        """Note an answer from the cache, for least-recently-used pruning."""
        self.storage.touch(hit.entry.key, hit.entry.vary, now)


# Hop-by-hop and per-response headers that are never stored (RFC 9111 §3.1), and cookies.
_NOT_STORED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "set-cookie",
        "set-cookie2",
    }
)
