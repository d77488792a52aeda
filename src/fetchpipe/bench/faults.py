"""Faults: the fleet with 30% of the requests failing at first, fetchpipe against naive gather.

The request list is deterministic. Every host gets the same mix: of each 10 requests, one
answers 503 twice before a 200, one answers 429 with ``Retry-After`` once, one has its
connection reset mid-body once, and seven answer 200 right away. fetchpipe (default settings)
retries; the seed's ``asyncio.gather`` drops what fails. Landed records, retries, the requests
the fleet received and the time are reported for each.

``--toxics`` is the longer run: the misbehaving server of :mod:`fetchpipe.sim.toxics` (in a
child process) instead of the fleet, and in place of the three faults every toxic in turn
(latency, bandwidth, 1-byte slices, hangs before and after the headers, a close without
response, a reset mid-body, truncated bodies, a 5xx burst and 429/503 with Retry-After in every
form), 10,000 requests by default. fetchpipe runs with a read timeout below the hangs; the
report adds failures by error, the server's request count and the retries per first attempt.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fetchpipe._config import Timeouts
from fetchpipe._fetcher import Fetcher, run
from fetchpipe.bench.child import running_child, wait_for_stdin_eof
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.bench.report import raise_nofile_limit
from fetchpipe.bench.seed_gather import gather as seed_gather
from fetchpipe.bench.svg import Bar, Marker, bar_chart
from fetchpipe.sim.toxics import MixEntry, ToxicServer, toxic_mix

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
    failed_by_error: dict[str, int] = field(default_factory=dict)

    def to_json(self, label: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": label,
            "seconds": self.seconds,
            "landed": self.landed,
            "failed": self.failed,
            "retries": self.retries,
            "server_requests": self.server_requests,
            "landed_by_kind": self.landed_by_kind,
        }


def landed_bars(runs: Sequence[FaultRun], labels: Mapping[str, str]) -> list[Bar]:
    """One bar per client: the records it landed, with its retries and time."""
    return [
        Bar(
            labels[r.name],
            float(r.landed),
            f"{r.landed} landed · {r.retries} retries · {r.seconds:.2f} s",
            highlight=r.name == "fetchpipe",
        )
        for r in runs
    ]


async def naive_gather(plan: list[tuple[str, str]], kinds: Sequence[str] = KINDS) -> FaultRun:
    """The seed's gather: one GET per URL, all at once, failures dropped."""
    start = time.perf_counter()

    results = await seed_gather([url for _, url in plan])
    seconds = time.perf_counter() - start
    landed = Counter(kind for (kind, _), r in zip(plan, results, strict=True) if _landed(r))
    errors = Counter(type(r).__name__ for r in results if not _landed(r))
    total = sum(landed.values())
    return FaultRun(
        "gather",
        seconds,
        total,
        len(plan) - total,
        0,
        _by_kind(landed, kinds),
        failed_by_error=dict(errors.most_common()),
    )


def _landed(result: object) -> bool:
    return not isinstance(result, BaseException)


def _by_kind(counts: Counter[str], kinds: Sequence[str] = KINDS) -> dict[str, int]:
    return {kind: counts.get(kind, 0) for kind in kinds}


async def with_fetchpipe(
    plan: list[tuple[str, str]],
    kinds: Sequence[str] = KINDS,
    timeouts: Timeouts | None = None,
) -> FaultRun:
    """fetchpipe with default settings (4 attempts, backoff, Retry-After), ``timeouts`` aside."""
    kind_of = {url: kind for kind, url in plan}
    landed: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    retries = 0
    start = time.perf_counter()
    async with Fetcher(timeouts=timeouts) as fetcher:
        async for result in fetcher.stream(url for _, url in plan):
            retries += result.retries
            if result.ok:
                landed[kind_of[result.url]] += 1
            else:
                errors[str(result.error)] += 1
    seconds = time.perf_counter() - start
    return FaultRun(
        "fetchpipe",
        seconds,
        sum(landed.values()),
        sum(errors.values()),
        retries,
        _by_kind(landed, kinds),
        failed_by_error=dict(errors.most_common()),
    )


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
            "runs": [r.to_json(LABELS[r.name]) for r in self.runs],
            "ratio_landed": fp.landed / naive.landed if naive.landed else None,
            "ratio_seconds": fp.seconds / naive.seconds if naive.seconds else None,
        }

    def chart(self, subtitle: str) -> str:
        return bar_chart(
            f"{self.requests:,} requests, {self.faulty / self.requests:.0%} with faults: "
            "records landed",
            landed_bars(self.runs, LABELS),
            axis="records landed (higher is better)",
            subtitle=subtitle,
            marker=Marker(float(self.requests), f"all {self.requests:,}"),
        )


