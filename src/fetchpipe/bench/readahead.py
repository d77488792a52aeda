"""Read-ahead: an input sorted by host against the same input shuffled, beside the floor.

H hosts (127.0.0.1..H: the benchmark server, in its own process), N URLs each that answer after
D ms, fetched with a limit of C requests at once per host: no client can finish before
``ceil(H x N / (H x C)) x D`` (20 x 300 URLs, 3 per host, 50 ms: 5.0 s). The same URLs are
fetched grouped by host ("sorted", as exported files often are), shuffled, and sorted with
``readahead=0`` (the engine reading no further than its buffer, as before it read ahead: the
baseline), in rotating rounds; each run is a process of its own, so its peak RSS is its own.
The server reports the most hosts it saw busy at once and the most requests one host had in
flight.

The memory runs fetch M URLs over the same hosts with no wait, in the same three ways: peak RSS,
and how many requests the read-ahead wrote to its temporary file. The URLs come from a
generator in both orders (the shuffle is ``i -> i x a mod M``, ``a`` prime to M and about
0.618 x M), so no list of them is ever held.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from fetchpipe._config import READAHEAD, HostLimits, Limits
from fetchpipe.bench.report import peak_rss_mb
from fetchpipe.bench.svg import Bar, Marker, bar_chart
from fetchpipe.engine.fetcher import Fetcher, run

ORDERS = ("sorted", "shuffled", "sorted_buffer_only")
"""The runs: sorted and shuffled input, and the sorted input with ``Limits(readahead=0)`` (no
further than the buffer: the engine as it was before it read ahead), the baseline."""
LABELS = {
    "sorted": "sorted by host",
    "shuffled": "shuffled",
    "sorted_buffer_only": "sorted, --readahead 0",
}


@dataclass(frozen=True, slots=True)
class OrderRun:
    order: str
    urls: int
    ok: int
    seconds: float
    peak_rss_mb: float
    spilled: int
    max_busy_hosts: int = 0
    max_host_in_flight: int = 0


def urls(base_urls: list[str], per_host: int, delay_ms: int, order: str) -> Iterator[str]:
    """Every host's ``per_host`` URLs, host after host ("sorted") or spread ("shuffled")."""
    total = len(base_urls) * per_host
    step = 1
    if order == "shuffled":  # a step of about 0.618 x total spreads neighbours far apart
        step = max(1, int(total * 0.6180339887))
        while math.gcd(step, total) != 1:
            step += 1
    for i in range(total):
        j = i * step % total
        yield f"{base_urls[j // per_host]}/delay/{delay_ms}?n={j % per_host}"


async def _fetch(
    base_urls: list[str], per_host: int, delay_ms: int, order: str, per_host_c: int, c: int
) -> tuple[int, int]:
    limits = Limits(
        max_concurrency=c,
        per_host=HostLimits(max_concurrency=per_host_c),
        readahead=0 if order == "sorted_buffer_only" else READAHEAD,
    )
    ok = 0
    shape = "shuffled" if order == "shuffled" else "sorted"
    async with Fetcher(limits=limits) as fetcher:
        async for result in fetcher.stream(urls(base_urls, per_host, delay_ms, shape)):
            ok += result.ok
    return ok, fetcher.spilled


def child_main(argv: list[str]) -> None:
    order, per_host, delay_ms, per_host_c, c = argv[0], *(int(a) for a in argv[1:5])
    base_urls = json.loads(argv[5])
    start = time.perf_counter()
    ok, spilled = run(_fetch(base_urls, per_host, delay_ms, order, per_host_c, c))
    seconds = time.perf_counter() - start
    total = len(base_urls) * per_host
    print(json.dumps(asdict(OrderRun(order, total, ok, seconds, peak_rss_mb(), spilled))))


