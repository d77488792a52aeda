"""The benchmark commands run end to end (small sizes: these check the plumbing, not speed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.e2e.conftest import RunCli


def test_bench_throughput_reports_both_clients_and_a_ratio(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    proc = run_cli("bench", "throughput", "--requests", "300", "--rounds", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"ratio fetchpipe / raw: \d+\.\d\d", proc.stdout)
    assert "event loop uvloop" in proc.stdout
    report = json.loads(out.read_text())
    assert report["requests"] == 300 and len(report["rounds"]) == 2
    for round_ in report["rounds"]:
        assert round_["raw_aiohttp"]["ok"] == 300 and round_["fetchpipe"]["ok"] == 300
    rates = report["median_rate"]
    assert report["ratio"] == rates["fetchpipe"] / rates["raw_aiohttp"]
    assert report["machine"]["cpus"] >= 1


def test_bench_memory_measures_a_child_process(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    proc = run_cli("bench", "memory", "--urls", "2000", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["urls"] == 2000 and report["ok"] == 2000
    assert 10 < report["peak_rss_mb"] < 500
    assert f"peak RSS {report['peak_rss_mb']:.1f} MB" in proc.stdout
