"""Pipeline: one paginated API into DuckDB with ``merge``, by ``fetchpipe run``, the floor and dlt.

Loading is where pipeline tools are slow, so this scenario times the whole job the way a user
runs it: a process starts, imports its tool, fetches every page of ``/products`` (total pages in
the body, a fixed wait per page), lands the records in a fresh DuckDB file merged on ``id``, and
exits. Each client is its own process, timed by this one from spawn to exit, so interpreter
start, imports and teardown count; its peak RSS is its own ``VmHWM``, which it reports at exit
(``ru_maxrss`` would carry this process's peak across ``exec``). This process then opens each
DuckDB file and counts the rows, the duplicate ids and the ids missing.

- ``fetchpipe``: the real command line, ``fetchpipe run PIPELINE`` (via
  :mod:`fetchpipe.bench.measured`), on a pipeline file written for the run.
- ``floor``: the hand-rolled aiohttp loop that writes JSON lines and loads them with one
  ``read_json`` (:mod:`fetchpipe.bench.pipeline_baselines`): what bulk loading costs at least.
- ``dlt``: dlt's ``rest_api`` source, when dlt is installed.

The targets: fetchpipe within 2x of the floor's time, and under 250 MB peak RSS.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fetchpipe.bench import pipeline_baselines
from fetchpipe.bench.process import spawn
from fetchpipe.bench.report import version_of
from fetchpipe.bench.svg import Bar, Marker, bar_chart

if TYPE_CHECKING:
    import duckdb

CLIENTS = ("fetchpipe", "floor", "dlt")
LABELS = {
    "fetchpipe": "fetchpipe run",
    "floor": "floor (aiohttp + read_json)",
    "dlt": "dlt rest_api",
}
TABLE = pipeline_baselines.TABLE
SCHEMAS = {"fetchpipe": "main", "floor": "main", "dlt": pipeline_baselines.DLT_DATASET}
"""Where each client's table lands (dlt puts it in a schema named after the dataset)."""
TARGET_RATIO = 2.0
TARGET_RSS_MB = 250.0
BASELINES = Path(pipeline_baselines.__file__)


def parse_clients(text: str) -> list[str]:
    """The comma-separated client names, in order, each once; ValueError for an unknown one."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in CLIENTS]
    if unknown:
        raise ValueError(
            f"unknown client(s): {', '.join(unknown)} (choose from {', '.join(CLIENTS)})"
        )
    if not names:
        raise ValueError(f"name at least one client (choose from {', '.join(CLIENTS)})")
    return names


def installed(client: str) -> bool:
    """Whether ``client`` can run here: dlt only when it is installed (it is never required)."""
    return client != "dlt" or importlib.util.find_spec("dlt") is not None


def ratio_text(value: float | None, target: float, why: str = "") -> str:
    """``1.23x (target <= 2x, met)``; ``n/a (why)`` without a value."""
    if value is None:
        return f"n/a ({why})" if why else "n/a"
    verdict = "met" if value <= target else "missed"
    return f"{value:.2f}x (target <= {target:g}x, {verdict})"


# --- one client run ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientRun:
    """One run of one client: whole-process seconds, its peak RSS, what landed in its file."""

    client: str
    seconds: float
    exit_code: int | None
    """``None``: killed at the timeout."""
    peak_rss_mb: float | None
    rows: int | None = None
    duplicates: int | None = None
    missing: int | None = None
    """Ids from 1 to the expected count that are not in the table."""
    error: str | None = None
    output_tail: str = ""
    """The last lines the process wrote, kept when it failed."""

    def complete(self, expected: int) -> bool:
        return (
            self.error is None
            and self.rows == expected
            and self.duplicates == 0
            and self.missing == 0
        )


def pipeline_file(base_url: str, database: Path) -> str:
    """The pipeline ``fetchpipe run`` is given: the products endpoint, merged on ``id``."""
    document = {
        "name": "bench",
        "destination": f"duckdb:///{database.resolve()}",  # duckdb:////abs/path: 4 slashes
        "defaults": {"max_concurrency": 100},
        "sources": [
            {
                "name": TABLE,
                "url": f"{base_url}/{TABLE}",
                "records": "data",
                "primary_key": "id",
                "write": "merge",
                "paginate": {
                    "type": "page",
                    "param": "page",
                    "start": 1,
                    "total_pages_path": "total_pages",
                },
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def command_for(client: str, base_url: str, database: Path, workdir: Path) -> list[str]:
    """The child's command line; it writes its peak RSS to ``workdir/report.json``."""
    report = str(workdir / "report.json")
    if client == "fetchpipe":
        path = workdir / "pipeline.yaml"
        path.write_text(pipeline_file(base_url, database))
        return [sys.executable, "-m", "fetchpipe.bench.measured", report, "run", str(path)]
    # -P: run by path without putting its folder first on sys.path (it holds cli.py, ...).
    args = [report, client, base_url, str(database), str(workdir)]
    return [sys.executable, "-P", str(BASELINES), *args]


