"""Loading a source's records into DuckDB tables, with the source's state in the same transaction.

:class:`DuckDBLoader` writes each batch to a temporary JSON Lines file and inserts it with one
``INSERT ... SELECT FROM read_json(...)`` (the bulk path of :mod:`fetchpipe.sinks.duckdb`).

- Types come from the batch: DuckDB infers every top-level field from all lines of the batch.
  Nested objects and arrays are stored as ``JSON``, not ``STRUCT``/``LIST``: the shape of
  nested API data varies between batches (a key appears, a list holds objects of another
  shape), and a ``STRUCT`` column cannot take a new member without rewriting the column,
  whereas a ``JSON`` column takes any value and keeps the text as the API sent it.
- A field not yet in the table adds a column (``ALTER TABLE ... ADD COLUMN``); a field missing
  from a batch is ``NULL``. Columns match fields case-insensitively, as DuckDB identifiers do.
- Each row carries ``_fetchpipe_run_id`` and ``_fetchpipe_loaded_at``.
- ``append`` inserts. ``replace``: the first load of a table in a run drops the table and
  creates it from the batch (so the table holds this run's records, typed by them); later loads
  of the same run append. ``merge`` deletes the rows whose primary key occurs in the batch, then
  inserts the batch (last record wins within a batch). This works on any table, whereas
  ``INSERT OR REPLACE`` needs a ``PRIMARY KEY`` constraint, which DuckDB cannot add to an
  existing table (a table first written by ``append`` has none).
- The state of a source is a row of ``_fetchpipe_state``, written in the transaction of the
  records it covers: a failure rolls back both.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import orjson

from fetchpipe._exceptions import SinkError
from fetchpipe.pipeline.spool import Spool

if TYPE_CHECKING:
    import duckdb

WriteMode = Literal["append", "replace", "merge"]

STATE_TABLE = "_fetchpipe_state"
RUN_ID_COLUMN = "_fetchpipe_run_id"
LOADED_AT_COLUMN = "_fetchpipe_loaded_at"
BATCH = "_fetchpipe_batch"
_MIN_OBJECT_SIZE = 1024 * 1024
_NESTED = ("STRUCT", "MAP", "UNION")
"""Inferred type prefixes stored as JSON instead (lists end in ``[]``; all-null is ``"NULL"``)."""


class LoadError(SinkError):
    """Records could not be loaded; nothing of the failed load was written."""


def quote(name: str) -> str:
    """``name`` as a DuckDB quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _stored_type(inferred: str) -> str:
    if inferred.endswith("]") or inferred.startswith(_NESTED) or inferred in ('"NULL"', "NULL"):
        return "JSON"
    return inferred


