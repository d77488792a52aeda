"""Server-side request statistics of the simulated fleet."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

__all__ = ["FleetStats"]

DEFAULT_MAX_ARRIVALS = 100_000


class _HostStats:
    __slots__ = ("arrivals", "in_flight", "max_in_flight", "requests")

    def __init__(self, max_arrivals: int) -> None:
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: deque[float] = deque(maxlen=max_arrivals)


class FleetStats:
    """Per-host, per-path and per-(path, key) request counts and concurrency high-water marks.

    A request is in flight from the start of its handler until its response has been written
    (or the connection is gone). All methods take a lock, so they can be called from any thread.
    """

    def __init__(self, max_arrivals: int = DEFAULT_MAX_ARRIVALS) -> None:
        self._lock = threading.Lock()
        self._max_arrivals = max_arrivals
        self._hosts: dict[str, _HostStats] = {}
        self._paths: Counter[str] = Counter()
        self._keys: Counter[tuple[str, str | None]] = Counter()
        self._combos: Counter[tuple[str, str, str | None]] = Counter()
        self._total = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._busy_hosts = 0
        self._max_busy_hosts = 0

    # -- recording (called by the server) ---------------------------------------------------

    def request_started(self, host: str, path: str, key: str | None = None) -> None:
        """Count a request arriving at `host` for `path` (with optional `key` param)."""
        now = time.monotonic()
        with self._lock:
            hs = self._hosts.get(host)
            if hs is None:
                hs = self._hosts[host] = _HostStats(self._max_arrivals)
            hs.requests += 1
            hs.in_flight += 1
            if hs.in_flight == 1:
                self._busy_hosts += 1
                if self._busy_hosts > self._max_busy_hosts:
                    self._max_busy_hosts = self._busy_hosts
            if hs.in_flight > hs.max_in_flight:
                hs.max_in_flight = hs.in_flight
            hs.arrivals.append(now)
            self._paths[path] += 1
            self._keys[path, key] += 1
            self._combos[host, path, key] += 1
            self._total += 1
            self._in_flight += 1
            if self._in_flight > self._max_in_flight:
                self._max_in_flight = self._in_flight

    def request_finished(self, host: str) -> None:
        """Mark one request to `host` as no longer in flight."""
        with self._lock:
            hs = self._hosts.get(host)
            if hs is not None and hs.in_flight > 0:
                hs.in_flight -= 1
                if not hs.in_flight:
                    self._busy_hosts -= 1
            if self._in_flight > 0:
                self._in_flight -= 1

    # -- queries ----------------------------------------------------------------------------

    def requests(
        self, host: str | None = None, path: str | None = None, key: str | None = None
    ) -> int:
        """Number of requests matching all the given filters (None matches anything)."""
        with self._lock:
            if host is None and path is None and key is None:
                return self._total
            if path is None and key is None:
                hs = self._hosts.get(host or "")
                return hs.requests if hs is not None else 0
            if host is None and key is None:
                return self._paths.get(path or "", 0)
            if host is None and path is not None:
                return self._keys.get((path, key), 0)
            return sum(
                n
                for (h, p, k), n in self._combos.items()
                if (host is None or h == host)
                and (path is None or p == path)
                and (key is None or k == key)
            )

    def in_flight(self, host: str | None = None) -> int:
        """Requests currently in flight at `host`, or on the whole fleet if None."""
        with self._lock:
            if host is None:
                return self._in_flight
            hs = self._hosts.get(host)
            return hs.in_flight if hs is not None else 0

    def max_in_flight(self, host: str | None = None) -> int:
        """Highest number of simultaneous requests seen at `host` (fleet-wide if None)."""
        with self._lock:
            if host is None:
                return self._max_in_flight
            hs = self._hosts.get(host)
            return hs.max_in_flight if hs is not None else 0

    def max_busy_hosts(self) -> int:
        """Highest number of hosts that had a request in flight at the same time."""
        with self._lock:
            return self._max_busy_hosts

    def arrivals(self, host: str) -> list[float]:
        """`time.monotonic()` arrival times of the most recent requests at `host`, oldest first."""
        with self._lock:
            hs = self._hosts.get(host)
            return list(hs.arrivals) if hs is not None else []

    def hosts(self) -> list[str]:
        """Hosts (from the Host header) that received at least one request."""
        with self._lock:
            return sorted(self._hosts)

    def paths(self) -> dict[str, int]:
        """Request count per path."""
        with self._lock:
            return dict(self._paths)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready copy of the counters (arrival times summarised, not listed)."""
        with self._lock:
            hosts = {
                name: {
                    "requests": hs.requests,
                    "in_flight": hs.in_flight,
                    "max_in_flight": hs.max_in_flight,
                    "first_arrival": hs.arrivals[0] if hs.arrivals else None,
                    "last_arrival": hs.arrivals[-1] if hs.arrivals else None,
                }
                for name, hs in sorted(self._hosts.items())
            }
            return {
                "requests": self._total,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "max_busy_hosts": self._max_busy_hosts,
                "hosts": hosts,
                "paths": dict(self._paths),
                "keys": [{"path": p, "key": k, "requests": n} for (p, k), n in self._keys.items()],
            }

    def reset(self) -> None:
        """Forget all counts; requests still in flight stay counted as in flight."""
        with self._lock:
            for hs in self._hosts.values():
                hs.requests = 0
                hs.max_in_flight = hs.in_flight
                hs.arrivals.clear()
            self._hosts = {h: hs for h, hs in self._hosts.items() if hs.in_flight}
            self._paths.clear()
            self._keys.clear()
            self._combos.clear()
            self._total = 0
            self._max_in_flight = self._in_flight
            self._max_busy_hosts = self._busy_hosts
