"""Latency: N requests that each wait L on the server, at concurrency C, against the floor.

No client can beat ``ceil(N / C) * L`` (10,000 requests of 100 ms at 1,000 at once: 1.0 s); the
time over it is what the client and the loopback cost. fetchpipe and the raw aiohttp +
``asyncio.Semaphore`` loop run in alternating rounds against one server in a child process.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from fetchpipe._config import Limits
from fetchpipe.bench.report import percent
from fetchpipe.bench.server import delay_url
from fetchpipe.bench.svg import Bar, Marker, bar_chart
from fetchpipe.bench.throughput import Run, raw_aiohttp, timed
from fetchpipe.engine.fetcher import Fetcher

CLIENTS = ("raw_aiohttp", "fetchpipe")
LABELS = {"raw_aiohttp": "aiohttp + Semaphore", "fetchpipe": "fetchpipe"}


async def with_fetchpipe(urls: list[str], concurrency: int, transport: str = "aiohttp") -> int:
    """fetchpipe with default settings but ``max_concurrency`` (and the transport)."""
    ok = 0
    limits = Limits(max_concurrency=concurrency)
    async with Fetcher(limits=limits, transport=transport) as fetcher:
        async for result in fetcher.stream(urls):
            ok += result.ok
    return ok


@dataclass(slots=True)
class LatencyReport:
    requests: int
    concurrency: int
    delay_ms: int
    rounds: list[dict[str, Run]] = field(default_factory=list)
    transport: str = "aiohttp"
    """fetchpipe's transport in this report."""

    @property
    def floor(self) -> float:
        return math.ceil(self.requests / self.concurrency) * self.delay_ms / 1000

    def median_seconds(self, name: str) -> float:
        return statistics.median(r[name].seconds for r in self.rounds)

    @property
    def ratio(self) -> float:
        """Raw loop time over fetchpipe time (above 1: fetchpipe is faster)."""
        return self.median_seconds("raw_aiohttp") / self.median_seconds("fetchpipe")

    @property
    def clean(self) -> bool:
        return all(r.ok == r.requests for round_ in self.rounds for r in round_.values())

    def lines(self) -> list[str]:
        out = [
            f"latency: {self.requests} requests that each wait {self.delay_ms} ms, concurrency "
            f"{self.concurrency}, server in its own process, {len(self.rounds)} alternating "
            f"rounds; floor {self.requests} / {self.concurrency} x {self.delay_ms} ms = "
            f"{self.floor:.3f} s; fetchpipe on its {self.transport} transport"
        ]
        for index, round_ in enumerate(self.rounds, 1):
            cells = "  ".join(
                f"{LABELS[name]} {r.seconds:.3f} s ({r.cpu_seconds:.2f} s CPU, {r.ok} ok)"
                for name, r in round_.items()
            )
            out.append(f"  round {index}: {cells}")
        for name in CLIENTS:
            seconds = self.median_seconds(name)
            out.append(
                f"median {LABELS[name]}: {seconds:.3f} s, {percent(seconds, self.floor)} over "
                f"the floor, {self.requests / seconds:.0f} req/s"
            )
        out.append(f"ratio raw / fetchpipe time: {self.ratio:.2f}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "latency",
            "requests": self.requests,
            "concurrency": self.concurrency,
            "delay_ms": self.delay_ms,
            "transport": self.transport,
            "floor_seconds": self.floor,
            "rounds": [{k: asdict(v) for k, v in r.items()} for r in self.rounds],
            "median_seconds": {name: self.median_seconds(name) for name in CLIENTS},
            "ratio_raw_over_fetchpipe": self.ratio,
        }

    def chart(self, subtitle: str) -> str:
        bars = [
            Bar(
                LABELS[name],
                self.median_seconds(name),
                f"{self.median_seconds(name):.3f} s "
                f"({percent(self.median_seconds(name), self.floor)})",
                highlight=name == "fetchpipe",
            )
            for name in CLIENTS
        ]
        return bar_chart(
            f"{self.requests:,} requests of {self.delay_ms} ms at concurrency "
            f"{self.concurrency:,}: seconds",
            bars,
            axis="seconds, median of the rounds (lower is better)",
            subtitle=subtitle,
            marker=Marker(self.floor, f"floor {self.floor:.2f} s"),
        )


async def measure(
    base_url: str,
    requests: int,
    concurrency: int,
    delay_ms: int,
    rounds: int,
    transport: str = "aiohttp",
) -> LatencyReport:
    url = delay_url(base_url, delay_ms)
    urls = [url] * requests
    report = LatencyReport(requests, concurrency, delay_ms, transport=transport)

    async def fetchpipe(urls: list[str], concurrency: int) -> int:
        return await with_fetchpipe(urls, concurrency, transport)

    clients = [("raw_aiohttp", raw_aiohttp), ("fetchpipe", fetchpipe)]
    warm = urls[: min(requests, concurrency)]
    for _, client in clients:  # warm up the server and the imports
        await client(warm, concurrency)
    for index in range(rounds):
        order = clients if index % 2 == 0 else clients[::-1]
        report.rounds.append({name: await timed(name, fn, urls, concurrency) for name, fn in order})
    return report
