"""Loading a source's records into JSON Lines or Parquet files, one file per source per run.

Layout of a destination directory::

    DIR/products/20261126T101500.123456Z-3fa2c1.parquet   one file per run of the source
    DIR/_fetchpipe_state.json                        incremental state of every source

Each file is written under a temporary name in the same directory and renamed into place, so a
reader sees the old files or the new one, never half a file. ``append`` adds the run's file;
``replace`` removes the source's older files once the new one is in place; ``merge`` writes the
older files' rows and the batch, the last row of each primary key winning, into the new file
and then removes the older ones. DuckDB (in memory) does the reading, deduplication and
writing; every row carries ``_fetchpipe_run_id`` and ``_fetchpipe_loaded_at``. The state file
is replaced (also atomically) after the data file: if the process dies between the two, the
next run starts from the old state and fetches those records again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from fetchpipe.pipeline.load import (
    BATCH,
    LOADED_AT_COLUMN,
    RUN_ID_COLUMN,
    LoadError,
    WriteMode,
    dedupe,
    quote,
    stage,
)
from fetchpipe.pipeline.spool import Spool

if TYPE_CHECKING:
    import duckdb

STATE_FILE = "_fetchpipe_state.json"
_FORMATS = {"jsonl": ("jsonl", "FORMAT json"), "parquet": ("parquet", "FORMAT parquet")}
_ORDER = "_fetchpipe_order"


class FileLoader:
    """Writes tables as files under ``directory``: ``kind`` is ``jsonl`` or ``parquet``."""

    def __init__(self, directory: str | Path, kind: Literal["jsonl", "parquet"] | str) -> None:
        if kind not in _FORMATS:
            raise LoadError(f"unknown file format {kind!r}. HINT: use jsonl or parquet")
        self.directory = Path(directory)
        self.kind = kind
        self.extension, self._copy_format = _FORMATS[kind]
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._parts: dict[tuple[str, str], int] = {}
        """(run id, table) -> files written by this run, for a second load of one run."""

    def open(self) -> None:
        import duckdb

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(
                f"cannot create the destination directory {str(self.directory)!r}: "
                f"{exc.strerror or exc}"
            ) from exc
        self._connection = duckdb.connect(":memory:", config={"threads": 1})  # as DuckDBLoader

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def files(self, table: str) -> list[Path]:
        """The data files of ``table``, oldest first."""
        folder = self.directory / table
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob(f"*.{self.extension}") if not p.name.startswith("."))

    # --- state ----------------------------------------------------------------------------------

    def _states(self) -> dict[str, Any]:
        path = self.directory / STATE_FILE
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            raise LoadError(
                f"cannot read {str(path)!r}: {exc}. HINT: remove it to start from "
                "each source's initial state"
            ) from exc
        return data if isinstance(data, dict) else {}

    def read_state(self, source: str) -> dict[str, Any] | None:
        entry = self._states().get(source)
        state = entry.get("state") if isinstance(entry, dict) else None
        return state if isinstance(state, dict) else None

    def _write_state(self, source: str, state: Mapping[str, object], run_id: str) -> None:
        states = self._states()
        states[source] = {
            "state": dict(state),
            "run_id": run_id,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        _atomic_write(self.directory / STATE_FILE, orjson.dumps(states, default=str))

    # --- loading --------------------------------------------------------------------------------

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
        """Write the spool's records as the run's file of ``table``; returns rows in it that
        came from the spool."""
        import duckdb

        if self._connection is None:
            raise LoadError(f"{str(self.directory)!r} is not open. HINT: call open() first")
        if write not in ("append", "replace", "merge"):
            raise LoadError(f"unknown write mode {write!r}. HINT: use append, replace or merge")
        key = list(primary_key or ())
        if write == "merge" and not key:
            raise LoadError(f"table {table!r}: write 'merge' needs a primary key")
        folder = self.directory / table
        part = self._parts.get((run_id, table), 0)
        name = run_id if part == 0 else f"{run_id}-{part}"
        final = folder / f"{name}.{self.extension}"
        temporary = folder / f".{name}.{self.extension}.tmp"
        older = [p for p in self.files(table) if p != final]
        if write == "replace" and part > 0:
            older = []  # a later load of the same run adds to the run's first file
        connection = self._connection
        try:
            folder.mkdir(parents=True, exist_ok=True)
            columns = stage(connection, spool)
            count = spool.count
            if write == "merge" and count:
                count = dedupe(connection, columns, key)
            query = self._query(columns, count, older if write == "merge" else [], key)
            connection.execute(
                f"COPY ({query}) TO {_literal(str(temporary))} ({self._copy_format})",
                [run_id, datetime.now(UTC)],
            )
            os.replace(temporary, final)
        except (duckdb.Error, OSError, LoadError) as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            if isinstance(exc, LoadError):
                raise
            raise LoadError(
                f"cannot write {spool.count} record(s) of {table!r} to {str(final)!r}: {exc}"
            ) from exc
        finally:
            with contextlib.suppress(duckdb.Error):
                connection.execute(f"DROP TABLE IF EXISTS {BATCH}")
        self._parts[(run_id, table)] = part + 1
        if write in ("replace", "merge"):
            for path in older:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        if state is not None:
            self._write_state(table if source is None else source, state, run_id)
        return count

    def _query(
        self, columns: Mapping[str, str], count: int, older: list[Path], key: list[str]
    ) -> str:
        meta = f"CAST($1 AS VARCHAR) AS {quote(RUN_ID_COLUMN)}, "
        meta += f"CAST($2 AS TIMESTAMPTZ) AS {quote(LOADED_AT_COLUMN)}"
        if columns:
            batch = f"SELECT *, {meta} FROM {BATCH}"
        else:
            batch = f"SELECT {meta} FROM range({count})"
        if not older:
            return batch
        reader = "read_parquet" if self.kind == "parquet" else "read_json"
        files = "[" + ", ".join(_literal(str(p)) for p in older) + "]"
        keys = ", ".join(quote(k) for k in key)
        return (
            f"SELECT * EXCLUDE ({_ORDER}) FROM ("
            f"SELECT *, 0 AS {_ORDER} FROM {reader}({files}, union_by_name = true) "
            f"UNION ALL BY NAME SELECT *, 1 AS {_ORDER} FROM ({batch})) "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {_ORDER} DESC) = 1"
        )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise LoadError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