def env_for(client: str, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    if client == "dlt":  # dlt's files under the run's folder, and no telemetry sent
        env.update(
            RUNTIME__DLTHUB_TELEMETRY="false",
            DLT_DATA_DIR=str(workdir / "dlt-data"),
            DLT_PROJECT_DIR=str(workdir),
        )
    return env


def _peak(workdir: Path) -> float | None:
    try:
        value = json.loads((workdir / "report.json").read_text())["peak_rss_mb"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def count_rows(database: Path, schema: str, expected: int) -> tuple[int, int, int] | str:
    """Rows, duplicate ids and missing ids of the products table; a message if it is absent."""
    import duckdb  # lazy: DuckDB loads when this benchmark runs, not with the bench commands

    if not database.exists():
        return f"no database file {database.name}"
    try:
        return _count_rows_in(duckdb.connect(str(database), read_only=True), schema, expected)
    except duckdb.Error as exc:
        return f"could not count the rows: {exc}"


def _count_rows_in(
    con: duckdb.DuckDBPyConnection, schema: str, expected: int
) -> tuple[int, int, int] | str:
    """:func:`count_rows` on an open connection, which it closes."""
    with con:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, TABLE],
        ).fetchone()
        if not found or not found[0]:
            return f"no table {schema}.{TABLE}"
        row = con.execute(
            "SELECT count(*), count(DISTINCT id), "
            "count(DISTINCT id) FILTER (WHERE id BETWEEN 1 AND ?) "
            f'FROM "{schema}"."{TABLE}"',
            [expected],
        ).fetchone()
    assert row is not None
    rows, distinct, in_range = (int(value) for value in row)
    return rows, rows - distinct, expected - in_range


def run_client(
    client: str, base_url: str, expected: int, workdir: Path, timeout: float
) -> ClientRun:
    """One run of ``client`` in a fresh ``workdir`` (removed afterwards)."""
    workdir.mkdir(parents=True)
    database = workdir / "bench.duckdb"
    try:
        command = command_for(client, base_url, database, workdir)
        done = spawn(command, workdir, env_for(client, workdir), timeout)
        peak = _peak(workdir)
        if done.exit_code != 0:
            error = (
                f"killed after the timeout of {timeout:g} s"
                if done.exit_code is None
                else f"exit code {done.exit_code}"
            )
            tail = done.output_tail
            return ClientRun(
                client, done.seconds, done.exit_code, peak, error=error, output_tail=tail
            )
        counts = count_rows(database, SCHEMAS[client], expected)
        if isinstance(counts, str):
            return ClientRun(client, done.seconds, 0, peak, error=counts)
        return ClientRun(client, done.seconds, 0, peak, *counts)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """A client over its rounds: median seconds and peak RSS; the worst counts."""

    client: str
    seconds: float
    peak_rss_mb: float | None
    rows: int | None
    duplicates: int | None
    missing: int | None
    error: str | None

    @classmethod
    def of(cls, client: str, runs: list[ClientRun]) -> Summary:
        peaks = [r.peak_rss_mb for r in runs if r.peak_rss_mb is not None]
        errors = [r.error for r in runs if r.error is not None]

        def worst(values: list[int | None], pick: Callable[[list[int]], int]) -> int | None:
            known = [v for v in values if v is not None]
            return pick(known) if known and len(known) == len(values) else None

        return cls(
            client,
            statistics.median(r.seconds for r in runs),
            statistics.median(peaks) if peaks else None,
            worst([r.rows for r in runs], min),
            worst([r.duplicates for r in runs], max),
            worst([r.missing for r in runs], max),
            errors[0] if errors else None,
        )


