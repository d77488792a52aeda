"""The report as a pure function of a run's rows: figures, escaping, the waterfall's data.

No network and no browser: rows are made as the recorder makes them (dicts of the request log's
columns) and rendered; the page is parsed back.
"""

from __future__ import annotations

import html
import json
import re
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest

from fetchpipe.destinations import run_log
from fetchpipe.destinations.run_log import RunSummary
from fetchpipe.report import from_rows, read_run, render, stats
from fetchpipe.report import html as report_html
from fetchpipe.report.data import REQUEST_FIELDS, NoRun, RunData


def _row(n: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": "r1",
        "source": "items",
        "host": f"h{n % 3}.example",
        "method": "GET",
        "url": f"https://h{n % 3}.example/items?page={n}",
        "outcome": "ok",
        "status": 200,
        "error": None,
        "message": None,
        "attempts": 1,
        "origin": "network",
        "bytes": 100 + n,
        "queued_at": n * 0.01,
        "start_offset": n * 0.01 + 0.005,
        "queue_wait": 0.005,
        "time_to_headers": 0.002,
        "total_time": 0.01 * (n + 1),
        "weight": 1.0,
    }
    row.update(fields)
    return row


def _run(run_id: str = "r1", pipeline: str = "shop") -> RunSummary:
    start = datetime(2025, 6, 2, 8, 15, tzinfo=UTC)
    return RunSummary(run_id, pipeline, "done", start, start + timedelta(seconds=3))


def _data_of(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="wf-data">(.*?)</script>', page, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_markup_in_urls_and_messages_is_shown_as_text_and_cannot_end_the_data() -> None:
    evil_url = "https://h.example/x?q=</script><script>alert(1)</script>&b=<img src=x>"
    message = "HTTP 500: <b>boom</b> </script><script>alert(2)</script> & more"
    rows = [
        _row(0),
        _row(1, url=evil_url, outcome="failed", status=500, error="http_status", message=message),
        _row(2, source="<i>src</i>", host="<h>"),
    ]
    page = render(from_rows(_run(), rows, []))
    assert page.count("<script") == 4  # the page's own: two scripts, two JSON blocks
    assert "<b>boom</b>" not in page and "<img" not in page and "<i>src" not in page
    assert html.escape(message) in page and html.escape("<i>src</i>") in page
    data = _data_of(page)  # the JSON block parses back whole, the URL as it was
    assert evil_url in data["u"] and "<h>" in data["hosts"] and "<i>src</i>" in data["sources"]


def test_figures_per_host_and_source_are_those_of_the_rows() -> None:
    rows = [_row(n) for n in range(60)]
    rows[5] = _row(5, attempts=3, outcome="retried")
    rows[7] = _row(7, outcome="cache", origin="cache", total_time=0.0)
    events = [
        {"start_offset": 0.1, "event": "request_retried", "source": "items", "host": "h2.example",
         "status": 503, "error": "http_status", "wait": 0.1},
        {"start_offset": 0.2, "event": "request_retried", "source": "items", "host": "h2.example",
         "error": "timeout", "wait": 0.2},
    ]  # fmt: skip
    data = from_rows(_run(), rows, events, rates=lambda host: 5.0 if host == "h0.example" else None)
    hosts = {group.name: group for group in stats.groups(data, "host")}
    for name, group in hosts.items():
        mine = [r for r in rows if r["host"] == name]
        latencies = sorted(r["total_time"] for r in mine)
        assert group.requests == len(mine)
        assert group.p50 == pytest.approx(statistics.median(latencies))
        p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18]
        assert group.p95 == pytest.approx(p95)
        assert group.max == max(latencies)
        assert group.bytes == sum(r["bytes"] for r in mine)
        network = [r for r in mine if r["origin"] == "network"]
        span = max(r["start_offset"] + r["total_time"] for r in network) - min(
            r["start_offset"] for r in network
        )
        assert group.rate == pytest.approx(len(network) / span)
        assert group.cache_hits == len(mine) - len(network)
    assert hosts["h0.example"].limit == 5.0 and hosts["h1.example"].limit is None
    assert hosts["h2.example"].retries == 2
    assert dict(hosts["h2.example"].reasons) == {"HTTP 503": 1, "timeout": 1}
    page = render(data)
    assert "HTTP 503 ×1, timeout ×1" in page and "of 5/s" in page
    (source,) = stats.groups(data, "source")
    assert source.requests == 60 and data.run.requests == 60 and data.run.retries == 2


