"""``fetchpipe bench politeness``: two APIs that limit their rate, four clients.

- *Published*: ``--published`` requests (200) to an API that publishes ``--limit`` requests per
  ``--window`` seconds (10 per 2 s) in ``X-RateLimit-*`` and ``RateLimit`` headers and answers
  429 beyond; the quota lets them through in ``requests / limit * window`` seconds (40 s).
- *Silent*: ``--silent`` requests (600) at ``--concurrency`` (50) to an API that allows
  ``--rate`` requests per second (20) and answers a bare 429 beyond.

Clients, each on keys of its own (the server's windows and counts are per key): fetchpipe with
its defaults (adaptive: it reads the published limit, learns the silent one); fetchpipe at a
fixed rate, told the API's rate (``--rate HOST=N``, adaptive off) — the best a user who knows
the limit can do by hand; aiometer at the same fixed rate (``max_per_second``, no retries); the
naive ``asyncio.gather``. The server counts what it let through and answered 429; reported per
client: requests landed, 429s, their share of everything the API received, the share after the
first ``--settle`` seconds (3), time and throughput, and ratios against the fixed-rate
fetchpipe run in the same invocation. Then ``--tokens`` requests with one token and with two to
an API that limits per token (:mod:`fetchpipe.bench.politeness_tokens`).

Both APIs are endpoints of the simulated fleet (``/limited/published/...`` and
``/limited/silent/...``), run in a child process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fetchpipe._config import HostLimits, Limits
from fetchpipe.bench.fault_report import ratio
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.bench.politeness_tokens import TokensReport
from fetchpipe.bench.report import optional_module
from fetchpipe.bench.seed_gather import gather as seed_gather
from fetchpipe.bench.svg import Bar, bar_chart
from fetchpipe.engine.fetcher import Fetcher, run

ADAPTIVE, FIXED, AIOMETER, GATHER = "fetchpipe", "fixed", "aiometer", "gather"
LABELS = {
    ADAPTIVE: "fetchpipe (defaults: adaptive)",
    FIXED: "fetchpipe at a fixed rate",
    AIOMETER: "aiometer at a fixed rate",
    GATHER: "gather (aiohttp, no limits)",
}


@dataclass(frozen=True, slots=True)
class Api:
    """One limited API of the benchmark."""

    kind: str
    """``published`` or ``silent``."""
    requests: int
    concurrency: int
    per_second: float
    """The rate the API allows (the fixed-rate clients are told it)."""
    path: str
    """The endpoint with its parameters, ``{i}`` and ``{key}`` to fill."""
    host: int
    limit_text: str
    """The limit as the table's heading says it."""

    def urls(self, fleet: RemoteFleet, key: str) -> list[str]:
        base = fleet.base_urls[self.host]
        return [base + self.path.format(i=i, key=key) for i in range(self.requests)]

    @property
    def ideal_seconds(self) -> float:
        """The time the API's limit allows the requests in."""
        return self.requests / self.per_second


@dataclass(slots=True)
class ClientRun:
    """What one client did against one API."""

    name: str
    landed: int = 0
    seconds: float = 0.0
    accepted: int = 0
    rejected: int = 0
    """429s the API answered (the server's count)."""
    rejected_late: int = 0
    received_late: int = 0
    """429s and requests after the first seconds."""
    learned: str = ""

    @property
    def share(self) -> float:
        """429s among everything the API received."""
        total = self.accepted + self.rejected
        return self.rejected / total if total else 0.0

    @property
    def late_share(self) -> float:
        return self.rejected_late / self.received_late if self.received_late else 0.0

    @property
    def throughput(self) -> float:
        """Requests landed per second."""
        return self.landed / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": LABELS[self.name],
            "landed": self.landed,
            "seconds": round(self.seconds, 3),
            "throughput": round(self.throughput, 3),
            "server_accepted": self.accepted,
            "server_429": self.rejected,
            "share_429": round(self.share, 4),
            "share_429_after_settle": round(self.late_share, 4),
            "learned": self.learned,
        }


@dataclass(slots=True)
class ApiReport:
    api: Api
    settle: float
    runs: list[ClientRun] = field(default_factory=list)

    def run(self, name: str) -> ClientRun | None:
        return next((r for r in self.runs if r.name == name), None)