class DuckDBLoader:
    """Loads records into tables of the DuckDB file ``path`` (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._replaced: set[tuple[str, str]] = set()
        """(run id, table) pairs whose first ``replace`` load has committed."""

    def open(self) -> None:
        """Connect to the file (creating it and its directory when missing) and create the
        state table when missing."""
        import duckdb

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(
                f"cannot create the directory of {str(self.path)!r}: {exc.strerror or exc}"
            ) from exc
        try:
            # One DuckDB thread: measured on 100,000 records, a second thread used 60 MB more
            # memory for the load and saved no time (the event loop keeps a core busy).
            connection = duckdb.connect(str(self.path), config={"threads": 1})
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(STATE_TABLE)} (source VARCHAR PRIMARY KEY, "
                "state JSON, run_id VARCHAR, updated_at TIMESTAMPTZ)"
            )
        except duckdb.Error as exc:
            raise LoadError(
                f"cannot open DuckDB file {str(self.path)!r}: {exc}. HINT: check that no "
                "other process has the file open and that it is a DuckDB file"
            ) from exc
        self._connection = connection

    def close(self) -> None:
        """Close the file."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _conn(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            raise LoadError(f"{str(self.path)!r} is not open. HINT: call open() first")
        return self._connection

    def read_state(self, source: str) -> dict[str, Any] | None:
        """The state last committed for ``source``, or ``None``."""
        row = (
            self._conn()
            .execute(f"SELECT state FROM {quote(STATE_TABLE)} WHERE source = ?", [source])
            .fetchone()
        )
        if row is None or row[0] is None:
            return None
        state = json.loads(row[0])
        return state if isinstance(state, dict) else None

    def load(
        self,
        table: str,
        records: Sequence[Mapping[str, Any]],
        *,
        write: WriteMode,
        primary_key: Sequence[str] | None,
        run_id: str,
        state: Mapping[str, object] | None = None,
        source: str | None = None,
    ) -> int:
        """Write ``records`` to ``table`` and, when given, ``state`` for ``source`` (default:
        ``table``), in one transaction. Returns the number of rows written."""
        with Spool(prefix="fetchpipe-load-") as spool:
            spool.add(records)
            spool.finish()
            return self.load_spool(
                table,
                spool,
                write=write,
                primary_key=primary_key,
                run_id=run_id,
                state=state,
                source=source,
            )

    def load_spool(
        self,
        table: str,
        spool: Spool,
        *,
        write: WriteMode,
        primary_key: Sequence[str] | None,
        run_id: str,
        state: Mapping[str, object] | None = None,
        source: str | None = None,
    ) -> int:
        """:meth:`load` for records already in a finished :class:`Spool`."""
        import duckdb

        connection = self._conn()
        if write not in ("append", "replace", "merge"):
            raise LoadError(f"unknown write mode {write!r}. HINT: use append, replace or merge")
        key = list(primary_key or ())
        if write == "merge" and not key:
            raise LoadError(f"table {table!r}: write 'merge' needs a primary key")
        state_json = None if state is None else orjson.dumps(state, default=str).decode()
        first_replace = write == "replace" and (run_id, table.lower()) not in self._replaced
        try:
            connection.execute("BEGIN TRANSACTION")
            if first_replace and spool.fields:
                connection.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            elif first_replace and self._columns(connection, table) is not None:
                connection.execute(f"DELETE FROM {quote(table)}")  # keeps its columns
            merge_key = key if write == "merge" else []
            written = self._write(connection, table, spool, merge_key, run_id)
            written_at = datetime.now(UTC)
            if state_json is not None:
                connection.execute(
                    f"INSERT OR REPLACE INTO {quote(STATE_TABLE)} VALUES (?, ?, ?, ?)",
                    [table if source is None else source, state_json, run_id, written_at],
                )
            connection.execute("COMMIT")
        except (duckdb.Error, LoadError, OSError, TypeError) as exc:
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            if isinstance(exc, LoadError):
                raise
            raise LoadError(
                f"cannot load {spool.count} record(s) into {table!r} in {str(self.path)!r}: {exc}"
            ) from exc
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            raise
        finally:
            with contextlib.suppress(duckdb.Error):
                connection.execute(f"DROP TABLE IF EXISTS {BATCH}")
        if first_replace:
            self._replaced.add((run_id, table.lower()))
        return written

    def _write(
        self,
        connection: duckdb.DuckDBPyConnection,
        table: str,
        spool: Spool,
        merge_key: list[str],
        run_id: str,
    ) -> int:
        """Inside the open transaction: stage, evolve the table, delete merged keys, insert."""
        loaded_at = datetime.now(UTC)
        meta = f"CAST(? AS VARCHAR) AS {quote(RUN_ID_COLUMN)}, "
        meta += f"CAST(? AS TIMESTAMPTZ) AS {quote(LOADED_AT_COLUMN)}"
        columns = stage(connection, spool)
        count = spool.count
        if merge_key and count:
            count = dedupe(connection, columns, merge_key)
        source = f"FROM {BATCH}" if columns else f"FROM range({count})"
        existing = self._columns(connection, table)
        known = {name.lower(): type_ for name, type_ in (existing or {}).items()}
        if existing is None:
            fields = "".join(f"{quote(name)}, " for name in columns)
            connection.execute(
                f"CREATE TABLE {quote(table)} AS SELECT {fields}{meta} {source} LIMIT 0",
                ["", loaded_at],
            )
            known = {name.lower(): type_ for name, type_ in columns.items()}
        for name, type_ in columns.items():
            if name.lower() not in known:
                connection.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {type_}")
                known[name.lower()] = type_
        # Into a JSON column, a value of another type is encoded (text would be parsed as JSON).
        fields = "".join(
            f"to_json({quote(name)}) AS {quote(name)}, "
            if known[name.lower()] == "JSON" and type_ != "JSON"
            else f"{quote(name)}, "
            for name, type_ in columns.items()
        )
        if not count:
            return 0
        if merge_key and existing is not None:
            match = " AND ".join(
                f"{quote(table)}.{quote(k)} = {BATCH}.{quote(k)}" for k in merge_key
            )
            connection.execute(f"DELETE FROM {quote(table)} USING {BATCH} WHERE {match}")
        connection.execute(
            f"INSERT INTO {quote(table)} BY NAME SELECT {fields}{meta} {source}",
            [run_id, loaded_at],
        )
        return count

    def _columns(self, connection: duckdb.DuckDBPyConnection, table: str) -> dict[str, str] | None:
        """The columns of ``table`` in the main schema and their types, or ``None`` when it does
        not exist."""
        rows = connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = 'main' "
            "AND lower(table_name) = lower(?) ORDER BY ordinal_position",
            [table],
        ).fetchall()
        return {str(row[0]): str(row[1]) for row in rows} if rows else None


