"""``unnest`` against the simulated shop's orders (each with a list of items), into real DuckDB
files and directories of Parquet and JSON Lines: exact row counts in the parent and child
tables, re-loaded twice, a list that shrank, replace and append; and at the destination, a
parent fetched twice in one run and a child table that cannot be written (nothing of the
source is then written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import pytest

from fetchpipe.destinations.duckdb_ingest import Spool
from fetchpipe.destinations.pipelines import ChildTable, LoadError
from fetchpipe.destinations.pipelines.factory import destination_for
from fetchpipe.destinations.pipelines.journal import PageEntry
from fetchpipe.destinations.pipelines.staging import StagedStore
from fetchpipe.destinations.pipelines.tables import ROW_COLUMN
from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.runtime.report import RunReport
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop_orders import SHOP_ORDER_COUNT, order_items

pytestmark = pytest.mark.fleet(hosts=1)

KINDS = ("duckdb", "parquet", "jsonl")
ITEMS = {oid: len(order_items(oid)) for oid in range(1, SHOP_ORDER_COUNT + 1)}


def pipeline(tmp_path: Path, fleet: Fleet, kind: str, write: str) -> Pipeline:
    where = tmp_path / "out.duckdb" if kind == "duckdb" else tmp_path / "out"
    source = {
        "name": "orders",
        "url": fleet.url("/shop/v1/orders"),
        "params": {"per_page": 25},
        "records": "orders",
        "primary_key": "id",
        "write": write,
        "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
        "unnest": [
            {"field": "items", "table": "order_items", "include_parent": {"order_id": "id"}}
        ],
    }
    return Pipeline.from_dict(
        {"name": "orders", "destination": f"{kind}:///{where}", "sources": [source]}
    )


def query(tmp_path: Path, kind: str, sql: str) -> list[tuple[Any, ...]]:
    """``sql`` over the tables ``orders`` and ``order_items`` of the destination."""
    if kind == "duckdb":
        with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as connection:
            return connection.execute(sql).fetchall()
    reader = "read_parquet" if kind == "parquet" else "read_json_auto"
    with duckdb.connect() as connection:
        for table in ("orders", "order_items"):
            files = sorted((tmp_path / "out" / table).glob(f"*.{kind}"))
            listed = ", ".join(f"'{f}'" for f in files)
            connection.execute(f"CREATE VIEW {table} AS SELECT * FROM {reader}([{listed}])")
        return connection.execute(sql).fetchall()


def items_by_order(tmp_path: Path, kind: str) -> dict[int, int]:
    rows = query(tmp_path, kind, "SELECT order_id, count(*) FROM order_items GROUP BY 1")
    return {int(oid): int(n) for oid, n in rows}


def check_ok(report: RunReport) -> None:
    assert report.ok, [(s.name, s.reason) for s in report.failed]


async def set_items(fleet: Fleet, order_id: int, count: int) -> None:
    params = {"id": order_id, "total": 1.0, "items": count}
    async with (
        aiohttp.ClientSession() as session,
        session.post(fleet.url("/shop/__order"), params=params) as response,
    ):
        assert response.status == 200, await response.text()


@pytest.mark.parametrize("kind", KINDS)
async def test_merge_reloaded_twice_keeps_exact_rows_and_a_shrunk_list_loses_its_rows(
    fleet: Fleet, tmp_path: Path, kind: str
) -> None:
    run = pipeline(tmp_path, fleet, kind, "merge")
    total = sum(ITEMS.values())
    assert set(ITEMS.values()) == {0, 1, 2, 3, 4}  # orders without items, and lists
    for _ in range(2):
        report = await run.arun()
        check_ok(report)
        assert report.source("orders").rows == SHOP_ORDER_COUNT
        assert report.source("orders").tables == {"order_items": total}
        assert query(tmp_path, kind, "SELECT count(*), count(DISTINCT id) FROM orders") == [
            (SHOP_ORDER_COUNT, SHOP_ORDER_COUNT)
        ]
        assert query(
            tmp_path, kind, "SELECT count(*), count(DISTINCT (order_id, _index)) FROM order_items"
        ) == [(total, total)]
        assert items_by_order(tmp_path, kind) == {o: n for o, n in ITEMS.items() if n}
    columns = [row[0] for row in query(tmp_path, kind, "DESCRIBE orders")]
    assert "items" not in columns and ROW_COLUMN not in columns
    child_columns = [row[0] for row in query(tmp_path, kind, "DESCRIBE order_items")]
    assert child_columns[:5] == ["sku", "quantity", "price", "order_id", "_index"]
    assert ROW_COLUMN not in child_columns

    shrunk = next(o for o, n in ITEMS.items() if n == 4)
    grown = next(o for o, n in ITEMS.items() if n == 0)
    await set_items(fleet, shrunk, 1)
    await set_items(fleet, grown, 2)
    check_ok(await run.arun())
    expected = {**ITEMS, shrunk: 1, grown: 2}
    assert items_by_order(tmp_path, kind) == {o: n for o, n in expected.items() if n}
    assert query(tmp_path, kind, f"SELECT sku FROM order_items WHERE order_id = {shrunk}") == [
        (order_items(shrunk)[0]["sku"],)
    ]
    orphans = "SELECT count(*) FROM order_items WHERE order_id NOT IN (SELECT id FROM orders)"
    assert query(tmp_path, kind, orphans) == [(0,)]


@pytest.mark.parametrize("kind", KINDS)
async def test_replace_replaces_the_child_table_with_the_parents(
    fleet: Fleet, tmp_path: Path, kind: str
) -> None:
    run = pipeline(tmp_path, fleet, kind, "replace")
    check_ok(await run.arun())
    report = await run.arun()
    check_ok(report)
    total = sum(ITEMS.values())
    assert query(tmp_path, kind, "SELECT count(*) FROM orders") == [(SHOP_ORDER_COUNT,)]
    assert query(
        tmp_path, kind, "SELECT count(*), count(DISTINCT _fetchpipe_run_id) FROM order_items"
    ) == [(total, 1)]
    assert query(tmp_path, kind, "SELECT DISTINCT _fetchpipe_run_id FROM order_items") == [
        (report.run_id,)
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_append_adds_every_runs_child_rows(fleet: Fleet, tmp_path: Path, kind: str) -> None:
    run = pipeline(tmp_path, fleet, kind, "append")
    first, second = await run.arun(), await run.arun()
    check_ok(first)
    check_ok(second)
    total = sum(ITEMS.values())
    assert second.source("orders").tables == {"order_items": total}
    assert query(tmp_path, kind, "SELECT count(*) FROM orders") == [(2 * SHOP_ORDER_COUNT,)]
    by_run = query(
        tmp_path, kind, "SELECT _fetchpipe_run_id, count(*) FROM order_items GROUP BY 1 ORDER BY 1"
    )
    assert by_run == [(first.run_id, total), (second.run_id, total)]


# --- at the destination: what a run stages, applied --------------------------------------------

CHILD = ChildTable("order_items", "_index", (("order_id", "id"),))


def stage(store: StagedStore, pages: list[list[tuple[int, list[str]]]], run_id: str) -> None:
    """Each page (orders as (id, skus)) committed as a run does: the parent rows and the child
    rows numbered from 0 within the commit, in one transaction."""
    for number, page in enumerate(pages):
        parents, children = Spool(), Spool()
        try:
            parents.add({"id": oid, ROW_COLUMN: n} for n, (oid, _) in enumerate(page))
            children.add(
                {"sku": sku, "order_id": oid, "_index": i, ROW_COLUMN: n}
                for n, (oid, skus) in enumerate(page)
                for i, sku in enumerate(skus)
            )
            parents.finish()
            children.finish()
            entry = PageEntry("orders", f"{run_id}-{number}", len(page), False)
            store.stage_pages("orders", parents, run_id, [entry], {"order_items": children})
        finally:
            parents.discard()
            children.discard()


def child_rows(tmp_path: Path, kind: str) -> list[tuple[Any, ...]]:
    return query(
        tmp_path, kind, "SELECT order_id, _index, sku FROM order_items ORDER BY order_id, _index"
    )


def store_for(tmp_path: Path, kind: str) -> StagedStore:
    store = destination_for(kind, tmp_path / ("out.duckdb" if kind == "duckdb" else "out"))
    assert isinstance(store, StagedStore)
    return store


@pytest.mark.parametrize("kind", KINDS)
def test_a_parent_staged_twice_in_a_run_keeps_the_children_of_its_last_copy(
    tmp_path: Path, kind: str
) -> None:
    with store_for(tmp_path, kind) as store:
        stage(store, [[(1, ["a", "b"]), (2, ["c"])]], "r1")
        store.finish_source(
            "orders", write="merge", primary_key=["id"], run_id="r1", tables=[CHILD]
        )
        # Order 1 comes twice in the next run (its list shrank in between), order 2 once with
        # an empty list: one commit, then another.
        stage(store, [[(1, ["x", "y", "z"])], [(2, []), (1, ["w"])]], "r2")
        rows = store.finish_source(
            "orders", write="merge", primary_key=["id"], run_id="r2", tables=[CHILD]
        )
        assert rows == 2
        assert store.written_rows("order_items", "r2") == 1
    assert query(tmp_path, kind, "SELECT count(*) FROM orders") == [(2,)]
    assert child_rows(tmp_path, kind) == [(1, 0, "w")]


@pytest.mark.parametrize("kind", KINDS)
def test_merges_after_runs_without_child_rows_or_without_records(tmp_path: Path, kind: str) -> None:
    """A run with no list items (an empty JSON Lines file), then a run with no records at all
    (an incremental run that found nothing new), then one with items: each merges."""
    merge = {"write": "merge", "primary_key": ["id"], "tables": [CHILD]}
    with store_for(tmp_path, kind) as store:
        stage(store, [[(1, []), (2, [])]], "r1")
        assert store.finish_source("orders", run_id="r1", **merge) == 2  # type: ignore[arg-type]
        stage(store, [[]], "r2")
        assert store.finish_source("orders", run_id="r2", **merge) == 0  # type: ignore[arg-type]
        stage(store, [[(2, ["a", "b"])]], "r3")
        assert store.finish_source("orders", run_id="r3", **merge) == 1  # type: ignore[arg-type]
        assert store.written_rows("order_items", "r3") == 2
    assert query(tmp_path, kind, "SELECT id FROM orders ORDER BY id") == [(1,), (2,)]
    assert child_rows(tmp_path, kind) == [(2, 0, "a"), (2, 1, "b")]


@pytest.mark.parametrize("kind", KINDS)
def test_rows_written_before_the_tie_are_kept_by_a_merge(tmp_path: Path, kind: str) -> None:
    """Child rows appended without the parent's key (no include_parent), then the source
    merged with it: the untied rows stay, the tied ones are replaced on each re-load."""
    untied = ChildTable("order_items", "_index")
    with store_for(tmp_path, kind) as store:
        parents, children = Spool(), Spool()
        parents.add([{"id": 1, ROW_COLUMN: 0}])
        children.add([{"sku": "old", "_index": 0, ROW_COLUMN: 0}])
        parents.finish()
        children.finish()
        entry = PageEntry("orders", "r0", 1, False)
        store.stage_pages("orders", parents, "r0", [entry], {"order_items": children})
        parents.discard()
        children.discard()
        store.finish_source(
            "orders", write="append", primary_key=None, run_id="r0", tables=[untied]
        )
        for run_id in ("r1", "r2"):
            stage(store, [[(1, ["a", "b"])]], run_id)
            store.finish_source(
                "orders", write="merge", primary_key=["id"], run_id=run_id, tables=[CHILD]
            )
    rows = query(tmp_path, kind, "SELECT order_id, _index, sku FROM order_items ORDER BY sku")
    assert rows == [(1, 0, "a"), (1, 1, "b"), (None, 0, "old")]


def test_a_child_table_that_cannot_be_written_writes_nothing_of_the_source(
    tmp_path: Path,
) -> None:
    db = tmp_path / "out.duckdb"
    with duckdb.connect(str(db)) as connection:  # someone made order_items a view
        connection.execute("CREATE VIEW order_items AS SELECT 1 AS order_id")
    with store_for(tmp_path, "duckdb") as store:
        stage(store, [[(1, ["a"])]], "r1")
        with pytest.raises(LoadError, match="order_items"):
            store.finish_source(
                "orders",
                write="merge",
                primary_key=["id"],
                run_id="r1",
                state={"cursor": 5},
                tables=[CHILD],
            )
        assert store.read_state("orders") is None
    with duckdb.connect(str(db), read_only=True) as connection:
        tables = {r[0] for r in connection.execute("SHOW TABLES").fetchall()}
        staged = connection.execute("SELECT count(*) FROM _fetchpipe_stage_order_items").fetchall()
    assert "orders" not in tables  # the parent's rows were not written either
    assert staged == [(1,)]  # the stages are kept: nothing fetched is lost


@pytest.mark.parametrize("kind", KINDS)
def test_a_discarded_source_drops_its_child_stages(tmp_path: Path, kind: str) -> None:
    with store_for(tmp_path, kind) as store:
        stage(store, [[(1, ["a"])]], "r1")
        store.discard_source("r1", "orders", "failed", "a page failed", ["order_items"])
        database = store.database
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = {r[0] for r in connection.execute("SHOW TABLES").fetchall()}
    assert not {t for t in tables if t.startswith("_fetchpipe_stage_")}
    assert "order_items" not in tables
