"""Two APIs that misbehave as a whole: one that is down, one that is flaky.

``fetchpipe bench faults --dead-api``: 1,000 requests to a simulated host answering 500 to
everything, interleaved with 100 requests to healthy hosts (one after every ten). Reported for
each client: the time to finish, the healthy requests landed, the requests the dead host
received and how many of them were retries. The naive ``gather`` sends everything once;
fetchpipe runs with its defaults (the breaker fails the dead host's requests fast), and again
with its circuit breaker off, so the retry budget alone is seen.

``fetchpipe bench faults --flaky-api``: 160 requests to one host of the toxic server, 40% of
them failing once or twice before a 200 (503s, 429 with ``Retry-After: 1``, a reset mid-body,
a truncated body; 8 of each of the 8 kinds, in a shuffled but fixed order). Reported: records
landed, retries, retries refused by the budget, whether the breaker opened, and the time.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fetchpipe._fetcher import Fetcher, run
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.bench.seed_gather import gather as seed_gather
from fetchpipe.bench.svg import Bar, Marker, bar_chart
from fetchpipe.sim.toxics import Burst, ResetPeer, RetryAfter, Toxic, Truncate, toxic_path

DEAD, HEALTHY = "dead", "healthy"
DEAD_LABELS = {
    "gather": "gather (aiohttp, no retries)",
    "fetchpipe": "fetchpipe (defaults)",
    "no-breaker": "fetchpipe (breaker off)",
}
FLAKY_LABELS = {"gather": "gather (aiohttp, no retries)", "fetchpipe": "fetchpipe (defaults)"}


# --- the dead API ------------------------------------------------------------------------------


def dead_plan(
    base_urls: Sequence[str], dead: int, healthy: int, run_id: str
) -> list[tuple[str, str]]:
    """(kind, URL) pairs: ``dead`` requests to the first host's ``/status/500``, with one of
    ``healthy`` requests to the other hosts after every ``dead // healthy``."""
    others = list(base_urls[1:]) or list(base_urls)
    every = max(1, dead // healthy) if healthy else dead + 1
    plan: list[tuple[str, str]] = []
    sent = 0
    for i in range(dead):
        plan.append((DEAD, f"{base_urls[0]}/status/500?key={run_id}-dead-{i}"))
        if (i + 1) % every == 0 and sent < healthy:
            plan.append((HEALTHY, f"{others[sent % len(others)]}/item/{sent}?key={run_id}"))
            sent += 1
    for n in range(sent, healthy):
        plan.append((HEALTHY, f"{others[n % len(others)]}/item/{n}?key={run_id}"))
    return plan


@dataclass(slots=True)
class DeadRun:
    name: str
    seconds: float
    healthy_landed: int
    dead_failed: int
    dead_retries: int
    dead_received: int = 0
    dead_errors: dict[str, int] = field(default_factory=dict)
    hosts_down: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": DEAD_LABELS[self.name],
            "seconds": self.seconds,
            "healthy_landed": self.healthy_landed,
            "dead_failed": self.dead_failed,
            "dead_retries": self.dead_retries,
            "dead_received": self.dead_received,
            "dead_errors": self.dead_errors,
            "hosts_down": self.hosts_down,
        }


async def dead_gather(plan: list[tuple[str, str]]) -> DeadRun:
    """The seed's gather: one GET per URL, all at once, failures dropped."""
    start = time.perf_counter()

    results = await seed_gather([url for _, url in plan])
    seconds = time.perf_counter() - start
    landed = Counter(kind for (kind, _), r in zip(plan, results, strict=True) if _ok(r))
    errors = Counter(
        type(r).__name__ for (kind, _), r in zip(plan, results, strict=True) if kind == DEAD
    )
    dead = sum(1 for kind, _ in plan if kind == DEAD)
    return DeadRun("gather", seconds, landed[HEALTHY], dead - landed[DEAD], 0, 0, dict(errors))


def _ok(result: object) -> bool:
    return not isinstance(result, BaseException)


async def dead_fetchpipe(plan: list[tuple[str, str]], *, breaker: bool) -> DeadRun:
    """fetchpipe with its defaults (``breaker=False``: the circuit breaker off)."""
    kind_of = {url: kind for kind, url in plan}
    healthy = failed = retries = 0
    errors: Counter[str] = Counter()
    options: dict[str, Any] = {} if breaker else {"breaker": None}
    start = time.perf_counter()
    async with Fetcher(**options) as fetcher:
        async for result in fetcher.stream(url for _, url in plan):
            if kind_of[result.url] == HEALTHY:
                healthy += result.ok
                continue
            retries += result.retries
            if not result.ok:
                failed += 1
                errors[str(result.error)] += 1
    seconds = time.perf_counter() - start
    name = "fetchpipe" if breaker else "no-breaker"
    down = sorted(fetcher.hosts_down)
    return DeadRun(name, seconds, healthy, failed, retries, 0, dict(errors), down)


