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

The state and the "source done" mark commit after the rename. If the process dies between the
two, the resumed run writes the same file again (same name, same rows; a merge reads the file
it already wrote), so a source is never applied twice.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fetchpipe.destinations.duckdb_ingest import column_types, literal, quote, read_json
from fetchpipe.destinations.pipelines import LoadError, WriteMode
from fetchpipe.destinations.pipelines.journal import stage_table
from fetchpipe.destinations.pipelines.staging import StagedStore, State
from fetchpipe.destinations.pipelines.tables import META_COLUMNS, dedupe, table_columns

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

    def apply(self, table: str, write: WriteMode, key: list[str], run_id: str, state: State) -> int:
        """Write the source's staged records as the run's file of ``table``, then commit its
        state and its end. Returns the rows that came from this run."""
        import duckdb

        connection = self.conn()
        stage = stage_table(table)
        folder = self.directory / table
        final = folder / f"{run_id}.{self.extension}"
        temporary = folder / f".{run_id}.{self.extension}.tmp"
        existing = self.files(table)
        older = [p for p in existing if p != final]
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
                folder.mkdir(parents=True, exist_ok=True)
                # A merge reads the run's own file too when it exists: it was written before a
                # crash, and holds the older rows that were removed after it.
                inputs = existing if write == "merge" else []
                query = self._query(connection, relation, inputs, key)
                connection.execute(
                    f"COPY ({query}) TO {literal(str(temporary))} ({self._copy_format})"
                )
                os.replace(temporary, final)
        except (duckdb.Error, OSError, LoadError) as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            if isinstance(exc, LoadError):
                raise
            raise LoadError(
                f"cannot write the records of {table!r} to {str(final)!r}: {exc}"
            ) from exc
        if write in ("replace", "merge") and relation:
            for path in older:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

        def work(connection: duckdb.DuckDBPyConnection) -> None:
            self.end_source(connection, run_id, table, "done", rows=rows, state=state)

        self.transaction(f"end source {table!r}", work)
        return rows

    def _query(
        self,
        connection: duckdb.DuckDBPyConnection,
        relation: str,
        older: list[Path],
        key: list[str],
    ) -> str:
        if not older:
            return f"SELECT * FROM {relation}"
        files = [str(p) for p in older]
        if self.kind == "parquet":
            reader = f"read_parquet([{', '.join(map(literal, files))}], union_by_name = true)"
        else:  # typed as records are when staged (JSON Lines keep no types)
            reader = read_json(files, {**column_types(connection, files), **META_COLUMNS})
        keys = ", ".join(quote(k) for k in key)
        return (
            f"SELECT * EXCLUDE ({_ORDER}) FROM ("
            f"SELECT *, 0 AS {_ORDER} FROM {reader} "
            f"UNION ALL BY NAME SELECT *, 1 AS {_ORDER} FROM {relation}) "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {_ORDER} DESC) = 1"
        )


__all__ = ["DATABASE", "FileLoader"]
