"""The seed's benchmark, measured: 50 APIs fetched one by one, by a thread pool, by
``asyncio.gather`` over aiohttp, by fetchpipe, and by fetchpipe again against a warm cache.

The APIs are the simulated fleet's (``fetchpipe.sim``), in a child process; one "minute" of the
seed's latency table lasts ``scale`` seconds. The floor is the slowest API's latency: no method
that fetches every API can finish sooner. Each method starts fresh (new client, new connections)
and times everything its code does, client set-up and teardown included.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fetchpipe
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.bench.report import optional_module, percent
from fetchpipe.bench.seed_gather import gather as seed_gather
from fetchpipe.bench.svg import Bar, Marker, bar_chart
from fetchpipe.engine.fetcher import Fetcher, run

CACHE_UNAVAILABLE = "not available (no HTTP cache yet)"
WITHIN = 0.05
"""fetchpipe's target: at most 5% over the slowest API."""
AT_LEAST = 8.0
"""fetchpipe's target: at least 8 times faster than ``sequential``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One timed run of one method."""

    seconds: float
    ok: int
    failed: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class BlockingClient:
    """The blocking GET of ``sequential`` and ``threads``: ``requests`` if installed."""

    name: str
    get: Callable[[str], Any]


def requests_client() -> BlockingClient | None:
    """``requests.get(url).json()``, the seed's code, when ``requests`` is installed."""
    requests = optional_module("requests")
    if requests is None:
        return None

    def get(url: str) -> Any:
        response = requests.get(url, timeout=60)
        response.raise_for_status()
        return response.json()

    return BlockingClient(f"requests {requests.__version__}", get)


def urllib_client() -> BlockingClient:
    """``urllib.request.urlopen`` and ``json.loads``: the standard library's blocking GET."""

    def get(url: str) -> Any:
        with urllib.request.urlopen(url, timeout=60) as response:
            return json.loads(response.read())

    return BlockingClient("urllib.request", get)


def blocking_client() -> BlockingClient:
    return requests_client() or urllib_client()


# --- the methods ------------------------------------------------------------------------------


def sequential(urls: list[str], client: BlockingClient) -> Outcome:
    """One blocking request after the other."""
    ok = failed = 0
    start = time.perf_counter()
    for url in urls:
        try:
            client.get(url)
            ok += 1
        except Exception:
            failed += 1
    return Outcome(time.perf_counter() - start, ok, failed)


def default_workers() -> int:
    """How many threads ``ThreadPoolExecutor()`` starts on this machine."""
    with ThreadPoolExecutor() as pool:
        return pool._max_workers


def threads(urls: list[str], client: BlockingClient) -> Outcome:
    """The blocking requests on a ``ThreadPoolExecutor`` with its default worker count."""
    start = time.perf_counter()
    with ThreadPoolExecutor() as pool:
        futures = [pool.submit(client.get, url) for url in urls]
        failed = sum(1 for f in futures if f.exception() is not None)
    return Outcome(time.perf_counter() - start, len(urls) - failed, failed)


async def _gather(urls: list[str]) -> Outcome:
    start = time.perf_counter()

    results = await seed_gather(urls)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    return Outcome(time.perf_counter() - start, len(urls) - failed, failed)


def gather(urls: list[str]) -> Outcome:
    """``asyncio.gather`` of one aiohttp GET per URL, no limits: the seed's async code."""
    return run(_gather(urls))


async def _fetchpipe(urls: list[str], **options: Any) -> Outcome:
    start = time.perf_counter()
    ok = failed = from_cache = 0
    async with Fetcher(**options) as fetcher:
        async for result in fetcher.stream(urls):
            ok += result.ok
            failed += not result.ok
            from_cache += getattr(result, "source", None) == "cache"
    note = f"{from_cache} of {len(urls)} from the cache" if "cache" in options else ""
    return Outcome(time.perf_counter() - start, ok, failed, note)


def with_fetchpipe(urls: list[str]) -> Outcome:
    """fetchpipe with default settings."""
    return run(_fetchpipe(urls))


def with_fetchpipe_cache(urls: list[str]) -> Outcome | None:
    """The ``fetchpipe+cache`` row: one pass fills a fresh HTTP cache, the second is timed.

    This is the one place the cache enters the benchmark. It returns ``None`` (and the row
    reads "not available (no HTTP cache yet)") when fetchpipe has no ``HttpCache``. The
    simulated APIs send no freshness headers, so the cache is given a TTL.
    """
    http_cache = getattr(fetchpipe, "HttpCache", None)
    if http_cache is None:
        return None
    with tempfile.TemporaryDirectory(prefix="fetchpipe-bench-") as folder:
        path = Path(folder) / "cache.sqlite"
        run(_fetchpipe(urls, cache=http_cache(path, ttl=3600)))  # warm it
        return run(_fetchpipe(urls, cache=http_cache(path, ttl=3600)))


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    label: str
    run: Callable[[list[str]], Outcome | None]
    unavailable: str = ""


def methods(client: BlockingClient) -> list[Method]:
    """The rows of the table, in order; ``sequential`` is the baseline of the speedups."""
    short = client.name.split()[0]
    return [
        Method("sequential", f"sequential ({short})", lambda u: sequential(u, client)),
        Method(
            "threads",
            f"threads ({default_workers()} workers, {short})",
            lambda u: threads(u, client),
        ),
        Method("gather", "gather (aiohttp, no limits)", gather),
        Method("fetchpipe", "fetchpipe (defaults)", with_fetchpipe),
        Method(
            "fetchpipe+cache",
            "fetchpipe+cache (warm)",
            with_fetchpipe_cache,
            unavailable=CACHE_UNAVAILABLE,
        ),
    ]


