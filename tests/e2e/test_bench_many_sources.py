"""`fetchpipe bench many-sources` end to end at a small size (the plumbing and the checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import RunCli
from tests.e2e.test_bench import _bars

pytestmark = pytest.mark.timeout(120)


def test_bench_many_sources_times_the_engine_and_each_destination_against_the_floor(
    run_cli: RunCli, tmp_path: Path
) -> None:
    proc = run_cli(
        *("bench", "many-sources", "--hosts", "3", "--sources", "3", "--pages", "4"),
        *("--delay-ms", "5", "--per-host", "2", "--rounds", "2"),
        *("--json", str(tmp_path / "m.json"), "--chart", str(tmp_path / "m.svg")),
        timeout=100,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "every page in every destination, once: yes" in proc.stdout
    report = json.loads((tmp_path / "m.json").read_text())
    # three sources per host, two at a time: two rounds of four pages of 5 ms
    assert report["floor_seconds"] == pytest.approx(0.04)
    assert report["clean"] and report["requests"] == 36
    runs = report["runs"]
    assert list(runs) == ["engine", "jsonl", "duckdb"]
    for name, run in runs.items():
        assert run["rows"] == 36 and run["ok"], name
        assert len(run["rounds"]) == 2 and run["seconds"] >= report["floor_seconds"]
        assert run["over_floor"] == pytest.approx(run["seconds"] / report["floor_seconds"])
        assert run["over_engine"] == pytest.approx(run["seconds"] / runs["engine"]["seconds"])
        assert run["cpu"] > 0 and run["cpu_over_engine"] == pytest.approx(
            run["cpu"] / runs["engine"]["cpu"]
        )
    # the destinations are made in a temporary directory, never where the command runs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.svg"]
    assert set(_bars(tmp_path / "m.svg")) == {
        "engine alone",
        "pipeline -> jsonl",
        "pipeline -> duckdb",
    }
