"""Faults: the fleet with 30% of the requests failing at first, fetchpipe against naive gather.

The request list is deterministic. Every host gets the same mix: of each 10 requests, one
answers 503 twice before a 200, one answers 429 with ``Retry-After`` once, one has its
connection reset mid-body once, and seven answer 200 right away. fetchpipe (default settings)
retries; the seed's ``asyncio.gather`` drops what fails. Landed records, retries, the requests
the fleet received and the time are reported for each.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fetchpipe._fetcher import Fetcher
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.bench.svg import Bar, Marker, bar_chart

OK = "ok"
BURST_503 = "503 burst"
RATE_LIMITED = "429 Retry-After"
RESET = "reset"
KINDS = (OK, BURST_503, RATE_LIMITED, RESET)
LABELS = {"gather": "gather (aiohttp, no retries)", "fetchpipe": "fetchpipe (defaults)"}


def fault_plan(
    base_urls: list[str], count: int, run_id: str, retry_after: int
) -> list[tuple[str, str]]:
    """``count`` (kind, URL) pairs; request i goes to host ``i % hosts``.

    Any 10 consecutive requests hold one of each fault, so a count that is a multiple of 10 is
    exactly 30% faults.
    """
    hosts = len(base_urls)
    plan = []
    for i in range(count):
        base = base_urls[i % hosts]
        key = f"{run_id}-{i}"
        slot = (i + i // hosts) % 10  # each host, and each 10 in a row, gets every slot
        if slot == 0:
            plan.append((BURST_503, f"{base}/status/503,503,200?key={key}"))
        elif slot == 3:
            plan.append((RATE_LIMITED, f"{base}/ratelimit?key={key}&times=1&after={retry_after}"))
        elif slot == 6:
            plan.append((RESET, f"{base}/reset?key={key}&times=1"))
        else:
            plan.append((OK, f"{base}/item/{i}"))
    return plan


@dataclass(slots=True)
class FaultRun:
    name: str
    seconds: float
    landed: int
    failed: int
    retries: int
    landed_by_kind: dict[str, int]
    server_requests: int = 0


async def naive_gather(plan: list[tuple[str, str]]) -> FaultRun:
    """The seed's gather: one GET per URL, all at once, failures dropped."""
    start = time.perf_counter()

    async def fetch(session: aiohttp.ClientSession, url: str) -> Any:
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.json()

    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(fetch(session, url) for _, url in plan), return_exceptions=True
        )
    seconds = time.perf_counter() - start
    landed = Counter(kind for (kind, _), r in zip(plan, results, strict=True) if _landed(r))
    total = sum(landed.values())
    return FaultRun("gather", seconds, total, len(plan) - total, 0, _by_kind(landed))


def _landed(result: object) -> bool:
    return not isinstance(result, BaseException)


def _by_kind(counts: Counter[str]) -> dict[str, int]:
    return {kind: counts.get(kind, 0) for kind in KINDS}


async def with_fetchpipe(plan: list[tuple[str, str]]) -> FaultRun:
    """fetchpipe with default settings (4 attempts, backoff, Retry-After)."""
    kind_of = {url: kind for kind, url in plan}
    landed: Counter[str] = Counter()
    failed = retries = 0
    start = time.perf_counter()
    async with Fetcher() as fetcher:
        async for result in fetcher.stream(url for _, url in plan):
            retries += result.retries
            if result.ok:
                landed[kind_of[result.url]] += 1
            else:
                failed += 1
    seconds = time.perf_counter() - start
    return FaultRun("fetchpipe", seconds, sum(landed.values()), failed, retries, _by_kind(landed))


@dataclass(slots=True)
class FaultsReport:
    requests: int
    hosts: int
    retry_after: int
    planned: dict[str, int]
    runs: list[FaultRun] = field(default_factory=list)

    def run(self, name: str) -> FaultRun:
        return next(r for r in self.runs if r.name == name)

    @property
    def faulty(self) -> int:
        return self.requests - self.planned[OK]

    def lines(self) -> list[str]:
        out = [
            f"faults: {self.requests} requests over {self.hosts} simulated hosts, {self.faulty} "
            f"({self.faulty / self.requests:.0%}) with injected faults: "
            f"{self.planned[BURST_503]} x 503,503 then 200; {self.planned[RATE_LIMITED]} x 429 "
            f"with Retry-After: {self.retry_after} once; {self.planned[RESET]} x reset mid-body "
            "once",
            f"{'client':<30}{'landed':>8}{'failed':>8}{'retries':>9}{'server requests':>17}"
            f"{'seconds':>9}",
        ]
        for r in self.runs:
            out.append(
                f"{LABELS[r.name]:<30}{r.landed:>8}{r.failed:>8}{r.retries:>9}"
                f"{r.server_requests:>17}{r.seconds:>9.3f}"
            )
        for r in self.runs:
            cells = ", ".join(
                f"{kind} {r.landed_by_kind[kind]}/{self.planned[kind]}" for kind in KINDS
            )
            out.append(f"  landed by kind, {r.name}: {cells}")
        fp, naive = self.run("fetchpipe"), self.run("gather")
        records = fp.landed / naive.landed if naive.landed else float("inf")
        out.append(
            f"fetchpipe landed {fp.landed} of {self.requests} ({fp.landed / self.requests:.1%}), "
            f"gather {naive.landed} ({naive.landed / self.requests:.1%}): {records:.2f}x the "
            f"records in {fp.seconds / naive.seconds:.1f}x the time"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        fp, naive = self.run("fetchpipe"), self.run("gather")
        return {
            "scenario": "faults",
            "requests": self.requests,
            "hosts": self.hosts,
            "faulty": self.faulty,
            "retry_after": self.retry_after,
            "planned": self.planned,
            "runs": [
                {
                    "name": r.name,
                    "label": LABELS[r.name],
                    "seconds": r.seconds,
                    "landed": r.landed,
                    "failed": r.failed,
                    "retries": r.retries,
                    "server_requests": r.server_requests,
                    "landed_by_kind": r.landed_by_kind,
                }
                for r in self.runs
            ],
            "ratio_landed": fp.landed / naive.landed if naive.landed else None,
            "ratio_seconds": fp.seconds / naive.seconds if naive.seconds else None,
        }

    def chart(self, subtitle: str) -> str:
        bars = [
            Bar(
                LABELS[r.name],
                float(r.landed),
                f"{r.landed} landed · {r.retries} retries · {r.seconds:.2f} s",
                highlight=r.name == "fetchpipe",
            )
            for r in self.runs
        ]
        return bar_chart(
            f"{self.requests:,} requests, {self.faulty / self.requests:.0%} with faults: "
            "records landed",
            bars,
            axis="records landed (higher is better)",
            subtitle=subtitle,
            marker=Marker(float(self.requests), f"all {self.requests:,}"),
        )


def measure(fleet: RemoteFleet, requests: int, retry_after: int) -> FaultsReport:
    """Run the naive gather, then fetchpipe, each on fresh keys with the fleet's counters reset."""
    from fetchpipe._fetcher import run

    planned = Counter(kind for kind, _ in fault_plan(fleet.base_urls, requests, "", retry_after))
    report = FaultsReport(requests, len(fleet.base_urls), retry_after, _by_kind(planned))
    for name, client in (("gather", naive_gather), ("fetchpipe", with_fetchpipe)):
        plan = fault_plan(fleet.base_urls, requests, name, retry_after)
        fleet.reset()
        result = run(client(plan))
        result.server_requests = int(fleet.stats()["requests"])
        report.runs.append(result)
    return report
