"""Quotas across runs and processes, through the command line: real `fetch` processes sharing
one quota file in --state-dir, against the fleet's quota-enforcing API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from fetchpipe.sim import Fleet

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def _urls(path: Path, fleet: Fleet, key: str, count: int, start: int = 0) -> str:
    lines = [
        fleet.url(f"/limited/quota/{i}?requests=1000&key={key}", host=2)
        for i in range(start, start + count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _errors(out: Path) -> Counter[str | None]:
    lines = out.read_text(encoding="utf-8").splitlines()
    return Counter(json.loads(line)["error"] for line in lines)


def test_two_processes_sharing_a_quota_send_exactly_the_quota(
    cli_fleet: Fleet, tmp_path: Path
) -> None:
    """Two `fetch` processes at once, 250 requests each, one quota of 300 a day in one state
    directory: the server sees exactly 300; the other 200 end as quota_exhausted."""
    key = f"quota-{time.time_ns()}"
    host = cli_fleet.addresses[2]
    state = tmp_path / "state"
    environ = {**os.environ, "FETCHPIPE_TESTING": "1"}
    processes = []
    for n in range(2):
        urls = _urls(tmp_path / f"urls{n}.txt", cli_fleet, key, 250, start=1000 * n)
        command = [
            *(sys.executable, "-m", "fetchpipe", "fetch", urls),
            *("--out", str(tmp_path / f"out{n}.jsonl"), "--quota", f"{host}=300/day"),
            *("--state-dir", str(state), "--concurrency", "20"),
        ]
        processes.append(
            subprocess.Popen(
                command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [p.communicate(timeout=120) for p in processes]
    codes = sorted(p.returncode for p in processes)
    assert codes in ([0, 1], [1, 1]), outputs  # 500 requests for 300: some fail, nothing else
    assert cli_fleet.limited_counts(key) == {"accepted": 300, "rejected": 0}
    errors = _errors(tmp_path / "out0.jsonl") + _errors(tmp_path / "out1.jsonl")
    assert errors == {None: 300, "quota_exhausted": 200}
    assert (state / "quotas.sqlite").is_file()
    said = "".join(err for _, err in outputs)
    assert "not sent: a quota is spent" in said
    assert f"the quota of {host} (300 requests per day) is spent" in said
    assert "it resets at" in said and "00:00 UTC" in said and "HINT" in said


def test_a_quota_outlives_the_run_and_unspent_reservations_go_back(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    """A run of 30 with a quota of 50 an hour, then a second run of 30: 20 land, 10 end as
    quota_exhausted; what the first run reserved and did not send was given back."""
    key = f"quota-next-{time.time_ns()}"
    host = cli_fleet.addresses[2]
    options = ("--quota", f"{host}=50/hour", "--state-dir", str(tmp_path / "state"))
    first = run_cli(
        "fetch",
        _urls(tmp_path / "a.txt", cli_fleet, key, 30),
        "--out",
        str(tmp_path / "a.jsonl"),
        *options,
    )
    assert first.returncode == 0, first.stderr
    second = run_cli(
        "fetch",
        _urls(tmp_path / "b.txt", cli_fleet, key, 30, start=100),
        "--out",
        str(tmp_path / "b.jsonl"),
        *options,
    )
    assert second.returncode == 1
    assert _errors(tmp_path / "b.jsonl") == {None: 20, "quota_exhausted": 10}
    assert cli_fleet.limited_counts(key) == {"accepted": 50, "rejected": 0}
    assert "00 UTC" in second.stderr


def test_a_bad_quota_exits_2_before_any_request(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    key = f"quota-bad-{time.time_ns()}"
    urls = _urls(tmp_path / "u.txt", cli_fleet, key, 3)
    for bad in ("127.0.0.3=300/week", "127.0.0.3=lots/day", "300/day", "127.0.0.3=0/day"):
        done = run_cli("fetch", urls, "--out", str(tmp_path / "o.jsonl"), "--quota", bad)
        assert done.returncode == 2, (bad, done.stderr)
        assert "--quota" in done.stderr and "HINT" in done.stderr
    assert cli_fleet.limited_counts(key) == {"accepted": 0, "rejected": 0}


def test_a_pipeline_quota_stops_its_source_and_the_next_run_resumes(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    """`run --state-dir`: a source of 6 pages on a host with a quota of 4 a day stops there
    (exit 1, the run kept unfinished, the quota's reset said); the next window (a fresh state
    directory) finishes it without fetching a page twice. A bad quota exits 2."""
    key = f"quota-pipe-{time.time_ns()}"
    host = cli_fleet.addresses[2]
    pipeline = tmp_path / "quota.yaml"
    body = f"""name: quota
destination: duckdb:///{tmp_path}/q.duckdb
hosts:
  "{host}": {{max_concurrency: 1, quota: {{requests: 4, per: day}}}}
sources:
  - name: items
    url: {cli_fleet.url("/limited/quota/1", host=2)}
    params: {{requests: 1000, key: {key}}}
    records: ""
    paginate: {{type: page, param: n, max_pages: 6}}
"""
    pipeline.write_text(body, encoding="utf-8")
    first = run_cli(
        "run", str(pipeline), "--state-dir", str(tmp_path / "s1"), "--commit-every", "0"
    )
    assert first.returncode == 1, first.stderr
    assert f"quota: the quota of {host} (4 requests per day) is spent" in first.stdout
    assert "kept unfinished" in first.stdout
    assert cli_fleet.limited_counts(key) == {"accepted": 4, "rejected": 0}
    second = run_cli("run", str(pipeline), "--state-dir", str(tmp_path / "s2"))
    assert second.returncode == 0, second.stdout + second.stderr
    assert cli_fleet.limited_counts(key) == {"accepted": 6, "rejected": 0}  # 4, then 2

    pipeline.write_text(body.replace("per: day", "per: week"), encoding="utf-8")
    refused = run_cli("validate", str(pipeline))
    assert refused.returncode == 2
    said = refused.stdout + refused.stderr
    assert f'hosts["{host}"].quota.per' in said and "hour" in said
