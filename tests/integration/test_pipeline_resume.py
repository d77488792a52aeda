"""An interrupted run is resumed: committed pages are not fetched again, nothing is written twice.

The run is interrupted by cancelling it (what Ctrl-C does); ``tests/e2e/test_kill_resume.py``
kills a real process with SIGKILL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe._exceptions import ConfigError
from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.run import PipelineRunner
from fetchpipe.sim import Fleet

DAYS, PER_DAY, PER_PAGE = 8, 120, 40
PAGES = 1 + DAYS * (PER_DAY // PER_PAGE + 1)  # the days page, then 3 full pages + 1 empty a day


def events_pipeline(fleet: Fleet, destination: str, **events: Any) -> Pipeline:
    return Pipeline.from_dict(
        {
            "name": "shop",
            "destination": destination,
            "hosts": {fleet.addresses[0]: {"max_concurrency": 2}},
            "sources": [
                {
                    "name": "days",
                    "url": fleet.url("/shop/v1/days"),
                    "params": {"count": DAYS},
                    "records": "days",
                    "primary_key": "id",
                    "write": "merge",
                },
                {
                    "name": "events",
                    "url": fleet.url("/shop/v1/days/") + "{days.id}/events",
                    "params": {"per_page": PER_PAGE, "per_day": PER_DAY, "delay_ms": 5},
                    "records": "events",
                    "write": "append",  # a page written twice would show as duplicate rows
                    "paginate": {"type": "page"},
                    **events,
                },
            ],
        }
    )


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


async def interrupt(runner: PipelineRunner, after_pages: int) -> None:
    """Cancel the run once ``after_pages`` event pages were read (as Ctrl-C would)."""
    task = asyncio.ensure_future(runner.run())
    for _ in range(2000):
        await asyncio.sleep(0.005)
        events = next((s for s in runner.report.sources if s.name == "events"), None)
        if (events is not None and events.pages >= after_pages) or task.done():
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancelled_run_resumes_without_fetching_committed_pages(
    fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "shop.duckdb"
    pipeline = events_pipeline(fleet, f"duckdb:///{db}")
    first = PipelineRunner(pipeline, commit_every=0)
    await interrupt(first, after_pages=10)
    assert rows(db, "SELECT status FROM _fetchpipe_runs") == [("running",)]
    committed = rows(db, "SELECT count(*) FROM _fetchpipe_pages")[0][0]
    assert 0 < committed < PAGES
    tables = {r[0] for r in rows(db, "SHOW TABLES")}
    assert "events" not in tables  # nothing reaches the table before the source ends

    before = fleet.stats.requests()
    report = await pipeline.arun()
    assert report.ok and report.resumed and report.run_id == first.run_id
    assert fleet.stats.requests() - before == PAGES - committed  # only what was not committed
    assert report.source("events").pages == PAGES - 1
    assert rows(db, "SELECT count(*), count(DISTINCT id) FROM events") == [
        (DAYS * PER_DAY, DAYS * PER_DAY)
    ]
    assert rows(db, "SELECT count(*) FROM days") == [(DAYS,)]
    assert rows(db, "SELECT status FROM _fetchpipe_runs") == [("done",)]
    assert rows(db, "SELECT count(*) FROM _fetchpipe_pages") == [(0,)]  # bookkeeping dropped

    again = await pipeline.arun()  # a finished run is not resumed: a new one starts
    assert not again.resumed and again.run_id != first.run_id
    assert rows(db, "SELECT count(*) FROM events") == [(2 * DAYS * PER_DAY,)]  # append


async def test_a_changed_pipeline_or_options_refuse_to_resume_unless_restarted(
    fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "shop.duckdb"
    pipeline = events_pipeline(fleet, f"duckdb:///{db}")
    await interrupt(PipelineRunner(pipeline, commit_every=0), after_pages=6)

    changed = events_pipeline(fleet, f"duckdb:///{db}", primary_key="id")
    with pytest.raises(ConfigError, match="the pipeline file has changed since it started"):
        await changed.arun()
    with pytest.raises(ConfigError, match="Run with the same options to resume it"):
        await pipeline.arun(select=["events"])
    assert rows(db, "SELECT status FROM _fetchpipe_runs") == [("running",)]  # still resumable

    before = fleet.stats.requests()
    report = await changed.arun(restart=True)
    assert report.ok and not report.resumed
    assert fleet.stats.requests() - before == PAGES  # everything fetched again
    assert rows(db, "SELECT status FROM _fetchpipe_runs ORDER BY started_at") == [
        ("abandoned",),
        ("done",),
    ]
    assert rows(db, "SELECT count(*), count(DISTINCT id) FROM events") == [
        (DAYS * PER_DAY, DAYS * PER_DAY)
    ]


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
async def test_file_destinations_resume_too(fleet: Fleet, tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    pipeline = events_pipeline(fleet, f"{kind}:///{out}")
    await interrupt(PipelineRunner(pipeline, commit_every=0), after_pages=10)
    assert not (out / "events").exists()
    report = await pipeline.arun()
    assert report.ok and report.resumed
    files = list((out / "events").glob(f"*.{kind}"))
    assert [f.name for f in files] == [f"{report.run_id}.{kind}"]
    reader = "read_parquet" if kind == "parquet" else "read_json"
    with duckdb.connect() as connection:
        counts = connection.execute(
            f"SELECT count(*), count(DISTINCT id) FROM {reader}('{files[0]}')"
        ).fetchall()
    assert counts == [(DAYS * PER_DAY, DAYS * PER_DAY)]
