"""``fetchpipe fetch`` killed with SIGKILL mid-run, then ``fetch --resume``: real subprocesses
against the simulated fleet, JSONL and DuckDB outputs.

The kill lands while the fleet is still answering (each request waits a few milliseconds on
the server, four at a time). What the server had finished answering is sampled while the run
goes, so "at most about a second of results is missing" is checked against the server's own
count two seconds before the kill (one second of promise, one of slack for a shared machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe.sim import Fleet
from tests.e2e.conftest import RunCli

OK_URLS, FAILING_URLS = 600, 20
DELAY = 0.03
CONCURRENCY = 4
KILL_AFTER = 450
"""Requests the fleet has received from the run when it is killed (of 620)."""
SECRET = "s3cr3t-api-key-value"


def _urls(fleet: Fleet) -> tuple[list[str], list[str]]:
    ok = [fleet.url(f"/delay?seconds={DELAY}&i={i}", host=i % 4) for i in range(OK_URLS)]
    failing = [fleet.url(f"/status/500?i={i}", host=i % 4) for i in range(FAILING_URLS)]
    return ok, failing


def _input(path: Path, ok: list[str], failing: list[str]) -> Path:
    lines = list(ok)
    for n, url in enumerate(failing):  # spread over the run
        lines.insert(n * (OK_URLS // FAILING_URLS), url)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _fetch_args(urls: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fetchpipe",
        "fetch",
        str(urls),
        "--out",
        str(out),
        "--retries",
        "0",
        "--concurrency",
        str(CONCURRENCY),
        *extra,
    ]


def _answered(fleet: Fleet) -> int:
    """Requests the fleet has finished answering (fleet-wide, cumulative)."""
    return fleet.stats.requests() - fleet.stats.in_flight()


def _kill_after(
    args: list[str], fleet: Fleet, requests: int
) -> tuple[float, list[tuple[float, int]]]:
    """Run ``args``; SIGKILL it once the fleet received ``requests`` more requests. Returns the
    time of the kill and samples of (time, requests answered since the start)."""
    start = fleet.stats.requests()
    answered_at_start = _answered(fleet)
    env = {**os.environ, "FETCHPIPE_TESTING": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the run ended (exit {proc.returncode}) before the kill")
            samples.append((time.monotonic(), _answered(fleet) - answered_at_start))
            if fleet.stats.requests() - start >= requests:
                killed_at = time.monotonic()
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                assert proc.returncode == -signal.SIGKILL
                return killed_at, samples
            time.sleep(0.005)
        raise AssertionError("the run neither ended nor progressed within 60 s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answered_by(samples: list[tuple[float, int]], moment: float) -> int:
    return max((count for at, count in samples if at <= moment), default=0)


def _jsonl_rows(path: Path) -> tuple[list[dict[str, Any]], bytes]:
    """Every complete line, parsed (each must parse), and the torn tail (``b""`` if none)."""
    data = path.read_bytes()
    body, _, tail = data.rpartition(b"\n")
    return [json.loads(line) for line in body.splitlines() if line.strip()], tail


def _duckdb_rows(path: Path) -> list[dict[str, Any]]:
    with duckdb.connect(str(path), read_only=True) as db:  # replays the killed run's WAL
        cursor = db.execute("SELECT url, ok, status FROM responses")
        return [{"url": u, "ok": ok, "status": s} for u, ok, s in cursor.fetchall()]


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        rows, tail = _jsonl_rows(path)
        assert tail == b""
        return rows
    return _duckdb_rows(path)


@pytest.mark.parametrize("name", ["out.jsonl", "out.duckdb"])
def test_a_killed_fetch_keeps_its_results_and_resume_fetches_only_the_rest(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path, name: str
) -> None:
    ok, failing = _urls(cli_fleet)
    urls = _input(tmp_path / "urls.txt", ok, failing)
    out = tmp_path / name

    killed_at, samples = _kill_after(_fetch_args(urls, out), cli_fleet, KILL_AFTER)

    if out.suffix == ".jsonl":
        before, tail = _jsonl_rows(out)
        if not tail and before:  # the kill fell between writes: tear the last line as a
            with out.open("ab") as file:  # kill inside the write itself would
                file.write(out.read_bytes().splitlines()[-1][:40])
    else:
        before = _duckdb_rows(out)
    answered = _answered_by(samples, killed_at)
    two_seconds_earlier = _answered_by(samples, killed_at - 2.0)
    assert answered >= KILL_AFTER - 2 * CONCURRENCY  # the run was well under way
    assert two_seconds_earlier > 100
    assert two_seconds_earlier <= len(before) <= answered  # at most ~a second missing
    reached = min((at for at, count in samples if count >= len(before)), default=killed_at)
    print(  # the figures of the README's promise (pytest -s)
        f"\n{name}: killed after {answered} answers; {len(before)} results on disk, as many "
        f"as the server had answered {killed_at - reached:.2f} s before the kill"
    )
    ok_before = Counter(row["url"] for row in before if row["ok"])
    assert max(ok_before.values()) == 1  # no success written twice
    assert set(ok_before) <= set(ok)
    failed_before = Counter(row["url"] for row in before if not row["ok"])
    assert set(failed_before) <= set(failing)

    sent_before = cli_fleet.stats.requests()
    resumed = run_cli(*_fetch_args(urls, out, "--resume")[3:], timeout=120)

    assert resumed.returncode == 1, resumed.stderr  # the failing URLs fail again
    to_fetch = OK_URLS + FAILING_URLS - len(ok_before)
    assert f"resuming: {len(ok_before):,} already fetched, skipped; {to_fetch:,} to fetch" in (
        resumed.stderr
    )
    if out.suffix == ".jsonl":
        assert "torn line" in resumed.stderr
    assert cli_fleet.stats.requests() - sent_before == to_fetch  # nothing fetched twice
    after = _rows(out)
    assert len(after) == len(before) + to_fetch
    ok_after = Counter(row["url"] for row in after if row["ok"])
    assert ok_after == Counter(ok)  # every success exactly once
    failed_after = Counter(row["url"] for row in after if not row["ok"])
    assert failed_after == failed_before + Counter(failing)  # failed ones fetched again
    if out.suffix == ".jsonl":
        with duckdb.connect() as db:  # a strict reader of the whole file
            count = db.execute(
                "SELECT count(*) FROM read_json(?, format = 'newline_delimited')", [str(out)]
            ).fetchone()
        assert count == (len(after),)


@pytest.mark.parametrize("name", ["out.jsonl", "out.duckdb"])
def test_results_before_a_stall_reach_the_file_while_the_run_waits(
    cli_fleet: Fleet, tmp_path: Path, name: str
) -> None:
    fast = [cli_fleet.url(f"/item/{i}", host=i % 4) for i in range(30)]
    stall = cli_fleet.url("/delay?seconds=8&stall=1", host=0)  # outlasts the wait below
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{url}\n" for url in [*fast, stall]))
    out = tmp_path / name
    start = cli_fleet.stats.requests()
    env = {**os.environ, "FETCHPIPE_TESTING": "1"}
    args = _fetch_args(urls, out)
    args[args.index("--concurrency") + 1] = "100"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(2000):  # until only the stalled request is left (20 s at most)
            if cli_fleet.stats.requests() - start == 31 and cli_fleet.stats.in_flight() == 1:
                break
            assert proc.poll() is None
            time.sleep(0.01)
        else:
            raise AssertionError("the fleet did not receive the 31 requests within 20 s")
        time.sleep(2.0)  # one second of promise, one of slack; no result arrives meanwhile
        assert proc.poll() is None  # still waiting for the stalled request
        assert cli_fleet.stats.in_flight() == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    rows = _rows(out)
    assert sorted(row["url"] for row in rows) == sorted(fast)
    assert all(row["ok"] for row in rows)


@pytest.mark.parametrize("name", ["out.jsonl", "out.duckdb"])
def test_resume_matches_keys_and_redacted_urls(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path, name: str
) -> None:
    item = cli_fleet.url("/item/1", host=1)
    lines = [
        f"{item}?api_key={SECRET}",  # stored with api_key=REDACTED
        json.dumps({"url": cli_fleet.url("/item/2"), "key": "k2", "params": {"x": 1}}),
        json.dumps({"url": cli_fleet.url("/item/3"), "params": {"x": 1}}),  # no key
        json.dumps({"url": cli_fleet.url("/item/4"), "key": 4}),
        cli_fleet.url("/item/5", host=2),
    ]
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{line}\n" for line in lines))
    out = tmp_path / name

    first = run_cli("fetch", str(urls), "--out", str(out))
    sent = cli_fleet.stats.requests()
    resumed = run_cli("fetch", str(urls), "--out", str(out), "--resume")

    assert first.returncode == 0, first.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 4 already fetched, skipped; 1 to fetch" in resumed.stderr
    assert "1 request with params or a JSON body but no key" in resumed.stderr
    assert 'HINT: give each request a "key"' in resumed.stderr
    assert cli_fleet.stats.requests() - sent == 1
    assert cli_fleet.stats.requests(path="/item/3") >= 2
    rows = _rows(out)
    assert len(rows) == 6
    assert all(SECRET not in json.dumps(row) for row in rows)
    assert SECRET.encode() not in out.read_bytes()


def test_resume_without_an_output_is_a_normal_run(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{cli_fleet.url('/item/1')}\n{cli_fleet.url('/item/2')}\n")
    out = tmp_path / "new.jsonl"

    result = run_cli("fetch", str(urls), "--out", str(out), "--resume")

    assert result.returncode == 0, result.stderr
    assert f"resuming: {out} does not exist yet; fetching all 2" in result.stderr
    assert len(_rows(out)) == 2


@pytest.mark.parametrize("resume", [True, False])
def test_a_duckdb_file_named_jsonl_is_refused_before_any_request(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path, resume: bool
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{cli_fleet.url('/item/1')}\n")
    out = tmp_path / "results.jsonl"
    with duckdb.connect(str(out)) as db:
        db.execute("CREATE TABLE responses AS SELECT 1 AS x")
    content = out.read_bytes()
    sent = cli_fleet.stats.requests()

    result = run_cli("fetch", str(urls), "--out", str(out), *(["--resume"] if resume else []))

    assert result.returncode == 2
    assert "is a DuckDB database" in result.stderr
    assert "HINT:" in result.stderr
    assert cli_fleet.stats.requests() == sent
    assert out.read_bytes() == content
