"""Throughput: fetchpipe against a raw aiohttp + ``asyncio.Semaphore`` loop, same server, same run.

Both clients fetch N small JSON responses at concurrency C from one local server in a child
process, on the same event loop implementation, in alternating rounds (the order flips each
round) so that drift on a shared machine hits both alike. The figure of merit is the ratio of
the median rates. fetchpipe runs with everything on: retries, per-host concurrency and rate
meters, result records with parsed bodies and timings.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from fetchpipe._config import HostLimits, Limits
from fetchpipe._fetcher import Fetcher
from fetchpipe.engine.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    requests: int
    ok: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class ThroughputReport:
    requests: int
    concurrency: int
    loop: str
    rounds: list[dict[str, Run]] = field(default_factory=list)

    def median_rate(self, name: str) -> float:
        return statistics.median(r[name].rate for r in self.rounds)

    @property
    def ratio(self) -> float:
        raw = self.median_rate("raw_aiohttp")
        return self.median_rate("fetchpipe") / raw if raw else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "throughput",
            "requests": self.requests,
            "concurrency": self.concurrency,
            "event_loop": self.loop,
            "rounds": [
                {k: {**asdict(v), "rate": v.rate} for k, v in r.items()} for r in self.rounds
            ],
            "median_rate": {k: self.median_rate(k) for k in ("raw_aiohttp", "fetchpipe")},
            "ratio": self.ratio,
        }


async def raw_aiohttp(urls: list[str], concurrency: int) -> int:
    """The usual hand-rolled loop: one task per URL, a semaphore, ``resp.json()``."""
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(url: str) -> Any:
            async with semaphore, session.get(url) as resp:
                resp.raise_for_status()
                return await resp.json()

        results = await asyncio.gather(*(one(u) for u in urls), return_exceptions=True)
    return sum(1 for r in results if not isinstance(r, BaseException))


async def with_fetchpipe(urls: list[str], concurrency: int) -> int:
    limits = Limits(
        max_concurrency=concurrency,
        per_host=HostLimits(
            max_concurrency=concurrency, max_per_second=1_000_000.0, burst=concurrency
        ),
    )
    ok = 0
    async with Fetcher(limits=limits, retry=RetryPolicy(attempts=4)) as fetcher:
        async for result in fetcher.stream(urls):
            ok += result.ok
    return ok


async def _timed(
    name: str, client: Callable[[list[str], int], Awaitable[int]], urls: list[str], conc: int
) -> Run:
    cpu = time.process_time()
    start = time.perf_counter()
    ok = await client(urls, conc)
    return Run(name, len(urls), ok, time.perf_counter() - start, time.process_time() - cpu)


async def measure(base_url: str, requests: int, concurrency: int, rounds: int) -> ThroughputReport:
    urls = [f"{base_url}/item/{i}" for i in range(requests)]
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    report = ThroughputReport(requests, concurrency, loop_name)
    clients: list[tuple[str, Callable[[list[str], int], Awaitable[int]]]] = [
        ("raw_aiohttp", raw_aiohttp),
        ("fetchpipe", with_fetchpipe),
    ]
    await raw_aiohttp(urls[:500], concurrency)  # warm up the server and the imports
    await with_fetchpipe(urls[:500], concurrency)
    for index in range(rounds):
        order = clients if index % 2 == 0 else clients[::-1]
        report.rounds.append(
            {name: await _timed(name, fn, urls, concurrency) for name, fn in order}
        )
    return report
