"""An interrupted run is resumed: committed pages are not fetched again, nothing is written twice.

The run is interrupted by cancelling it (what Ctrl-C does); ``tests/e2e/test_kill_resume.py``
kills a real process with SIGKILL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe import set_testing
from fetchpipe._exceptions import ConfigError
from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.runtime.report import failure_lines
from fetchpipe.pipeline.runtime.runner import PipelineRunner
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, on_transport

pytestmark = both_transports

DAYS, PER_DAY, PER_PAGE = 8, 120, 40
PAGES = 1 + DAYS * (PER_DAY // PER_PAGE + 1)  # the days page, then 3 full pages + 1 empty a day


def events_pipeline(fleet: Fleet, destination: str, **events: Any) -> Pipeline:
    return Pipeline.from_dict(
        on_transport(
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


@dataclass
class Api:
    """A small API whose pages take their time; records every query it receives."""

    seen: list[str] = field(default_factory=list)

    async def parents(self, request: web.Request) -> web.Response:
        self.seen.append(f"parents?{request.query_string}")
        page = int(request.query.get("page", "1"))
        if page == 2:
            await asyncio.sleep(1.5)  # the parent's page 1 waits for it to be committed
        return web.json_response({"items": [{"id": 1}, {"id": 2}] if page == 1 else []})

    async def kids(self, request: web.Request) -> web.Response:
        self.seen.append(f"kids/{request.match_info['id']}")
        await asyncio.sleep(0.6)
        return web.json_response([{"kid": int(request.match_info["id"])}])

    async def links(self, request: web.Request) -> web.Response:
        self.seen.append(f"links?{request.query_string}")
        after = int(request.query.get("after", "0"))
        if after:
            await asyncio.sleep(1.0)
        nxt = f"/links?after={after + 2}" if after < 4 else None
        return web.json_response({"items": [{"n": after + 1}, {"n": after + 2}], "next": nxt})

    async def bad(self, request: web.Request) -> web.Response:
        return web.json_response({"items": [{"n": 1}], "next": "http://[::1"})


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, TestServer]]:
    state = Api()
    app = web.Application()
    app.router.add_get("/parents", state.parents)
    app.router.add_get("/kids/{id}", state.kids)
    app.router.add_get("/links", state.links)
    app.router.add_get("/bad", state.bad)
    async with TestServer(app, host="127.0.0.1") as server:
        yield state, server


async def cancel_after(runner: PipelineRunner, seconds: float) -> None:
    task = asyncio.ensure_future(runner.run())
    await asyncio.sleep(seconds)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_child_pages_committed_before_their_parent_page_are_not_fetched_again(
    api: tuple[Api, TestServer], tmp_path: Path
) -> None:
    state, server = api
    db = tmp_path / "kids.duckdb"
    pipeline = Pipeline.from_dict(
        on_transport(
            {
                "name": "kids",
                "destination": f"duckdb:///{db}",
                "sources": [
                    {
                        "name": "parents",
                        "url": str(server.make_url("/parents")),
                        "records": "items",
                        "paginate": {"type": "page"},
                    },
                    {
                        "name": "kids",
                        "url": str(server.make_url("/kids/")) + "{parents.id}",
                        "write": "append",
                    },
                ],
            }
        )
    )
    await cancel_after(PipelineRunner(pipeline, commit_every=0.5), 1.0)
    committed = [r[0] for r in rows(db, "SELECT source FROM _fetchpipe_pages")]
    assert "parents" not in committed and committed.count("kids") >= 1  # kids without parent
    state.seen.clear()
    report = await pipeline.arun()
    assert report.ok and report.resumed
    refetched = [s for s in state.seen if s.startswith("kids/")]
    assert len(refetched) == 2 - committed.count("kids")  # committed: not again
    assert rows(db, "SELECT kid, count(*) FROM kids GROUP BY kid ORDER BY kid") == [(1, 1), (2, 1)]


async def test_a_resumed_link_page_is_sent_as_the_link_said(
    api: tuple[Api, TestServer], tmp_path: Path
) -> None:
    state, server = api
    source = {
        "name": "links",
        "url": str(server.make_url("/links")),
        "params": {"limit": 2},
        "records": "items",
        "paginate": {"type": "next_url", "next_url_path": "next"},
    }
    pipeline = Pipeline.from_dict(
        on_transport(
            {
                "name": "links",
                "destination": f"duckdb:///{tmp_path / 'l.duckdb'}",
                "sources": [source],
            }
        )
    )
    await cancel_after(PipelineRunner(pipeline, commit_every=0), 0.5)
    report = await pipeline.arun()
    assert report.ok and report.resumed
    assert state.seen == [
        "links?limit=2",
        "links?after=2",  # interrupted
        "links?after=2",  # resumed: the link as given, without the source's limit added
        "links?after=4",
    ]


async def test_a_malformed_next_link_fails_its_source_only(
    api: tuple[Api, TestServer], fleet: Fleet, tmp_path: Path
) -> None:
    _, server = api
    db = tmp_path / "bad.duckdb"
    bad = {
        "name": "bad",
        "url": str(server.make_url("/bad")),
        "records": "items",
        "paginate": {"type": "next_url", "next_url_path": "next"},
    }
    good = {"name": "days", "url": fleet.url("/shop/v1/days"), "records": "days"}
    pipeline = Pipeline.from_dict(
        on_transport({"name": "bad", "destination": f"duckdb:///{db}", "sources": [bad, good]})
    )
    report = await pipeline.arun()
    assert report.source("bad").status == "failed" and report.source("days").status == "ok"
    assert "Invalid IPv6 URL" in (report.source("bad").reason or "")
    assert rows(db, "SELECT status FROM _fetchpipe_runs") == [("failed",)]  # ended, not stuck


@dataclass
class Events:
    """Three pages of events a day (then an empty one); from ``down_from_page`` on, it answers
    500 to everything, as an API that went down. Counts what it receives."""

    down_from_page: int | None = None
    received: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.received += 1
        page = int(request.query.get("page", "1"))
        if self.down_from_page is not None and page >= self.down_from_page:
            return web.json_response({"error": "down"}, status=500)
        day = request.match_info["day"]
        events = [{"id": f"d{day}p{page}n{i}"} for i in range(5)] if page <= 3 else []
        return web.json_response({"events": events})


async def test_a_source_whose_host_is_down_keeps_its_committed_pages_for_the_next_run(
    fleet: Fleet, tmp_path: Path
) -> None:
    """The events API goes down after the first page of each day: its circuit opens, the
    source fails as host_down, and its committed pages stay in the journal with the run left
    unfinished; the days (another host) are written. When the API is back, the next run
    resumes: only the pages not committed are fetched, every event lands once."""
    set_testing(False)  # real backoff: the retries wait while the circuit opens
    state = Events(down_from_page=2)
    app = web.Application()
    app.router.add_get("/events/{day}", state.handle)
    db = tmp_path / "events.duckdb"
    async with TestServer(app, host="127.0.0.1") as server:
        pipeline = Pipeline.from_dict(
            on_transport(
                {
                    "name": "events",
                    "destination": f"duckdb:///{db}",
                    "defaults": {"breaker": {"threshold": 3}},
                    "sources": [
                        {
                            "name": "days",
                            "url": fleet.url("/shop/v1/days", host=1),
                            "params": {"count": DAYS},
                            "records": "days",
                        },
                        {
                            "name": "events",
                            "url": str(server.make_url("/events/")) + "{days.id}",
                            "records": "events",
                            "write": "append",
                            "paginate": {"type": "page"},
                        },
                    ],
                }
            )
        )
        first = await PipelineRunner(pipeline, commit_every=0).run()
        events = first.source("events")
        assert (first.source("days").status, events.status) == ("ok", "failed")
        assert "127.0.0.1 is down" in (events.reason or "")
        assert f"its {DAYS} committed pages are kept" in (events.reason or "")
        assert first.unfinished and first.hosts_down == {"127.0.0.1": 1}
        assert any("kept unfinished" in line for line in failure_lines(first))
        assert rows(db, "SELECT status FROM _fetchpipe_runs") == [("running",)]
        assert rows(db, "SELECT count(*) FROM _fetchpipe_pages WHERE source = 'events'") == [
            (DAYS,)
        ]
        assert rows(db, "SELECT count(*) FROM days") == [(DAYS,)]

        state.down_from_page, state.received = None, 0
        report = await pipeline.arun()
    assert report.ok and report.resumed and report.run_id == first.run_id
    assert state.received == DAYS * 3  # pages 2, 3 and the empty 4 of each day; not page 1
    assert rows(db, "SELECT count(*), count(DISTINCT id) FROM events") == [
        (DAYS * 3 * 5, DAYS * 3 * 5)
    ]
    assert rows(db, "SELECT status FROM _fetchpipe_runs") == [("done",)]
