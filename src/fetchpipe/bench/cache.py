"""Cache: a warm re-read of N cached URLs at concurrency C, fetchpipe beside aiohttp-client-cache.

Both caches are filled from the same local server first (responses say ``max-age``), then
timed on the warm re-read, in-process, each opening its cache as a fresh run would. The server
counts requests, so a "warm" read that still went to the network shows up in the report.
"""

from __future__ import annotations

import asyncio
import importlib.util
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fetchpipe._config import Limits
from fetchpipe._models import Provenance
from fetchpipe.engine.cache.http_cache import HttpCache
from fetchpipe.engine.fetcher import Fetcher
from fetchpipe.sim import Fleet


@dataclass(frozen=True, slots=True)
class WarmRead:
    client: str
    urls: int
    seconds: float | None  # None: not installed
    from_cache: int
    server_requests: int
    note: str = ""


async def _fetchpipe(urls: list[str], path: Path, concurrency: int) -> int:
    """Read (or fill) through fetchpipe's cache; the count of answers from the cache."""
    cached = 0
    async with Fetcher(limits=Limits(max_concurrency=concurrency), cache=HttpCache(path)) as f:
        async for result in f.stream(urls):
            cached += result.ok and result.source is Provenance.CACHE
    return cached


async def _client_cache(urls: list[str], path: Path, concurrency: int) -> int:
    # lazy: aiohttp-client-cache is an optional extra ('bench'), checked before this runs
    from aiohttp_client_cache import (  # type: ignore[attr-defined, import-not-found, unused-ignore]
        CachedSession,
        SQLiteBackend,
    )

    semaphore = asyncio.Semaphore(concurrency)
    cached = 0
    async with CachedSession(cache=SQLiteBackend(str(path))) as session:

        async def one(url: str) -> None:
            nonlocal cached
            async with semaphore, session.get(url) as resp:
                await resp.read()
                cached += bool(getattr(resp, "from_cache", False))

        await asyncio.gather(*(one(u) for u in urls))
    return cached


Client = Callable[[list[str], Path, int], Awaitable[int]]


async def _warm_read(
    name: str, client: Client, fleet: Fleet, urls: list[str], path: Path, concurrency: int
) -> WarmRead:
    """Fill the client's cache, then time a second pass over the same URLs."""
    await client(urls, path, concurrency)
    before = fleet.stats.requests()
    start = time.perf_counter()
    hits = await client(urls, path, concurrency)
    seconds = time.perf_counter() - start
    return WarmRead(name, len(urls), seconds, hits, fleet.stats.requests() - before)


async def measure(urls_count: int, concurrency: int) -> list[WarmRead]:
    async with Fleet(hosts=1, minute=0.01) as fleet:
        urls = [fleet.url(f"/cached?n={i}&cc=max-age%3D3600") for i in range(urls_count)]
        with tempfile.TemporaryDirectory() as folder:
            ours = await _warm_read(
                "fetchpipe", _fetchpipe, fleet, urls, Path(folder) / "a.sqlite", concurrency
            )
            if importlib.util.find_spec("aiohttp_client_cache") is None:
                other = WarmRead("aiohttp-client-cache", urls_count, None, 0, 0, "not installed")
            else:
                other = await _warm_read(
                    "aiohttp-client-cache",
                    _client_cache,
                    fleet,
                    urls,
                    Path(folder) / "b.sqlite",
                    concurrency,
                )
    return [ours, other]


def to_json(reads: list[WarmRead]) -> dict[str, Any]:
    seconds = {r.client: r.seconds for r in reads}
    ours, theirs = seconds.get("fetchpipe"), seconds.get("aiohttp-client-cache")
    return {
        "scenario": "cache",
        "reads": [asdict(r) for r in reads],
        "speedup_vs_aiohttp_client_cache": theirs / ours if ours and theirs else None,
    }
