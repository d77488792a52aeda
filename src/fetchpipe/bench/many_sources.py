"""``fetchpipe bench many-sources``: a local pipeline of many small paginated sources, by
destination, against the engine alone on the same pages.

H hosts (the server of ``bench scale``, its own process: :mod:`.scale_server`), S sources per
host, each paginated page after page (P pages of L ms), at most C requests in flight per host,
all in this process (the local executor). Measured in one invocation, each on a fresh
destination:

- ``engine``: the same pages fetched by one ``Fetcher`` with the same limits, nothing written:
  what sending costs here (its pages need not wait for each other, but a host's pages still go
  C at a time, so its floor is the pipeline's);
- ``jsonl``: ``Pipeline.run()`` into a JSON Lines directory (the journal and stages still in its
  ``_fetchpipe.duckdb``);
- ``duckdb``: ``Pipeline.run()`` into a DuckDB file.

The floor is the time no run can beat: a host's pages, C at a time, one after another
(:attr:`~.scale_pipeline.Workload.floor`). Reported: each run's time over the floor and over
the engine's, requests per second, the CPU time this process used (its threads, the event loop
and the destination's, together: on a machine shared with other work, a steadier figure than
the time), and the rows each destination holds (one per page).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fetchpipe.bench.scale_pipeline import Workload
from fetchpipe.bench.svg import Bar, Marker, bar_chart

DESTINATIONS = ("jsonl", "duckdb")
"""The pipeline's destinations measured, after the engine alone."""


def workload(hosts: int, sources: int, pages: int, delay_ms: int, per_host: int) -> Workload:
    """The workload of ``bench scale-pipeline`` on the local executor only (no workers)."""
    return Workload(hosts, sources, pages, delay_ms, per_host, workers=0)


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    seconds: float
    """The median of the rounds."""
    rounds: tuple[float, ...]
    cpu: float
    """CPU seconds of this process during the run (the median of the rounds)."""
    ok: bool
    rows: int
    """Rows in the destination (pages answered, for the engine)."""


@dataclass(frozen=True, slots=True)
class ManySourcesReport:
    workload: Workload
    runs: tuple[Run, ...]

    def run(self, name: str) -> Run:
        return next(run for run in self.runs if run.name == name)

    @property
    def clean(self) -> bool:
        return all(run.ok and run.rows == self.workload.requests for run in self.runs)

    def over_floor(self, run: Run) -> float:
        return run.seconds / self.workload.floor if self.workload.floor else 0.0

    def over_engine(self, run: Run) -> float:
        return run.seconds / self.run("engine").seconds

    def lines(self) -> list[str]:
        w = self.workload
        out = [
            f"many-sources: {w.hosts} hosts x {w.sources} sources x {w.pages} pages "
            f"({w.requests:,} requests, {w.hosts * w.sources} sources) of {w.delay_ms} ms, each "
            f"source page after page, at most {w.per_host} in flight per host, local executor; "
            f"floor {w.floor:.2f} s",
        ]
        for run in self.runs:
            what = "engine alone (no writes)" if run.name == "engine" else f"pipeline -> {run.name}"
            out.append(
                f"  {what:26s} {run.seconds:7.2f} s  {w.requests / run.seconds:6.0f} req/s  "
                f"{self.over_floor(run):5.2f}x the floor  {self.over_engine(run):5.2f}x the "
                f"engine  cpu {run.cpu:5.2f} s  rows {run.rows:,}{'' if run.ok else '  FAILED'}"
            )
        if len(self.runs[0].rounds) > 1:
            out.append("  (median of rounds: " + ", ".join(_rounds(r) for r in self.runs) + ")")
        verdict = "yes" if self.clean else "NO"
        out.append(f"  every page in every destination, once: {verdict}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "many-sources",
            "workload": {k: v for k, v in asdict(self.workload).items() if k != "workers"},
            "requests": self.workload.requests,
            "floor_seconds": self.workload.floor,
            "runs": {
                run.name: {
                    **asdict(run),
                    "over_floor": self.over_floor(run),
                    "over_engine": self.over_engine(run),
                    "cpu_over_engine": run.cpu / self.run("engine").cpu,
                    "requests_per_second": self.workload.requests / run.seconds,
                }
                for run in self.runs
            },
            "clean": self.clean,
        }

    def chart(self, subtitle: str) -> str:
        bars = [
            Bar(
                "engine alone" if run.name == "engine" else f"pipeline -> {run.name}",
                run.seconds,
                f"{run.seconds:.2f} s ({self.over_floor(run):.1f}x the floor)",
                highlight=run.name != "engine",
            )
            for run in self.runs
        ]
        w = self.workload
        return bar_chart(
            f"{w.hosts * w.sources} paginated sources, {w.requests:,} pages, on one process",
            bars,
            axis="seconds (lower is better)",
            subtitle=subtitle,
            marker=Marker(w.floor, "floor"),
        )


