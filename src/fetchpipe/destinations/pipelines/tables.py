"""Record batches in DuckDB: read a spool into a table, evolve a table, write rows into it.

Each function runs inside the caller's transaction and leaves committing to it.

- Types come from the batch, by the rule of
  :func:`fetchpipe.destinations.duckdb_ingest.column_types`: numbers and booleans keep DuckDB's
  type, strings are ``VARCHAR`` (never a date guessed from their text), nested objects and
  arrays are ``JSON``.
- A field not yet in the table adds a column (``ALTER TABLE ... ADD COLUMN``); a field missing
  from a batch is ``NULL``. Columns match fields case-insensitively, as DuckDB identifiers do.
- Each row carries ``_fetchpipe_run_id`` and ``_fetchpipe_loaded_at``, set when it is read.
- A merge deletes the rows whose primary key occurs in the batch, then inserts the batch, the
  last row of each key winning. This works on any table, whereas ``INSERT OR REPLACE`` needs a
  ``PRIMARY KEY`` constraint, which DuckDB cannot add to an existing table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from fetchpipe.destinations.duckdb_ingest import (
    Spool,
    column_types,
    quote,
    read_json,
    table_columns,
)
from fetchpipe.destinations.pipelines import LoadError

if TYPE_CHECKING:
    import duckdb

RUN_ID_COLUMN = "_fetchpipe_run_id"
LOADED_AT_COLUMN = "_fetchpipe_loaded_at"
META_COLUMNS = {RUN_ID_COLUMN: "VARCHAR", LOADED_AT_COLUMN: "TIMESTAMP WITH TIME ZONE"}
BATCH = "_fetchpipe_batch"
DEDUPED = "_fetchpipe_deduped"
ROW_COLUMN = "_fetchpipe_row"
"""A staged row's number, shared by a parent row and its ``unnest`` rows; never written to a
table (see :mod:`.children`)."""


_META = (
    f"CAST($1 AS VARCHAR) AS {quote(RUN_ID_COLUMN)}, "
    f"CAST($2 AS TIMESTAMPTZ) AS {quote(LOADED_AT_COLUMN)}"
)
"""The meta columns of a batch's rows, from the parameters run id and load time."""


def record_types(connection: duckdb.DuckDBPyConnection, spool: Spool) -> dict[str, str]:
    """The fields of the spool's records and their stored types (see
    :func:`~fetchpipe.destinations.duckdb_ingest.column_types`); LoadError for a field that
    is a meta column's name."""
    columns = column_types(connection, spool)
    for reserved in META_COLUMNS:
        if reserved.lower() in {name.lower() for name in columns}:
            raise LoadError(f"records may not have a field named {reserved!r}")
    return columns


