"""``fetchpipe bench politeness`` as a real subprocess, small: the table, the JSON, the chart."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def test_bench_politeness_counts_the_429s_of_each_client(run_cli: RunCli, tmp_path: Path) -> None:
    out, chart = tmp_path / "politeness.json", tmp_path / "politeness.svg"
    proc = run_cli(
        *("bench", "politeness", "--published", "9", "--limit", "3", "--window", "1"),
        *("--silent", "60", "--rate", "40", "--concurrency", "10"),
        *("--clients", "fetchpipe,gather", "--json", str(out), "--chart", str(chart)),
        *("--tokens", "12"),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "published limit: 9 requests to an API publishing 3 per 1 s" in proc.stdout
    report = json.loads(out.read_text())
    published = {r["name"]: r for r in report["published"]["runs"]}
    assert published["fetchpipe"]["landed"] == 9 and published["fetchpipe"]["server_429"] == 0
    assert published["gather"]["server_429"] == 6  # 3 let through of the 9 sent at once
    silent = {r["name"]: r for r in report["silent"]["runs"]}
    assert silent["fetchpipe"]["landed"] == 60
    assert report["published"]["ideal_seconds"] == 3.0
    tokens = report["tokens"]  # 12 requests, 3 per second per token: with one, then two
    assert [(r["tokens"], r["landed"], r["server_429"]) for r in tokens["runs"]] == [
        (1, 12, 0),
        (2, 12, 0),
    ]
    assert tokens["ratio_throughput_two_vs_one"] > 0
    assert "two tokens / one: throughput" in proc.stdout
    assert chart.read_text().startswith("<svg")


def test_bench_politeness_unknown_client_is_a_usage_error(run_cli: RunCli) -> None:
    proc = run_cli("bench", "politeness", "--clients", "fetchpipe,curl")
    assert proc.returncode == 2
    assert "unknown client(s): curl" in proc.stderr
