"""Loading a source's records into JSON Lines or Parquet files, one file per source per run.

Layout of a destination directory::

    DIR/products/20261126T101500.123456Z-3fa2c1.parquet   one file per run of the source
    DIR/_fetchpipe.duckdb                                 state, journal and staged records

Each file is written under a temporary name in the same directory and renamed into place, so a
reader sees the old files or the new one, never half a file. ``append`` adds the run's file;
``replace`` removes the source's older files once the new one is in place; ``merge`` writes the
older files' rows and the run's records, the last row of each primary key winning, into the new
file and then removes the older ones. DuckDB does the reading, deduplication and writing; every
row carries ``_fetchpipe_run_id`` and ``_fetchpipe_loaded_at``.

A source's child tables (``unnest``) are directories beside its own
(``DIR/order_items/<run id>.parquet``), written by the same mode (see :mod:`.children`): every
file of the source is in place before any older file is removed.

The state and the "source done" mark commit after the renames. If the process dies between the
two, the resumed run writes the same files again (same names, same rows; a merge reads the files
it already wrote), so a source is never applied twice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fetchpipe.destinations.duckdb_ingest import (
    column_types,
    literal,
    quote,
    read_json,
    table_columns,
)
from fetchpipe.destinations.pipelines import ChildTable, LoadError, WriteMode
from fetchpipe.destinations.pipelines.children import child_key, linked
from fetchpipe.destinations.pipelines.journal import stage_table
from fetchpipe.destinations.pipelines.staging import StagedStore, State
from fetchpipe.destinations.pipelines.tables import (
    META_COLUMNS,
    ROW_COLUMN,
    RUN_ID_COLUMN,
    dedupe,
)

# duckdb is imported where a database is opened or used (lazy): importing the runner loads it
# only when a destination needs it.
if TYPE_CHECKING:
    import duckdb

DATABASE = "_fetchpipe.duckdb"
_FORMATS = {"jsonl": ("jsonl", "FORMAT json"), "parquet": ("parquet", "FORMAT parquet")}
_ORDER = "_fetchpipe_order"


class FileLoader(StagedStore):
    """Writes tables as files under ``directory``: ``kind`` is ``jsonl`` or ``parquet``."""

    def __init__(self, directory: str | Path, kind: Literal["jsonl", "parquet"] | str) -> None:
        if kind not in _FORMATS:
            raise LoadError(f"unknown file format {kind!r}. HINT: use jsonl or parquet")
        self.directory = Path(directory)
        super().__init__(self.directory / DATABASE, label=str(self.directory))
        self.kind = kind
        self.extension, self._copy_format = _FORMATS[kind]

    def files(self, table: str) -> list[Path]:
        """The data files of ``table``, oldest first."""
        folder = self.directory / table
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob(f"*.{self.extension}") if not p.name.startswith("."))

    def apply(
        self,
        table: str,
        write: WriteMode,
        key: list[str],
        run_id: str,
        state: State,
        tables: Sequence[ChildTable] = (),
    ) -> int:
        """Write the source's staged records as the run's file of ``table`` (and its child
        ``tables``' staged rows as the run's files of theirs), then commit its state and its
        end. Returns the rows that came from this run in ``table``."""
        import duckdb

        connection = self.conn()
        stage = stage_table(table)
        written: list[str] = []
        try:
            columns = table_columns(connection, stage)
            if columns is None:
                rows, relation = 0, ""
            elif write == "merge":
                relation, rows = dedupe(connection, stage, columns, key)
            else:
                relation = stage
                row = connection.execute(f"SELECT count(*) FROM {stage}").fetchone()
                rows = int(row[0]) if row is not None else 0
            if relation:
                # A merge reads the run's own file too when it exists: it was written before a
                # crash, and holds the older rows that were removed after it.
                inputs = self._readable(table) if write == "merge" else []
                self._write(table, run_id, self._query(connection, relation, inputs, key))
                written.append(table)
                for child in tables:
                    if write == "merge" and not rows:
                        continue  # no parent re-loaded: the child files stay as they are
                    query = self._child_query(connection, child, write, relation)
                    if query is not None:
                        self._write(child.name, run_id, query)
                        written.append(child.name)
        except (duckdb.Error, OSError) as exc:
            raise LoadError(
                f"cannot write the records of {table!r} to {str(self.directory)!r}: {exc}"
            ) from exc
        if write in ("replace", "merge"):
            for name in written:
                final = self._file(name, run_id)
                for path in self.files(name):
                    if path != final:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()

        def work(connection: duckdb.DuckDBPyConnection) -> None:
            names = [child.name for child in tables]
            self.end_source(connection, run_id, table, "done", rows=rows, state=state, tables=names)

        self.transaction(f"end source {table!r}", work)
        return rows

    def _readable(self, table: str) -> list[Path]:
        """The data files of ``table`` that hold rows or, in Parquet, at least their columns: a
        JSON Lines file of no rows is empty, and DuckDB reads no columns from it."""
        found = self.files(table)
        return found if self.kind == "parquet" else [p for p in found if p.stat().st_size]

    def written_rows(self, table: str, run_id: str) -> int:
        path = self._file(table, run_id)
        if path not in self._readable(table):
            return 0
        reader = self._reader(self.conn(), [path])
        row = (
            self.conn()
            .execute(f"SELECT count(*) FROM {reader} WHERE {quote(RUN_ID_COLUMN)} = ?", [run_id])
            .fetchone()
        )
        return int(row[0]) if row is not None else 0

    def _file(self, table: str, run_id: str) -> Path:
        return self.directory / table / f"{run_id}.{self.extension}"

    def _write(self, table: str, run_id: str, query: str) -> None:
        """Write the rows of ``query`` as the run's file of ``table``: under a temporary name,
        then renamed into place."""
        import duckdb

        final = self._file(table, run_id)
        temporary = final.parent / f".{final.name}.tmp"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            self.conn().execute(
                f"COPY ({query}) TO {literal(str(temporary))} ({self._copy_format})"
            )
            os.replace(temporary, final)
        except (duckdb.Error, OSError) as exc:
            raise LoadError(
                f"cannot write the records of {table!r} to {str(final)!r}: {exc}"
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()

    def _reader(self, connection: duckdb.DuckDBPyConnection, paths: list[Path]) -> str:
        files = [str(p) for p in paths]
        if self.kind == "parquet":
            return f"read_parquet([{', '.join(map(literal, files))}], union_by_name = true)"
        # typed as records are when staged (JSON Lines keep no types)
        return read_json(files, {**column_types(connection, files), **META_COLUMNS})

    def _columns(self, connection: duckdb.DuckDBPyConnection, paths: list[Path]) -> list[str]:
        """The columns of the data files ``paths``."""
        if self.kind != "parquet":
            return list(column_types(connection, [str(p) for p in paths]))
        rows = connection.execute(f"DESCRIBE SELECT * FROM {self._reader(connection, paths)}")
        return [str(row[0]) for row in rows.fetchall()]

    def _query(
        self,
        connection: duckdb.DuckDBPyConnection,
        relation: str,
        older: list[Path],
        key: list[str],
    ) -> str:
        own = f"SELECT * EXCLUDE ({quote(ROW_COLUMN)})" if _numbered(connection, relation) else ""
        own = f"{own or 'SELECT *'} FROM {relation}"
        if not older:
            return own
        keys = ", ".join(quote(k) for k in key)
        return (
            f"SELECT * EXCLUDE ({_ORDER}) FROM ("
            f"SELECT *, 0 AS {_ORDER} FROM {self._reader(connection, older)} "
            f"UNION ALL BY NAME SELECT *, 1 AS {_ORDER} FROM ({own})) "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {_ORDER} DESC) = 1"
        )

    def _child_query(
        self,
        connection: duckdb.DuckDBPyConnection,
        child: ChildTable,
        write: WriteMode,
        parent: str,
    ) -> str | None:
        """The rows of the run's file of ``child`` (None: nothing was staged for it). A merge
        keeps the older files' rows but those of the parent rows in ``parent``, and adds the
        staged rows of those parent rows (see :mod:`.children`); reading the run's own file
        too, when a crash left it, gives the same rows again."""
        stage = stage_table(child.name)
        columns = table_columns(connection, stage)
        if columns is None:
            return None
        row = quote(ROW_COLUMN)
        numbered = ROW_COLUMN in columns
        staged = f"SELECT * EXCLUDE ({row}) FROM {stage}" if numbered else f"SELECT * FROM {stage}"
        if write != "merge":
            return staged
        if not child.link:
            raise LoadError(
                f"table {child.name!r}: a merge needs the columns that tie a row to its "
                "parent's primary key"
            )
        if numbered:
            staged += f" WHERE {row} IN (SELECT {row} FROM {parent})"
        # Older files tie their rows to parents only when they have the tie's columns (a file
        # of no rows has none; one written before the tie existed keeps its rows as they are).
        tie = [column for column, _ in child.link]
        tied: list[Path] = []
        untied: list[Path] = []
        for path in self._readable(child.name):
            names = {name.lower() for name in self._columns(connection, [path])}
            (tied if all(c.lower() in names for c in tie) else untied).append(path)
        query = staged
        if tied:
            keys = ", ".join(quote(k) for k in child_key(child))
            kept = (
                f"SELECT *, 0 AS {_ORDER} FROM {self._reader(connection, tied)} AS older "
                f"WHERE NOT EXISTS (SELECT 1 FROM {parent} WHERE {linked(child, parent, 'older')})"
            )
            query = (
                f"SELECT * EXCLUDE ({_ORDER}) FROM ({kept} "
                f"UNION ALL BY NAME SELECT *, 1 AS {_ORDER} FROM ({staged})) "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {_ORDER} DESC) = 1"
            )
        if untied:
            reader = self._reader(connection, untied)
            query = f"SELECT * FROM {reader} UNION ALL BY NAME SELECT * FROM ({query})"
        return query


def _numbered(connection: duckdb.DuckDBPyConnection, relation: str) -> bool:
    """True when the rows of ``relation`` carry the row number of a source with child tables."""
    columns = table_columns(connection, relation)
    return columns is not None and ROW_COLUMN in columns


__all__ = ["DATABASE", "FileLoader"]
