"""A local API that limits each token on its own (an aiohttp test server on 127.0.0.1)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKENS = ("token-alpha-5c1e", "token-bravo-9d2f")
PAGES = 20
"""``?page=N`` answers one record for N up to this, then an empty list."""


@dataclass
class PerTokenApi:
    """Answers 200 to each token within ``rate`` requests per second (a bucket of ``rate``
    tokens refilled at ``rate`` per second, per ``Authorization`` value), 429 with
    ``Retry-After: 1`` beyond; tokens in ``resting`` always get 429 with ``Retry-After: 3600``.
    Records every arrival per token."""

    rate: float = 10.0
    resting: set[str] = field(default_factory=set)
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    rejected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        now = time.monotonic()
        self.arrivals[token].append(now)
        if token in self.resting:
            self.rejected[token] += 1
            return web.json_response({"error": "rest"}, status=429, headers={"Retry-After": "3600"})
        level, at = self._buckets.get(token, (self.rate, now))
        level = min(self.rate, level + (now - at) * self.rate)
        if level < 1.0:
            self._buckets[token] = (level, now)
            self.rejected[token] += 1
            return web.json_response({"error": "slow"}, status=429, headers={"Retry-After": "1"})
        self._buckets[token] = (level - 1.0, now)
        page = int(request.query.get("page", "1"))
        items = [{"id": page, "path": request.path}] if page <= PAGES else []
        return web.json_response({"items": items})

    def most_in_one_second(self, token: str) -> int:
        """The most arrivals of ``token`` within any one second."""
        times = self.arrivals[token]
        return max((sum(1 for t in times if s <= t < s + 1.0) for s in times), default=0)


@asynccontextmanager
async def serving(state: PerTokenApi) -> AsyncIterator[str]:
    """``state`` served on 127.0.0.1: its base URL while in the block."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
