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
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import orjson

from fetchpipe._exceptions import SinkError

if TYPE_CHECKING:
    import duckdb

WriteMode = Literal["append", "replace", "merge"]

STATE_TABLE = "_fetchpipe_state"
RUN_ID_COLUMN = "_fetchpipe_run_id"
LOADED_AT_COLUMN = "_fetchpipe_loaded_at"
_BATCH = "_fetchpipe_batch"
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


def _dedupe(records: Sequence[Mapping[str, Any]], key: Sequence[str]) -> list[Mapping[str, Any]]:
    """``records`` with one record per key value, the last one of each; missing keys raise."""
    latest: dict[str, Mapping[str, Any]] = {}
    for index, record in enumerate(records):
        values = []
        for field in key:
            value = record.get(field)
            if value is None:
                raise LoadError(
                    f"record {index} has no value for the primary key field {field!r}. "
                    "HINT: check primary_key in the source configuration"
                )
            values.append(value)
        latest[orjson.dumps(values, default=str).decode()] = record
    return list(latest.values())


class DuckDBLoader:
    """Loads records into tables of the DuckDB file ``path`` (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._spool_name = ""
        self._replaced: set[tuple[str, str]] = set()
        """(run id, table) pairs whose first ``replace`` load has committed."""

    def open(self) -> None:
        """Connect to the file and create the state table when missing."""
        import duckdb

        try:
            connection = duckdb.connect(str(self.path))
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(STATE_TABLE)} (source VARCHAR PRIMARY KEY, "
                "state JSON, run_id VARCHAR, updated_at TIMESTAMPTZ)"
            )
        except duckdb.Error as exc:
            raise LoadError(
                f"cannot open DuckDB file {str(self.path)!r}: {exc}. HINT: check that the "
                "directory exists and that no other process has the file open"
            ) from exc
        try:
            fd, self._spool_name = tempfile.mkstemp(prefix="fetchpipe-load-", suffix=".jsonl")
        except OSError as exc:
            connection.close()
            raise LoadError(f"cannot create a temporary file for DuckDB batches: {exc}") from exc
        os.close(fd)
        self._connection = connection

    def close(self) -> None:
        """Close the file and remove the temporary batch file."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        if self._spool_name:
            with contextlib.suppress(OSError):
                os.unlink(self._spool_name)
            self._spool_name = ""

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
        import duckdb

        connection = self._conn()
        if write not in ("append", "replace", "merge"):
            raise LoadError(f"unknown write mode {write!r}. HINT: use append, replace or merge")
        key = list(primary_key or ())
        if write == "merge":
            if not key:
                raise LoadError(f"table {table!r}: write 'merge' needs a primary key")
            records = _dedupe(records, key)
        state_json = None if state is None else orjson.dumps(state, default=str).decode()
        first_replace = write == "replace" and (run_id, table.lower()) not in self._replaced
        try:
            connection.execute("BEGIN TRANSACTION")
            if first_replace:
                connection.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            merge_key = key if write == "merge" else []
            written = self._write(connection, table, records, merge_key, run_id)
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
                f"cannot load {len(records)} record(s) into {table!r} in {str(self.path)!r}: {exc}"
            ) from exc
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            raise
        if first_replace:
            self._replaced.add((run_id, table.lower()))
        return written

    def _write(
        self,
        connection: duckdb.DuckDBPyConnection,
        table: str,
        records: Sequence[Mapping[str, Any]],
        merge_key: list[str],
        run_id: str,
    ) -> int:
        """Inside the open transaction: stage, evolve the table, delete merged keys, insert."""
        loaded_at = datetime.now(UTC)
        meta = f"CAST(? AS VARCHAR) AS {quote(RUN_ID_COLUMN)}, "
        meta += f"CAST(? AS TIMESTAMPTZ) AS {quote(LOADED_AT_COLUMN)}"
        columns = self._stage(connection, records)
        source = f"FROM {_BATCH}" if columns else f"FROM range({len(records)})"
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
        if not records:
            return 0
        if merge_key and existing is not None:
            match = " AND ".join(
                f"{quote(table)}.{quote(k)} = {_BATCH}.{quote(k)}" for k in merge_key
            )
            connection.execute(f"DELETE FROM {quote(table)} USING {_BATCH} WHERE {match}")
        connection.execute(
            f"INSERT INTO {quote(table)} BY NAME SELECT {fields}{meta} {source}",
            [run_id, loaded_at],
        )
        return len(records)

    def _stage(
        self, connection: duckdb.DuckDBPyConnection, records: Sequence[Mapping[str, Any]]
    ) -> dict[str, str]:
        """Write ``records`` to the batch file and into the temporary table ``_BATCH``.

        Returns the batch's columns and their stored types; ``{}`` when no record has a field.
        """
        connection.execute(f"DROP TABLE IF EXISTS {_BATCH}")
        if not any(records):
            return {}
        lines = [orjson.dumps(record, default=str) for record in records]
        with open(self._spool_name, "wb") as spool:
            spool.write(b"\n".join(lines))
            spool.write(b"\n")
        size = max(_MIN_OBJECT_SIZE, 2 * max(len(line) for line in lines))
        options = f"format = 'newline_delimited', records = true, maximum_object_size = {size}"
        inferred = connection.execute(
            f"DESCRIBE SELECT * FROM read_json(?, {options}, sample_size = -1, maximum_depth = 2)",
            [self._spool_name],
        ).fetchall()
        columns = {str(row[0]): _stored_type(str(row[1])) for row in inferred}
        for reserved in (RUN_ID_COLUMN, LOADED_AT_COLUMN):
            if reserved.lower() in {name.lower() for name in columns}:
                raise LoadError(f"records may not have a field named {reserved!r}")
        spec = ", ".join(f"{_literal(name)}: {_literal(t)}" for name, t in columns.items())
        connection.execute(
            f"CREATE TEMP TABLE {_BATCH} AS SELECT * FROM read_json(?, {options}, "
            f"columns = {{{spec}}})",
            [self._spool_name],
        )
        return columns

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