def _server(base_url: str, path: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(base_url + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def measure_once(
    base_urls: list[str], order: str, per_host: int, delay_ms: int, per_host_c: int, c: int
) -> OrderRun:
    """One run in a child process, with what the server saw of it."""
    _server(base_urls[0], "/__reset", "POST")
    args = [order, str(per_host), str(delay_ms), str(per_host_c), str(c)]
    out = subprocess.run(
        [sys.executable, "-m", "fetchpipe.bench.readahead", *args, json.dumps(base_urls)],
        check=True,
        capture_output=True,
        text=True,
    )
    done = json.loads(out.stdout.strip().splitlines()[-1])
    return OrderRun(**{**done, **_server(base_urls[0], "/__stats")})


@dataclass(slots=True)
class ReadaheadReport:
    hosts: int
    per_host: int
    per_host_concurrency: int
    concurrency: int
    delay_ms: int
    memory_urls: int
    rounds: list[dict[str, OrderRun]] = field(default_factory=list)
    memory: list[OrderRun] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.hosts * self.per_host

    @property
    def floor(self) -> float:
        at_once = min(self.concurrency, self.hosts * self.per_host_concurrency)
        return math.ceil(self.requests / at_once) * self.delay_ms / 1000

    def median_seconds(self, order: str) -> float:
        return statistics.median(r[order].seconds for r in self.rounds)

    @property
    def speedup(self) -> float:
        """Sorted input: time without read-ahead over time with it."""
        sorted_ = self.median_seconds("sorted")
        return self.median_seconds("sorted_buffer_only") / sorted_ if sorted_ else 0.0

    def ratio(self, order: str) -> float:
        """Median seconds over the floor (1.0: as fast as anything can be)."""
        return self.median_seconds(order) / self.floor if self.floor else math.nan

    @property
    def clean(self) -> bool:
        runs = [*(r for round_ in self.rounds for r in round_.values()), *self.memory]
        return all(r.ok == r.urls for r in runs)

    def lines(self) -> list[str]:
        out = [
            f"readahead: {self.hosts} hosts x {self.per_host} URLs of {self.delay_ms} ms, "
            f"{self.per_host_concurrency} at once per host, concurrency {self.concurrency}, "
            f"server in its own process, each run a process of its own; floor "
            f"{self.requests} / {min(self.concurrency, self.hosts * self.per_host_concurrency)}"
            f" x {self.delay_ms} ms = {self.floor:.2f} s"
        ]
        for index, round_ in enumerate(self.rounds, 1):
            cells = "  ".join(
                f"{name} {r.seconds:.2f} s ({r.ok} ok, {r.max_busy_hosts} hosts busy at once, "
                f"{r.peak_rss_mb:.0f} MB)"
                for name, r in round_.items()
            )
            out.append(f"  round {index}: {cells}")
        for order in ORDERS:
            if self.rounds:
                out.append(
                    f"median {LABELS[order]}: {self.median_seconds(order):.2f} s, "
                    f"{self.ratio(order):.2f}x the floor"
                )
        if self.rounds:
            out.append(
                f"ratio sorted, --readahead 0 / sorted time: {self.speedup:.2f}"
                if self.speedup
                else "ratio: n/a"
            )
        for r in self.memory:
            out.append(
                f"memory: {r.urls} URLs {LABELS[r.order]} over {self.hosts} hosts (no wait): "
                f"{r.ok} ok in {r.seconds:.1f} s, peak RSS {r.peak_rss_mb:.1f} MB, "
                f"{r.spilled} requests written to the read-ahead's file, {r.max_busy_hosts} "
                "hosts busy at once"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "readahead",
            "hosts": self.hosts,
            "per_host": self.per_host,
            "per_host_concurrency": self.per_host_concurrency,
            "concurrency": self.concurrency,
            "delay_ms": self.delay_ms,
            "floor_seconds": self.floor,
            "rounds": [{k: asdict(v) for k, v in r.items()} for r in self.rounds],
            "median_seconds": {o: self.median_seconds(o) for o in ORDERS if self.rounds},
            "ratio_to_floor": {o: self.ratio(o) for o in ORDERS if self.rounds},
            "ratio_buffer_only_over_sorted": self.speedup if self.rounds else None,
            "peak_rss_mb": {r.order: r.peak_rss_mb for r in self.memory},
            "memory_urls": self.memory_urls,
            "memory": [asdict(r) for r in self.memory],
        }

    def chart(self, subtitle: str) -> str:
        bars = [
            Bar(
                LABELS[order],
                self.median_seconds(order),
                f"{self.median_seconds(order):.2f} s ({self.ratio(order):.2f}x the floor)",
                highlight=order == "sorted",
            )
            for order in ORDERS
            if self.rounds
        ]
        return bar_chart(
            f"{self.hosts} hosts x {self.per_host} URLs of {self.delay_ms} ms, "
            f"{self.per_host_concurrency} per host: seconds",
            bars,
            axis="seconds, median of the rounds (lower is better)",
            subtitle=subtitle,
            marker=Marker(self.floor, f"floor {self.floor:.2f} s"),
        )


def measure(
    base_urls: list[str],
    per_host: int,
    per_host_concurrency: int,
    concurrency: int,
    delay_ms: int,
    rounds: int,
    memory_urls: int,
) -> ReadaheadReport:
    """``rounds`` of the three runs (their order rotating), then the memory runs."""
    hosts = len(base_urls)
    report = ReadaheadReport(
        hosts, per_host, per_host_concurrency, concurrency, delay_ms, memory_urls
    )
    for index in range(rounds):
        orders = ORDERS[index % 3 :] + ORDERS[: index % 3]
        report.rounds.append(
            {
                order: measure_once(
                    base_urls, order, per_host, delay_ms, per_host_concurrency, concurrency
                )
                for order in orders
            }
        )
    if memory_urls:
        for order in ORDERS:
            report.memory.append(
                measure_once(
                    base_urls,
                    order,
                    max(1, memory_urls // hosts),
                    0,
                    per_host_concurrency,
                    concurrency,
                )
            )
    return report


if __name__ == "__main__":
    child_main(sys.argv[1:])