def measure(fleet: RemoteFleet, requests: int, retry_after: int) -> FaultsReport:
    """Run the naive gather, then fetchpipe, each on fresh keys with the fleet's counters reset."""
    planned = Counter(kind for kind, _ in fault_plan(fleet.base_urls, requests, "", retry_after))
    report = FaultsReport(requests, len(fleet.base_urls), retry_after, _by_kind(planned))
    for name, client in (("gather", naive_gather), ("fetchpipe", with_fetchpipe)):
        plan = fault_plan(fleet.base_urls, requests, name, retry_after)
        fleet.reset()
        result = run(client(plan))
        result.server_requests = int(fleet.stats()["requests"])
        report.runs.append(result)
    return report


# --- the longer run: every toxic of fetchpipe.sim.toxics ----------------------------------------

TOXIC_HOSTS = 50
HANG_SECONDS = 3.0
READ_TIMEOUT = 1.0
TOXIC_LABELS = {
    "gather": "gather (aiohttp, no retries)",
    "fetchpipe": f"fetchpipe (read timeout {READ_TIMEOUT:g} s)",
}


def toxic_kinds(mix: Sequence[MixEntry]) -> tuple[str, ...]:
    """The kinds of a toxic run's requests: ``ok`` and one per entry of the mix."""
    return (OK, *(entry.label for entry in mix))