# --- the report -------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    name: str
    label: str
    samples: list[Outcome] = field(default_factory=list)
    note: str = ""

    @property
    def seconds(self) -> float | None:
        return statistics.median(s.seconds for s in self.samples) if self.samples else None

    @property
    def ok(self) -> int | None:
        return min(s.ok for s in self.samples) if self.samples else None

    @property
    def failed(self) -> int | None:
        return max(s.failed for s in self.samples) if self.samples else None


@dataclass(slots=True)
class SeedReport:
    scale: float
    rounds: int
    apis: int
    slowest_minutes: float
    slowest_alone: float
    client: str
    loop: str
    rows: list[Row] = field(default_factory=list)

    @property
    def floor(self) -> float:
        """The slowest API's latency in seconds: the least time to fetch every API."""
        return self.slowest_minutes * self.scale

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def speedup(self, row: Row) -> float | None:
        base = self.row("sequential").seconds
        seconds = row.seconds
        return base / seconds if base is not None and seconds else None

    @property
    def clean(self) -> bool:
        """Every request of every method succeeded, so the figures compare like with like."""
        return all(s.failed == 0 for r in self.rows for s in r.samples)

    def lines(self) -> list[str]:
        head = (
            f"seed: {self.apis} simulated APIs, one minute = {self.scale:g} s; the slowest API "
            f"takes {self.slowest_minutes:g} minutes = {self.floor:.3f} s"
        )
        setup = (
            f"fleet in its own process, event loop {self.loop}, blocking client {self.client}, "
            f"{self.rounds} run(s) per method (median)"
        )
        width = max(len(r.label) for r in self.rows) + 2
        out = [
            head,
            setup,
            f"{'method':<{width}}{'seconds':>9}{'minutes':>9}{'speedup':>9}{'ok/failed':>11}"
            f"{'vs slowest API':>16}",
        ]
        for row in self.rows:
            seconds = row.seconds
            if seconds is None:
                out.append(f"{row.label:<{width}}{row.note}")
                continue
            speedup = self.speedup(row) or 0.0
            line = (
                f"{row.label:<{width}}{seconds:>9.3f}{seconds / self.scale:>9.1f}"
                f"{speedup:>8.1f}x{f'{row.ok}/{row.failed}':>11}"
                f"{percent(seconds, self.floor):>16}"
            )
            out.append(line + (f"  ({row.note})" if row.note else ""))
        out.append(
            f"floor: the slowest API, {self.floor:.3f} s ({self.slowest_minutes:g} minutes); "
            f"fetched alone it took {self.slowest_alone:.3f} s"
        )
        fp = self.row("fetchpipe")
        if fp.seconds is not None:
            over = fp.seconds / self.floor - 1
            speedup = self.speedup(fp) or 0.0
            out.append(
                f"fetchpipe: {percent(fp.seconds, self.floor)} over the slowest API "
                f"({'within' if over <= WITHIN else 'NOT within'} {WITHIN:.0%}), "
                f"{speedup:.1f}x faster than sequential "
                f"({'at least' if speedup >= AT_LEAST else 'NOT at least'} {AT_LEAST:g}x)"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "seed",
            "apis": self.apis,
            "scale": self.scale,
            "rounds": self.rounds,
            "event_loop": self.loop,
            "blocking_client": self.client,
            "slowest_api_seconds": self.floor,
            "slowest_api_minutes": self.slowest_minutes,
            "slowest_api_alone_seconds": self.slowest_alone,
            "methods": [
                {
                    "name": r.name,
                    "label": r.label,
                    "seconds": r.seconds,
                    "minutes": r.seconds / self.scale if r.seconds is not None else None,
                    "speedup": self.speedup(r),
                    "ok": r.ok,
                    "failed": r.failed,
                    "vs_slowest_api": r.seconds / self.floor - 1 if r.seconds is not None else None,
                    "samples": [s.seconds for s in r.samples],
                    "note": r.note or None,
                }
                for r in self.rows
            ],
        }

    def chart(self, subtitle: str) -> str:
        bars = []
        for row in self.rows:
            seconds = row.seconds
            if seconds is None:
                bars.append(Bar(row.label, None, row.note))
                continue
            text = f"{seconds:.3f} s · {self.speedup(row) or 0:.1f}x"
            bars.append(Bar(row.label, seconds, text, row.name.startswith("fetchpipe")))
        return bar_chart(
            f"{self.apis} APIs, each method fresh: seconds to fetch them all",
            bars,
            axis="seconds (lower is better)",
            subtitle=subtitle,
            marker=Marker(self.floor, f"slowest API {self.floor:.2f} s"),
        )


def measure(
    fleet: RemoteFleet, rounds: int = 1, client: BlockingClient | None = None
) -> SeedReport:
    """Time every method on the fleet's APIs, ``rounds`` fresh runs each."""
    client = client or blocking_client()
    urls = fleet.api_urls
    slowest = max(range(len(fleet.latencies)), key=fleet.latencies.__getitem__)
    start = time.perf_counter()
    client.get(urls[slowest])
    alone = time.perf_counter() - start
    report = SeedReport(
        scale=fleet.minute,
        rounds=rounds,
        apis=len(urls),
        slowest_minutes=fleet.latencies[slowest],
        slowest_alone=alone,
        client=client.name,
        loop=run(_loop_name()),
    )
    table = methods(client)
    warm = [fleet.base_urls[0] + "/json"]
    for method in table:  # one-off costs of a first use in this process stay out of the table
        if method.name != "fetchpipe+cache":
            method.run(warm)
    for method in table:
        row = Row(method.name, method.label)
        for _ in range(rounds):
            outcome = method.run(urls)
            if outcome is None:
                row.note = method.unavailable
                break
            row.samples.append(outcome)
            row.note = outcome.note
        report.rows.append(row)
    return report


async def _loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
