"""The tables of a source's list elements (:class:`~fetchpipe.destinations.pipelines.ChildTable`,
a pipeline's ``unnest``): staged with the source's rows, written with its table.

Each staged parent row and its child rows share a number in :data:`.tables.ROW_COLUMN`. The
runtime numbers the rows of one commit from 0; :func:`stage_with_children` shifts them past the
numbers already staged for the source, in the transaction that stages them, so that a number
names one parent row of the run (across commits and a resumed run alike).

:func:`write_child` writes a child table in the caller's transaction, by the parent's write mode:

- ``append``: every staged child row is added;
- ``replace``: the table is replaced with the staged rows (emptied when there are none), as the
  parent's is;
- ``merge``: the rows tied (``ChildTable.link``) to a parent in ``parent`` (the parent's stage,
  its duplicate keys removed) are deleted, then the staged child rows of those parent rows are
  inserted: a re-loaded parent's list replaces its earlier one, so an element that was dropped
  leaves no orphan and none is written twice.

Each function runs inside the caller's transaction and leaves committing to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from fetchpipe.destinations.duckdb_ingest import Spool, quote, table_columns
from fetchpipe.destinations.pipelines import ChildTable, LoadError, WriteMode
from fetchpipe.destinations.pipelines.journal import stage_table
from fetchpipe.destinations.pipelines.tables import (
    BATCH,
    META_COLUMNS,
    ROW_COLUMN,
    stage_batch,
    write_rows,
)

if TYPE_CHECKING:
    import duckdb

KEPT = "_fetchpipe_kept_children"


def stage_with_children(
    connection: duckdb.DuckDBPyConnection,
    source: str,
    spool: Spool,
    tables: Mapping[str, Spool],
    run_id: str,
    loaded_at: datetime,
) -> int:
    """Stage the source's rows of ``spool`` and its child rows of ``tables`` (child table ->
    spool), their row numbers shifted past the source's staged ones. Returns the rows of
    ``spool``."""
    stage = stage_table(source)
    base = _next_row(connection, stage)
    columns = stage_batch(connection, spool, run_id, loaded_at)
    _shift(connection, columns, base)
    staged = write_rows(connection, stage, BATCH, columns)
    for name, rows in tables.items():
        columns = stage_batch(connection, rows, run_id, loaded_at)
        _shift(connection, columns, base)
        write_rows(connection, stage_table(name), BATCH, columns)
    return staged


def _next_row(connection: duckdb.DuckDBPyConnection, stage: str) -> int:
    columns = table_columns(connection, stage)
    if columns is None or ROW_COLUMN not in columns:
        return 0
    row = connection.execute(
        f"SELECT coalesce(max({quote(ROW_COLUMN)}) + 1, 0) FROM {stage}"
    ).fetchone()
    return int(row[0]) if row is not None else 0


def _shift(connection: duckdb.DuckDBPyConnection, columns: Mapping[str, str], base: int) -> None:
    if base and ROW_COLUMN in columns:
        column = quote(ROW_COLUMN)
        connection.execute(f"UPDATE {BATCH} SET {column} = {column} + ?", [base])


def data_columns(columns: Mapping[str, str]) -> dict[str, str]:
    """``columns`` without the row number, which no table keeps."""
    return {name: type_ for name, type_ in columns.items() if name != ROW_COLUMN}


def has_fields(columns: Mapping[str, str] | None) -> bool:
    """True when staged rows with ``columns`` have a field of their own (not only the meta
    columns and the row number): a ``replace`` then makes the table anew from them."""
    return columns is not None and bool(set(data_columns(columns)) - set(META_COLUMNS))


def write_child(
    connection: duckdb.DuckDBPyConnection,
    child: ChildTable,
    write: WriteMode,
    parent: str | None,
) -> int:
    """Write the staged rows of ``child`` into its table; for a merge, those of the parent rows
    of the relation ``parent`` (the parent's stage without its duplicate keys; ``None``: no
    parent row, and nothing to replace). Returns the rows written; a LoadError naming the table
    when it cannot be written."""
    import duckdb

    if write == "merge" and not child.link:
        raise LoadError(
            f"table {child.name!r}: a merge needs the columns that tie a row to its parent's "
            "primary key"
        )
    try:
        return _write_child(connection, child, write, parent)
    except duckdb.Error as exc:
        raise LoadError(f"cannot write the unnest table {child.name!r}: {exc}") from exc


def _write_child(
    connection: duckdb.DuckDBPyConnection,
    child: ChildTable,
    write: WriteMode,
    parent: str | None,
) -> int:
    table = quote(child.name)
    stage = stage_table(child.name)
    columns = table_columns(connection, stage)
    existing = table_columns(connection, child.name)
    if write == "replace" and existing is not None:
        if has_fields(columns):
            connection.execute(f"DROP TABLE {table}")
        else:
            connection.execute(f"DELETE FROM {table}")  # no rows: keep the columns
    # A table without the tie's columns (made by a run with no child rows) has no row to tie.
    names = {name.lower() for name in existing or {}}
    if write == "merge" and parent is not None and all(c.lower() in names for c, _ in child.link):
        connection.execute(f"DELETE FROM {table} USING {parent} WHERE {linked(child, parent)}")
    if columns is None:
        return 0
    relation = stage
    if write == "merge" and parent is not None and ROW_COLUMN in columns:
        row = quote(ROW_COLUMN)
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {KEPT} AS SELECT * FROM {stage} "
            f"WHERE {row} IN (SELECT {row} FROM {parent})"
        )
        relation = KEPT
    return write_rows(connection, child.name, relation, data_columns(columns))


def linked(child: ChildTable, parent: str, alias: str | None = None) -> str:
    """The condition that a row of the child table (or of the rows named ``alias``) belongs to
    a row of the relation ``parent``."""
    table = alias or quote(child.name)
    return " AND ".join(
        f"{table}.{quote(column)} = {parent}.{quote(field)}" for column, field in child.link
    )


def child_key(child: ChildTable) -> Sequence[str]:
    """The columns that key a merged child table's rows: the parent's key, the position."""
    return [*(column for column, _ in child.link), child.index]
