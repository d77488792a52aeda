"""`fetchpipe bench scale` end to end at a small size (the plumbing and the checks, not speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import RunCli
from tests.e2e.test_bench import _bars

pytestmark = pytest.mark.timeout(180)


def test_bench_scale_reports_time_limits_and_the_overhead_of_distribution(
    run_cli: RunCli, tmp_path: Path
) -> None:
    proc = run_cli(
        *("bench", "scale", "--requests", "600", "--hosts", "30", "--delay-ms", "5"),
        *(
            "--per-host",
            "2",
            "--json",
            str(tmp_path / "s.json"),
            "--chart",
            str(tmp_path / "s.svg"),
        ),
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr
    assert "per-host limit 2: held in both runs" in proc.stdout
    assert "each URL once: yes" in proc.stdout
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["clean"] and report["limits_held"]
    assert report["local"]["rows"] == report["cluster"]["run"]["rows"] == 600
    assert 1 <= report["cluster"]["run"]["max_in_flight"] <= 2
    parts = ("cluster_start", "plan", "shipping", "merge")
    assert report["cluster"]["overhead_seconds"] == pytest.approx(
        sum(report["cluster"][name] for name in parts)
    )
    assert report["cluster"]["cluster_start"] > 0 and report["cluster"]["batches"] >= 2
    assert set(_bars(tmp_path / "s.svg")) == {"local", "dask x2"}
