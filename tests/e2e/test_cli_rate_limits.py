"""Rate limits through the command line: `fetch` paces by a published limit and says so in its
summary, `--no-adaptive` does not; a pipeline's `adaptive` keys; all as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from fetchpipe.sim import Fleet

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def _urls(path: Path, fleet: Fleet, key: str, count: int) -> str:
    lines = [
        fleet.url(f"/limited/published/{i}?limit=4&window=1&key={key}", host=3)
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_fetch_paces_a_published_limit_and_reports_it(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    key = f"cli-{time.time_ns()}"
    urls = _urls(tmp_path / "urls.txt", cli_fleet, key, 10)
    done = run_cli("fetch", urls, "--out", str(tmp_path / "out.jsonl"))
    assert done.returncode == 0, done.stderr
    assert cli_fleet.limited_counts(key) == {"accepted": 10, "rejected": 0}
    host = cli_fleet.addresses[3]
    assert f"rate limit {host}" in done.stderr
    assert "published 4 per 1 s (RateLimit-Policy), 0 429s, paused" in done.stderr
    assert "| rate limits: 1 host, 0 429s, paused" in done.stderr


def test_fetch_no_adaptive_runs_into_the_limit(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    key = f"cli-off-{time.time_ns()}"
    urls = _urls(tmp_path / "urls.txt", cli_fleet, key, 10)
    done = run_cli("fetch", urls, "--out", str(tmp_path / "out.jsonl"), "--no-adaptive")
    assert cli_fleet.limited_counts(key)["rejected"] > 0
    assert "rate limit" not in done.stderr  # nothing kept without a pace


def test_a_pipeline_reports_rate_limits_and_checks_its_adaptive_keys(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    key = f"pipe-{time.time_ns()}"
    host = cli_fleet.addresses[3]
    pipeline = tmp_path / "limited.yaml"
    pipeline.write_text(
        f"""name: limited
destination: jsonl:///{tmp_path}/out
defaults:
  adaptive: {{first_wait: 2.0}}
hosts:
  "{host}": {{max_concurrency: 20, adaptive: true}}
sources:
  - name: items
    url: {cli_fleet.url("/limited/published/1", host=3)}
    params: {{limit: 2, window: 1, key: {key}}}
    records: ""
""",
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    done = run_cli("run", str(pipeline), "--json", str(report))
    assert done.returncode == 0, done.stderr
    assert f"rate limit: {host}: published 2 per 1 s (RateLimit-Policy), 0 429s" in done.stdout
    info = json.loads(report.read_text())["rate_limits"][host]
    assert info["published"] == "2 per 1 s" and info["throttled"] == 0
    assert info["source"] == "RateLimit-Policy" and info["unavailable"] == 0
    assert info["limit"] == "published 2 per 1 s (RateLimit-Policy)"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        pipeline.read_text().replace("{first_wait: 2.0}", "{decrease: 1.5}"), encoding="utf-8"
    )
    refused = run_cli("validate", str(bad))
    assert refused.returncode == 2
    assert "defaults.adaptive.decrease" in refused.stdout + refused.stderr
