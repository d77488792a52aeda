"""Memory: peak RSS of fetchpipe and of the naive gather over N URLs, each in its own process.

fetchpipe reads the URLs from a generator and counts and drops results as they arrive, as a
pipeline streaming into a sink does. The naive client is the seed's code: the URLs in a list,
one ``asyncio.gather`` over them (aiohttp's default pool of 100 connections, the same
concurrency as fetchpipe's default), every parsed body kept. Peak RSS is the child's own
``ru_maxrss``, so the parent's imports and the server never count. A watchdog thread in the
naive child stops it when its RSS passes the ceiling; that run reads "stopped at ceiling".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from fetchpipe._config import Limits
from fetchpipe.bench.report import peak_rss_mb
from fetchpipe.bench.seed_gather import gather as seed_gather
from fetchpipe.bench.svg import Bar, bar_chart
from fetchpipe.engine.fetcher import Fetcher, run

CLIENTS = ("fetchpipe", "gather")
LABELS = {"fetchpipe": "fetchpipe (streamed)", "gather": "gather (naive)"}


@dataclass(frozen=True, slots=True)
class MemoryRun:
    client: str
    urls: int
    ok: int
    seconds: float
    peak_rss_mb: float
    stopped_at_ceiling: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"scenario": "memory", **asdict(self)}


def _urls(base_url: str, count: int) -> Iterator[str]:
    for i in range(count):
        yield f"{base_url}/item/{i}"


async def _fetchpipe(base_url: str, count: int, concurrency: int) -> int:
    ok = 0
    async with Fetcher(limits=Limits(max_concurrency=concurrency)) as fetcher:
        async for result in fetcher.stream(_urls(base_url, count)):
            ok += result.ok
    return ok


async def _gather(base_url: str, count: int) -> int:
    urls = [f"{base_url}/item/{i}" for i in range(count)]

    results = await seed_gather(urls)
    return sum(1 for r in results if not isinstance(r, BaseException))


def _watch(ceiling_mb: float, client: str, count: int, start: float) -> None:
    """Stop this process, reporting so, once its peak RSS passes ``ceiling_mb``."""
    while True:
        peak = peak_rss_mb()
        if peak > ceiling_mb:
            run_ = MemoryRun(client, count, 0, time.perf_counter() - start, peak, True)
            sys.stdout.write(json.dumps(asdict(run_)) + "\n")
            sys.stdout.flush()
            os._exit(0)
        time.sleep(0.02)


def child_main(argv: list[str]) -> None:
    client, base_url, count, concurrency = argv[0], argv[1], int(argv[2]), int(argv[3])
    ceiling_mb = float(argv[4]) if len(argv) > 4 else 0.0
    start = time.perf_counter()
    if ceiling_mb > 0:
        args = (ceiling_mb, client, count, start)
        threading.Thread(target=_watch, args=args, daemon=True).start()
    if client == "fetchpipe":
        ok = run(_fetchpipe(base_url, count, concurrency))
    elif client == "gather":
        ok = run(_gather(base_url, count))
    else:
        raise SystemExit(f"unknown client {client!r}")
    elapsed = time.perf_counter() - start
    print(json.dumps(asdict(MemoryRun(client, count, ok, elapsed, peak_rss_mb()))))


def measure(
    base_url: str, urls: int, concurrency: int, client: str = "fetchpipe", ceiling_mb: float = 0
) -> MemoryRun:
    """Run ``client`` over ``urls`` URLs in a child process; ``ceiling_mb`` 0 means none."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fetchpipe.bench.memory",
            client,
            base_url,
            str(urls),
            str(concurrency),
            repr(ceiling_mb),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return MemoryRun(**json.loads(out.stdout.strip().splitlines()[-1]))


