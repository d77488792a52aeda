"""Several sources' pages staged in one transaction, on real DuckDB files.

A run of many small sources commits them as they come; while the destination's thread is busy,
the commits due meanwhile wait and go together (``Commits``), in one call of
``StagedStore.stage_many``: one transaction, each source's records in its own stage table, all
the pages' journal rows and request log rows with them. A batch that cannot be staged fails its
own source only.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe.destinations.duckdb_ingest import Spool, table_columns
from fetchpipe.destinations.pipelines import LoadError, SourceEnd, StagedPages
from fetchpipe.destinations.pipelines.duckdb import DuckDBLoader
from fetchpipe.destinations.pipelines.files import FileLoader
from fetchpipe.destinations.pipelines.journal import JournalJob, PageEntry, stage_table
from fetchpipe.destinations.pipelines.staging import StagedStore
from fetchpipe.destinations.run_log import LogRows
from fetchpipe.pipeline.runtime.commits import Commits
from fetchpipe.pipeline.runtime.destination import DestinationThread
from fetchpipe.pipeline.runtime.source_run import SourceRun
from fetchpipe.pipeline.spec.config import PipelineSpec


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def spool_of(records: list[dict[str, Any]]) -> Spool:
    spool = Spool()
    spool.add(records)
    spool.finish()
    return spool


def job(source: str, page: int) -> JournalJob:
    return JournalJob(
        source, "http://127.0.0.1/items", {"page": page}, page, True, "http://127.0.0.1/items"
    )


def request_row(source: str, n: int) -> dict[str, Any]:
    return {"run_id": "r1", "source": source, "url": f"http://127.0.0.1/items?page={n}"}


def batch(source: str, records: list[dict[str, Any]], cursor: Any = None) -> StagedPages:
    entries = [PageEntry(source, f"{source}-p1", len(records), False, cursor, [job(source, 2)])]
    log = LogRows([request_row(source, 1)])
    return StagedPages(source, spool_of(records), entries, None, log)


def discard(batches: Sequence[StagedPages]) -> None:
    for b in batches:
        if b.spool is not None:
            b.spool.discard()


@pytest.mark.parametrize("kind", ["duckdb", "jsonl"])
def test_several_sources_commit_in_one_transaction_with_their_journal_and_log(
    tmp_path: Path, kind: str
) -> None:
    store: StagedStore = (
        DuckDBLoader(tmp_path / "out.duckdb") if kind == "duckdb" else FileLoader(tmp_path, kind)
    )
    cursors: list[Any] = ["2026-01-01T00:00:00Z", 12, 1.5, {"id": "é", "n": [1, None]}, None]
    batches = [
        batch(f"s{n}", [{"id": n * 10 + i, "name": f"n{i}"} for i in range(n + 1)], cursor)
        for n, cursor in enumerate(cursors)
    ]
    with store:
        try:
            assert store.stage_many("r1", batches) == [1, 2, 3, 4, 5]
        finally:
            discard(batches)
        committed = store.committed_pages("r1")
        database = store.database
    # every page's journal row, its cursor and its jobs as they were given, in their order
    assert committed == [e for b in batches for e in b.entries]
    for n in range(5):
        assert rows(database, f"SELECT count(*) FROM {stage_table(f's{n}')}") == [(n + 1,)]
    logged = rows(database, "SELECT source FROM _fetchpipe_requests ORDER BY source")
    assert logged == [(f"s{n}",) for n in range(5)]


def test_a_batch_that_cannot_be_staged_fails_its_own_source_only(tmp_path: Path) -> None:
    database = tmp_path / "out.duckdb"
    batches = [
        batch("good1", [{"id": 1}]),
        batch("bad", [{"id": 2, "_fetchpipe_run_id": "mine"}]),  # a reserved field
        batch("good2", [{"id": 3}, {"id": 4}]),
    ]
    with DuckDBLoader(database) as loader:
        try:
            outcomes = loader.stage_many("r1", batches)
        finally:
            discard(batches)
        committed = {e.source for e in loader.committed_pages("r1")}
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], LoadError)
    assert "_fetchpipe_run_id" in str(outcomes[1])
    # the others' records, journal and log rows are in; nothing of the failed one is
    assert committed == {"good1", "good2"}
    assert rows(database, f"SELECT count(*) FROM {stage_table('good2')}") == [(2,)]
    tables = {str(r[0]) for r in rows(database, "SHOW TABLES")}
    assert stage_table("bad") not in tables
    logged = rows(database, "SELECT DISTINCT source FROM _fetchpipe_requests ORDER BY 1")
    assert logged == [("good1",), ("good2",)]


def test_table_columns_finds_a_table_by_name_and_a_missing_one_leaves_the_transaction_open(
    tmp_path: Path,
) -> None:
    with duckdb.connect(str(tmp_path / "t.duckdb")) as connection:
        connection.execute("BEGIN TRANSACTION")
        assert table_columns(connection, "nothing here") is None
        connection.execute('CREATE TABLE "Mixed ""Name" (id BIGINT, "when" TIMESTAMPTZ, doc JSON)')
        connection.execute("CREATE TEMP TABLE batch_rows (n INTEGER)")
        assert table_columns(connection, 'mixed "name') == {
            "id": "BIGINT",
            "when": "TIMESTAMP WITH TIME ZONE",
            "doc": "JSON",
        }
        assert table_columns(connection, "batch_rows") == {"n": "INTEGER"}
        assert table_columns(connection, "still missing") is None
        connection.execute("COMMIT")  # the lookups that found nothing did not abort it
        tables = connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert ('Mixed "Name',) in tables


class CountingLoader(DuckDBLoader):
    """A DuckDB destination that remembers how many batches each ``stage_many`` call had."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.groups: list[list[str]] = []

    def stage_many(self, run_id: str, batches: Sequence[StagedPages]) -> list[int | LoadError]:
        self.groups.append([b.source for b in batches])
        return super().stage_many(run_id, batches)


