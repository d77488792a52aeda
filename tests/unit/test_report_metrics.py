"""The Prometheus text of a run, parsed back: every line well formed, the figures the rows'."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from fetchpipe.destinations.run_log import RunSummary
from fetchpipe.report import from_rows
from fetchpipe.report.metrics import BUCKETS, render

LINE = re.compile(r'^([a-z_]+)\{((?:[a-z]+="(?:[^"\\]|\\.)*",?)*)\} (\S+)$')
LABEL = re.compile(r'([a-z]+)="((?:[^"\\]|\\.)*)"')


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if line.startswith("# "):
            assert re.match(r"# (HELP|TYPE) fetchpipe_[a-z_]+ \S", line), line
            continue
        match = LINE.match(line)
        assert match is not None, line
        labels = dict(LABEL.findall(match.group(2)))
        samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **wanted: str) -> float:
    """The one sample of ``name`` with the labels ``wanted``."""
    found = [
        v
        for n, labels, v in samples
        if n == name and all(labels.get(k) == w for k, w in wanted.items())
    ]
    assert len(found) == 1, (name, wanted)
    return found[0]


def _rows() -> list[dict[str, Any]]:
    rows = []
    for n in range(40):
        rows.append(
            {
                "source": "items" if n % 2 else 'we"ird\\name',
                "host": f"h{n % 3}.example",
                "outcome": "retried" if n % 7 == 0 else "ok",
                "attempts": 2 if n % 7 == 0 else 1,
                "bytes": 10 * n,
                "total_time": 0.003 * n * n,
                "queued_at": 0.0,
                "start_offset": 0.01 * n,
                "origin": "network",
                "weight": 1.0,
            }
        )
    return rows


def test_the_metrics_are_the_rows_figures_in_the_text_format() -> None:
    start = datetime(2025, 6, 2, 8, 15, tzinfo=UTC)
    run = RunSummary("r1", "shop", "done", start, start + timedelta(seconds=5))
    rows = _rows()
    text = render(from_rows(run, rows, []))
    samples = _samples(text)
    assert {labels["pipeline"] for _, labels, _ in samples} == {"shop"}
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_key[(row["host"], row["source"].replace("\\", "\\\\").replace('"', '\\"'))].append(row)
    for (host, source), mine in by_key.items():

        def value(name: str, **more: str) -> float:
            return _value(samples, name, host=host, source=source, **more)  # noqa: B023

        assert value("fetchpipe_requests_total", outcome="ok") + value(
            "fetchpipe_requests_total", outcome="retried"
        ) == len(mine)
        assert value("fetchpipe_retries_total") == sum(r["attempts"] - 1 for r in mine)
        assert value("fetchpipe_response_bytes_total") == sum(r["bytes"] for r in mine)
        bucketed = {
            float(labels["le"]): v
            for n, labels, v in samples
            if n == "fetchpipe_request_duration_seconds_bucket"
            and (labels["host"], labels["source"]) == (host, source)
        }
        assert sorted(bucketed) == [*BUCKETS, float("inf")]
        for bound in BUCKETS:
            assert bucketed[bound] == sum(r["total_time"] <= bound for r in mine)
        assert value("fetchpipe_request_duration_seconds_bucket", le="+Inf") == len(mine)
        assert value("fetchpipe_request_duration_seconds_count") == len(mine)
        assert (
            abs(
                value("fetchpipe_request_duration_seconds_sum") - sum(r["total_time"] for r in mine)
            )
            < 1e-3
        )
    (seconds,) = [v for n, _, v in samples if n == "fetchpipe_run_duration_seconds"]
    assert seconds == 5
    (ended,) = [v for n, _, v in samples if n == "fetchpipe_run_end_timestamp_seconds"]
    assert ended == (start + timedelta(seconds=5)).timestamp()
    assert "# TYPE fetchpipe_request_duration_seconds histogram" in text