@dataclass(slots=True)
class PolitenessReport:
    published: ApiReport
    silent: ApiReport
    tokens: TokensReport | None = None
    """One token against two on an API that limits per token (``--tokens``; None: skipped)."""

    def lines(self) -> list[str]:
        out: list[str] = []
        for report in (self.published, self.silent):
            api = report.api
            if api.kind == "published":
                out.append(
                    f"published limit: {api.requests} requests to an API publishing "
                    f"{api.limit_text} (X-RateLimit-*, RateLimit; 429 beyond), "
                    f"concurrency {api.concurrency}; the quota allows them in "
                    f"{api.ideal_seconds:.1f} s"
                )
            else:
                out.append(
                    f"silent limit: {api.requests} requests at concurrency {api.concurrency} to "
                    f"an API allowing {api.limit_text} (a bare 429 beyond, no header)"
                )
            out.append(
                f"  {'client':31s} {'landed':>9s} {'429s':>6s} {'429 share':>10s} "
                f"{'after ' + format(report.settle, 'g') + ' s':>10s} {'seconds':>8s} "
                f"{'req/s':>7s} {'of limit':>9s}  learned"
            )
            for r in report.runs:
                out.append(
                    f"  {LABELS[r.name]:31s} {f'{r.landed}/{api.requests}':>9s} "
                    f"{r.rejected:6d} {r.share:10.1%} {r.late_share:10.1%} {r.seconds:8.2f} "
                    f"{r.throughput:7.2f} {r.throughput / api.per_second:9.0%}  {r.learned}"
                )
            fp, fixed = report.run(ADAPTIVE), report.run(FIXED)
            if fp is not None and fixed is not None:
                out.append(
                    f"  fetchpipe adaptive / fixed-rate fetchpipe: throughput "
                    f"{_ratio_text(fp.throughput, fixed.throughput)}, 429s {fp.rejected} vs "
                    f"{fixed.rejected}; time {fp.seconds / api.ideal_seconds:.2f}x the "
                    "limit's"
                )
            out.append("")
        if self.tokens is not None:
            out.extend([*self.tokens.lines(), ""])
        return out[:-1]

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "scenario": "politeness",
            "settle_seconds": self.published.settle,
        }
        for report in (self.published, self.silent):
            api = report.api
            fp, fixed = report.run(ADAPTIVE), report.run(FIXED)
            payload[api.kind] = {
                "requests": api.requests,
                "concurrency": api.concurrency,
                "per_second": api.per_second,
                "ideal_seconds": api.ideal_seconds,
                "runs": [r.to_json() for r in report.runs],
                "ratio_throughput_vs_fixed": (
                    ratio(fp.throughput, fixed.throughput) if fp and fixed else None
                ),
                "ratio_seconds_vs_ideal": ratio(fp.seconds, api.ideal_seconds) if fp else None,
            }
        if self.tokens is not None:
            payload["tokens"] = self.tokens.to_json()
        return payload

    def chart(self, subtitle: str) -> str:
        bars = [
            Bar(
                f"{report.api.kind}: {LABELS[r.name]}",
                r.throughput,
                f"{r.throughput:.1f} req/s · {r.rejected} 429s ({r.share:.0%}) · "
                f"{r.landed}/{report.api.requests} landed",
            )
            for report in (self.published, self.silent)
            for r in report.runs
        ]
        return bar_chart(
            "Rate-limited APIs: requests landed per second",
            bars,
            axis="requests landed per second (higher is better; 429s in the labels)",
            subtitle=subtitle,
        )


def _ratio_text(value: float, base: float) -> str:
    got = ratio(value, base)
    return "-" if got is None else f"{got:.2f}x"


# --- the clients -------------------------------------------------------------------------------


async def _fetchpipe(urls: list[str], api: Api, fixed: bool) -> tuple[int, str]:
    host = urls[0].split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    hosts = {host: HostLimits(max_per_second=api.per_second)} if fixed else {}
    limits = Limits(max_concurrency=api.concurrency, hosts=hosts)
    options: dict[str, Any] = {"limits": limits}
    if fixed:
        options["adaptive"] = None
    landed = 0
    async with Fetcher(**options) as fetcher:
        async for result in fetcher.stream(urls):
            landed += result.ok
    report = fetcher.rate_limits.get(host)
    return landed, report.text if report is not None and not fixed else ""


async def _aiometer(urls: list[str], api: Api) -> tuple[int, str]:
    aiometer: Any = optional_module("aiometer")
    connector = aiohttp.TCPConnector(limit=api.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> bool:
            try:
                async with session.get(url) as response:
                    response.raise_for_status()
                    await response.json()
                return True
            except (TimeoutError, aiohttp.ClientError, ValueError):
                return False

        landed = 0
        async with aiometer.amap(
            one, urls, max_at_once=api.concurrency, max_per_second=api.per_second
        ) as results:
            async for ok in results:
                landed += ok
    return landed, ""


async def _gather(urls: list[str], api: Api) -> tuple[int, str]:
    answers = await seed_gather(urls)
    return sum(not isinstance(a, BaseException) for a in answers), ""


CLIENTS: dict[str, Callable[[list[str], Api], Coroutine[Any, Any, tuple[int, str]]]] = {
    ADAPTIVE: lambda urls, api: _fetchpipe(urls, api, fixed=False),
    FIXED: lambda urls, api: _fetchpipe(urls, api, fixed=True),
    AIOMETER: _aiometer,
    GATHER: _gather,
}


def available(names: list[str]) -> list[str]:
    """``names`` but aiometer when it is not installed."""
    return [n for n in names if n != AIOMETER or optional_module("aiometer") is not None]


def measure(fleet: RemoteFleet, api: Api, clients: list[str], settle: float) -> ApiReport:
    """Each client in turn on keys of its own; the server's counts read after each."""
    report = ApiReport(api, settle)
    stamp = f"{time.time():.0f}"
    for name in clients:
        key = f"{api.kind}-{name}-{stamp}"
        urls = api.urls(fleet, key)
        start = time.perf_counter()
        landed, learned = run(CLIENTS[name](urls, api))
        seconds = time.perf_counter() - start
        counts = fleet.limited_counts(key)
        late = fleet.limited_counts(key, after=settle)
        report.runs.append(
            ClientRun(
                name,
                landed,
                seconds,
                counts["accepted"],
                counts["rejected"],
                late["rejected"],
                late["accepted"] + late["rejected"],
                learned,
            )
        )
    return report


def apis(
    published: int, limit: int, window: int, silent: int, rate: float, concurrency: int
) -> tuple[Api, Api]:
    """The two APIs: published on host 0 (at concurrency 100, fetchpipe's default), silent on
    host 1."""
    return (
        Api(
            "published",
            published,
            100,
            limit / window,
            f"/limited/published/{{i}}?limit={limit}&window={window}&key={{key}}",
            0,
            f"{limit} per {window} s",
        ),
        Api(
            "silent",
            silent,
            concurrency,
            rate,
            f"/limited/silent/{{i}}?rate={rate:g}&key={{key}}",
            1,
            f"{rate:g}/s",
        ),
    )
