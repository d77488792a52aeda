"""``fetch --executor dask --report/--metrics`` as real processes: a LocalCluster of two worker
processes against the simulated fleet with faults (the same URLs as the local report tests).

The workers make the rows of the request log; the driver writes them into the DuckDB output as a
local fetch does (or keeps them for the report of a JSON Lines output), and the report draws
every request, loaded in headless Chromium.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pytest

from fetchpipe.distributed.sharding import ShardSelector
from fetchpipe.sim import Fleet
from tests.e2e.conftest import RunCli
from tests.e2e.test_cli_report import (
    SECRET,
    _check_page,
    _data,
    _faulty_urls,
    _requests_by_outcome,
)

pytestmark = pytest.mark.timeout(180)


def _fetch_on_cluster(
    run_cli: RunCli, tmp_path: Path, urls: list[str], out: Path, *extra: str
) -> str:
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    done = run_cli(
        "fetch", str(tmp_path / "urls.txt"), "--out", str(out),
        "--executor", "dask", "--workers", "2",
        "--retries", "2", "--retry-budget", "3", "--rate", "127.0.0.1=200",
        *extra,
        timeout=150,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the failing hosts' requests failed
    assert "dask LocalCluster, 2 workers" in done.stderr
    return done.stderr


def test_a_cluster_fetch_into_duckdb_keeps_the_request_log_and_its_report_draws_every_request(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    urls = _faulty_urls(cli_fleet, uuid.uuid4().hex[:8])
    out, report = tmp_path / "out.duckdb", tmp_path / "cluster.html"
    prom = report.with_suffix(".prom")
    stderr = _fetch_on_cluster(
        run_cli, tmp_path, urls, out, "--report", str(report), "--metrics", str(prom)
    )
    assert f"report written to {report}" in stderr
    assert f"hosts down: {cli_fleet.addresses[3]}" in stderr  # the summary, as a local run's
    assert SECRET not in stderr
    with duckdb.connect(str(out), read_only=True) as db:
        runs = db.execute("SELECT run_id, status, started_at, ended_at FROM _fetchpipe_runs")
        ((run_id, status, started_at, ended_at),) = runs.fetchall()
        rows = db.execute(
            "SELECT run_id, host, outcome, attempts, queued_at, start_offset, total_time, url "
            "FROM _fetchpipe_requests"
        ).fetchall()
        events = dict(
            db.execute("SELECT event, count(*) FROM _fetchpipe_events GROUP BY ALL").fetchall()
        )
        results = db.execute("SELECT count(*) FROM responses").fetchall()[0][0]
    assert status == "done"
    assert len(rows) == results == len(urls)  # a row per request, each once
    assert {row[0] for row in rows} == {run_id}
    assert {row[1] for row in rows} == set(cli_fleet.addresses)
    length = (ended_at - started_at).total_seconds()
    for _, _, _, _, queued_at, start_offset, total_time, _ in rows:
        # the times count from the driver's start: after it, and ended before the run did
        assert 0 <= queued_at <= start_offset
        assert start_offset + total_time <= length
    assert not any(SECRET in row[7] for row in rows)
    outcomes: dict[str, int] = {}
    for row in rows:
        outcomes[row[2]] = outcomes.get(row[2], 0) + 1
    assert {"ok", "retried", "failed"} <= set(outcomes)
    # the engine's events travelled from the workers too: retries, a Retry-After, a host down
    assert events["request_retried"] >= 1 and events["host_paused"] >= 1
    assert events["host_down"] >= 1
    assert _requests_by_outcome(prom) == outcomes
    page = _check_page(report, tmp_path, len(urls), "cluster-fetch")
    data = _data(page)
    drawn = {name: data["o"].count(i) for i, name in enumerate(data["outcomes"])}
    assert {k: v for k, v in drawn.items() if v} == outcomes
    assert run_id in page


def test_a_cluster_fetch_of_one_shard_into_jsonl_reports_from_the_rows_it_gathered(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    urls = _faulty_urls(cli_fleet, uuid.uuid4().hex[:8])
    out, report = tmp_path / "out.jsonl", tmp_path / "cluster-jsonl.html"
    _fetch_on_cluster(run_cli, tmp_path, urls, out, "--shard", "1/2", "--report", str(report))
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == sum(ShardSelector(1, 2).holds(url) for url in urls) > 0
    page = _check_page(report, tmp_path, len(written), "cluster-jsonl")
    data = _data(page)
    failed = data["outcomes"].index("failed")
    assert data["o"].count(failed) == sum(not r["ok"] for r in written)
    assert len(data["u"]) == len(written)
    assert not list(tmp_path.glob("fetchpipe-log-*"))
