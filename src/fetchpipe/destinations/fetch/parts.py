"""Part files: the results of one batch of a distributed run, each complete or absent.

A shard task writes its batch's records (the format of :func:`~fetchpipe.destinations.fetch.record`)
to a hidden temporary file in the run's part directory and, once every result is written,
renames it to its name, made of its task and batch (:func:`part_name`). The rename is atomic, so
a part is either whole or not there; a task that runs again (its worker died) writes the same
name and replaces its own part: a batch never lands twice. :func:`list_parts` lists the
complete parts, leaving temporary files of killed tasks out.

Formats: ``jsonl`` (the lines of a ``.jsonl`` output, merged by concatenation) and ``parquet``
(for a ``.duckdb`` output: written by DuckDB from the same lines read at the table's column
types, merged with one ``INSERT ... SELECT FROM read_parquet(...)``, see :mod:`.merge`).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import BinaryIO, Literal

from fetchpipe._exceptions import SinkError
from fetchpipe._models import Result
from fetchpipe.destinations.duckdb_ingest import literal, quote
from fetchpipe.destinations.fetch import COLUMNS, encode_record
from fetchpipe.destinations.fetch.duckdb import COLUMN_TYPES

PartFormat = Literal["jsonl", "parquet"]
PART_FORMATS: tuple[PartFormat, ...] = ("jsonl", "parquet")
_PART = re.compile(r"part-t(\d+)-b(\d+)\.(jsonl|parquet)\Z")
MAX_OBJECT_SIZE = 256 * 1024 * 1024
"""The longest record line DuckDB reads from a JSON Lines part (the body cap is 64 MiB)."""


def part_format(out: str | Path) -> PartFormat:
    """The part format for the output ``out``: ``jsonl`` for a ``.jsonl`` file, else ``parquet``."""
    return "jsonl" if str(out).lower().endswith(".jsonl") else "parquet"


def part_name(task: int, batch: int, fmt: PartFormat) -> str:
    """The file name of batch ``batch`` of task ``task``."""
    return f"part-t{task:05d}-b{batch:07d}.{fmt}"


def list_parts(directory: str | Path) -> list[Path]:
    """The complete parts in ``directory``, by task then batch (temporary files left out)."""
    found = []
    for path in Path(directory).iterdir():
        match = _PART.match(path.name)
        if match is not None and path.is_file():
            found.append((int(match[1]), int(match[2]), path))
    return [path for _, _, path in sorted(found)]


def read_columns(files: list[str], fmt: PartFormat) -> str:
    """A DuckDB table function reading ``files`` of format ``fmt`` at the output's columns."""
    names = "[" + ", ".join(literal(name) for name in files) + "]"
    if fmt == "parquet":
        return f"read_parquet({names})"
    spec = ", ".join(f"{literal(name)}: {literal(COLUMN_TYPES[name])}" for name in COLUMNS)
    return (
        f"read_json({names}, format = 'newline_delimited', records = true, "
        f"columns = {{{spec}}}, auto_detect = false, maximum_object_size = {MAX_OBJECT_SIZE})"
    )


class PartWriter:
    """Writes one batch's results to ``directory/name``; :meth:`commit` puts it in place.

    Until then the records are in a hidden temporary file beside it; :meth:`discard` removes
    it. Not thread-safe: one task writes its part.
    """

    def __init__(self, directory: str | Path, name: str) -> None:
        match = _PART.match(name)
        if match is None:
            raise ValueError(f"{name!r} is not a part name (see part_name)")
        self.path = Path(directory) / name
        self.format: PartFormat = "jsonl" if match[3] == "jsonl" else "parquet"
        self.written = 0
        self._lines = self.path.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            self._file: BinaryIO | None = open(self._lines, "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise SinkError(
                f"cannot write a part file in {str(directory)!r}: {exc.strerror or exc}. "
                "HINT: the part directory must exist and be writable by every worker "
                "(shared storage on a cluster)"
            ) from exc

    def write(self, result: Result) -> None:
        if self._file is None:
            raise SinkError(f"the part {self.path.name} is already closed")
        try:
            self._file.write(encode_record(result))
        except OSError as exc:
            raise SinkError(f"cannot write to {str(self._lines)!r}: {exc.strerror or exc}") from exc
        self.written += 1

    def commit(self) -> Path:
        """Finish the part and rename it to its name (replacing a part of an earlier try)."""
        file, self._file = self._file, None
        if file is None:
            raise SinkError(f"the part {self.path.name} is already closed")
        try:
            try:
                file.flush()
                os.fsync(file.fileno())
            finally:
                file.close()
            if self.format == "jsonl":
                os.replace(self._lines, self.path)
            else:
                self._to_parquet()
        except OSError as exc:
            raise SinkError(f"cannot finish the part {str(self.path)!r}: {exc}") from exc
        finally:
            self.discard()
        return self.path

    def _to_parquet(self) -> None:
        import duckdb  # lazy: start-up time

        target = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        columns = ", ".join(quote(name) for name in COLUMNS)
        source = read_columns([str(self._lines)], "jsonl")
        try:
            with duckdb.connect() as connection:
                connection.execute(
                    f"COPY (SELECT {columns} FROM {source}) TO {literal(str(target))} "
                    "(FORMAT parquet)"
                )
            os.replace(target, self.path)
        except duckdb.Error as exc:
            raise SinkError(f"cannot write the part {str(self.path)!r}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(target)

    def discard(self) -> None:
        """Remove the temporary file (a committed part stays)."""
        file, self._file = self._file, None
        if file is not None:
            file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._lines)
