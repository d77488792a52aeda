"""`fetchpipe bench scale-pipeline` end to end at a small size (the plumbing and the checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import RunCli
from tests.e2e.test_bench import _bars

pytestmark = pytest.mark.timeout(180)


def test_bench_scale_pipeline_reports_both_runs_their_rows_and_the_limits(
    run_cli: RunCli, tmp_path: Path
) -> None:
    proc = run_cli(
        *("bench", "scale-pipeline", "--hosts", "6", "--sources", "3", "--pages", "4"),
        *("--delay-ms", "5", "--per-host", "2"),
        *("--json", str(tmp_path / "s.json"), "--chart", str(tmp_path / "s.svg")),
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr
    assert "per-host limit 2: held in both runs" in proc.stdout
    assert "rows 72 / 72, the same rows in every table: yes" in proc.stdout
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["clean"] and report["limits_held"] and report["requests"] == 72
    assert report["local"]["rows"] == report["cluster"]["rows"] == 72
    # three sources per host, two at a time: the limit is reached at the server, not exceeded
    assert report["local"]["max_in_flight"] == report["cluster"]["max_in_flight"] == 2
    assert report["cluster_over_local"] == pytest.approx(
        report["cluster"]["seconds"] / report["local"]["seconds"]
    )
    assert report["cluster_start"] > 0
    assert set(_bars(tmp_path / "s.svg")) == {"local", "dask x2"}
