"""Merge part files (and the outputs of ``fetch --shard K/N`` runs) into one output.

Into a ``.duckdb`` file: every part in one transaction (all of them land, or none), Parquet
parts with one ``INSERT ... SELECT FROM read_parquet([...])``, JSON Lines parts with one
``read_json`` at the table's column types, DuckDB files (other runs' outputs) attached read-only
and copied. Into a ``.jsonl`` file: the JSON Lines parts appended in order, as bytes; a part
that ends in a torn line (a killed run's last write) contributes its complete lines only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from fetchpipe._exceptions import ConfigError, SinkError
from fetchpipe.destinations.duckdb_ingest import literal, quote
from fetchpipe.destinations.fetch import COLUMNS
from fetchpipe.destinations.fetch.duckdb import TABLE, prepare_table
from fetchpipe.destinations.fetch.jsonl import JsonlSink
from fetchpipe.destinations.fetch.parts import list_parts, read_columns

if TYPE_CHECKING:
    import duckdb

MERGEABLE = (".parquet", ".jsonl", ".duckdb")


@dataclass(frozen=True, slots=True)
class Merged:
    """What a merge did: rows added to the output, from how many files, and torn tails cut."""

    rows: int
    files: int
    torn: int = 0


def gather(paths: Sequence[str | Path]) -> list[Path]:
    """The files to merge: each path given, a directory standing for the parts it holds.

    Raises :class:`ConfigError` for a path that does not exist or has another extension.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found.extend(list_parts(path))
            continue
        if not path.is_file():
            raise ConfigError(
                f"{str(given)!r} does not exist. HINT: give part files or the directories "
                "that hold them"
            )
        if path.suffix.lower() not in MERGEABLE:
            raise ConfigError(
                f"cannot merge {str(given)!r}: unknown extension {path.suffix or '(none)'!r}. "
                f"HINT: give {', '.join(MERGEABLE)} files, or directories of parts"
            )
        found.append(path)
    return found


def merge(parts: Sequence[Path], out: str | Path) -> Merged:
    """Append the records of ``parts`` to ``out`` (``.duckdb`` or ``.jsonl``)."""
    target = Path(out)
    if target.resolve() in {part.resolve() for part in parts}:
        raise ConfigError(f"{str(out)!r} is among the parts. HINT: merge into another file")
    suffix = target.suffix.lower()
    if suffix == ".jsonl":
        return _into_jsonl(parts, target)
    if suffix == ".duckdb":
        return _into_duckdb(parts, target)
    raise ConfigError(
        f"cannot merge into {str(out)!r}: unknown extension {suffix or '(none)'!r}. "
        "HINT: use a path ending in .duckdb (a 'responses' table) or .jsonl"
    )


def _into_jsonl(parts: Sequence[Path], target: Path) -> Merged:
    other = [part for part in parts if part.suffix.lower() != ".jsonl"]
    if other:
        raise ConfigError(
            f"cannot append {other[0]} to the JSON Lines file {target}. HINT: merge into a "
            ".duckdb file, which takes Parquet, JSON Lines and DuckDB parts"
        )
    sink = JsonlSink(target)
    sink.open()  # repairs a torn last line of the output first
    rows = torn = 0
    try:
        sink.flush()
        file = sink.raw_file()
        for part in parts:
            with part.open("rb") as source:
                copied, cut = _copy_lines(source, file)
            rows += copied
            torn += cut
    finally:
        sink.close()
    return Merged(rows, len(parts), torn)


def _copy_lines(source: BinaryIO, target: BinaryIO) -> tuple[int, int]:
    """Copy the complete lines of ``source`` to ``target``: ``(lines, 1 if a torn tail was
    left out else 0)``."""
    size = source.seek(0, os.SEEK_END)
    end = size
    if size:
        source.seek(size - 1)
        if source.read(1) != b"\n":
            end = _after_last_newline(source, size)
    source.seek(0)
    lines = 0
    left = end
    while left:
        chunk = source.read(min(left, 1 << 20))
        if not chunk:
            break
        lines += chunk.count(b"\n")
        target.write(chunk)
        left -= len(chunk)
    return lines, int(end != size)


def _after_last_newline(source: BinaryIO, size: int) -> int:
    step = 1 << 16
    end = size
    while end > 0:
        begin = max(0, end - step)
        source.seek(begin)
        chunk = source.read(end - begin)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return begin + newline + 1
        end = begin
    return 0


def _into_duckdb(parts: Sequence[Path], target: Path) -> Merged:
    import duckdb  # lazy: start-up time

    columns = ", ".join(quote(name) for name in COLUMNS)
    insert = f"INSERT INTO {quote(TABLE)} ({columns}) SELECT {columns} FROM "
    parquet = [str(part) for part in parts if part.suffix.lower() == ".parquet"]
    jsonl = [str(part) for part in parts if part.suffix.lower() == ".jsonl"]
    databases = [part for part in parts if part.suffix.lower() == ".duckdb"]
    try:
        connection = duckdb.connect(str(target))
    except duckdb.Error as exc:
        raise SinkError(
            f"cannot open DuckDB file {str(target)!r}: {exc}. HINT: check that the directory "
            "exists and that no other process has the file open"
        ) from exc
    with connection:
        prepare_table(connection, TABLE, target)
        before = _rows(connection)
        try:
            connection.execute("BEGIN TRANSACTION")
            if parquet:
                connection.execute(insert + read_columns(parquet, "parquet"))
            if jsonl:
                connection.execute(insert + read_columns(jsonl, "jsonl"))
            for number, database in enumerate(databases):
                alias = f"part_{number}"
                connection.execute(f"ATTACH {literal(str(database))} AS {alias} (READ_ONLY)")
                connection.execute(insert + f"{alias}.{quote(TABLE)}")
                connection.execute(f"DETACH {alias}")
            connection.execute("COMMIT")
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            raise SinkError(
                f"cannot merge the parts into {str(target)!r}: {exc}. Nothing was added"
            ) from exc
        rows = _rows(connection) - before
    return Merged(rows, len(parts))


def _rows(connection: duckdb.DuckDBPyConnection) -> int:
    row = connection.execute(f"SELECT count(*) FROM {quote(TABLE)}").fetchone()
    return int(row[0]) if row else 0


def remove_parts(directory: Path) -> None:
    """Remove a run's part directory once its parts are merged, and the directory of parts
    above it when no other run's parts are left there."""
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):
        directory.parent.rmdir()  # only when empty