@dataclass(slots=True)
class DeadApiReport:
    dead: int
    healthy: int
    dead_host: str
    runs: list[DeadRun] = field(default_factory=list)

    def run(self, name: str) -> DeadRun:
        return next(r for r in self.runs if r.name == name)

    def lines(self) -> list[str]:
        out = [
            f"dead API: {self.dead} requests to {self.dead_host}, which answers 500 to "
            f"everything, and {self.healthy} to healthy hosts (one after every "
            f"{max(1, self.dead // max(1, self.healthy))})",
            f"{'client':<30}{'seconds':>9}{'healthy landed':>16}{'dead host got':>15}"
            f"{'of them retries':>17}",
        ]
        for r in self.runs:
            out.append(
                f"{DEAD_LABELS[r.name]:<30}{r.seconds:>9.3f}"
                f"{f'{r.healthy_landed}/{self.healthy}':>16}{r.dead_received:>15}"
                f"{r.dead_retries:>17}"
            )
        for r in self.runs:
            errors = ", ".join(f"{name} {n}" for name, n in r.dead_errors.items()) or "none"
            down = f"; hosts down: {', '.join(r.hosts_down)}" if r.hosts_down else ""
            out.append(f"  dead host's requests, {r.name}: {errors}{down}")
        fp, naive = self.run("fetchpipe"), self.run("gather")
        out.append(
            f"fetchpipe finished in {fp.seconds:.2f} s ({fp.seconds / naive.seconds:.1f}x "
            f"gather's {naive.seconds:.2f} s); the dead host got {fp.dead_received} requests "
            f"({fp.dead_received / naive.dead_received:.1%} of gather's "
            f"{naive.dead_received}), {fp.dead_retries} of them retries; "
            f"{fp.healthy_landed}/{self.healthy} healthy requests landed"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        fp, naive = self.run("fetchpipe"), self.run("gather")
        return {
            "scenario": "faults",
            "mode": "dead-api",
            "dead": self.dead,
            "healthy": self.healthy,
            "dead_host": self.dead_host,
            "runs": [r.to_json() for r in self.runs],
            "ratio_seconds": fp.seconds / naive.seconds if naive.seconds else None,
            "ratio_dead_received": (
                fp.dead_received / naive.dead_received if naive.dead_received else None
            ),
        }

    def chart(self, subtitle: str) -> str:
        bars = [
            Bar(
                DEAD_LABELS[r.name],
                float(r.dead_received),
                f"{r.dead_received} requests ({r.dead_retries} retries) · {r.seconds:.2f} s · "
                f"{r.healthy_landed}/{self.healthy} healthy landed",
                highlight=r.name == "fetchpipe",
            )
            for r in self.runs
        ]
        return bar_chart(
            f"A dead API ({self.dead:,} requests) beside {self.healthy} healthy ones: requests "
            "the dead host received",
            bars,
            axis="requests sent to the dead host (lower is better)",
            subtitle=subtitle,
            marker=Marker(float(self.dead), f"{self.dead:,} requests"),
        )


def measure_dead(fleet: RemoteFleet, dead: int, healthy: int) -> DeadApiReport:
    """Each client on fresh keys with the fleet's counters reset."""
    dead_host = fleet.base_urls[0].split("//", 1)[1].rsplit(":", 1)[0]
    report = DeadApiReport(dead, healthy, dead_host)
    clients = (
        ("gather", dead_gather),
        ("fetchpipe", lambda p: dead_fetchpipe(p, breaker=True)),
        ("no-breaker", lambda p: dead_fetchpipe(p, breaker=False)),
    )
    for name, client in clients:
        plan = dead_plan(fleet.base_urls, dead, healthy, name)
        fleet.reset()
        result = run(client(plan))
        result.dead_received = int(fleet.stats()["hosts"].get(dead_host, {}).get("requests", 0))
        report.runs.append(result)
    return report


# --- the flaky API -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlakyKind:
    label: str
    toxic: Toxic | None


def flaky_kinds(retry_after: int = 1) -> tuple[FlakyKind, ...]:
    """The eight faults of the flaky API: each kind failing once, then twice."""
    kinds = []
    for times in (1, 2):
        suffix = "once" if times == 1 else "twice"
        kinds += [
            FlakyKind(f"503 {suffix}", Burst(statuses=(503,), times=times)),
            FlakyKind(
                f"429 Retry-After {suffix}",
                RetryAfter(form="seconds", delay=float(retry_after), times=times),
            ),
            FlakyKind(f"reset mid-body {suffix}", ResetPeer(times=times)),
            FlakyKind(f"truncated {suffix}", Truncate(times=times)),
        ]
    return tuple(kinds)


OK_KIND = FlakyKind("ok", None)


def flaky_plan(
    base_url: str, count: int, run_id: str, retry_after: int = 1
) -> list[tuple[FlakyKind, str]]:
    """``count`` (kind, URL) pairs: 40% through the faults of :func:`flaky_kinds` in turn, the
    rest good, shuffled in a fixed order."""
    kinds = flaky_kinds(retry_after)
    faulty = count * 2 // 5
    plan = [kinds[i % len(kinds)] for i in range(faulty)] + [OK_KIND] * (count - faulty)
    random.Random(12).shuffle(plan)
    urls = []
    for i, kind in enumerate(plan):
        key = f"{run_id}-{i}"
        path = toxic_path(kind.toxic, key=key) if kind.toxic else f"/item/{i}?key={key}"
        urls.append((kind, base_url + path))
    return urls


@dataclass(slots=True)
class FlakyRun:
    name: str
    seconds: float
    landed: int
    failed: int
    retries: int
    refused: int = 0
    hosts_down: list[str] = field(default_factory=list)
    server_requests: int = 0
    failed_by_error: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": FLAKY_LABELS[self.name],
            "seconds": self.seconds,
            "landed": self.landed,
            "failed": self.failed,
            "retries": self.retries,
            "retries_refused": self.refused,
            "hosts_down": self.hosts_down,
            "server_requests": self.server_requests,
            "failed_by_error": self.failed_by_error,
        }


