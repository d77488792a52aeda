"""``fetchpipe bench scale-pipeline``: a paginated pipeline over many hosts, in this process and
with its requests sent from a Dask cluster.

H hosts (the server of ``bench scale`` in its own process, :mod:`.scale_server`), S sources per
host, each paginated page after page (P pages of L ms: the next page is asked for when the
last one is read, as a cursor pagination does), at most C requests in flight per host, into a
DuckDB file: first with ``Pipeline.run()`` in this process, then with
``Pipeline.run(executor=...)`` on a ``LocalCluster`` of W worker processes (the runner here,
the engines on the workers). Reported: each run's time, the most requests in flight at any
host as the server saw them (must not exceed C), the rows of both runs (equal), the cluster's
start, and the cluster run over the local one. The cost this shows is the shard engines' round
trips: every page's result travels to this process, and its next page back to a worker.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fetchpipe.bench.scale_server import host_address, max_in_flight
from fetchpipe.bench.svg import Bar, bar_chart


@dataclass(frozen=True, slots=True)
class Workload:
    hosts: int
    sources: int
    """Sources per host, each paginated on its own."""
    pages: int
    delay_ms: int
    per_host: int
    workers: int

    @property
    def requests(self) -> int:
        return self.hosts * self.sources * self.pages

    @property
    def floor(self) -> float:
        """The time no run can beat: a host's pages, ``per_host`` sources at a time."""
        rounds = -(-self.sources // self.per_host) * self.pages
        return rounds * self.delay_ms / 1000

    def config(self, port: int, database: Path) -> dict[str, Any]:
        addresses = [host_address(n) for n in range(self.hosts)]
        return {
            "name": "scale",
            "destination": f"duckdb:///{database}",
            "hosts": {address: {"max_concurrency": self.per_host} for address in addresses},
            "sources": [
                {
                    "name": f"h{n}_s{s}",
                    "url": f"http://{address}:{port}/delay/{self.delay_ms}?source={s}",
                    "records": "",
                    "paginate": {"type": "page", "max_pages": self.pages},
                }
                for n, address in enumerate(addresses)
                for s in range(self.sources)
            ],
        }


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    ok: bool
    rows: dict[str, int]
    max_in_flight: int


@dataclass(frozen=True, slots=True)
class ScalePipelineReport:
    workload: Workload
    local: Run
    cluster: Run
    cluster_start: float

    @property
    def ratio(self) -> float:
        """The cluster run (its start left out) over the local run."""
        return self.cluster.seconds / self.local.seconds

    @property
    def end_to_end(self) -> float:
        return (self.cluster_start + self.cluster.seconds) / self.local.seconds

    @property
    def clean(self) -> bool:
        w = self.workload
        expected = w.hosts * w.sources
        return (
            self.local.ok
            and self.cluster.ok
            and self.local.rows == self.cluster.rows
            and len(self.local.rows) == expected
            and sum(self.local.rows.values()) == w.requests
        )

    @property
    def limits_held(self) -> bool:
        return max(self.local.max_in_flight, self.cluster.max_in_flight) <= self.workload.per_host

    def lines(self) -> list[str]:
        w, local, cluster = self.workload, self.local, self.cluster
        return [
            f"scale-pipeline: {w.hosts} hosts x {w.sources} sources x {w.pages} pages "
            f"({w.requests:,} requests) of {w.delay_ms} ms, each source page after page, at "
            f"most {w.per_host} in flight per host, into DuckDB; floor {w.floor:.2f} s",
            f"  local (one process):      {local.seconds:7.2f} s  "
            f"{w.requests / local.seconds:7.0f} req/s  max in flight per host "
            f"{local.max_in_flight}",
            f"  dask LocalCluster x{w.workers}:     {cluster.seconds:7.2f} s  "
            f"{w.requests / cluster.seconds:7.0f} req/s  max in flight per host "
            f"{cluster.max_in_flight} (+ {self.cluster_start:.2f} s cluster start)",
            f"  on the cluster / local: {self.ratio:.2f}x (the run); end to end, cluster start "
            f"included: {self.end_to_end:.2f}x",
            f"  per-host limit {w.per_host}: {'held' if self.limits_held else 'EXCEEDED'} in "
            f"both runs; rows {sum(local.rows.values()):,} / {sum(cluster.rows.values()):,}, "
            f"the same rows in every table: {'yes' if self.clean else 'NO'}",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "scale-pipeline",
            "workload": asdict(self.workload),
            "requests": self.workload.requests,
            "floor_seconds": self.workload.floor,
            "local": {**asdict(self.local), "rows": sum(self.local.rows.values())},
            "cluster": {**asdict(self.cluster), "rows": sum(self.cluster.rows.values())},
            "cluster_start": self.cluster_start,
            "cluster_over_local": self.ratio,
            "end_to_end_over_local": self.end_to_end,
            "limits_held": self.limits_held,
            "clean": self.clean,
        }

    def chart(self, subtitle: str) -> str:
        total = self.cluster_start + self.cluster.seconds
        bars = [
            Bar("local", self.local.seconds, f"{self.local.seconds:.2f} s", highlight=False),
            Bar(
                f"dask x{self.workload.workers}",
                total,
                f"{total:.2f} s (start {self.cluster_start:.2f} s)",
                highlight=True,
            ),
        ]
        return bar_chart(
            f"a pipeline of {self.workload.requests:,} pages over {self.workload.hosts} hosts",
            bars,
            axis="seconds, cluster start included (lower is better)",
            subtitle=subtitle,
        )


def _rows(database: Path) -> dict[str, int]:
    import duckdb  # lazy: start-up time

    with duckdb.connect(str(database), read_only=True) as connection:
        tables = [
            str(row[0])
            for row in connection.execute("SHOW TABLES").fetchall()
            if not str(row[0]).startswith("_fetchpipe")
        ]
        counts = {}
        for table in tables:
            row = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            counts[table] = int(row[0]) if row is not None else 0
    return counts


def measure(workload: Workload, port: int) -> ScalePipelineReport:
    """Run the pipeline here, then on a LocalCluster; the server listens on ``port``."""
    from fetchpipe.distributed import DaskExecutor
    from fetchpipe.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="fetchpipe-scale-pipeline-") as folder:
        runs = []
        for name in ("local", "cluster"):
            database = Path(folder) / f"{name}.duckdb"
            pipeline = Pipeline.from_dict(workload.config(port, database))
            state = Path(folder) / f"{name}-state"
            max_in_flight(port, reset=True)
            if name == "local":
                began = time.perf_counter()
                report = pipeline.run(state_dir=state)
                seconds = time.perf_counter() - began
            else:
                with DaskExecutor.local(workload.workers) as executor:
                    started = executor.started_in
                    began = time.perf_counter()
                    report = pipeline.run(state_dir=state, executor=executor)
                    seconds = time.perf_counter() - began
            most = max(max_in_flight(port, reset=True).values(), default=0)
            runs.append(Run(seconds, report.ok, _rows(database), most))
    return ScalePipelineReport(workload, runs[0], runs[1], started)