def dedupe(
    connection: duckdb.DuckDBPyConnection, columns: Mapping[str, str], key: Sequence[str]
) -> int:
    """Check the primary key of the staged batch and keep the last row of each key value.

    Returns the number of rows left. A key field absent from a record is a LoadError naming
    the record (its line in the batch, from 0).
    """
    present = {name.lower() for name in columns}
    for field in key:
        missing = None
        if field.lower() not in present:
            missing = 0
        else:
            row = connection.execute(
                f"SELECT min(rowid) FROM {BATCH} WHERE {quote(field)} IS NULL"
            ).fetchone()
            missing = None if row is None else row[0]
        if missing is not None:
            raise LoadError(
                f"record {missing} has no value for the primary key field {field!r}. "
                "HINT: check primary_key in the source configuration"
            )
    keys = ", ".join(quote(k) for k in key)
    row = connection.execute(
        f"SELECT count(*), count(DISTINCT row({keys})) FROM {BATCH}"
    ).fetchone()
    total, distinct = (0, 0) if row is None else (int(row[0]), int(row[1]))
    if total == distinct:
        return total
    connection.execute(
        f"CREATE TEMP TABLE {BATCH}_last AS SELECT * FROM {BATCH} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY rowid DESC) = 1"
    )
    connection.execute(f"DROP TABLE {BATCH}")
    connection.execute(f"ALTER TABLE {BATCH}_last RENAME TO {BATCH}")
    return distinct


def stage(connection: duckdb.DuckDBPyConnection, spool: Spool) -> dict[str, str]:
    """Read the spool into the temporary table ``BATCH``, in file order.

    Returns the batch's columns and their stored types; ``{}`` when no record has a field.
    """
    connection.execute(f"DROP TABLE IF EXISTS {BATCH}")
    if not spool.fields:
        return {}
    size = max(_MIN_OBJECT_SIZE, 2 * spool.longest)
    options = f"format = 'newline_delimited', records = true, maximum_object_size = {size}"
    inferred = connection.execute(
        f"DESCRIBE SELECT * FROM read_json(?, {options}, sample_size = -1, maximum_depth = 2)",
        [spool.path],
    ).fetchall()
    columns = {str(row[0]): _stored_type(str(row[1])) for row in inferred}
    for reserved in (RUN_ID_COLUMN, LOADED_AT_COLUMN):
        if reserved.lower() in {name.lower() for name in columns}:
            raise LoadError(f"records may not have a field named {reserved!r}")
    spec = ", ".join(f"{_literal(name)}: {_literal(t)}" for name, t in columns.items())
    connection.execute(
        f"CREATE TEMP TABLE {BATCH} AS SELECT * FROM read_json(?, {options}, columns = {{{spec}}})",
        [spool.path],
    )
    return columns
