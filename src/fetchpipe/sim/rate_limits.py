"""Simulated APIs that limit their rate: one publishes its limit, the other keeps it silent.

``GET /limited/published/{n}?limit=10&window=2&key=k&reset=epoch&headers=both``
    ``limit`` requests per window of ``window`` whole seconds, per host and ``key``. Windows
    are fixed and aligned on multiples of ``window`` in Unix time, so every reset falls on a
    whole second and the headers' whole-second values are exact. Every answer says so:
    ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (``reset=epoch``:
    the Unix time of the reset, as GitHub; ``reset=delta``: seconds until it) and, draft
    -10/-11 of the IETF, ``RateLimit-Policy: "default";q=10;w=2`` and
    ``RateLimit: "default";r=4;t=1`` (``t`` rounded up). ``headers=ietf`` or ``legacy`` sends
    one of the two forms only. Beyond the quota: 429 with ``Retry-After`` and the same headers.
    ``per=token``: a window per ``Authorization`` value as well (an API that limits per token;
    the counts stay per ``key``).
``GET /limited/silent/{n}?rate=20&burst=20&key=k``
    a token bucket of ``burst`` requests refilled at ``rate`` per second, per host and ``key``;
    beyond it a bare 429, no header saying why or for how long.
``GET /limited/quota/{n}?requests=300&per=day&key=k``
    a quota: ``requests`` per calendar ``hour`` or ``day`` in UTC, per host and ``key``, with
    no header until it is spent; beyond it a 429 with ``Retry-After`` to the window's end (what
    an API selling a daily quota answers).
``GET /limited/counts?key=k&after=0``
    ``{"accepted": n, "rejected": m}``: the requests of ``key`` each kind let through or
    answered 429, all hosts together, of those that came ``after`` seconds or more after the
    key's first (cleared by ``POST /__reset``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from aiohttp import web

from fetchpipe.sim.params import BadParam, float_param, int_param, json_response

MAX_WINDOW = 3600
MAX_ARRIVALS = 1_000_000
"""Requests remembered per key for the counts."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    """The state of the limited endpoints: windows, buckets and counts (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, int, int], tuple[int, int]] = {}
        self._buckets: dict[tuple[str, str, float, float], _Bucket] = {}
        self._arrivals: dict[str, list[tuple[float, bool]]] = {}

    def window(self, host: str, key: str, limit: int, window: int, now: float) -> tuple[int, int]:
        """Take one request of the window that holds ``now``: (requests it had before this one,
        the Unix time it resets)."""
        start = int(now // window) * window
        with self._lock:
            index = (host, key, limit, window)
            began, used = self._windows.get(index, (start, 0))
            if began != start:
                used = 0
            self._windows[index] = (start, used + 1)
        return used, start + window

    def take(self, host: str, key: str, rate: float, burst: float, now: float) -> bool:
        """One token of the bucket, if there is one."""
        with self._lock:
            index = (host, key, rate, burst)
            bucket = self._buckets.get(index)
            if bucket is None:
                bucket = self._buckets[index] = _Bucket(burst, now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            return False

    def count(self, key: str, accepted: bool) -> None:
        with self._lock:
            arrivals = self._arrivals.setdefault(key, [])
            if len(arrivals) < MAX_ARRIVALS:
                arrivals.append((time.monotonic(), accepted))

    def counts(self, key: str, after: float = 0.0) -> dict[str, int]:
        """``{"accepted": n, "rejected": m}`` for ``key``: its requests that came ``after``
        seconds or more after its first."""
        with self._lock:
            arrivals = list(self._arrivals.get(key, ()))
        first = arrivals[0][0] if arrivals else 0.0
        chosen = [ok for at, ok in arrivals if at - first >= after]
        accepted = sum(chosen)
        return {"accepted": accepted, "rejected": len(chosen) - accepted}

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._buckets.clear()
            self._arrivals.clear()


LIMITS = web.AppKey("fetchpipe_sim_rate_limits", RateLimits)


def _host(request: web.Request) -> str:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return str(sockname[0]) if sockname else ""


async def published(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 10, 1, 1_000_000)
    window = int_param(request, "window", 2, 1, MAX_WINDOW)
    key = request.query.get("key", "")
    reset_form = request.query.get("reset", "epoch")
    forms = request.query.get("headers", "both")
    if reset_form not in ("epoch", "delta") or forms not in ("both", "ietf", "legacy"):
        raise BadParam("reset must be epoch or delta; headers both, ietf or legacy")
    per = request.query.get("per", "key")
    if per not in ("key", "token"):
        raise BadParam("per must be key or token")
    limits = request.app[LIMITS]
    now = time.time()
    limited = key if per == "key" else f"{key}\n{request.headers.get('Authorization', '')}"
    used, reset_at = limits.window(_host(request), limited, limit, window, now)
    allowed = used < limit
    remaining = max(0, limit - used - 1) if allowed else 0
    seconds = max(0, math.ceil(reset_at - now))
    headers: dict[str, str] = {}
    if forms in ("both", "legacy"):
        headers["X-RateLimit-Limit"] = str(limit)
        headers["X-RateLimit-Remaining"] = str(remaining)
        headers["X-RateLimit-Reset"] = str(reset_at if reset_form == "epoch" else seconds)
    if forms in ("both", "ietf"):
        headers["RateLimit-Policy"] = f'"default";q={limit};w={window}'
        headers["RateLimit"] = f'"default";r={remaining};t={seconds}'
    limits.count(key, allowed)
    if not allowed:
        headers["Retry-After"] = str(seconds)
        return json_response({"error": "rate limited"}, status=429, headers=headers)
    return json_response({"n": request.match_info["n"], "key": key}, headers=headers)


async def silent(request: web.Request) -> web.Response:
    rate = float_param(request, "rate", 20.0, 0.001, 1_000_000.0)
    burst = float_param(request, "burst", rate, 1.0, 1_000_000.0)
    key = request.query.get("key", "")
    limits = request.app[LIMITS]
    allowed = limits.take(_host(request), key, rate, burst, time.monotonic())
    limits.count(key, allowed)
    if not allowed:
        return json_response({"error": "too many requests"}, status=429)
    return json_response({"n": request.match_info["n"], "key": key})


async def quota(request: web.Request) -> web.Response:
    requests = int_param(request, "requests", 1000, 1, 1_000_000_000)
    per = request.query.get("per", "day")
    if per not in ("hour", "day"):
        raise BadParam("per must be hour or day")
    key = request.query.get("key", "")
    limits = request.app[LIMITS]
    now = time.time()
    used, reset_at = limits.window(
        _host(request), key, requests, 3600 if per == "hour" else 86400, now
    )
    allowed = used < requests
    limits.count(key, allowed)
    if not allowed:
        headers = {"Retry-After": str(max(1, math.ceil(reset_at - now)))}
        return json_response({"error": "quota spent"}, status=429, headers=headers)
    return json_response({"n": request.match_info["n"], "key": key})


async def counts(request: web.Request) -> web.Response:
    after = float_param(request, "after", 0.0, 0.0, 86_400.0)
    return json_response(request.app[LIMITS].counts(request.query.get("key", ""), after))


def add_rate_limit_routes(app: web.Application, limits: RateLimits) -> None:
    """The limited endpoints, on ``app`` with the state ``limits``."""
    app[LIMITS] = limits
    app.router.add_get("/limited/published/{n}", published)
    app.router.add_get("/limited/silent/{n}", silent)
    app.router.add_get("/limited/quota/{n}", quota)
    app.router.add_get("/limited/counts", counts)