@dataclass(slots=True)
class PipelineReport:
    pages: int
    records: int
    delay_ms: int
    rounds: int
    loop: str
    clients: list[str]
    not_installed: list[str] = field(default_factory=list)
    runs: list[ClientRun] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.pages * self.records

    def summary(self, client: str) -> Summary | None:
        runs = [r for r in self.runs if r.client == client]
        return Summary.of(client, runs) if runs else None

    def _ok(self, client: str) -> Summary | None:
        """The summary of ``client`` when every run of it completed, else ``None``."""
        runs = [r for r in self.runs if r.client == client]
        if runs and all(r.complete(self.expected) for r in runs):
            return Summary.of(client, runs)
        return None

    def ratio(self, client: str, base: str = "floor") -> float | None:
        """Median seconds of ``client`` over ``base``'s, when both completed."""
        mine, theirs = self._ok(client), self._ok(base)
        if mine is None or theirs is None or theirs.seconds <= 0:
            return None
        return mine.seconds / theirs.seconds

    @property
    def clean(self) -> bool:
        return all(r.complete(self.expected) for r in self.runs)

    def _why_no_ratio(self, client: str) -> str:
        for name in (client, "floor"):
            if name not in self.clients:
                return f"{name} not run"
            if self._ok(name) is None:
                return f"{name} failed"
        return ""

    def _row(self, client: str) -> str:
        label = f"  {LABELS[client]:<29}"
        s = self.summary(client)
        if s is None:
            return f"{label}not installed"
        if s.error is not None:
            return f"{label}failed: {s.error}"
        peak = "n/a" if s.peak_rss_mb is None else f"{s.peak_rss_mb:.1f} MB"
        row = f"{label}{s.seconds:8.3f}  {s.rows:>9}  {s.duplicates:>10}  {peak:>10}"
        if not (s.rows == self.expected and s.duplicates == 0 and s.missing == 0):
            row += f"  INCOMPLETE: expected {self.expected} rows, {s.missing} ids missing"
        return row

    def lines(self) -> list[str]:
        rounds = f"{self.rounds} round{'s' if self.rounds != 1 else ''}"
        out = [
            f"pipeline: {self.pages} pages x {self.records} records = {self.expected} rows "
            f"(total pages in the body, {self.delay_ms} ms per page) into a fresh DuckDB file "
            f"with merge on id; each client in its own process, timed from spawn to exit; "
            f"{rounds}" + (", order alternating, medians" if self.rounds > 1 else ""),
            f"  {'client':<29}{'seconds':>8}  {'rows':>9}  {'duplicates':>10}  {'peak RSS':>10}",
        ]
        out += [self._row(client) for client in (*self.clients, *self.not_installed)]
        if self.rounds > 1:
            out += self._round_lines()
        for index, run in enumerate(self.runs):
            if run.output_tail:
                round_ = index // len(self.clients) + 1
                out.append(f"{run.client} (round {round_}) failed: {run.error}; last output:")
                out += [f"    {line}" for line in run.output_tail.splitlines()]
        out += self._target_lines()
        out.append(self._versions_line())
        return out

    def _round_lines(self) -> list[str]:
        per_client = len(self.clients)
        out = []
        for index in range(self.rounds):
            runs = self.runs[index * per_client : (index + 1) * per_client]
            cells = ", ".join(
                f"{r.client} {r.seconds:.3f} s" + (" (failed)" if r.error else "") for r in runs
            )
            out.append(f"  round {index + 1}: {cells}")
        return out

    def _target_lines(self) -> list[str]:
        out = [
            f"ratio {client} / {base}: {value:.2f}x"
            for client, base in (("dlt", "floor"), ("dlt", "fetchpipe"))
            if (value := self.ratio(client, base)) is not None
        ]
        return self._fetchpipe_lines() + out

    def _fetchpipe_lines(self) -> list[str]:
        if "fetchpipe" not in self.clients:
            return []
        ratio = self.ratio("fetchpipe")
        out = [
            f"ratio fetchpipe / floor: "
            f"{ratio_text(ratio, TARGET_RATIO, self._why_no_ratio('fetchpipe'))}"
        ]
        fp = self._ok("fetchpipe")
        if fp is None or fp.peak_rss_mb is None:
            why = "fetchpipe failed" if fp is None else "not measured on this system"
            out.append(f"fetchpipe peak RSS: n/a ({why})")
        else:
            verdict = "met" if fp.peak_rss_mb < TARGET_RSS_MB else "missed"
            out.append(
                f"fetchpipe peak RSS: {fp.peak_rss_mb:.0f} MB "
                f"(target < {TARGET_RSS_MB:g} MB, {verdict})"
            )
        return out

    def versions(self) -> dict[str, str | None]:
        return {name: version_of(name) for name in ("fetchpipe", "duckdb", "aiohttp", "dlt")}

    def _versions_line(self) -> str:
        packages = " · ".join(f"{k} {v}" for k, v in self.versions().items() if v is not None)
        return (
            f"Python {sys.version.split()[0]} · event loop {self.loop} · {packages} · "
            f"{os.cpu_count()} cores"
        )

    def to_json(self) -> dict[str, Any]:
        fp = self._ok("fetchpipe")
        ratio = self.ratio("fetchpipe")
        summaries = {c: self.summary(c) for c in self.clients}
        return {
            "scenario": "pipeline",
            "pages": self.pages,
            "records_per_page": self.records,
            "delay_ms": self.delay_ms,
            "expected_rows": self.expected,
            "rounds": self.rounds,
            "event_loop": self.loop,
            "clients": {c: LABELS[c] for c in self.clients},
            "not_installed": self.not_installed,
            "runs": [asdict(r) for r in self.runs],
            "summary": {c: asdict(s) for c, s in summaries.items() if s is not None},
            "ratio_fetchpipe_over_floor": ratio,
            "ratio_dlt_over_floor": self.ratio("dlt"),
            "ratio_dlt_over_fetchpipe": self.ratio("dlt", "fetchpipe"),
            "targets": {"ratio_fetchpipe_over_floor": TARGET_RATIO, "peak_rss_mb": TARGET_RSS_MB},
            "targets_met": {
                "ratio": None if ratio is None else ratio <= TARGET_RATIO,
                "peak_rss": None
                if fp is None or fp.peak_rss_mb is None
                else fp.peak_rss_mb < TARGET_RSS_MB,
            },
            "versions": self.versions(),
            "clean": self.clean,
        }

    def chart(self, subtitle: str) -> str:
        bars = []
        for client in (*self.clients, *self.not_installed):
            s = self.summary(client)
            if s is None:
                bars.append(Bar(LABELS[client], None, "not installed"))
            elif s.error is not None:
                bars.append(Bar(LABELS[client], None, f"failed: {s.error}"))
            else:
                peak = "" if s.peak_rss_mb is None else f", {s.peak_rss_mb:.0f} MB peak"
                text = f"{s.seconds:.2f} s{peak}"
                bars.append(Bar(LABELS[client], s.seconds, text, client == "fetchpipe"))
        floor = self._ok("floor")
        marker = None
        if floor is not None and "fetchpipe" in self.clients:
            marker = Marker(TARGET_RATIO * floor.seconds, f"target: {TARGET_RATIO:g}x the floor")
        return bar_chart(
            f"{self.pages} pages x {self.records:,} records into DuckDB (merge): whole-process "
            "seconds",
            bars,
            axis="seconds from spawn to exit, median of the rounds (lower is better)",
            subtitle=subtitle,
            marker=marker,
        )


def _loop_name() -> str:
    """The event loop both fetchpipe and the floor run on (uvloop when it is installed)."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def measure(
    base_url: str,
    pages: int,
    records: int,
    delay_ms: int,
    clients: list[str],
    rounds: int = 1,
    timeout: float = 600.0,
) -> PipelineReport:
    """Each installed client ``rounds`` times, order alternating, against the server at
    ``base_url`` (which serves ``pages`` pages of ``records`` records)."""
    import duckdb  # noqa: F401  - loaded once here, so no client pays for a cold library file

    present = [c for c in clients if installed(c)]
    missing = [c for c in clients if not installed(c)]
    report = PipelineReport(pages, records, delay_ms, rounds, _loop_name(), present, missing)
    with tempfile.TemporaryDirectory(prefix="fetchpipe-bench-pipeline-") as base:
        for index in range(rounds):
            order = present if index % 2 == 0 else present[::-1]
            for client in order:
                workdir = Path(base) / f"{client}-{index + 1}"
                report.runs.append(run_client(client, base_url, report.expected, workdir, timeout))
    return report
