"""Politeness per host from a cluster, as a user meets it: real ``fetchpipe`` processes on a
LocalCluster of two worker processes against simulated hosts that limit their rate (one
silently, with bare 429s, one publishing its limit in ``RateLimit-Policy``).

A cluster ``fetch`` shows each host's figures in its summary, and with ``--report`` keeps them
in its run's row in a DuckDB output (``_fetchpipe_runs.politeness``) and shows them in the
report, as a local run of the same URLs does; the silent host is heavy enough to be split over
both tasks, so its figures are the sum of two engines'. A JSON Lines output's report shows them
from memory. A pipeline run on the cluster keeps them too (``run --json`` and its row).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from fetchpipe.sim import Fleet
from tests.e2e.conftest import RunCli
from tests.e2e.test_cli_politeness_report import _table

pytestmark = pytest.mark.timeout(180)

SILENT, PUBLISHED = 1, 2  # the fleet's hosts
CLUSTER = ("--executor", "dask", "--workers", "2")


def _urls(fleet: Fleet, tag: str) -> list[str]:
    """30 requests to a host allowing 10/s in bursts of 2 with a bare 429 beyond it, and 8 to
    one publishing 4 per second: a few seconds of requests."""
    return [
        *(
            fleet.url(f"/limited/silent/{i}?rate=10&burst=2&key=s-{tag}", host=SILENT)
            for i in range(30)
        ),
        *(
            fleet.url(
                f"/limited/published/{i}?limit=4&window=1&key=p-{tag}&headers=ietf", PUBLISHED
            )
            for i in range(8)
        ),
    ]


def _fetch(run_cli: RunCli, fleet: Fleet, out: Path, *extra: str) -> tuple[str, Path]:
    """Fetch the URLs into ``out`` with a report beside it: stderr and the report's path."""
    urls, report = out.with_suffix(".txt"), out.with_suffix(".html")
    urls.write_text("\n".join(_urls(fleet, f"{out.stem}-{time.time_ns()}")) + "\n")
    done = run_cli(
        "fetch", str(urls), "--out", str(out), "--report", str(report), *extra, timeout=150
    )
    assert done.returncode == 0, done.stderr
    return done.stderr, report


def _politeness(db: Path) -> dict[str, dict[str, Any]]:
    with duckdb.connect(str(db), read_only=True) as connection:
        rows = connection.execute("SELECT status, politeness FROM _fetchpipe_runs").fetchall()
    ((status, politeness),) = rows
    assert status == "done" and politeness is not None
    kept: dict[str, dict[str, Any]] = json.loads(politeness)
    return kept


def test_a_cluster_fetch_keeps_each_host_s_figures_as_a_local_fetch_does(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    silent, published = cli_fleet.addresses[SILENT], cli_fleet.addresses[PUBLISHED]
    local_out, cluster_out = tmp_path / "local.duckdb", tmp_path / "cluster.duckdb"
    _, local_report = _fetch(run_cli, cli_fleet, local_out)
    stderr, cluster_report = _fetch(run_cli, cli_fleet, cluster_out, *CLUSTER)
    assert "dask LocalCluster, 2 workers" in stderr
    assert f"split host {silent}" in stderr  # its figures come from two engines at once
    local, cluster = _politeness(local_out), _politeness(cluster_out)
    assert set(cluster) == set(local) == {silent, published}
    for host in (silent, published):
        assert set(cluster[host]) == set(local[host])  # the same figures, named alike
        assert (cluster[host]["learned"], cluster[host]["source"]) == (
            local[host]["learned"],
            local[host]["source"],
        )
    assert cluster[silent]["throttled"] > 0 and local[silent]["throttled"] > 0
    assert cluster[silent]["learned"] is True and cluster[silent]["per_second"] > 0
    assert cluster[silent]["limit"].startswith("learned ")
    assert cluster[published]["limit"] == "published 4 per 1 s (RateLimit-Policy)"
    # the summary shows them as a local run's does
    assert re.search(
        rf"rate limit {re.escape(silent)} +│ +learned [\d.]+/s, {cluster[silent]['throttled']} "
        r"429s?, paused",
        stderr,
    ), stderr
    assert re.search(
        rf"rate limit {re.escape(published)} +│ +published 4 per 1 s \(RateLimit-Policy\)", stderr
    ), stderr
    assert "| rate limits: 2 hosts, " in stderr
    # the report shows them as a local run's does, and fetchpipe runs reads them back
    rows, local_rows = _table(cluster_report.read_text()), _table(local_report.read_text())
    assert set(rows) == set(local_rows) == {silent, published}
    assert [rows[host][1] for host in (silent, published)] == [
        local_rows[host][1] for host in (silent, published)
    ]  # how each limit is known
    assert rows[silent][2] == str(cluster[silent]["throttled"])
    assert rows[published][:2] == ["4 per 1 s", "published (RateLimit-Policy)"]
    listed = run_cli("runs", str(cluster_out), "--json")
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)["runs"]
    assert run["politeness"] == cluster


def test_a_cluster_fetch_into_json_lines_reports_them_from_memory(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    silent, published = cli_fleet.addresses[SILENT], cli_fleet.addresses[PUBLISHED]
    stderr, report = _fetch(run_cli, cli_fleet, tmp_path / "cluster.jsonl", *CLUSTER)
    assert f"split host {silent}" in stderr
    rows = _table(report.read_text())
    assert set(rows) == {silent, published}
    assert int(rows[silent][2]) > 0 and rows[silent][1].startswith("learned")
    assert rows[published][:2] == ["4 per 1 s", "published (RateLimit-Policy)"]


def test_a_pipeline_run_on_the_cluster_keeps_each_host_s_figures(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    tag, db = f"pipe-{time.time_ns()}", tmp_path / "pipe.duckdb"
    silent, published = cli_fleet.addresses[SILENT], cli_fleet.addresses[PUBLISHED]
    sources = [
        {
            "name": f"silent{i}",
            "url": cli_fleet.url(f"/limited/silent/{i}", host=SILENT),
            "params": {"rate": 5, "burst": 1, "key": f"s-{tag}"},
            "records": "",
        }
        for i in range(12)
    ]
    sources.append(
        {
            "name": "published",
            "url": cli_fleet.url("/limited/published/1", host=PUBLISHED),
            "params": {"limit": 2, "window": 1, "key": f"p-{tag}"},
            "records": "",
        }
    )
    pipeline = tmp_path / "limited.yaml"
    config = {"name": "limited", "destination": f"duckdb:///{db}", "sources": sources}
    pipeline.write_text(yaml.safe_dump(config), encoding="utf-8")
    summary = tmp_path / "run.json"
    done = run_cli("run", str(pipeline), *CLUSTER, "--json", str(summary), timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running on dask LocalCluster, 2 workers" in done.stderr
    figures = json.loads(summary.read_text())["rate_limits"]
    assert set(figures) == {silent, published}
    assert figures[silent]["throttled"] > 0 and figures[silent]["learned"] is True
    assert figures[published]["limit"] == "published 2 per 1 s (RateLimit-Policy)"
    assert _politeness(db) == figures
    assert f"rate limit: {published}: published 2 per 1 s (RateLimit-Policy)" in done.stdout
