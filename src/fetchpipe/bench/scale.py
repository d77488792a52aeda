"""``fetchpipe bench scale``: one latency-bound workload, in this process and on a Dask cluster.

N requests of L ms over H hosts (the server in its own process, :mod:`.scale_server`), at most
P in flight per host, into a DuckDB file: first in this process (the ``Fetcher`` streaming into
the ``fetch`` sink, as ``fetchpipe fetch`` does), then with ``fetch_sharded`` on a
``LocalCluster`` of W worker processes. Reported: each run's time and requests per second, the
most requests in flight at any host as the server saw them (must not exceed P), and the cost
of distributing: starting the cluster, counting the input's hosts (the plan), shipping the
batches (the driver's time in submit) and merging the parts. Its target: that overhead within
25% of the local time. The worker CPU per request gives the sizing model of
``docs/scale-out.md``. On a machine whose cores the server shares, speed-up is not the point.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fetchpipe._config import HostLimits, Limits
from fetchpipe.bench.scale_server import host_address, max_in_flight
from fetchpipe.bench.svg import Bar, bar_chart

TARGET = 0.25
"""Overhead of distribution over the local time the benchmark aims to stay within."""


@dataclass(frozen=True, slots=True)
class Workload:
    requests: int
    hosts: int
    delay_ms: int
    per_host: int
    workers: int

    @property
    def floor(self) -> float:
        """The time no client can beat: each host's requests, ``per_host`` at a time."""
        per_host_requests = -(-self.requests // self.hosts)
        return -(-per_host_requests // self.per_host) * self.delay_ms / 1000

    def urls(self, port: int) -> list[str]:
        return [
            f"http://{host_address(n % self.hosts)}:{port}/delay/{self.delay_ms}?n={n}"
            for n in range(self.requests)
        ]

    @property
    def limits(self) -> Limits:
        return Limits(
            max_concurrency=self.hosts * self.per_host,
            per_host=HostLimits(max_concurrency=self.per_host),
        )


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    ok: int
    rows: int
    distinct_urls: int
    max_in_flight: int
    """The most requests in flight at one host, at the server."""


@dataclass(frozen=True, slots=True)
class ClusterRun:
    run: Run
    cluster_start: float
    plan: float
    shipping: float
    fetching: float
    merge: float
    batches: int
    worker_cpu_per_request_ms: float

    @property
    def total(self) -> float:
        return self.cluster_start + self.run.seconds

    @property
    def overhead(self) -> float:
        """Seconds of distribution itself: cluster start, plan, shipping, merge."""
        return self.cluster_start + self.plan + self.shipping + self.merge


@dataclass(frozen=True, slots=True)
class ScaleReport:
    workload: Workload
    local: Run
    cluster: ClusterRun

    @property
    def overhead_share(self) -> float:
        return self.cluster.overhead / self.local.seconds

    @property
    def end_to_end(self) -> float:
        """The cluster run, its start included, over the local run."""
        return self.cluster.total / self.local.seconds

    @property
    def clean(self) -> bool:
        n = self.workload.requests
        runs = (self.local, self.cluster.run)
        return all(r.ok == r.rows == r.distinct_urls == n for r in runs)

    @property
    def limits_held(self) -> bool:
        runs = (self.local, self.cluster.run)
        return all(r.max_in_flight <= self.workload.per_host for r in runs)

    def lines(self) -> list[str]:
        w, local, cluster = self.workload, self.local, self.cluster
        c = cluster.run
        cpu = cluster.worker_cpu_per_request_ms
        return [
            f"scale: {w.requests:,} requests of {w.delay_ms} ms over {w.hosts} hosts, at most "
            f"{w.per_host} in flight per host, into DuckDB; server in its own process; floor "
            f"{w.floor:.2f} s",
            f"  local (one process):      {local.seconds:7.2f} s  "
            f"{w.requests / local.seconds:7.0f} req/s  max in flight per host "
            f"{local.max_in_flight}",
            f"  dask LocalCluster x{w.workers}:     {c.seconds:7.2f} s  "
            f"{w.requests / c.seconds:7.0f} req/s  max in flight per host {c.max_in_flight} "
            f"(+ {cluster.cluster_start:.2f} s cluster start; {cluster.batches} batches)",
            f"  overhead of distribution: cluster start {cluster.cluster_start:.2f} s, plan "
            f"{cluster.plan:.2f} s, shipping {cluster.shipping:.2f} s, merge {cluster.merge:.2f} s"
            f" = {cluster.overhead:.2f} s, {self.overhead_share:.0%} of the local time "
            f"(target {TARGET:.0%}: {'met' if self.overhead_share <= TARGET else 'missed'}); end "
            f"to end, cluster start included: {cluster.total:.2f} s, {self.end_to_end:.2f}x the "
            "local time",
            f"  per-host limit {w.per_host}: "
            f"{'held' if self.limits_held else 'EXCEEDED'} in both runs; rows "
            f"{local.rows:,} / {c.rows:,}, each URL once: {'yes' if self.clean else 'NO'}",
            f"  sizing: {cpu:.3f} ms of worker CPU per request -> about "
            f"{1000 / cpu if cpu else 0:,.0f} requests/s per worker core",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "scale",
            "workload": asdict(self.workload),
            "floor_seconds": self.workload.floor,
            "local": asdict(self.local),
            "cluster": {**asdict(self.cluster), "overhead_seconds": self.cluster.overhead},
            "overhead_share_of_local": self.overhead_share,
            "end_to_end_over_local": self.end_to_end,
            "target_share": TARGET,
            "limits_held": self.limits_held,
            "clean": self.clean,
        }

    def chart(self, subtitle: str) -> str:
        c = self.cluster
        bars = [
            Bar("local", self.local.seconds, f"{self.local.seconds:.2f} s", highlight=False),
            Bar(
                f"dask x{self.workload.workers}",
                c.total,
                f"{c.total:.2f} s (overhead {c.overhead:.2f} s)",
                highlight=True,
            ),
        ]
        return bar_chart(
            f"{self.workload.requests:,} requests over {self.workload.hosts} hosts: seconds",
            bars,
            axis="seconds, cluster start included (lower is better)",
            subtitle=subtitle,
        )


def _read(out: Path) -> tuple[int, int, int]:
    import duckdb  # lazy: start-up time

    with duckdb.connect(str(out), read_only=True) as connection:
        row = connection.execute(
            "SELECT count(*), count(*) FILTER (ok), count(DISTINCT url) FROM responses"
        ).fetchone()
    assert row is not None
    return int(row[1]), int(row[0]), int(row[2])


def _local(workload: Workload, urls: list[str], out: Path) -> float:
    from fetchpipe.destinations.fetch.duckdb import DuckDBSink
    from fetchpipe.engine.fetcher import Fetcher, run

    async def pump() -> None:
        with DuckDBSink(out) as sink:
            async with Fetcher(limits=workload.limits, proxy=None) as fetcher:
                async for result in fetcher.stream(urls):
                    sink.write(result)

    began = time.perf_counter()
    run(pump())
    return time.perf_counter() - began


def measure(workload: Workload, port: int) -> ScaleReport:
    """Run the workload locally, then on a LocalCluster; the server listens on ``port``."""
    from fetchpipe.distributed import DaskExecutor, FetchSettings, fetch_sharded
    from fetchpipe.distributed.sharding import count_hosts

    urls = workload.urls(port)
    with tempfile.TemporaryDirectory(prefix="fetchpipe-scale-") as folder:
        local_out = Path(folder) / "local.duckdb"
        max_in_flight(port, reset=True)
        seconds = _local(workload, urls, local_out)
        local = Run(seconds, *_read(local_out), max(max_in_flight(port, reset=True).values()))
        cluster_out = Path(folder) / "cluster.duckdb"
        with DaskExecutor.local(workload.workers) as executor:
            began = time.perf_counter()
            counts = count_hosts(urls)
            plan = time.perf_counter() - began
            report = fetch_sharded(
                urls,
                cluster_out,
                executor,
                FetchSettings(limits=workload.limits),
                host_counts=counts,
            )
            seconds = time.perf_counter() - began
            started_in = executor.started_in
        most = max(max_in_flight(port, reset=True).values())
        run = Run(seconds, *_read(cluster_out), most)
    cluster = ClusterRun(
        run=run,
        cluster_start=started_in,
        plan=plan,
        shipping=report.submit_seconds,
        fetching=report.fetch_seconds,
        merge=report.merge_seconds,
        batches=report.batches,
        worker_cpu_per_request_ms=report.cpu_seconds / max(1, report.results) * 1000,
    )
    return ScaleReport(workload, local, cluster)
