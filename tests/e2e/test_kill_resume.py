"""``fetchpipe run`` killed with SIGKILL at several points, resumed each time: every record lands
exactly once.

10,000 events (50 days x 200, two pages a day) under a parent source, 30% of the URLs answering
503 to their first request. The process is killed once the simulated API has received a given
number of requests since it started, so the kill points follow the run's progress, not the
clock of a shared machine.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import yaml

from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import shop_day_events
from tests.e2e.conftest import RunCli

DAYS, PER_DAY, PER_PAGE = 50, 200, 100
KILL_AFTER_REQUESTS = (25, 40, 30, 50)


def pipeline_file(path: Path, fleet: Fleet, db: Path) -> Path:
    config = {
        "name": "events",
        "destination": f"duckdb:///{db}",
        "defaults": {"retry": {"attempts": 8}},
        "hosts": {fleet.addresses[2]: {"max_concurrency": 4}},
        "sources": [
            {
                "name": "days",
                "url": fleet.url("/shop/v1/days", host=2),
                "params": {"count": DAYS, "fail": 0.3},
                "records": "days",
                "primary_key": "id",
                "write": "merge",
            },
            {
                "name": "events",
                "url": fleet.url("/shop/v1/days/", host=2) + "{days.id}/events",
                "params": {"per_page": PER_PAGE, "per_day": PER_DAY, "fail": 0.3, "delay_ms": 10},
                "records": "events",
                "write": "append",  # anything written twice would show as a duplicate
                "paginate": {"type": "page"},
            },
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def content_hash(rows: list[tuple[object, ...]]) -> str:
    return hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()


def expected_events() -> list[tuple[object, ...]]:
    return [
        (e["id"], e["day_id"], e["kind"], e["amount"], e["meta"]["n"])
        for day in range(1, DAYS + 1)
        for e in shop_day_events(day, PER_DAY)
    ]


def run_until_killed(args: list[str], counted: Callable[[], int], requests: int) -> bool:
    """Start the run; SIGKILL it once ``counted()`` (the API's request count) has grown by
    ``requests``. True if it was killed, False if it ended first."""
    start = counted()
    env = {**os.environ, "FETCHPIPE_TESTING": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if counted() - start >= requests:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                return True
            time.sleep(0.002)
        raise AssertionError("the run neither ended nor progressed within 60 s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_sigkill_at_several_points_then_resume_lands_every_record_once(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "events.duckdb"
    path = pipeline_file(tmp_path / "events.yaml", cli_fleet, db)
    args = [sys.executable, "-m", "fetchpipe", "run", str(path), "--commit-every", "0.02", "-q"]
    host = cli_fleet.addresses[2]
    before = cli_fleet.stats.requests(host=host)
    kills = 0
    run_ids = set()
    for requests in KILL_AFTER_REQUESTS:
        if not run_until_killed(args, lambda: cli_fleet.stats.requests(host=host), requests):
            break
        kills += 1
        with duckdb.connect(str(db)) as connection:  # replays the killed process's WAL
            runs = connection.execute("SELECT run_id, status FROM _fetchpipe_runs").fetchall()
            pages = connection.execute("SELECT count(*) FROM _fetchpipe_pages").fetchall()
        assert [status for _, status in runs] == ["running"]  # one run, resumed each time
        run_ids.add(runs[0][0])
        assert pages[0][0] > 0 or kills == 1
    assert kills >= 3, "the run ended before it could be killed at several points"
    assert len(run_ids) == 1

    final = run_cli("run", str(path), "--json", str(tmp_path / "report.json"))
    assert final.returncode == 0, final.stdout + final.stderr
    assert "(resumed)" in final.stdout
    with duckdb.connect(str(db), read_only=True) as connection:
        counts = connection.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchall()
        rows = connection.execute(
            "SELECT id, day_id, kind, amount, CAST(meta->>'n' AS INTEGER) FROM events"
        ).fetchall()
        days = connection.execute("SELECT count(*) FROM days").fetchall()
    expected = expected_events()
    assert counts == [(DAYS * PER_DAY, DAYS * PER_DAY)]  # 0 duplicates, 0 missing
    assert content_hash(rows) == content_hash(expected)
    assert days == [(DAYS,)]
    pages = 1 + DAYS * (PER_DAY // PER_PAGE + 1)
    sent = cli_fleet.stats.requests(host=host) - before
    assert sent > pages  # the injected 503s were retried (and pages lost to kills refetched)
