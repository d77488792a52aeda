"""DuckDBLoader on real DuckDB files: write modes, schema evolution, quoting, state, bulk.

Records take the path of a pipeline run: a source's pages are staged (``stage_pages``, one
transaction per commit) and applied to its table when the source ends (``finish_source``).
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe.destinations.duckdb_ingest import Spool
from fetchpipe.destinations.pipelines import LoadError, WriteMode
from fetchpipe.destinations.pipelines.duckdb import DuckDBLoader
from fetchpipe.destinations.pipelines.factory import destination_for
from fetchpipe.destinations.pipelines.files import FileLoader
from fetchpipe.destinations.pipelines.journal import PageEntry


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def columns(path: Path, table: str) -> dict[str, str]:
    return {str(row[0]): str(row[1]) for row in rows(path, f'DESCRIBE "{table}"')}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "out.duckdb"


RECORDS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]


def stage(loader: DuckDBLoader, source: str, records: list[dict[str, Any]], run_id: str) -> None:
    """Commit ``records`` as one page of ``source``, as a run does every second."""
    spool = Spool()
    try:
        spool.add(records)
        spool.finish()
        page = PageEntry(source, f"page-{len(loader.committed_pages(run_id))}", len(records), False)
        assert loader.stage_pages(source, spool, run_id, [page]) == len(records)
    finally:
        spool.discard()


def load(
    loader: DuckDBLoader,
    table: str,
    records: list[dict[str, Any]],
    *,
    write: WriteMode,
    primary_key: list[str] | None,
    run_id: str,
    state: dict[str, Any] | None = None,
) -> int:
    """``records`` staged as one page of the source ``table``, then the source ends."""
    stage(loader, table, records, run_id)
    return loader.finish_source(
        table, write=write, primary_key=primary_key, run_id=run_id, state=state
    )


def test_append_twice_doubles_rows(db: Path) -> None:
    with DuckDBLoader(db) as loader:
        assert load(loader, "items", RECORDS, write="append", primary_key=None, run_id="r1") == 3
        assert load(loader, "items", RECORDS, write="append", primary_key=None, run_id="r2") == 3
    assert rows(db, "SELECT count(*) FROM items") == [(6,)]
    assert rows(db, "SELECT _fetchpipe_run_id, count(*) FROM items GROUP BY 1 ORDER BY 1") == [
        ("r1", 3),
        ("r2", 3),
    ]
    types = columns(db, "items")
    assert types["id"] == "BIGINT"
    assert types["_fetchpipe_run_id"] == "VARCHAR"
    assert types["_fetchpipe_loaded_at"] == "TIMESTAMP WITH TIME ZONE"
    assert rows(db, "SELECT count(*) FROM items WHERE _fetchpipe_loaded_at IS NULL") == [(0,)]


def test_replace_keeps_only_the_last_run(db: Path) -> None:
    with DuckDBLoader(db) as loader:
        load(loader, "items", RECORDS, write="replace", primary_key=None, run_id="r1")
    with DuckDBLoader(db) as loader:
        # Every page the run committed lands; what earlier runs wrote goes.
        stage(loader, "items", RECORDS[:1], "r2")
        stage(loader, "items", RECORDS[1:2], "r2")
        assert loader.finish_source("items", write="replace", primary_key=None, run_id="r2") == 2
    assert rows(db, "SELECT id, _fetchpipe_run_id FROM items ORDER BY id") == [
        (1, "r2"),
        (2, "r2"),
    ]


def test_merge_rerun_keeps_count_and_updates_rows(db: Path) -> None:
    with DuckDBLoader(db) as loader:
        load(loader, "items", RECORDS, write="merge", primary_key=["id"], run_id="r1")
        changed = [{"id": 2, "name": "B"}, {"id": 4, "name": "d"}]
        assert load(loader, "items", changed, write="merge", primary_key=["id"], run_id="r2") == 2
        load(loader, "items", RECORDS[:1], write="merge", primary_key=["id"], run_id="r3")
    assert rows(db, "SELECT id, name, _fetchpipe_run_id FROM items ORDER BY id") == [
        (1, "a", "r3"),
        (2, "B", "r2"),
        (3, "c", "r1"),
        (4, "d", "r2"),
    ]


def test_merge_composite_key_and_duplicates_within_a_batch(db: Path) -> None:
    batch = [
        {"k": "x", "n": 1, "v": "first"},
        {"k": "x", "n": 2, "v": "other"},
        {"k": "x", "n": 1, "v": "last"},
    ]
    with DuckDBLoader(db) as loader:
        assert load(loader, "t", batch, write="merge", primary_key=["k", "n"], run_id="r1") == 2
        assert load(loader, "t", batch, write="merge", primary_key=["k", "n"], run_id="r2") == 2
    assert rows(db, "SELECT k, n, v FROM t ORDER BY n") == [("x", 1, "last"), ("x", 2, "other")]


def test_merge_without_primary_key_is_an_error(db: Path) -> None:
    with DuckDBLoader(db) as loader, pytest.raises(LoadError, match="primary key"):
        load(loader, "t", RECORDS, write="merge", primary_key=None, run_id="r1")


def test_new_field_adds_a_column_and_missing_fields_are_null(db: Path) -> None:
    with DuckDBLoader(db) as loader:
        load(loader, "t", [{"id": 1, "a": "x"}], write="append", primary_key=None, run_id="r1")
        load(
            loader, "t", [{"id": 2, "b": True, "nested": {"z": [1, 2]}}], write="append",
            primary_key=None, run_id="r2",
        )  # fmt: skip
    types = columns(db, "t")
    assert types["b"] == "BOOLEAN"
    assert types["nested"] == "JSON"
    assert rows(db, "SELECT id, a, b, nested FROM t ORDER BY id") == [
        (1, "x", None, None),
        (2, None, True, '{"z":[1,2]}'),
    ]


def test_nested_values_are_json_whatever_their_shape(db: Path) -> None:
    first = [{"id": 1, "obj": {"a": 1}, "list": [1], "empty": None}]
    second = [{"id": 2, "obj": {"b": {"c": "d"}}, "list": [{"x": 1}], "empty": "now text"}]
    with DuckDBLoader(db) as loader:
        load(loader, "t", first, write="append", primary_key=None, run_id="r1")
        load(loader, "t", second, write="append", primary_key=None, run_id="r2")
    assert {k: v for k, v in columns(db, "t").items() if k in ("obj", "list", "empty")} == {
        "obj": "JSON",
        "list": "JSON",
        "empty": "JSON",
    }
    got = rows(db, "SELECT obj, list, empty FROM t ORDER BY id")
    assert [json.loads(value) for value in got[1]] == [{"b": {"c": "d"}}, [{"x": 1}], "now text"]


def test_names_needing_quotes(db: Path) -> None:
    table = "order"  # a source name is an identifier, and may be an SQL keyword
    records = [{"a b": 1, "x.y": "dot", 'q"uote': "q", "select": 3, "ID": 9}]
    with DuckDBLoader(db) as loader:
        load(loader, table, records, write="merge", primary_key=["a b"], run_id="r1")
        load(loader, table, records, write="merge", primary_key=["a b"], run_id="r2")
        load(loader, table, [{"a b": 2, "new col": 1}], write="append", primary_key=None,
                    run_id="r2")  # fmt: skip
    escaped = table.replace('"', '""')
    sql = f'SELECT "a b", "x.y", "q""uote", "select", "ID", "new col" FROM "{escaped}" ORDER BY 1'
    assert rows(db, sql) == [(1, "dot", "q", 3, 9, None), (2, None, None, None, None, 1)]


def test_state_is_committed_with_the_records(db: Path) -> None:
    with DuckDBLoader(db) as loader:
        assert loader.read_state("items") is None
        load(
            loader, "items", RECORDS, write="append", primary_key=None, run_id="r1",
            state={"cursor": "2024-01-01", "page": 3},
        )  # fmt: skip
        load(
            loader, "other", [], write="append", primary_key=None, run_id="r1",
            state={"cursor": "x"},
        )  # fmt: skip
    with DuckDBLoader(db) as loader:
        assert loader.read_state("items") == {"cursor": "2024-01-01", "page": 3}
        assert loader.read_state("other") == {"cursor": "x"}
    assert rows(db, "SELECT source, run_id FROM _fetchpipe_state ORDER BY 1") == [
        ("items", "r1"),
        ("other", "r1"),
    ]


def test_missing_primary_key_leaves_table_and_state_unchanged(db: Path) -> None:
    with DuckDBLoader(db) as loader:
        load(loader, "t", RECORDS, write="merge", primary_key=["id"], run_id="r1", state={"c": 1})
        with pytest.raises(LoadError, match="'id'"):
            load(
                loader, "t", [{"id": 1, "name": "z"}, {"name": "no id"}], write="merge",
                primary_key=["id"], run_id="r2", state={"c": 2},
            )  # fmt: skip
        assert loader.read_state("t") == {"c": 1}
    assert rows(db, "SELECT id, name FROM t ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]


def test_failure_inside_the_transaction_rolls_back_records_columns_and_state(db: Path) -> None:
    with DuckDBLoader(db) as loader:
        load(loader, "t", RECORDS, write="replace", primary_key=None, run_id="r1", state={"c": 1})
        # No primary key value: fails after the column "extra" was added.
        bad = [{"extra": 1}]
        with pytest.raises(LoadError, match="no value for the primary key field 'id'"):
            load(loader, "t", bad, write="merge", primary_key=["id"], run_id="r2", state={"c": 2})
        assert loader.read_state("t") == {"c": 1}
        assert rows_in(loader, "SELECT count(*) FROM t") == [(3,)]
        assert "extra" not in [r[0] for r in rows_in(loader, "DESCRIBE t")]
        loader.discard_source("r2", "t", "failed", "no primary key")  # as a run ends the source
        # A reserved field name fails the commit: neither its records nor its page are kept.
        reserved = [{"id": 9, "_fetchpipe_run_id": "mine"}]
        with pytest.raises(LoadError, match="_fetchpipe_run_id"):
            stage(loader, "t", reserved, "r3")
        assert loader.committed_pages("r3") == []
        assert loader.read_state("t") == {"c": 1}
        assert rows_in(loader, "SELECT count(*) FROM t") == [(3,)]
        # The failed commit left nothing behind: the run's next page replaces the table.
        load(loader, "t", RECORDS[:1], write="replace", primary_key=None, run_id="r3")
    assert rows(db, "SELECT id, _fetchpipe_run_id FROM t") == [(1, "r3")]


def rows_in(loader: DuckDBLoader, sql: str) -> list[tuple[Any, ...]]:
    assert loader._connection is not None
    return loader._connection.execute(sql).fetchall()


def test_bulk_load_of_100k_records(db: Path) -> None:
    records = [
        {"id": i, "name": f"item {i}", "price": i / 7, "tags": ["a", "b"], "ok": i % 2 == 0}
        for i in range(100_000)
    ]
    with DuckDBLoader(db) as loader:
        start = time.perf_counter()
        written = load(loader, "bulk", records, write="merge", primary_key=["id"], run_id="r1")
        elapsed = time.perf_counter() - start
    print(f"\n100,000 records loaded (merge) in {elapsed:.2f}s ({written / elapsed:,.0f} rows/s)")
    assert written == 100_000
    assert rows(db, "SELECT count(*), count(DISTINCT id) FROM bulk") == [(100_000, 100_000)]


@pytest.mark.parametrize(
    ("first", "second", "column_type", "values"),
    [
        (1, 1.5, "DOUBLE", [1.0, 1.5]),  # not rounded to the first batch's BIGINT
        (1, "n/a", "JSON", ["1", '"n/a"']),
        ("a", 2, "VARCHAR", ["a", "2"]),
        (1, None, "BIGINT", [1, None]),  # an all-null field changes nothing
        (1, "1-1-0", "JSON", ["1", '"1-1-0"']),  # a string that looks like a date is a string
        ("1-1-1", 2, "VARCHAR", ["1-1-1", "2"]),
        ("2024-01-01", "soon", "VARCHAR", ["2024-01-01", "soon"]),
    ],
)
def test_a_later_batch_with_another_type_widens_the_column(
    db: Path, first: Any, second: Any, column_type: str, values: list[Any]
) -> None:
    with DuckDBLoader(db) as loader:
        load(loader, "t", [{"id": 1, "v": first}], write="append", primary_key=None, run_id="r1")
        load(loader, "t", [{"id": 2, "v": second}], write="append", primary_key=None, run_id="r2")
    assert rows(db, "SELECT data_type FROM information_schema.columns WHERE column_name = 'v'") == [
        (column_type,)
    ]
    got = [r[0] for r in rows(db, "SELECT v FROM t ORDER BY id")]
    assert got == values


LOOKS_TYPED = [
    # DuckDB's reader would guess DATE (month-day-year: "1-1-0" fails the load, "1-1-1" became
    # year 1), DATE (ISO and "Infinity"), TIME, TIMESTAMP WITH TIME ZONE and UUID (lower case).
    {"id": "1-1-0", "day": "2024-01-01", "at": "10:00", "ts": "2024-01-01T10:00:00+02:00"},
    {"id": "1-1-1", "day": "Infinity", "at": "23:59:59", "ts": "2024-01-02 08:00:00Z"},
]
UUIDS = ["550E8400-E29B-41D4-A716-446655440000", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"]


def test_strings_stay_text_whatever_they_look_like(db: Path) -> None:
    records = [
        {**record, "ref": ref, "n": i, "x": i + 0.5, "ok": i == 0, "obj": {"i": i}}
        for i, (record, ref) in enumerate(zip(LOOKS_TYPED, UUIDS, strict=True))
    ]
    with DuckDBLoader(db) as loader:
        assert load(loader, "t", records, write="merge", primary_key=["id"], run_id="r1") == 2
    types = columns(db, "t")
    text = ("id", "day", "at", "ts", "ref")
    assert {name: types[name] for name in text} == dict.fromkeys(text, "VARCHAR")
    # What a JSON value says itself is kept: numbers, booleans, nested values as JSON.
    assert [types[name] for name in ("n", "x", "ok", "obj")] == [
        "BIGINT",
        "DOUBLE",
        "BOOLEAN",
        "JSON",
    ]
    got = rows(db, "SELECT " + ", ".join(f'"{name}"' for name in text) + " FROM t ORDER BY n")
    assert got == [tuple(record[name] for name in text) for record in records]  # as sent


def test_a_typed_column_of_an_existing_table_keeps_its_type_while_the_strings_cast(
    db: Path,
) -> None:
    with duckdb.connect(str(db)) as connection:  # made by hand, or by an earlier version
        connection.execute("CREATE TABLE t (id BIGINT, day DATE)")
        connection.execute("INSERT INTO t VALUES (1, DATE '2024-01-01')")
    with DuckDBLoader(db) as loader:
        load(loader, "t", [{"id": 2, "day": "2024-02-03"}], write="append", primary_key=None,
             run_id="r1")  # fmt: skip
        assert rows_in(loader, "SELECT typeof(day), day FROM t WHERE id = 2") == [
            ("DATE", date(2024, 2, 3))
        ]
        load(loader, "t", [{"id": 3, "day": "soon"}], write="append", primary_key=None,
             run_id="r2")  # fmt: skip
    assert columns(db, "t")["day"] == "VARCHAR"
    assert rows(db, "SELECT id, day FROM t ORDER BY id") == [
        (1, "2024-01-01"),
        (2, "2024-02-03"),
        (3, "soon"),
    ]


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_the_destination_of_a_url_is_chosen_by_its_kind(tmp_path: Path, kind: str) -> None:
    database = destination_for("duckdb", tmp_path / "out.duckdb")
    assert isinstance(database, DuckDBLoader) and database.path == tmp_path / "out.duckdb"
    files = destination_for(kind, tmp_path / "out")
    assert isinstance(files, FileLoader) and (files.directory, files.kind) == (
        tmp_path / "out",
        kind,
    )
    with pytest.raises(LoadError, match=r"unknown file format 'csv'\. HINT: use jsonl or parquet"):
        destination_for("csv", tmp_path / "out")


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_a_merge_that_found_no_records_keeps_the_files_rows(tmp_path: Path, kind: str) -> None:
    """An incremental run that finds nothing new merges nothing, and the next one merges on."""
    with FileLoader(tmp_path / "out", kind) as loader:
        for run_id, records in (("r1", RECORDS), ("r2", []), ("r3", [{"id": 2, "name": "B"}])):
            spool = Spool()
            spool.add(records)
            spool.finish()
            loader.stage_pages("items", spool, run_id, [PageEntry("items", run_id, 0, False)])
            spool.discard()
            written = loader.finish_source(
                "items", write="merge", primary_key=["id"], run_id=run_id
            )
            assert written == len(records)
        (path,) = loader.files("items")
    reader = "read_parquet" if kind == "parquet" else "read_json_auto"
    with duckdb.connect() as connection:
        found = connection.execute(f"SELECT id, name FROM {reader}('{path}') ORDER BY id")
        assert found.fetchall() == [(1, "a"), (2, "B"), (3, "c")]
