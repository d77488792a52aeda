"""Politeness per host, as a user meets it: real ``fetchpipe`` processes against simulated hosts
that publish a limit (``RateLimit-Policy`` or ``X-RateLimit-*``), answer a 429 or a 503 with
``Retry-After``, or do nothing of the kind.

- the summary lists the hosts where something happened, and only those;
- the run's row in DuckDB keeps the figures (``_fetchpipe_runs.politeness``), the HTML report
  shows them in "Politeness per host" (checked in headless Chromium, with a screenshot), and
  ``fetchpipe report`` draws them again from the file; a JSONL fetch's report has them too;
- a destination made before the column existed is read as it is and completed by the next run.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import duckdb

from fetchpipe.sim import Fleet
from tests.e2e.browser import load, screenshot
from tests.e2e.conftest import RunCli

OLD_RUNS_SCHEMA = (
    "CREATE TABLE _fetchpipe_runs (run_id VARCHAR PRIMARY KEY, pipeline VARCHAR, "
    "config_hash VARCHAR, selected JSON, full_refresh BOOLEAN, status VARCHAR, "
    "started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ)"
)
"""``_fetchpipe_runs`` as files made before the politeness figures were kept have it."""


def _urls(fleet: Fleet, tag: str) -> list[str]:
    """A host publishing 4 per second (IETF headers), one publishing in X-RateLimit-* only,
    a 429 and a 503 with Retry-After on a third, and a healthy fourth."""
    return [
        *(
            fleet.url(f"/limited/published/{i}?limit=4&window=1&key=ietf-{tag}&headers=ietf", 3)
            for i in range(8)
        ),
        *(
            fleet.url(f"/limited/published/{i}?limit=5&window=1&key=x-{tag}&headers=legacy", 2)
            for i in range(6)
        ),
        fleet.url(f"/ratelimit?key=429-{tag}&after=1", host=1),
        fleet.url(f"/ratelimit?key=503-{tag}&after=1&status=503", host=1),
        *(fleet.url(f"/json?n={i}&t={tag}", host=0) for i in range(5)),
    ]


def _fetch(run_cli: RunCli, tmp_path: Path, fleet: Fleet, out: Path, report: Path) -> str:
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(_urls(fleet, str(time.time_ns()))) + "\n")
    done = run_cli("fetch", str(urls), "--out", str(out), "--report", str(report))
    assert done.returncode == 0, done.stderr
    return done.stderr


def _check_summary(stderr: str, fleet: Fleet) -> None:
    ietf, legacy, throttling, healthy = (fleet.addresses[i] for i in (3, 2, 1, 0))
    assert re.search(
        rf"rate limit {re.escape(ietf)} +│ +published 4 per 1 s \(RateLimit-Policy\), 0 429s",
        stderr,
    ), stderr
    assert re.search(
        rf"rate limit {re.escape(legacy)} +│ +published 5 per window \(X-RateLimit-\*\), 0 429s",
        stderr,
    ), stderr
    assert re.search(
        rf"rate limit {re.escape(throttling)} +│ +none known, 1 429, 1 503, paused \d", stderr
    ), stderr
    assert f"rate limit {healthy}" not in stderr  # nothing happened there: not listed
    assert "| rate limits: 3 hosts, 1 429s, paused" in stderr


def _table(page: str) -> dict[str, list[str]]:
    """The rows of the page's "Politeness per host" table: host -> its cells' text."""
    found = re.search(r"<h2>Politeness per host</h2>(.*?)</table>", page, re.S)
    assert found is not None, "no Politeness per host table"
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def _check_table(page: str, fleet: Fleet) -> None:
    ietf, legacy, throttling, healthy = (fleet.addresses[i] for i in (3, 2, 1, 0))
    rows = _table(page)
    assert set(rows) == {ietf, legacy, throttling}
    assert rows[ietf][:4] == ["4 per 1 s", "published (RateLimit-Policy)", "0", "0"]
    assert rows[legacy][:4] == ["5 per window", "published (X-RateLimit-*)", "0", "0"]
    assert rows[throttling][:4] == ["–", "none known", "1", "1"]
    paused = float(rows[throttling][4].removesuffix(" s"))
    assert 1.5 <= paused <= 10  # two Retry-After: 1 pauses, one after the other
    assert healthy not in rows


def test_fetch_into_duckdb_keeps_the_figures_and_the_report_shows_them(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    out, report = tmp_path / "out.duckdb", tmp_path / "politeness.html"
    stderr = _fetch(run_cli, tmp_path, cli_fleet, out, report)
    _check_summary(stderr, cli_fleet)
    with duckdb.connect(str(out), read_only=True) as db:
        row = db.execute("SELECT politeness FROM _fetchpipe_runs").fetchone()
    assert row is not None
    kept = json.loads(row[0])
    throttling = kept[cli_fleet.addresses[1]]
    assert (throttling["throttled"], throttling["unavailable"]) == (1, 1)
    assert kept[cli_fleet.addresses[3]]["source"] == "RateLimit-Policy"
    assert cli_fleet.addresses[0] not in kept
    page = report.read_text()
    _check_table(page, cli_fleet)
    loaded = load(report, tmp_path)
    assert loaded.errors() == "" and loaded.console == (), loaded.console
    assert "Politeness per host" in loaded.dom
    png = screenshot(report, tmp_path / "politeness.png", tmp_path, height=3000)
    print(f"screenshot of the politeness report: {png}")
    again = tmp_path / "again.html"
    done = run_cli("report", str(out), "-o", str(again))
    assert done.returncode == 0, done.stderr
    assert _table(again.read_text()) == _table(page)  # drawn again from the file alone


def test_a_jsonl_fetch_report_shows_them_from_memory(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    out, report = tmp_path / "out.jsonl", tmp_path / "politeness.html"
    stderr = _fetch(run_cli, tmp_path, cli_fleet, out, report)
    _check_summary(stderr, cli_fleet)
    _check_table(report.read_text(), cli_fleet)


def test_a_healthy_run_s_report_says_there_is_nothing_to_show(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(cli_fleet.url(f"/json?n={i}", host=0) + "\n" for i in range(3)))
    report = tmp_path / "healthy.html"
    done = run_cli("fetch", str(urls), "--out", str(tmp_path / "o.duckdb"), "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert "rate limit" not in done.stderr  # a healthy run's summary stays short
    page = report.read_text()
    assert "<h2>Politeness per host</h2>" in page and "No host published a rate limit" in page


def test_a_destination_made_before_the_figures_is_read_and_completed(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    out = tmp_path / "old.duckdb"
    with duckdb.connect(str(out)) as db:
        db.execute(OLD_RUNS_SCHEMA)
        db.execute(
            "INSERT INTO _fetchpipe_runs VALUES ('old-run', 'fetch', NULL, NULL, false, 'done', "
            "TIMESTAMPTZ '2026-01-01 10:00:00+00', TIMESTAMPTZ '2026-01-01 10:00:02+00')"
        )
    listed = run_cli("runs", str(out), "--json")
    assert listed.returncode == 0, listed.stderr
    (old,) = json.loads(listed.stdout)["runs"]
    assert (old["run_id"], old["seconds"], old["politeness"]) == ("old-run", 2.0, {})
    page = tmp_path / "old.html"
    drawn = run_cli("report", str(out), "--run", "old-run", "-o", str(page))
    assert drawn.returncode == 0, drawn.stderr
    assert "No host published a rate limit" in page.read_text()
    report = tmp_path / "new.html"
    stderr = _fetch(run_cli, tmp_path, cli_fleet, out, report)
    _check_summary(stderr, cli_fleet)
    _check_table(report.read_text(), cli_fleet)
    with duckdb.connect(str(out), read_only=True) as db:
        runs = db.execute(
            "SELECT run_id, status, politeness IS NULL FROM _fetchpipe_runs ORDER BY started_at"
        ).fetchall()
    assert runs[0] == ("old-run", "done", True) and len(runs) == 2
    assert runs[1][1:] == ("done", False)


def test_a_pipeline_destination_made_before_the_figures_runs_and_keeps_them(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    key, host = f"pipe-{time.time_ns()}", cli_fleet.addresses[3]
    db_path = tmp_path / "pipe.duckdb"
    with duckdb.connect(str(db_path)) as db:
        db.execute(OLD_RUNS_SCHEMA)
    pipeline = tmp_path / "limited.yaml"
    pipeline.write_text(
        f"""name: limited
destination: duckdb:///{db_path}
sources:
  - name: items
    url: {cli_fleet.url("/limited/published/1", host=3)}
    params: {{limit: 2, window: 1, key: {key}}}
    records: ""
""",
        encoding="utf-8",
    )
    report, summary = tmp_path / "run.html", tmp_path / "run.json"
    done = run_cli("run", str(pipeline), "--report", str(report), "--json", str(summary))
    assert done.returncode == 0, done.stderr
    info = json.loads(summary.read_text())["rate_limits"][host]
    assert info["limit"] == "published 2 per 1 s (RateLimit-Policy)"
    with duckdb.connect(str(db_path), read_only=True) as db:
        row = db.execute("SELECT politeness FROM _fetchpipe_runs").fetchone()
    assert row is not None and json.loads(row[0])[host] == info
    assert _table(report.read_text())[host][:2] == ["2 per 1 s", "published (RateLimit-Policy)"]