def _rounds(run: Run) -> str:
    return f"{run.name} " + "/".join(f"{s:.2f}" for s in run.rounds)


def _database_rows(database: Path) -> int:
    import duckdb  # lazy: start-up time

    with duckdb.connect(str(database), read_only=True) as connection:
        tables = [
            str(row[0])
            for row in connection.execute("SHOW TABLES").fetchall()
            if not str(row[0]).startswith("_fetchpipe")
        ]
        total = 0
        for table in tables:
            row = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            total += int(row[0]) if row is not None else 0
    return total


def _file_rows(folder: Path) -> int:
    return sum(
        sum(1 for line in path.read_bytes().splitlines() if line.strip())
        for path in folder.glob("*/*.jsonl")
    )


def _engine_once(workload: Workload, port: int) -> tuple[float, float, bool, int]:
    """The pipeline's pages by one Fetcher with its limits, nothing written."""
    from fetchpipe._models import Request
    from fetchpipe.engine.fetcher import Fetcher, run
    from fetchpipe.pipeline import Pipeline

    pipeline = Pipeline.from_dict(workload.config(port, Path("unused.duckdb")))
    requests = [
        Request(source.url, params={"page": page})
        for source in pipeline.sources
        for page in range(1, workload.pages + 1)
    ]

    async def fetch() -> tuple[bool, int]:
        answered = 0
        async with Fetcher(limits=pipeline.limits()) as fetcher:
            async for result in fetcher.stream(requests):
                answered += result.ok
        return answered == len(requests), answered

    began, cpu = time.perf_counter(), time.process_time()
    ok, answered = run(fetch())
    return time.perf_counter() - began, time.process_time() - cpu, ok, answered


def _pipeline_once(workload: Workload, port: int, kind: str) -> tuple[float, float, bool, int]:
    from fetchpipe.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="fetchpipe-many-sources-") as folder:
        database = Path(folder) / "out.duckdb"
        config = workload.config(port, database)
        if kind == "jsonl":
            config["destination"] = f"jsonl:///{Path(folder) / 'out'}"
        pipeline = Pipeline.from_dict(config)
        began, cpu = time.perf_counter(), time.process_time()
        report = pipeline.run(state_dir=Path(folder) / "state")
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        rows = _database_rows(database) if kind == "duckdb" else _file_rows(Path(folder) / "out")
    return seconds, cpu, report.ok, rows


def measure(workload: Workload, port: int, rounds: int = 1) -> ManySourcesReport:
    """Each of the engine, then each destination, ``rounds`` times in turn; the server listens
    on ``port``."""
    names = ("engine", *DESTINATIONS)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    ok = dict.fromkeys(names, True)
    counts: dict[str, list[int]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            if name == "engine":
                seconds, cpu, fine, count = _engine_once(workload, port)
            else:
                seconds, cpu, fine, count = _pipeline_once(workload, port, name)
            times[name].append(seconds)
            cpus[name].append(cpu)
            ok[name] = ok[name] and fine
            counts[name].append(count)
    runs = []
    for name in names:
        # the round whose rows are furthest from one per page: a miss in any round shows
        rows = max(counts[name], key=lambda count: abs(count - workload.requests))
        median, cpu = statistics.median(times[name]), statistics.median(cpus[name])
        runs.append(Run(name, median, tuple(times[name]), cpu, ok[name], rows))
    return ManySourcesReport(workload, tuple(runs))