@dataclass(slots=True)
class MemoryReport:
    sizes: list[int]
    concurrency: int
    ceiling_mb: float
    runs: list[MemoryRun] = field(default_factory=list)

    def get(self, client: str, size: int) -> MemoryRun | None:
        return next((r for r in self.runs if r.client == client and r.urls == size), None)

    @property
    def clean(self) -> bool:
        return all(r.ok == r.urls for r in self.runs if not r.stopped_at_ceiling)

    def cell(self, client: str, size: int) -> str:
        r = self.get(client, size)
        if r is None:
            return "not run (ceiling passed at a smaller size)"
        if r.stopped_at_ceiling:
            return f"stopped at ceiling ({r.peak_rss_mb:.0f} MB after {r.seconds:.1f} s)"
        return f"{r.peak_rss_mb:.1f} MB ({r.ok} ok in {r.seconds:.1f} s)"

    def lines(self) -> list[str]:
        out = [
            f"memory: peak RSS per client, each run in its own process; concurrency "
            f"{self.concurrency}; the naive gather is stopped at {self.ceiling_mb:g} MB"
        ]
        for size in self.sizes:
            fp = self.get("fetchpipe", size)
            if fp is not None:
                out.append(
                    f"memory: {fp.urls} URLs at concurrency {self.concurrency}: {fp.ok} ok in "
                    f"{fp.seconds:.1f} s ({fp.urls / fp.seconds:.0f} req/s); "
                    f"peak RSS {fp.peak_rss_mb:.1f} MB"
                )
        out.append(f"{'URLs':>10}  {LABELS['fetchpipe']:<36}{LABELS['gather']}")
        for size in self.sizes:
            out.append(f"{size:>10}  {self.cell('fetchpipe', size):<36}{self.cell('gather', size)}")
        for size in self.sizes:
            fp, naive = self.get("fetchpipe", size), self.get("gather", size)
            if fp is not None and naive is not None and not naive.stopped_at_ceiling:
                out.append(
                    f"ratio gather / fetchpipe peak RSS at {size} URLs: "
                    f"{naive.peak_rss_mb / fp.peak_rss_mb:.2f}"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "scenario": "memory",
            "concurrency": self.concurrency,
            "ceiling_mb": self.ceiling_mb,
            "sizes": self.sizes,
            "runs": [asdict(r) for r in self.runs],
            "ratios": {
                str(size): naive.peak_rss_mb / fp.peak_rss_mb
                for size in self.sizes
                if (fp := self.get("fetchpipe", size)) is not None
                and (naive := self.get("gather", size)) is not None
                and not naive.stopped_at_ceiling
            },
        }
        if len(self.sizes) == 1 and (fp := self.get("fetchpipe", self.sizes[0])) is not None:
            payload.update(urls=fp.urls, ok=fp.ok, seconds=fp.seconds, peak_rss_mb=fp.peak_rss_mb)
        return payload

    def chart(self, subtitle: str) -> str:
        bars = []
        for size in self.sizes:
            for client in CLIENTS:
                r = self.get(client, size)
                label = f"{LABELS[client]}, {size:,}"
                if r is None:
                    bars.append(Bar(label, None, "not run (ceiling passed at a smaller size)"))
                elif r.stopped_at_ceiling:
                    bars.append(
                        Bar(label, r.peak_rss_mb, f"stopped at ceiling ({r.peak_rss_mb:.0f} MB)")
                    )
                else:
                    bars.append(
                        Bar(label, r.peak_rss_mb, f"{r.peak_rss_mb:.1f} MB", client == "fetchpipe")
                    )
        return bar_chart(
            "Peak RSS while fetching N URLs",
            bars,
            axis="peak RSS, MB (lower is better)",
            subtitle=subtitle,
        )


def measure_sizes(
    base_url: str,
    sizes: list[int],
    concurrency: int,
    ceiling_mb: float,
    clients: tuple[str, ...] = CLIENTS,
) -> MemoryReport:
    """Each client at each size, smallest first; the naive one stops after passing the ceiling."""
    report = MemoryReport(sorted(sizes), concurrency, ceiling_mb)
    stopped = False
    for size in report.sizes:
        for client in clients:
            if client == "gather" and stopped:
                continue
            ceiling = ceiling_mb if client == "gather" else 0.0
            result = measure(base_url, size, concurrency, client, ceiling)
            stopped = stopped or result.stopped_at_ceiling
            report.runs.append(result)
    return report


if __name__ == "__main__":
    child_main(sys.argv[1:])
