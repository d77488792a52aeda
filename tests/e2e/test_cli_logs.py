"""Logs, the request log and the run history, as a user meets them: real ``fetchpipe`` processes
against the simulated fleet with faults (5xx bursts, a 429 with Retry-After, a host that is
down, slow answers).

- ``fetch --log-format json --log-level debug``: every stderr line is whole (a JSON record or a
  line of the progress and summary), the records hold the events, the output's request log
  matches the summary.
- ``run`` twice: the log holds the pipeline's events with their sources; the request table's
  rows match each run's report; ``fetchpipe runs`` lists both runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import duckdb
import yaml

from fetchpipe._log import FIELDS
from fetchpipe.sim import Fleet
from tests.e2e.conftest import RunCli
from tests.e2e.shop_sources import shop_and_flaky_sources

PROGRESS = re.compile(r"fetchpipe: \d+/\d+ done, \d+ ok, \d+ failed, [\d.]+ req/s")


def _json_records(stderr: str) -> list[dict[str, Any]]:
    """The JSON log records of ``stderr``; every line that is not one must be a whole line of
    the progress or of the summary (a record cut by another line would show here)."""
    records = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))  # a torn record fails to parse
        else:
            assert '{"ts"' not in line, f"a log record inside another line: {line!r}"
            assert not line.startswith("fetchpipe:") or PROGRESS.fullmatch(line), line
    return records


def test_fetch_logs_json_lines_and_keeps_a_request_log(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    urls = [
        cli_fleet.url(f"/status/503,503,200?key=flaky-{tag}", host=0),
        cli_fleet.url(f"/ratelimit?key=rl-{tag}&after=1", host=1),
        cli_fleet.url("/delay?seconds=2.5", host=0),  # long enough for plain progress lines
        *(cli_fleet.url(f"/status/500?key=budget-{tag}-{i}", host=2) for i in range(3)),
        *(cli_fleet.url(f"/status/500?key=down-{tag}-{i}", host=3) for i in range(25)),
        *(cli_fleet.url(f"/json?n={i}&api_key=canary-fetch-log", host=0) for i in range(40)),
    ]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    out = tmp_path / "out.duckdb"
    done = run_cli(
        "fetch",
        str(tmp_path / "urls.txt"),
        "--out",
        str(out),
        "--retries",
        "2",
        "--retry-budget",
        "3",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    )
    assert done.returncode == 1, done.stderr  # the failing hosts' requests failed
    assert "canary-fetch-log" not in done.stderr
    records = _json_records(done.stderr)
    assert any(PROGRESS.fullmatch(line) for line in done.stderr.splitlines())
    for record in records:
        assert {"ts", "level", *FIELDS} <= set(record), record
    events = {record["event"] for record in records}
    assert {
        "run_started",
        "request_retried",
        "host_paused",
        "retry_refused",
        "host_down",
        "request_done",
        "run_ended",
    } <= events
    assert len({record["run_id"] for record in records}) == 1
    retried = [r for r in records if r["event"] == "request_retried"]
    flaky = [r for r in retried if "/status/503,503,200?key=REDACTED" in r["url"]]
    assert [(r["attempt"], r["status"], r["error"]) for r in flaky] == [
        (1, 503, "http_status"),
        (2, 503, "http_status"),
    ]
    assert all(r["host"] and isinstance(r["wait"], float) for r in retried)
    paused = next(r for r in records if r["event"] == "host_paused")
    assert (paused["host"], paused["status"], paused["wait"]) == ("127.0.0.2", 429, 1.0)
    down = next(r for r in records if r["event"] == "host_down")
    assert down["host"] == "127.0.0.4" and down["level"] == "warning"
    done_records = [r for r in records if r["event"] == "request_done"]
    assert len(done_records) == len(urls)

    with duckdb.connect(str(out), read_only=True) as db:
        rows = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'failed'), "
            "sum(attempts - 1), count(DISTINCT run_id) FROM _fetchpipe_requests"
        ).fetchone()
        failed_results = db.execute("SELECT count(*) FROM responses WHERE NOT ok").fetchone()
        logged_events = dict(
            db.execute("SELECT event, count(*) FROM _fetchpipe_events GROUP BY event").fetchall()
        )
        run = db.execute("SELECT pipeline, status FROM _fetchpipe_runs").fetchall()
        leaks = db.execute(
            "SELECT count(*) FROM _fetchpipe_requests WHERE url LIKE '%canary%'"
        ).fetchone()
    ended = next(r for r in records if r["event"] == "run_ended")
    assert rows is not None and failed_results is not None
    assert (rows[0], rows[1], rows[3]) == (len(urls), ended["failed"], 1)
    assert rows[1] == failed_results[0]
    assert rows[2] == len(retried) == logged_events["request_retried"]
    assert logged_events["host_down"] >= 1 and logged_events["host_paused"] >= 1
    assert run == [("fetch", "done")]
    assert leaks == (0,)


def test_by_default_the_command_line_shows_the_warnings_only(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    urls = [cli_fleet.url(f"/status/503,200?key=once-{tag}", host=0)]
    urls += [cli_fleet.url(f"/status/500?key=dead-{tag}-{i}", host=3) for i in range(22)]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    done = run_cli("fetch", str(tmp_path / "urls.txt"), "--out", str(tmp_path / "o.jsonl"))
    assert done.returncode == 1
    logged = [
        line for line in done.stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line)
    ]
    assert logged and all(" WARNING host_down: 127.0.0.4 is down" in line for line in logged)


def test_a_library_user_sees_no_log_lines(cli_fleet: Fleet) -> None:
    """Without logging configured, a run with retries and a host down prints nothing."""
    tag = uuid.uuid4().hex[:8]
    code = (
        "import fetchpipe\n"
        f"urls = [{cli_fleet.url(f'/status/500?key=lib-{tag}-', host=3)!r} + str(i) "
        "for i in range(25)]\n"
        "results = fetchpipe.fetch_all(urls, retry=fetchpipe.RetryPolicy(attempts=2))\n"
        "assert sum(not r.ok for r in results) == 25\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FETCHPIPE_TESTING": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def _pipeline(path: Path, fleet: Fleet, destination: Path, tag: str) -> Path:
    config = {
        "name": "logged",
        "destination": f"duckdb:///{destination}",
        "defaults": {"retry": {"attempts": 3, "wait_initial": 0.01}},
        "sources": [
            *shop_and_flaky_sources(fleet, tag),
            {
                "name": "gone",
                "url": fleet.url(f"/status/404?key=gone-{tag}", host=1),
                "records": "",
                "on_status": {404: "skip"},
            },
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_two_runs_log_their_events_record_their_requests_and_are_listed(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    database = tmp_path / "logged.duckdb"
    path = _pipeline(tmp_path / "logged.yaml", cli_fleet, database, uuid.uuid4().hex[:8])
    reports = []
    for number in (1, 2):
        report = tmp_path / f"report{number}.json"
        done = run_cli(
            "run", str(path), "--json", str(report), "--log-format", "json", "--log-level", "debug"
        )
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(report.read_text()))
        records = _json_records(done.stderr)
        assert {r["run_id"] for r in records} == {reports[-1]["run_id"]}
        events = [r["event"] for r in records]
        assert events[0] == "run_started" and events[-1] == "run_ended"
        started = {r["source"] for r in records if r["event"] == "source_started"}
        ended = {r["source"]: r["outcome"] for r in records if r["event"] == "source_ended"}
        assert started == set(ended) == {"products", "reviews", "flaky", "gone"}
        assert {r["source"] for r in records if r["event"] == "page_committed"} >= {
            "products",
            "reviews",
        }
        if number == 1:
            retried = [r for r in records if r["event"] == "request_retried"]
            assert [(r["source"], r["status"], r["attempt"]) for r in retried] == [
                ("flaky", 503, 1),
                ("flaky", 503, 2),
            ]

    with duckdb.connect(str(database), read_only=True) as db:
        for report in reports:
            counts = {
                (source, kind): (n, retries)
                for source, kind, n, retries in db.execute(
                    "SELECT source, outcome, count(*), sum(attempts - 1) FROM _fetchpipe_requests "
                    "WHERE run_id = ? GROUP BY ALL",
                    [report["run_id"]],
                ).fetchall()
            }
            for source in report["sources"]:
                name = source["name"]
                fetched = sum(counts.get((name, k), (0, 0))[0] for k in ("ok", "retried"))
                assert fetched == source["pages"], (name, counts)
                assert counts.get((name, "skipped"), (0, 0))[0] == source["skipped"]
                assert counts.get((name, "failed"), (0, 0))[0] == 0
            retries = sum(r for _, r in counts.values())
            events = db.execute(
                "SELECT count(*) FROM _fetchpipe_events WHERE run_id = ? "
                "AND event = 'request_retried'",
                [report["run_id"]],
            ).fetchone()
            assert events == (retries,)
        assert reports[0]["sources"][2]["name"] == "flaky"
        first = db.execute(
            "SELECT outcome, attempts, status FROM _fetchpipe_requests "
            "WHERE run_id = ? AND source = 'flaky'",
            [reports[0]["run_id"]],
        ).fetchall()
        assert first == [("retried", 3, 200)]
        times = db.execute(
            "SELECT min(start_offset) >= 0, bool_and(queued_at <= start_offset), "
            "bool_and(total_time >= 0), bool_and(time_to_headers <= total_time) "
            "FROM _fetchpipe_requests"
        ).fetchone()
        assert times == (True, True, True, True)
        total = db.execute("SELECT count(*) FROM _fetchpipe_requests").fetchone()

    listed = run_cli("runs", str(path), "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [run["run_id"] for run in runs] == [r["run_id"] for r in reversed(reports)]
    assert [run["status"] for run in runs] == ["done", "done"]
    assert [run["retries"] for run in runs] == [0, 2]
    assert total is not None and sum(run["requests"] for run in runs) == total[0]
    for run, report in zip(runs, reversed(reports), strict=True):
        rows = {s["name"]: s["rows"] for s in run["sources"]}
        assert rows == {s["name"]: s["rows"] for s in report["sources"]}
        assert run["failures"] == 0 and run["seconds"] > 0
    text = run_cli("runs", str(database))
    assert text.returncode == 0, text.stderr
    assert all(report["run_id"] in text.stdout for report in reports)
    assert "products 250" in text.stdout


def test_runs_of_a_destination_never_run_and_of_a_missing_file(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    path = _pipeline(tmp_path / "p.yaml", cli_fleet, tmp_path / "never.duckdb", "x")
    empty = run_cli("runs", str(path))
    assert (empty.returncode, empty.stdout.strip()) == (
        0,
        f"no runs of pipeline logged in {tmp_path / 'never.duckdb'}",
    )
    assert not (tmp_path / "never.duckdb").exists()  # listing creates nothing
    missing = run_cli("runs", str(tmp_path / "nowhere.duckdb"))
    assert missing.returncode == 2
    assert "no such file" in missing.stderr and "HINT" in missing.stderr