def stage_batch(
    connection: duckdb.DuckDBPyConnection,
    spool: Spool,
    run_id: str,
    loaded_at: datetime,
    columns: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Read the spool into the temporary table ``BATCH``, in file order, with the run id and
    load time (``columns``: the records' types when known). Returns its columns and their
    stored types (the two meta columns last)."""
    connection.execute(f"DROP TABLE IF EXISTS {BATCH}")
    if not spool.fields:  # no record has a field: rows of meta columns only
        connection.execute(
            f"CREATE TEMP TABLE {BATCH} AS SELECT {_META} FROM range({spool.count})",
            [run_id, loaded_at],
        )
        return dict(META_COLUMNS)
    columns = dict(columns) if columns is not None else record_types(connection, spool)
    connection.execute(
        f"CREATE TEMP TABLE {BATCH} AS SELECT *, {_META} FROM {read_json(spool, columns)}",
        [run_id, loaded_at],
    )
    return {**columns, **META_COLUMNS}


def stage_records(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    spool: Spool,
    run_id: str,
    loaded_at: datetime,
) -> int:
    """Add the spool's records to ``table`` (a source's stage, created when missing) as
    :func:`write_rows` from :func:`stage_batch` does. Returns the records added.

    When the table is new, or has each of the records' fields at the type they come in, the
    spool is read straight into it: one statement where the way through ``BATCH`` takes four
    (a run of many small sources commits little at a time, and its commits were mostly such
    statements). Otherwise through ``BATCH``, which :func:`write_rows` needs to add or widen
    columns.
    """
    if not spool.fields:
        return write_rows(
            connection, table, BATCH, stage_batch(connection, spool, run_id, loaded_at)
        )
    columns = record_types(connection, spool)
    existing = table_columns(connection, table)
    select = f"SELECT *, {_META} FROM {read_json(spool, columns)}"
    if existing is None:
        connection.execute(f"CREATE TABLE {quote(table)} AS {select}", [run_id, loaded_at])
        return spool.count
    known = {name.lower(): type_ for name, type_ in existing.items()}
    if all(known.get(name.lower()) == type_ for name, type_ in {**columns, **META_COLUMNS}.items()):
        connection.execute(f"INSERT INTO {quote(table)} BY NAME {select}", [run_id, loaded_at])
        return spool.count
    batch = stage_batch(connection, spool, run_id, loaded_at, columns)
    return write_rows(connection, table, BATCH, batch)


def dedupe(
    connection: duckdb.DuckDBPyConnection,
    relation: str,
    columns: Mapping[str, str],
    key: Sequence[str],
) -> tuple[str, int]:
    """Check the primary key of ``relation`` and keep the last row of each key value.

    Returns the relation to read (``relation`` itself when no key repeats, else the temporary
    table ``DEDUPED``) and its row count. A record without a key value is a LoadError naming it
    (its row in the batch, from 0). No rows: nothing to check (a run that found no records).
    """
    row = connection.execute(f"SELECT count(*) FROM {relation}").fetchone()
    if row is None or not row[0]:
        return relation, 0
    present = {name.lower() for name in columns}
    for field in key:
        missing = None
        if field.lower() not in present:
            missing = 0
        else:
            row = connection.execute(
                f"SELECT min(rowid) FROM {relation} WHERE {quote(field)} IS NULL"
            ).fetchone()
            missing = None if row is None else row[0]
        if missing is not None:
            raise LoadError(
                f"record {missing} has no value for the primary key field {field!r}. "
                "HINT: check primary_key in the source configuration"
            )
    keys = ", ".join(quote(k) for k in key)
    row = connection.execute(
        f"SELECT count(*), count(DISTINCT row({keys})) FROM {relation}"
    ).fetchone()
    total, distinct = (0, 0) if row is None else (int(row[0]), int(row[1]))
    if total == distinct:
        return relation, total
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE {DEDUPED} AS SELECT * FROM {relation} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY rowid DESC) = 1"
    )
    return DEDUPED, distinct


def write_rows(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    relation: str,
    columns: Mapping[str, str],
    merge_key: Sequence[str] = (),
) -> int:
    """Write the rows of ``relation`` (with ``columns``) into ``table``: create it or add the
    columns it lacks, then insert (with ``merge_key``: upsert). Returns the rows written."""
    row = connection.execute(f"SELECT count(*) FROM {relation}").fetchone()
    count = int(row[0]) if row is not None else 0
    existing = table_columns(connection, table)
    known = {name.lower(): type_ for name, type_ in (existing or {}).items()}
    if existing is None:
        fields = ", ".join(quote(name) for name in columns)
        connection.execute(
            f"CREATE TABLE {quote(table)} AS SELECT {fields} FROM {relation} LIMIT 0"
        )
        known = {name.lower(): type_ for name, type_ in columns.items()}
    names = {name.lower(): name for name in existing or {}}
    for name, type_ in columns.items():
        current = known.get(name.lower())
        if current is None:
            connection.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {type_}")
            known[name.lower()] = type_
        elif current != type_ and current != "JSON":
            wider = _wider(current, type_)
            if (
                wider != current
                and _has_values(connection, relation, name)
                and not (wider == "VARCHAR" and _casts(connection, relation, name, current))
            ):
                known[name.lower()] = wider
                column = quote(names.get(name.lower(), name))
                using = f" USING to_json({column})" if wider == "JSON" else ""
                connection.execute(
                    f"ALTER TABLE {quote(table)} ALTER COLUMN {column} SET DATA TYPE {wider}{using}"
                )
    if not count:
        return 0
    if merge_key:
        relation, count = dedupe(connection, relation, columns, merge_key)
    # Into a JSON column, a value of another type is encoded (text would be parsed as JSON).
    fields = ", ".join(
        f"to_json({quote(name)}) AS {quote(name)}"
        if known[name.lower()] == "JSON" and type_ != "JSON"
        else quote(name)
        for name, type_ in columns.items()
    )
    if merge_key and existing is not None:
        match = " AND ".join(
            f"{quote(table)}.{quote(k)} = {relation}.{quote(k)}" for k in merge_key
        )
        connection.execute(f"DELETE FROM {quote(table)} USING {relation} WHERE {match}")
    connection.execute(f"INSERT INTO {quote(table)} BY NAME SELECT {fields} FROM {relation}")
    return count


_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_NUMBERS = (*_INTEGERS, "UBIGINT", "HUGEINT", "FLOAT", "DOUBLE")


def _wider(current: str, incoming: str) -> str:
    """A column type that holds the values of both types, as one batch with both would have
    been typed: integers widen to BIGINT, numbers to DOUBLE, text stays text, other mixes
    become JSON. (A table's column types otherwise follow its first batch.)

    Text into a column of a type DuckDB reads from text (``DATE``, ``TIMESTAMP``, ``UUID``, ...:
    declared by whoever made the table, or guessed from strings by an earlier version) makes it
    text, unless every string casts to that type (see :func:`write_rows`).
    """
    if current in _INTEGERS and incoming in _INTEGERS:
        return "BIGINT"
    if _numeric(current) and _numeric(incoming):
        return "DOUBLE"
    if current == "VARCHAR" or (
        incoming == "VARCHAR" and not _numeric(current) and current != "BOOLEAN"
    ):
        return "VARCHAR"
    return "JSON"


def _numeric(type_: str) -> bool:
    return type_ in _NUMBERS or type_.startswith("DECIMAL")


def _casts(connection: duckdb.DuckDBPyConnection, relation: str, column: str, type_: str) -> bool:
    """True when every value of ``column`` of ``relation`` casts to ``type_``."""
    name = quote(column)
    row = connection.execute(
        f"SELECT count(*) FROM {relation} WHERE {name} IS NOT NULL "
        f"AND TRY_CAST({name} AS {type_}) IS NULL"
    ).fetchone()
    return row is not None and not row[0]


def _has_values(connection: duckdb.DuckDBPyConnection, relation: str, column: str) -> bool:
    """True when ``column`` of ``relation`` holds a value (an all-null column fits any type)."""
    row = connection.execute(f"SELECT count({quote(column)}) FROM {relation}").fetchone()
    return bool(row and row[0])