async def test_commits_due_while_the_destination_is_busy_go_together(tmp_path: Path) -> None:
    spec = PipelineSpec.from_dict(
        {
            "name": "many",
            "destination": f"duckdb:///{tmp_path / 'out.duckdb'}",
            "sources": [
                {"name": f"s{n}", "url": f"http://127.0.0.1:9/s{n}", "records": ""}
                for n in range(4)
            ],
        }
    )
    loader = CountingLoader(tmp_path / "out.duckdb")
    thread = DestinationThread(loader)
    await thread.call(loader.open)
    runs = []
    for source in spec.sources:
        run = SourceRun.start(
            source,
            write=True,
            full_refresh=False,
            state=None,
            ended=None,
            parent=None,
            redact=str,
        )
        runs.append(run)
    commits = Commits(thread, "r1", every=3600)
    busy, release = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        release.wait(10)

    try:
        held = asyncio.ensure_future(thread.call(hold))
        await asyncio.to_thread(busy.wait, 10)
        for n, run in enumerate(runs):
            assert run.spool is not None
            run.spool.add([{"id": n}])
            run.entries.append(PageEntry(run.source.name, f"k{n}", 1, False))
            commits.maybe_commit(run, last=True)
        release.set()
        await held
        staged = await asyncio.gather(*(f for run in runs for f in run.commits))
    finally:
        release.set()
        for run in runs:
            run.discard_spools()
        await thread.call(loader.close)
        thread.shutdown()
    # the four commits due while the destination's thread was busy went in one call
    assert loader.groups == [["s0", "s1", "s2", "s3"]]
    assert staged == [1, 1, 1, 1]
    assert [run.committed_pages for run in runs] == [1, 1, 1, 1]
    count = rows(tmp_path / "out.duckdb", "SELECT count(*) FROM _fetchpipe_pages")
    assert count == [(4,)]


def staged_store(
    tmp_path: Path, kind: str, sources: dict[str, list[dict[str, Any]]]
) -> StagedStore:
    """An open destination with one page of each source staged in run r1."""
    store: StagedStore = (
        DuckDBLoader(tmp_path / "out.duckdb") if kind == "duckdb" else FileLoader(tmp_path, kind)
    )
    store.open()
    batches = [batch(name, records) for name, records in sources.items()]
    try:
        assert store.stage_many("r1", batches) == [len(r) for r in sources.values()]
    finally:
        discard(batches)
    return store


