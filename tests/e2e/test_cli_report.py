"""The HTML report as a user meets it: real ``fetchpipe`` processes against the simulated fleet
with faults (5xx bursts, a 429 with Retry-After, a host that goes down, a URL and a message
holding ``<script>``, an API key in the query), the page loaded in headless Chromium.

- ``fetch --report`` with a DuckDB output and with a JSONL one: the page loads with no error,
  its waterfall draws one mark per request row, its figures match the request log, it holds no
  secret and no unescaped markup; a screenshot is left beside the test's files.
- ``run --report`` twice: the second report compares with the first; ``fetchpipe report`` draws
  a given run again from the pipeline file or from the DuckDB file.
- ``demo --report``: 50 APIs, 50 marks, the last one ending with the slowest.
- Bad usage exits 2 before anything is sent.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import yaml

from fetchpipe.sim import Fleet
from tests.e2e.browser import load, screenshot
from tests.e2e.conftest import CountingServer, RunCli
from tests.e2e.shop_sources import shop_and_flaky_sources

SECRET = "canary-report-5b1d"


def _data(page: str) -> dict[str, Any]:
    """The waterfall's data, parsed from the page."""
    found = re.search(r'<script type="application/json" id="wf-data">(.*?)</script>', page, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _self_contained(page: str) -> None:
    """Nothing in the page is fetched: no src or href to another file, and a policy saying so."""
    assert not re.search(r'\b(src|href)="(?!#)', page), "the report refers to another file"
    assert "default-src 'none'" in page
    assert "@import" not in page and "url(" not in page


def _faulty_urls(fleet: Fleet, tag: str) -> list[str]:
    return [
        fleet.url(f"/status/503,503,200?key=flaky-{tag}", host=0),
        fleet.url(f"/ratelimit?key=rl-{tag}&after=1", host=1),
        fleet.url(f"/status/404?q=<script>alert(1)</script>&t={tag}", host=1),
        *(fleet.url(f"/status/500?key=budget-{tag}-{i}", host=2) for i in range(3)),
        *(fleet.url(f"/status/500?key=down-{tag}-{i}", host=3) for i in range(25)),
        *(fleet.url(f"/json?n={i}&api_key={SECRET}", host=0) for i in range(60)),
        *(fleet.url(f"/delay?seconds=0.{i}&t={tag}", host=2) for i in range(1, 6)),
    ]


def _fetch(run_cli: RunCli, tmp_path: Path, urls: list[str], out: Path, report: Path) -> str:
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    done = run_cli(
        "fetch",
        str(tmp_path / "urls.txt"),
        "--out",
        str(out),
        "--retries",
        "2",
        "--retry-budget",
        "3",
        "--rate",
        "127.0.0.1=200",
        "--report",
        str(report),
        "--metrics",
        str(report.with_suffix(".prom")),
    )
    assert done.returncode == 1, done.stderr  # the failing hosts' requests failed
    assert f"report written to {report}" in done.stderr
    assert f"metrics written to {report.with_suffix('.prom')}" in done.stderr
    return done.stderr


def _requests_by_outcome(prom: Path) -> dict[str, int]:
    """``fetchpipe_requests_total`` of a Prometheus text file, summed by outcome."""
    counts: dict[str, int] = {}
    for line in prom.read_text().splitlines():
        found = re.match(r'fetchpipe_requests_total\{.*outcome="(\w+)"\} (\d+)$', line)
        if found is not None:
            counts[found.group(1)] = counts.get(found.group(1), 0) + int(found.group(2))
    return counts


def _check_page(report: Path, tmp_path: Path, marks: int, name: str) -> str:
    """Load ``report`` in Chromium: no error, ``marks`` marks; leave a screenshot."""
    page = report.read_text()
    _self_contained(page)
    assert SECRET not in page
    assert page.count("<script") == 4  # its own: no URL or message made one
    loaded = load(report, tmp_path)
    assert loaded.errors() == "", loaded.errors()
    assert loaded.console == (), loaded.console
    assert loaded.attribute("waterfall", "data-marks") == str(marks)
    assert loaded.attribute("errors", "data-count") == "0"
    png = screenshot(report, tmp_path / f"{name}.png", tmp_path)
    print(f"screenshot of the {name} report: {png}")
    return page


def test_fetch_report_of_a_faulty_run_kept_in_duckdb(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    urls = _faulty_urls(cli_fleet, uuid.uuid4().hex[:8])
    out, report = tmp_path / "out.duckdb", tmp_path / "faulty.html"
    stderr = _fetch(run_cli, tmp_path, urls, out, report)
    assert SECRET not in stderr
    with duckdb.connect(str(out), read_only=True) as db:
        outcomes = dict(
            db.execute("SELECT outcome, count(*) FROM _fetchpipe_requests GROUP BY ALL").fetchall()
        )
        events = dict(
            db.execute("SELECT event, count(*) FROM _fetchpipe_events GROUP BY ALL").fetchall()
        )
        (run_id,) = db.execute("SELECT run_id FROM _fetchpipe_runs").fetchone() or ("",)
        hosts = [
            h for (h,) in db.execute("SELECT DISTINCT host FROM _fetchpipe_requests").fetchall()
        ]
    assert sum(outcomes.values()) == len(urls)
    assert _requests_by_outcome(report.with_suffix(".prom")) == outcomes
    assert SECRET not in report.with_suffix(".prom").read_text()
    page = _check_page(report, tmp_path, len(urls), "faulty-fetch")
    data = _data(page)
    drawn = {name: data["o"].count(i) for i, name in enumerate(data["outcomes"])}
    assert {k: v for k, v in drawn.items() if v} == outcomes
    kinds = {event[1] for event in data["ev"]}
    assert {"paused", "down", "retried"} <= kinds
    assert len([e for e in data["ev"] if e[1] == "retried"]) == events["request_retried"]
    assert run_id in page
    for host in hosts:
        assert f'<td class="l">{host}</td>' in page
    assert "of 200/s" in page  # 127.0.0.1's rate limit, beside the rate achieved
    assert "HTTP 503 ×2" in page  # why 127.0.0.1's requests were retried
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as text
    assert "No earlier run of this pipeline" in page  # a new file: its first fetch


def test_fetch_report_of_a_jsonl_output_is_made_from_the_run_itself(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    urls = _faulty_urls(cli_fleet, uuid.uuid4().hex[:8])
    out, report = tmp_path / "out.jsonl", tmp_path / "faulty-jsonl.html"
    _fetch(run_cli, tmp_path, urls, out, report)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    page = _check_page(report, tmp_path, len(urls), "faulty-jsonl")
    data = _data(page)
    failed = data["outcomes"].index("failed")
    assert data["o"].count(failed) == sum(not r["ok"] for r in written)
    assert sorted(data["hosts"]) == sorted({urlsplit(r["url"]).hostname for r in written})
    assert len(data["u"]) == len(written) and not any(SECRET in url for url in data["u"])
    assert f"{sum(not r['ok'] for r in written)} failed requests" in page


def _pipeline(path: Path, fleet: Fleet, database: Path, tag: str) -> Path:
    config = {
        "name": "reported",
        "destination": f"duckdb:///{database}",
        "defaults": {"retry": {"attempts": 3, "wait_initial": 0.01}},
        "hosts": {fleet.addresses[0]: {"max_per_second": 300}},
        "sources": [
            *shop_and_flaky_sources(fleet, tag),
            {
                "name": "limited",
                "url": fleet.url(f"/ratelimit?key=rl-{tag}&after=1", host=2),
                "records": "",
            },
            {
                "name": "broken",
                "url": fleet.url(f"/status/500?t={tag}", host=3),
                "params": {"token": "${REPORT_TOKEN}"},
                "records": "",
            },
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_run_report_compares_with_the_previous_run_and_is_drawn_again_later(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    database = tmp_path / "reported.duckdb"
    path = _pipeline(tmp_path / "reported.yaml", cli_fleet, database, uuid.uuid4().hex[:8])
    env = {"REPORT_TOKEN": SECRET}
    ids = []
    for number in (1, 2):
        report = tmp_path / f"run{number}.html"
        metrics = tmp_path / f"run{number}.prom"
        done = run_cli(
            *("run", str(path), "--report", str(report), "--metrics", str(metrics), "--quiet"),
            env=env,
        )
        assert done.returncode == 1, done.stderr  # the source "broken" failed
        assert f"report written to {report}" in done.stderr
        ids.append(re.findall(r"run (\S+): \d+ ok", done.stdout + done.stderr)[0])
    with duckdb.connect(str(database), read_only=True) as db:
        rows = dict(
            db.execute(
                "SELECT run_id, count(*) FROM _fetchpipe_requests GROUP BY run_id"
            ).fetchall()
        )
    for number, run_id in enumerate(ids, 1):
        counted = _requests_by_outcome(tmp_path / f"run{number}.prom")
        assert sum(counted.values()) == rows[run_id] and counted["failed"] == 1
    first = _check_page(tmp_path / "run1.html", tmp_path, rows[ids[0]], "first-run")
    second = _check_page(tmp_path / "run2.html", tmp_path, rows[ids[1]], "second-run")
    assert "No earlier run of this pipeline" in first
    assert f"The previous run: {ids[0]}" in second and "No earlier run" not in second
    for name in ("products", "reviews", "flaky", "limited", "broken"):
        assert f'<td class="l">{name}</td>' in second
    assert "of 300/s" in second  # the pipeline's rate limit of the shop's host
    sources = _data(second)["sources"]
    assert sources == ["broken", "flaky", "limited", "products", "reviews"]

    again = tmp_path / "again.html"
    done = run_cli("report", str(path), "--run", ids[0], "-o", str(again), env=env)
    assert done.returncode == 0, done.stderr
    assert again.read_text() == first  # the same run, the same page
    latest = tmp_path / "latest.html"
    done = run_cli("report", str(database), "-o", str(latest))
    assert done.returncode == 0, done.stderr
    assert f"run {ids[1]}" in latest.read_text() and SECRET not in latest.read_text()
    assert "of 300/s" not in latest.read_text()  # a database alone does not know the limits


def test_demo_report_shows_every_api_ending_with_the_slowest(
    run_cli: RunCli, tmp_path: Path
) -> None:
    report = tmp_path / "demo.html"
    done = run_cli(
        "demo", "--out", str(tmp_path / "demo.duckdb"), "--report", str(report), "--minute", "0.4"
    )
    assert done.returncode == 0, done.stderr
    assert f"report written to {report}" in done.stderr
    assert f"report: {report.resolve().as_uri()}" in done.stdout  # where to open it
    page = _check_page(report, tmp_path, 50, "demo")
    data = _data(page)
    assert len(data["hosts"]) == 50
    ends = [b + t for b, t in zip(data["b"], data["t"], strict=True)]
    assert max(ends) <= data["end"] + 0.001  # every API within the run; the run ends ...
    assert data["end"] - max(ends) < 0.25 * max(ends)  # ... shortly after the slowest


def test_bad_report_usage_exits_2_before_anything_is_sent(
    run_cli: RunCli, server: CountingServer, tmp_path: Path
) -> None:
    (tmp_path / "urls.txt").write_text(f"http://127.0.0.1:{server.server_address[1]}/x\n")
    for option, target in (
        ("--report", tmp_path / "missing" / "r.html"),
        ("--report", tmp_path),
        ("--metrics", tmp_path / "missing" / "m.prom"),
    ):
        done = run_cli(
            "fetch",
            str(tmp_path / "urls.txt"),
            "--out",
            str(tmp_path / "o.jsonl"),
            option,
            str(target),
        )
        assert done.returncode == 2, done.stderr
        assert option in done.stderr and "HINT" in done.stderr
    assert server.hits == 0
    done = run_cli("report", str(tmp_path / "nothing.duckdb"))
    assert done.returncode == 2 and "no such file" in done.stderr
    done = run_cli("fetch", str(tmp_path / "urls.txt"), "--out", str(tmp_path / "o.duckdb"))
    assert done.returncode == 0, done.stderr
    done = run_cli(
        "report", str(tmp_path / "o.duckdb"), "--run", "nope", "-o", str(tmp_path / "r.html")
    )
    assert done.returncode == 1 and "no run nope" in done.stderr and "fetchpipe runs" in done.stderr
    assert not (tmp_path / "r.html").exists()
