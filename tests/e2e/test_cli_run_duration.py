"""A run's duration is one figure: ``fetchpipe runs`` (the run's row) and the log's
``run_started`` / ``run_ended`` (its ``seconds``, and the two records' times) say the same,
for a ``fetch`` into DuckDB and for a pipeline run, each a real process against the fleet.

The run lasts from just before its first request is taken in to the moment every result is
written; every request of its request log lies within it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from fetchpipe.sim import Fleet
from tests.e2e.conftest import RunCli

SLACK = 0.2
"""Seconds between the run's instants and the log records that tell them: a record is made
just after its instant (about 20 ms after the end, the output's file closing; more on a busy
machine). Before the run's instants were shared, the gap was half a second."""


def _records(stderr: str) -> dict[str, dict[str, Any]]:
    """The ``run_started`` and ``run_ended`` records of a ``--log-format json`` stderr."""
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    found = {r["event"]: r for r in records if r["event"] in ("run_started", "run_ended")}
    assert set(found) == {"run_started", "run_ended"}, stderr
    return found


def _listed(run_cli: RunCli, where: Path) -> dict[str, Any]:
    done = run_cli("runs", str(where), "--json")
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    assert isinstance(run, dict)
    return run


def _check(records: dict[str, dict[str, Any]], run: dict[str, Any], database: Path) -> None:
    started, ended = records["run_started"], records["run_ended"]
    assert run["run_id"] == started["run_id"] == ended["run_id"]
    assert run["seconds"] == ended["seconds"] > 0.3  # the same figure, to the millisecond
    logged = (
        datetime.fromisoformat(ended["ts"]) - datetime.fromisoformat(started["ts"])
    ).total_seconds()
    assert abs(logged - run["seconds"]) <= SLACK, (logged, run["seconds"])
    began = datetime.fromisoformat(run["started_at"])
    late = (datetime.fromisoformat(started["ts"]) - began).total_seconds()
    assert -0.001 <= late <= SLACK  # (a record's time is cut to the millisecond)
    with duckdb.connect(str(database), read_only=True) as db:
        first, last = db.execute(
            "SELECT min(queued_at), max(start_offset + total_time) FROM _fetchpipe_requests"
        ).fetchone() or (None, None)
    assert first is not None and last is not None
    assert first >= 0 and last <= run["seconds"]  # every request within the run


def test_fetch_runs_and_its_log_give_the_same_duration(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    urls = tmp_path / "urls.txt"
    lines = [cli_fleet.url("/delay?seconds=0.5", host=0)]
    lines += [cli_fleet.url(f"/json?n={i}&t={time.time_ns()}", host=1) for i in range(30)]
    urls.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.duckdb"
    done = run_cli(
        "fetch", str(urls), "--out", str(out), "--log-format", "json", "--log-level", "info"
    )
    assert done.returncode == 0, done.stderr
    _check(_records(done.stderr), _listed(run_cli, out), out)


def test_a_pipeline_run_and_its_log_give_the_same_duration(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    database = tmp_path / "pipe.duckdb"
    pipeline = tmp_path / "slow.yaml"
    pipeline.write_text(
        f"""name: slow
destination: duckdb:///{database}
sources:
  - name: items
    url: {cli_fleet.url("/delay", host=2)}
    params: {{seconds: 0.5}}
    records: ""
""",
        encoding="utf-8",
    )
    done = run_cli("run", str(pipeline), "--log-format", "json", "--log-level", "info")
    assert done.returncode == 0, done.stderr
    _check(_records(done.stderr), _listed(run_cli, database), database)