async def flaky_gather(urls: list[str]) -> FlakyRun:
    start = time.perf_counter()

    results = await seed_gather(urls)
    seconds = time.perf_counter() - start
    errors = Counter(type(r).__name__ for r in results if not _ok(r))
    landed = sum(1 for r in results if _ok(r))
    return FlakyRun("gather", seconds, landed, len(urls) - landed, 0, 0, [], 0, dict(errors))


async def flaky_fetchpipe(urls: list[str]) -> FlakyRun:
    errors: Counter[str] = Counter()
    landed = retries = 0
    start = time.perf_counter()
    async with Fetcher() as fetcher:
        async for result in fetcher.stream(urls):
            retries += result.retries
            if result.ok:
                landed += 1
            else:
                errors[str(result.error)] += 1
    seconds = time.perf_counter() - start
    return FlakyRun(
        "fetchpipe",
        seconds,
        landed,
        len(urls) - landed,
        retries,
        fetcher.retries_denied,
        sorted(fetcher.hosts_down),
        0,
        dict(errors),
    )


@dataclass(slots=True)
class FlakyApiReport:
    requests: int
    faulty: int
    retry_after: int
    runs: list[FlakyRun] = field(default_factory=list)

    def run(self, name: str) -> FlakyRun:
        return next(r for r in self.runs if r.name == name)

    def lines(self) -> list[str]:
        out = [
            f"flaky API: {self.requests} requests to one host, {self.faulty} "
            f"({self.faulty / self.requests:.0%}) failing once or twice before a 200: 503, 429 "
            f"with Retry-After: {self.retry_after}, reset mid-body, truncated body",
            f"{'client':<30}{'landed':>8}{'failed':>8}{'retries':>9}{'refused':>9}"
            f"{'server requests':>17}{'seconds':>9}",
        ]
        for r in self.runs:
            out.append(
                f"{FLAKY_LABELS[r.name]:<30}{r.landed:>8}{r.failed:>8}{r.retries:>9}"
                f"{r.refused:>9}{r.server_requests:>17}{r.seconds:>9.3f}"
            )
        for r in self.runs:
            errors = ", ".join(f"{name} {n}" for name, n in r.failed_by_error.items()) or "none"
            out.append(f"  failed by error, {r.name}: {errors}")
        fp, naive = self.run("fetchpipe"), self.run("gather")
        down = ", ".join(fp.hosts_down) or "none"
        out.append(
            f"fetchpipe landed {fp.landed} of {self.requests} ({fp.refused} retries refused by "
            f"the budget; hosts down: {down}), gather {naive.landed}; {fp.seconds:.2f} s"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        fp, naive = self.run("fetchpipe"), self.run("gather")
        return {
            "scenario": "faults",
            "mode": "flaky-api",
            "requests": self.requests,
            "faulty": self.faulty,
            "retry_after": self.retry_after,
            "runs": [r.to_json() for r in self.runs],
            "ratio_landed": fp.landed / naive.landed if naive.landed else None,
        }

    def chart(self, subtitle: str) -> str:
        bars = [
            Bar(
                FLAKY_LABELS[r.name],
                float(r.landed),
                f"{r.landed} landed · {r.retries} retries ({r.refused} refused) · "
                f"{r.seconds:.2f} s",
                highlight=r.name == "fetchpipe",
            )
            for r in self.runs
        ]
        return bar_chart(
            f"A flaky API: {self.requests} requests, {self.faulty / self.requests:.0%} failing "
            "once or twice: records landed",
            bars,
            axis="records landed (higher is better)",
            subtitle=subtitle,
            marker=Marker(float(self.requests), f"all {self.requests}"),
        )


def measure_flaky(server: RemoteFleet, requests: int, retry_after: int) -> FlakyApiReport:
    """Each client on fresh keys with the server's counters reset."""
    faulty = requests * 2 // 5
    report = FlakyApiReport(requests, faulty, retry_after)
    for name in ("gather", "fetchpipe"):
        urls = [url for _, url in flaky_plan(server.base_urls[0], requests, name, retry_after)]
        server.reset()
        result = run(flaky_gather(urls) if name == "gather" else flaky_fetchpipe(urls))
        result.server_requests = int(server.stats()["requests"])
        report.runs.append(result)
    return report
