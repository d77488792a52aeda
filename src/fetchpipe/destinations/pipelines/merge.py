"""The tables of a pipeline's shard destinations (``run --shard K/N``) copied into its own
destination (``fetchpipe merge --pipeline``).

The shards' sources are disjoint, so every table comes from one shard and is copied whole,
replacing the destination's table of that name: an hourly merge after the hourly shard runs
leaves each table as its shard has it. The shards' own bookkeeping (incremental state, journal,
request log: the ``_fetchpipe_*`` tables, ``_fetchpipe.duckdb``) stays in the shard
destinations, where the next shard runs need it.

- DuckDB: every shard file attached read-only, each table created again from its shard's
  (``CREATE OR REPLACE TABLE ... AS SELECT``), all in one transaction: all tables or none.
- A directory of JSON Lines or Parquet files: each table's files copied into a hidden folder of
  the destination, which then takes the place of the table's folder (table by table: a reader
  sees a table's old files or its new ones).

Which shard owns which table, and that no table is in two shards, is the caller's to check
(:func:`tables_in` says what a shard holds).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path

from fetchpipe.destinations.duckdb_ingest import literal, quote
from fetchpipe.destinations.pipelines import LoadError
from fetchpipe.destinations.pipelines.files import FileLoader

BOOKKEEPING = "_fetchpipe"
"""The prefix of the tables and files a destination keeps for itself, never merged."""


def tables_in(kind: str, path: str | Path) -> set[str]:
    """The tables a destination holds (its bookkeeping left out): a DuckDB file's tables, or
    the folders of a directory with at least one data file."""
    path = Path(path)
    if kind != "duckdb":
        loader = FileLoader(path, kind)
        return {
            folder.name
            for folder in (path.iterdir() if path.is_dir() else ())
            if folder.is_dir()
            and not folder.name.startswith((".", BOOKKEEPING))
            and loader.files(folder.name)
        }
    import duckdb  # lazy: start-up time

    try:
        with duckdb.connect(str(path), read_only=True) as connection:
            rows = connection.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND NOT temporary"
            ).fetchall()
    except duckdb.Error as exc:
        raise LoadError(f"cannot read the tables of {str(path)!r}: {exc}") from exc
    return {name for (name,) in rows if not name.startswith(BOOKKEEPING)}


def merge_tables(kind: str, target: str | Path, sources: Mapping[str, Path]) -> dict[str, int]:
    """Copy each table of ``sources`` (table -> the shard destination holding it) into the
    destination ``target``, replacing its table of that name. Returns the rows (DuckDB) or
    files (JSON Lines, Parquet) copied per table. LoadError when it cannot: a DuckDB
    destination is then as it was."""
    if kind == "duckdb":
        return _merge_duckdb(Path(target), sources)
    return _merge_files(Path(target), sources, FileLoader(target, kind))


def _merge_duckdb(target: Path, sources: Mapping[str, Path]) -> dict[str, int]:
    import duckdb  # lazy: start-up time

    shards = {path: f"shard_{n}" for n, path in enumerate(sorted(set(sources.values())))}
    copied: dict[str, int] = {}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(target)) as connection:
            for path, alias in shards.items():
                connection.execute(f"ATTACH {literal(str(path))} AS {alias} (READ_ONLY)")
            connection.execute("BEGIN TRANSACTION")
            for table, path in sorted(sources.items()):
                name = quote(table)
                connection.execute(
                    f"CREATE OR REPLACE TABLE main.{name} AS "
                    f"SELECT * FROM {shards[path]}.main.{name}"
                )
                count = connection.execute(f"SELECT count(*) FROM main.{name}").fetchall()
                copied[table] = int(count[0][0])
            connection.execute("COMMIT")
    except (duckdb.Error, OSError) as exc:  # the transaction is rolled back with the connection
        raise LoadError(f"cannot merge the shards into {str(target)!r}: {exc}") from exc
    return copied


def _merge_files(target: Path, sources: Mapping[str, Path], loader: FileLoader) -> dict[str, int]:
    copied: dict[str, int] = {}
    for table, path in sorted(sources.items()):
        files = FileLoader(path, loader.kind).files(table)
        folder, fresh, old = target / table, target / f".{table}.merging", target / f".{table}.old"
        try:
            for leftover in (fresh, old):  # from a merge that was stopped
                shutil.rmtree(leftover, ignore_errors=True)
            fresh.mkdir(parents=True)
            for file in files:
                shutil.copy2(file, fresh / file.name)
            if folder.exists():
                folder.rename(old)
            fresh.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            with contextlib.suppress(OSError):
                if not folder.exists() and old.exists():
                    old.rename(folder)
            raise LoadError(f"cannot merge table {table!r} into {str(target)!r}: {exc}") from exc
        copied[table] = len(files)
    return copied