def test_the_waterfall_has_a_mark_per_row_and_gathers_rows_past_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [_row(n, host=f"10.0.{n // 250}.{n % 250}") for n in range(report_html.MAX_ROWS + 40)]
    rows.append(_row(9999, host="10.0.0.0"))  # the busiest host, with two requests
    data = report_html.waterfall_data(from_rows(_run(), rows, []))
    assert len(data["o"]) == len(data["q"]) == len(data["t"]) == len(rows)
    assert len(data["hosts"]) == report_html.MAX_ROWS + 1
    assert data["hosts"][-1] == "(40 others)"
    assert data["hosts"][0] == "10.0.0.0" and data["h"].count(0) == 2
    assert data["hosts"][:3] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]  # in numeric order
    assert data["u"] is not None
    monkeypatch.setattr(report_html, "MAX_URLS", 10)
    assert report_html.waterfall_data(from_rows(_run(), rows, []))["u"] is None


def test_a_breaker_opening_lasts_until_the_host_is_up_again() -> None:
    events = [
        {"start_offset": 1.0, "event": "host_down", "host": "h0.example", "wait": 30.0},
        {"start_offset": 2.5, "event": "host_up", "host": "h0.example"},
        {"start_offset": 3.0, "event": "host_paused", "host": "h1.example", "wait": 2.0},
        {"start_offset": 3.5, "event": "host_down", "host": "h1.example", "wait": 4.0},
    ]
    data = report_html.waterfall_data(from_rows(_run(), [_row(0), _row(1)], events))
    hosts = data["hosts"]
    shown = {(e[1], hosts[e[2]]): e[4] for e in data["ev"] if e[1] != "up"}
    assert shown == {
        ("down", "h0.example"): 1.5,
        ("paused", "h1.example"): 2.0,
        ("down", "h1.example"): 4.0,
    }


def test_a_run_is_read_from_its_database_with_the_previous_one(tmp_path: Any) -> None:
    connection = duckdb.connect(str(tmp_path / "runs.duckdb"))
    run_log.create_tables(connection)
    start = datetime(2025, 6, 2, 8, 15, tzinfo=UTC)
    for number, count in ((1, 4), (2, 6)):
        run_id = f"run{number}"
        connection.execute(
            f"INSERT INTO {run_log.RUNS_TABLE} (run_id, pipeline, full_refresh, status, "
            "started_at, ended_at) VALUES (?, 'shop', false, 'done', ?, ?)",
            [run_id, start + timedelta(hours=number), start + timedelta(hours=number, seconds=2)],
        )
        run_log.insert(
            connection,
            run_log.LogRows([_row(n, run_id=run_id) for n in range(count)], []),
        )
    latest = read_run(connection, pipeline="shop")
    assert latest.run.run_id == "run2" and len(latest.requests) == 6
    assert latest.previous is not None and latest.previous.run_id == "run1"
    compared = stats.comparison(latest)
    assert compared is not None
    assert compared.totals["requests"].change == 2
    assert compared.sources["items"][1].now == 6 and compared.sources["items"][1].before == 4
    first = read_run(connection, "run1")
    assert first.previous is None and len(first.requests) == 4
    assert "No earlier run" in render(first) and "The previous run: run1" in render(latest)
    with pytest.raises(NoRun):
        read_run(connection, "nope")
    with pytest.raises(NoRun):
        read_run(connection, pipeline="other")
    connection.close()


def test_a_sampled_run_says_so_and_counts_by_weight() -> None:
    rows = [_row(n, weight=10.0) for n in range(5)] + [_row(9, outcome="failed", weight=1.0)]
    data = RunData(_run(), tuple(tuple(r[f] for f in REQUEST_FIELDS) for r in rows), ())
    assert data.sampled
    assert stats.outcome_counts(data) == {"ok": 50, "failed": 1}
    assert "kept a sample" in render(data)
    assert not from_rows(_run(), [_row(0)], []).sampled
