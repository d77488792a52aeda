"""A host's quota in a pipeline: the source stops when the quota is spent and the next run
resumes it where it stopped (the quota file of the second run stands for the next window)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.runtime.report import failure_lines
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, on_transport

pytestmark = both_transports

DAYS, PER_DAY, PER_PAGE = 4, 60, 20
PAGES = 1 + DAYS * (PER_DAY // PER_PAGE + 1)  # the days page, then 3 full pages + 1 empty a day


def quota_pipeline(fleet: Fleet, db: Path, quota: int) -> Pipeline:
    host = fleet.addresses[0]
    return Pipeline.from_dict(
        on_transport(
            {
                "name": "quota",
                "destination": f"duckdb:///{db}",
                "hosts": {host: {"max_concurrency": 4, "quota": {"requests": quota, "per": "day"}}},
                "sources": [
                    {
                        "name": "days",
                        "url": fleet.url("/shop/v1/days"),
                        "params": {"count": DAYS},
                        "records": "days",
                        "primary_key": "id",
                    },
                    {
                        "name": "events",
                        "url": fleet.url("/shop/v1/days/") + "{days.id}/events",
                        "params": {"per_page": PER_PAGE, "per_day": PER_DAY},
                        "records": "events",
                        "write": "append",  # a page written twice would show as duplicate rows
                        "paginate": {"type": "page"},
                    },
                ],
            }
        )
    )


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


async def test_a_spent_quota_suspends_the_source_and_the_next_run_resumes_it(
    fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "quota.duckdb"
    pipeline = quota_pipeline(fleet, db, quota=8)
    before = fleet.stats.requests()
    first = await pipeline.arun(state_dir=tmp_path / "today")
    assert fleet.stats.requests() - before == 8  # the quota, not one request more
    events = first.source("events")
    assert (first.source("days").status, events.status) == ("ok", "failed")
    reason = events.reason or ""
    assert f"the quota of {fleet.addresses[0]} (8 requests per day) is spent" in reason
    assert "resets at" in reason and "committed pages are kept" in reason
    assert first.unfinished  # suspended: the next run resumes it
    assert any(line.startswith("quota: the quota of") for line in failure_lines(first))
    assert list(first.quotas_spent) == [fleet.addresses[0]]
    assert rows(db, "SELECT status FROM _fetchpipe_runs") == [("running",)]  # resumable
    committed = rows(db, "SELECT count(*) FROM _fetchpipe_pages")[0][0]
    assert 0 < committed <= 8

    # Each next run (a new window: a new quota file) sends its 8 and resumes where the last
    # stopped, until the source is done: every page once, every record once.
    reports = []
    for day in range(5):
        reports.append(await pipeline.arun(state_dir=tmp_path / f"day{day}"))
        assert reports[-1].resumed and reports[-1].run_id == first.run_id
        if reports[-1].ok:
            break
    assert len(reports) == 2  # 17 pages: 8 + 8 + 1
    assert fleet.stats.requests() - before == PAGES  # no page fetched twice
    assert not reports[-1].unfinished
    assert rows(db, "SELECT count(*), count(DISTINCT id) FROM events") == [
        (DAYS * PER_DAY, DAYS * PER_DAY)
    ]
    assert rows(db, "SELECT status FROM _fetchpipe_runs") == [("done",)]
