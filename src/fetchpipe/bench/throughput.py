"""Throughput: fetchpipe against hand-rolled clients, same server, same run.

Every client fetches N small JSON responses at concurrency C from one local server in a child
process, on the same event loop implementation, in rounds whose order rotates (for two clients
it flips) so that drift on a shared machine hits all alike. The baseline is the raw aiohttp +
``asyncio.Semaphore`` loop; aiometer + aiohttp and httpx (an ``AsyncClient`` behind a semaphore)
join when installed. fetchpipe runs on each transport (aiohttp, and fast: pyreqwest when
installed). The figure of merit is the ratio of the median rates to the raw loop's. fetchpipe runs
with everything on: retries, per-host concurrency and rate meters, result records with parsed
bodies and timings.
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
from fetchpipe.bench.report import optional_module, version_of
from fetchpipe.bench.svg import Bar, bar_chart
from fetchpipe.engine.fetcher import Fetcher
from fetchpipe.engine.gc_tuning import RUN_GEN0
from fetchpipe.engine.retry import RetryPolicy

Client = Callable[[list[str], int], Awaitable[int]]


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


async def raw_aiohttp(urls: list[str], concurrency: int) -> int:
    """The usual hand-rolled loop: one task per URL, a semaphore, ``resp.json()``."""
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> Any:
            async with semaphore, session.get(url) as resp:
                resp.raise_for_status()
                return await resp.json()

        results = await asyncio.gather(*(one(u) for u in urls), return_exceptions=True)
    return sum(1 for r in results if not isinstance(r, BaseException))


async def with_fetchpipe(urls: list[str], concurrency: int, transport: str = "aiohttp") -> int:
    limits = Limits(
        max_concurrency=concurrency,
        per_host=HostLimits(
            max_concurrency=concurrency, max_per_second=1_000_000.0, burst=concurrency
        ),
    )
    ok = 0
    async with Fetcher(
        limits=limits,
        retry=RetryPolicy(attempts=4),
        transport=transport,
    ) as fetcher:
        async for result in fetcher.stream(urls):
            ok += result.ok
    return ok


async def with_fetchpipe_fast(urls: list[str], concurrency: int) -> int:
    """fetchpipe on its fast transport (pyreqwest: Rust reqwest/hyper)."""
    return await with_fetchpipe(urls, concurrency, "fast")


async def with_aiometer(urls: list[str], concurrency: int) -> int:
    """``aiometer.amap`` over aiohttp GETs, ``max_at_once`` = concurrency."""
    aiometer: Any = optional_module("aiometer")
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> bool:
            try:
                async with session.get(url) as resp:
                    resp.raise_for_status()
                    await resp.json()
                return True
            except (TimeoutError, aiohttp.ClientError, ValueError):
                return False

        ok = 0
        async with aiometer.amap(one, urls, max_at_once=concurrency) as results:
            async for done in results:
                ok += done
    return ok


async def with_httpx(urls: list[str], concurrency: int) -> int:
    """One ``httpx.AsyncClient`` (pool of ``concurrency``), a semaphore, ``resp.json()``."""
    httpx: Any = optional_module("httpx")
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(url: str) -> Any:
            async with semaphore:
                resp = await client.get(url)
                resp.raise_for_status()
                return resp.json()

        results = await asyncio.gather(*(one(u) for u in urls), return_exceptions=True)
    return sum(1 for r in results if not isinstance(r, BaseException))


@dataclass(frozen=True, slots=True)
class ClientInfo:
    name: str
    label: str
    run: Client
    package: str | None = None  # an optional package the client needs
    transport: str | None = None  # fetchpipe's transport, for fetchpipe's own clients
    target: float | None = None  # the ratio to the raw loop this client is built to reach


RAW = "raw_aiohttp"
CLIENTS = (
    ClientInfo(RAW, "aiohttp + Semaphore", raw_aiohttp),
    ClientInfo("fetchpipe", "fetchpipe", with_fetchpipe, transport="aiohttp", target=1.2),
    ClientInfo(
        "fetchpipe_fast",
        "fetchpipe --transport fast",
        with_fetchpipe_fast,
        "pyreqwest",
        transport="fast",
        target=2.0,
    ),
    ClientInfo("aiometer", "aiometer + aiohttp", with_aiometer, "aiometer"),
    ClientInfo("httpx", "httpx AsyncClient + Semaphore", with_httpx, "httpx"),
)
TRANSPORT_NAMES = tuple(c.transport for c in CLIENTS if c.transport is not None)


def available_clients(
    extras: list[str] | None = None, transports: list[str] | None = None
) -> tuple[list[ClientInfo], list[ClientInfo]]:
    """The baseline, fetchpipe on each of ``transports`` (default: both) and the extras (all,
    or those named) that are installed; and those that are not."""
    optional = {c.name for c in CLIENTS if c.package is not None and c.transport is None}
    unknown = sorted(set(extras or ()) - optional)
    if unknown:
        raise ValueError(f"unknown client(s) {', '.join(unknown)}; extras: {sorted(optional)}")
    chosen = list(TRANSPORT_NAMES) if transports is None else transports
    bad = sorted(set(chosen) - set(TRANSPORT_NAMES))
    if bad or not chosen:
        raise ValueError(
            f"unknown transport(s) {', '.join(bad) or '(none given)'}; "
            f"choose from {', '.join(TRANSPORT_NAMES)}"
        )
    present, missing = [], []
    for client in CLIENTS:
        if client.transport is not None and client.transport not in chosen:
            continue
        an_unchosen_extra = extras is not None and client.name not in extras
        if client.transport is None and client.package is not None and an_unchosen_extra:
            continue
        if client.package is None or optional_module(client.package) is not None:
            present.append(client)
        else:
            missing.append(client)
    return present, missing


def label(client: ClientInfo) -> str:
    if client.package is None:
        return client.label
    return f"{client.label} ({client.package} {version_of(client.package)})"


@dataclass(slots=True)
class ThroughputReport:
    requests: int
    concurrency: int
    loop: str
    clients: list[ClientInfo] = field(default_factory=list)
    missing: list[ClientInfo] = field(default_factory=list)
    rounds: list[dict[str, Run]] = field(default_factory=list)

    def median_rate(self, name: str) -> float:
        return statistics.median(r[name].rate for r in self.rounds)

    @property
    def ratio(self) -> float:
        """fetchpipe's (aiohttp transport) median rate over the raw loop's; 0 if not run."""
        return self.ratio_to_raw("fetchpipe")

    def ratio_to_raw(self, name: str) -> float:
        if not any(c.name == name for c in self.clients):
            return 0.0
        raw = self.median_rate(RAW)
        return self.median_rate(name) / raw if raw else 0.0

    @property
    def clean(self) -> bool:
        return all(r.ok == r.requests for round_ in self.rounds for r in round_.values())

    def lines(self) -> list[str]:
        out = [
            f"throughput: {self.requests} small JSON responses, concurrency {self.concurrency}, "
            f"event loop {self.loop} for every client, server in its own process, "
            f"{len(self.rounds)} rounds (order rotating)",
            f"  fetchpipe raises Python's gen-0 GC threshold to {RUN_GEN0} while it runs "
            "(engine/gc_tuning.py); the other clients run with Python's settings",
        ]
        for client in self.missing:
            out.append(f"  {client.label}: not installed ({client.package})")
        for index, round_ in enumerate(self.rounds, 1):
            cells = "  ".join(
                f"{name} {r.rate:8.0f} req/s ({r.cpu_seconds / r.requests * 1e6:5.0f} µs CPU/req, "
                f"{r.ok} ok)"
                for name, r in round_.items()
            )
            out.append(f"  round {index}: {cells}")
        out.append(
            "median: "
            + " | ".join(f"{label(c)} {self.median_rate(c.name):.0f} req/s" for c in self.clients)
        )
        for client in self.clients:
            if client.name == RAW:
                continue
            wins = sum(r[client.name].rate > r[RAW].rate for r in self.rounds)
            line = (
                f"ratio {client.label} / raw: {self.ratio_to_raw(client.name):.2f} "
                f"(faster in {wins} of {len(self.rounds)} rounds"
            )
            if client.target is not None:
                line += f"; {client.transport} transport, target {client.target:g}x"
            out.append(line + ")")
        return out

    def to_json(self) -> dict[str, Any]:
        names = [c.name for c in self.clients]
        return {
            "scenario": "throughput",
            "requests": self.requests,
            "concurrency": self.concurrency,
            "event_loop": self.loop,
            "clients": {c.name: label(c) for c in self.clients},
            "not_installed": [c.name for c in self.missing],
            "rounds": [
                {k: {**asdict(v), "rate": v.rate} for k, v in r.items()} for r in self.rounds
            ],
            "median_rate": {name: self.median_rate(name) for name in names},
            "ratio": self.ratio,
            "ratios_to_raw": {name: self.ratio_to_raw(name) for name in names if name != RAW},
            "targets": {c.name: c.target for c in self.clients if c.target is not None},
            "gc_gen0_during_fetchpipe_runs": RUN_GEN0,
        }

    def chart(self, subtitle: str) -> str:
        bars = [
            Bar(
                c.label,
                self.median_rate(c.name),
                f"{self.median_rate(c.name):,.0f} req/s",
                highlight=c.transport is not None,
            )
            for c in self.clients
        ]
        bars += [Bar(c.label, None, "not installed") for c in self.missing]
        return bar_chart(
            f"{self.requests:,} small JSON responses at concurrency {self.concurrency}",
            bars,
            axis="requests per second, median of the rounds (higher is better)",
            subtitle=subtitle,
        )


async def timed(name: str, client: Client, urls: list[str], concurrency: int) -> Run:
    cpu = time.process_time()
    start = time.perf_counter()
    ok = await client(urls, concurrency)
    return Run(name, len(urls), ok, time.perf_counter() - start, time.process_time() - cpu)


async def measure(
    base_url: str,
    requests: int,
    concurrency: int,
    rounds: int,
    extras: list[str] | None = None,
    transports: list[str] | None = None,
) -> ThroughputReport:
    """The clients, ``rounds`` times each, order rotating; ``extras`` None: every installed;
    ``transports`` None: fetchpipe on both transports."""
    urls = [f"{base_url}/item/{i}" for i in range(requests)]
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    present, missing = available_clients(extras, transports)
    report = ThroughputReport(requests, concurrency, loop_name, present, missing)
    for client in present:  # warm up the server and the imports
        await client.run(urls[:200], concurrency)
    for index in range(rounds):
        shift = index % len(present)
        order = present[shift:] + present[:shift]
        report.rounds.append({c.name: await timed(c.name, c.run, urls, concurrency) for c in order})
    return report