@pytest.mark.parametrize("kind", ["duckdb", "jsonl"])
def test_several_sources_end_at_once_each_with_its_rows_and_state(
    tmp_path: Path, kind: str
) -> None:
    sources = {f"s{n}": [{"id": n * 10 + i} for i in range(n + 1)] for n in range(4)}
    store = staged_store(tmp_path, kind, sources)
    try:
        ends = [
            SourceEnd(name, "merge" if n % 2 else "append", ["id"], {"cursor": n})
            for n, name in enumerate(sources)
        ]
        assert store.finish_many("r1", ends) == [1, 2, 3, 4]
        states = {name: stored.state for name, stored in store.states().items()}
        ended = store.ended_sources("r1")
        written = {name: store.written_rows(name, "r1") for name in sources}
        database = store.database
    finally:
        store.close()
    assert states == {f"s{n}": {"cursor": n} for n in range(4)}
    assert {name: e.status for name, e in ended.items()} == dict.fromkeys(sources, "done")
    assert written == {"s0": 1, "s1": 2, "s2": 3, "s3": 4}
    tables = {str(r[0]) for r in rows(database, "SHOW TABLES")}
    assert not any(stage_table(name) in tables for name in sources)  # the stages are dropped


@pytest.mark.parametrize("kind", ["duckdb", "jsonl"])
def test_a_source_that_cannot_be_applied_fails_alone_and_keeps_its_stage(
    tmp_path: Path, kind: str
) -> None:
    sources = {"a": [{"id": 1}], "keyless": [{"name": "no id"}], "c": [{"id": 3}, {"id": 4}]}
    store = staged_store(tmp_path, kind, sources)
    try:
        ends = [
            SourceEnd("a", "append", None, {"cursor": 1}),
            SourceEnd("keyless", "merge", ["id"], {"cursor": 2}),  # no value for its key
            SourceEnd("c", "append", None, {"cursor": 3}),
        ]
        outcomes = store.finish_many("r1", ends)
        states = {name: stored.state for name, stored in store.states().items()}
        ended = store.ended_sources("r1")
        database = store.database
    finally:
        store.close()
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], LoadError) and "primary key field 'id'" in str(outcomes[1])
    # the others are written with their state; the failed one has neither, and its stage stays
    assert states == {"a": {"cursor": 1}, "c": {"cursor": 3}}
    assert set(ended) == {"a", "c"}
    assert rows(database, f"SELECT count(*) FROM {stage_table('keyless')}") == [(1,)]


BATCHES: list[list[dict[str, Any]]] = [
    [{"id": 1, "name": "a"}, {"id": 2}],  # a new stage table
    [{"id": 3, "name": "c"}],  # the same fields and types: read straight in
    [{"name": "d"}],  # a field fewer
    [{"id": 4, "tags": ["x", "y"], "meta": {"k": 1}}],  # new fields, nested: JSON
    [{"id": "5-1-0", "name": 7}],  # types that widen the columns: through the batch table
    [{}, {}],  # records without a field
    [{"id": 6, "tags": "plain", "name": "f"}],  # text into a JSON column
]


def test_staging_straight_into_the_table_keeps_what_the_batch_table_gave(tmp_path: Path) -> None:
    """The stage table made by stage_records, batch after batch, has the columns, types and
    rows that write_rows from stage_batch (the way through the batch table) gives."""
    from datetime import UTC, datetime

    from fetchpipe.destinations.pipelines.tables import (
        BATCH,
        stage_batch,
        stage_records,
        write_rows,
    )

    when = datetime(2026, 12, 5, tzinfo=UTC)
    with duckdb.connect(str(tmp_path / "t.duckdb")) as connection:
        for records in BATCHES:
            spool = spool_of(records)
            try:
                connection.execute("BEGIN TRANSACTION")
                assert stage_records(connection, "straight", spool, "r1", when) == len(records)
                columns = stage_batch(connection, spool, "r1", when)
                assert write_rows(connection, "batched", BATCH, columns) == len(records)
                connection.execute("COMMIT")
            finally:
                spool.discard()
        straight = table_columns(connection, "straight")
        assert straight is not None
        assert straight == table_columns(connection, "batched")
        assert straight["id"] == "JSON" and straight["tags"] == "JSON"  # widened, as the rule says
        names = ", ".join(f'"{name}"' for name in straight)
        table = {
            name: connection.execute(f"SELECT {names} FROM {name} ORDER BY rowid").fetchall()
            for name in ("straight", "batched")
        }
    assert table["straight"] == table["batched"]
    assert len(table["straight"]) == sum(len(records) for records in BATCHES)