def toxic_plan(
    base_urls: list[str], count: int, run_id: str, mix: Sequence[MixEntry]
) -> list[tuple[str, str]]:
    """``count`` (kind, URL) pairs like :func:`fault_plan`'s: 3 in each 10 requests, on every
    host, go through the next entry of ``mix`` in turn; the others are plain good requests."""
    hosts = len(base_urls)
    plan = []
    faults = 0
    for i in range(count):
        base = base_urls[i % hosts]
        key = f"{run_id}-{i}"
        if (i + i // hosts) % 10 in (0, 3, 6):
            entry = mix[faults % len(mix)]
            faults += 1
            plan.append((entry.label, base + entry.path(key)))
        else:
            plan.append((OK, f"{base}/item/{i}?key={key}"))
    return plan


@dataclass(slots=True)
class ToxicsReport:
    """The longer run's figures: both clients against every toxic."""

    requests: int
    hosts: int
    retry_after: int
    mix: tuple[MixEntry, ...]
    planned: dict[str, int]
    runs: list[FaultRun] = field(default_factory=list)

    def run(self, name: str) -> FaultRun:
        return next(r for r in self.runs if r.name == name)

    @property
    def faulty(self) -> int:
        return self.requests - self.planned[OK]

    @property
    def landable(self) -> int:
        """Requests a client that retries and honours Retry-After caps can land."""
        return self.requests - sum(self.planned[e.label] for e in self.mix if not e.landable)

    @property
    def retries_per_request(self) -> float:
        """fetchpipe's retries per first attempt (one first attempt per request)."""
        return self.run("fetchpipe").retries / self.requests if self.requests else 0.0

    def lines(self) -> list[str]:
        out = [
            f"faults with toxics: {self.requests} requests over {self.hosts} simulated hosts, "
            f"{self.faulty} ({self.faulty / self.requests:.0%}) through one of {len(self.mix)} "
            "toxics in turn, each spoiling the first request of its key (close and 5xx burst: "
            "the first two)",
            f"hangs last {HANG_SECONDS:g} s; Retry-After asks {self.retry_after} s; fetchpipe "
            f"has a read timeout of {READ_TIMEOUT:g} s and otherwise its defaults",
            f"{'client':<32}{'landed':>8}{'failed':>8}{'retries':>9}{'server requests':>17}"
            f"{'seconds':>9}",
        ]
        for r in self.runs:
            out.append(
                f"{TOXIC_LABELS[r.name]:<32}{r.landed:>8}{r.failed:>8}{r.retries:>9}"
                f"{r.server_requests:>17}{r.seconds:>9.3f}"
            )
        out.append(f"  {'landed by kind':<30}" + "".join(f"{r.name:>11}" for r in self.runs))
        for kind in toxic_kinds(self.mix):
            cells = "".join(f"{r.landed_by_kind[kind]:>11}" for r in self.runs)
            out.append(f"  {kind:<22}{'of ' + str(self.planned[kind]):>8}{cells}")
        for r in self.runs:
            errors = ", ".join(f"{name} {n}" for name, n in r.failed_by_error.items()) or "none"
            out.append(f"  failed by error, {r.name}: {errors}")
        fp, naive = self.run("fetchpipe"), self.run("gather")
        records = fp.landed / naive.landed if naive.landed else float("inf")
        out.append(
            f"fetchpipe retries / first attempts: {self.retries_per_request:.3f} "
            f"({fp.retries} retries for {self.requests} requests; the server received "
            f"{fp.server_requests})"
        )
        out.append(
            f"fetchpipe landed {fp.landed} of {self.requests} ({fp.landed / self.requests:.1%}; "
            f"{self.landable} can land), gather {naive.landed} "
            f"({naive.landed / self.requests:.1%}): {records:.2f}x the records in "
            f"{fp.seconds / naive.seconds:.1f}x the time"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        fp, naive = self.run("fetchpipe"), self.run("gather")
        return {
            "scenario": "faults",
            "mode": "toxics",
            "requests": self.requests,
            "hosts": self.hosts,
            "faulty": self.faulty,
            "landable": self.landable,
            "retry_after": self.retry_after,
            "hang_seconds": HANG_SECONDS,
            "read_timeout": READ_TIMEOUT,
            "kinds": [
                {"label": e.label, "path": e.path("KEY"), "landable": e.landable} for e in self.mix
            ],
            "planned": self.planned,
            "runs": [
                {**r.to_json(TOXIC_LABELS[r.name]), "failed_by_error": r.failed_by_error}
                for r in self.runs
            ],
            "retries_per_request": self.retries_per_request,
            "ratio_landed": fp.landed / naive.landed if naive.landed else None,
            "ratio_seconds": fp.seconds / naive.seconds if naive.seconds else None,
        }

    def chart(self, subtitle: str) -> str:
        return bar_chart(
            f"{self.requests:,} requests, {self.faulty / self.requests:.0%} through every "
            "toxic: records landed",
            landed_bars(self.runs, TOXIC_LABELS),
            axis="records landed (higher is better)",
            subtitle=subtitle,
            marker=Marker(float(self.landable), f"{self.landable:,} can land"),
        )


def measure_toxics(server: RemoteFleet, requests: int, retry_after: int) -> ToxicsReport:
    """Run the naive gather, then fetchpipe, each on fresh keys with the counters reset."""
    mix = toxic_mix(hang=HANG_SECONDS, delay=float(retry_after))
    kinds = toxic_kinds(mix)
    planned = Counter(kind for kind, _ in toxic_plan(server.base_urls, requests, "", mix))
    report = ToxicsReport(
        requests, len(server.base_urls), retry_after, mix, _by_kind(planned, kinds)
    )
    timeouts = Timeouts(read=READ_TIMEOUT)
    for name in ("gather", "fetchpipe"):
        plan = toxic_plan(server.base_urls, requests, name, mix)
        server.reset()
        if name == "gather":
            result = run(naive_gather(plan, kinds))
        else:
            result = run(with_fetchpipe(plan, kinds, timeouts))
        result.server_requests = int(server.stats()["requests"])
        report.runs.append(result)
    return report


# The toxic server in a child process, so that the clients measured have the parent to
# themselves: `python -m fetchpipe.bench.faults HOSTS` prints one JSON line and serves until
# stdin closes. The parent reads its counters through `GET /__stats` as for the fleet.


async def _serve_toxics(hosts: int) -> None:
    async with ToxicServer(hosts=hosts, max_hang=HANG_SECONDS) as server:
        print(json.dumps({"port": server.port, "base_urls": server.base_urls}), flush=True)
        await wait_for_stdin_eof()


@contextmanager
def running_toxics(hosts: int = TOXIC_HOSTS) -> Iterator[RemoteFleet]:
    """Start the toxic server in a child process; yield how to reach it; stop it on exit."""
    with running_child("fetchpipe.bench.faults", str(hosts)) as line:
        try:
            info = json.loads(line)
        except ValueError:
            raise RuntimeError(f"toxic server did not start (said {line!r})") from None
        yield RemoteFleet(0.0, int(info["port"]), [], list(info["base_urls"]), [])


def main() -> None:
    raise_nofile_limit()
    run(_serve_toxics(int(sys.argv[1])))


if __name__ == "__main__":
    main()
