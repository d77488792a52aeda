"""The one way rows reach DuckDB: JSON lines in a temporary file, read with ``read_json``.

``fetch --out x.duckdb`` (:mod:`.fetch.duckdb`, fixed column types) and pipelines
(:mod:`.pipelines.tables`, types from the records) both append encoded lines to a
:class:`Spool` and insert what :func:`read_json` reads from it. Of the batch inserts DuckDB's
Python API offers without pandas or pyarrow, ``read_json`` of a temporary file was the fastest
measured (12 columns, ~300-byte JSON bodies, 1,000-row batches): ``executemany`` ~330 rows/s,
one multi-row ``VALUES`` ~4,600, ``unnest`` of column lists ~33,000, ``read_json`` ~80,000.

Column types from records (:func:`column_types`): DuckDB's reader guesses a type for each
top-level field from every line (``sample_size = -1``). Of its guess this keeps what a JSON
value itself says: integers (``BIGINT``; ``HUGEINT``, ``UBIGINT`` or ``DOUBLE`` beyond 64 bits),
``DOUBLE``, ``BOOLEAN`` and ``VARCHAR``. Nested objects and arrays, and fields null on every
line, are ``JSON`` (see :func:`stored_type`). Any other type was guessed from the text of
strings (``DATE`` from ``"2024-01-01"`` but also from an id such as ``"1-1-0"``, read as
month-day-year; ``TIME`` from ``"10:00"``; ``TIMESTAMP``; ``UUID``; ``DATE`` from
``"Infinity"``) and is ``VARCHAR`` instead: the string as sent. The guess is not kept because
the reader, given the guessed type, converts with ISO casts rather than the format it matched
(``"1-1-0"`` fails the whole load, ``"1-1-1"`` becomes year 1), because one page's guess is not
the next page's (an id looks like a date on one page only), and because conversion changes the
text (an upper-case UUID comes back in lower case). Pipelines declare no column types: a date
arrives as text a query can cast (``TRY_CAST(col AS DATE)``).

Rows are always read at explicit types (:func:`read_json` gives ``columns``), so nothing is
guessed while inserting; a field a line lacks is ``NULL``.

What a table already has is read in one place too: :func:`table_columns`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import duckdb

MIN_OBJECT_SIZE = 1024 * 1024
"""Smallest ``maximum_object_size`` given to read_json; a spool with longer lines raises it."""

_FORMAT = "format = 'newline_delimited', records = true"
_ENCODE = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_BUFFER = 1 << 20
_NUMBERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE")
_KEPT = frozenset({*_NUMBERS, *(f"U{name}" for name in _NUMBERS[:5]), "BOOLEAN", "VARCHAR"})
_NESTED = ("STRUCT", "MAP", "UNION", "JSON")


def quote(name: str) -> str:
    """``name`` as a DuckDB quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


class Spool:
    """An append-only temporary JSON Lines file of records; removed by :meth:`discard`.

    A pipeline source fills one per commit and reads it once (:meth:`finish` first); the
    DuckDB sink keeps one and refills it for every batch (:meth:`clear`, :meth:`flush`).
    """

    def __init__(self, directory: str | None = None, *, prefix: str = "fetchpipe-") -> None:
        fd, self.path = tempfile.mkstemp(prefix=prefix, suffix=".jsonl", dir=directory)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb", buffering=_BUFFER)
        self.count = 0
        self.longest = 0
        """Bytes of the longest line (DuckDB's reader needs a bound on object size)."""
        self.fields = False
        """True once a record with at least one field was added."""

    @property
    def object_size(self) -> int:
        """The ``maximum_object_size`` that reads every line of the spool."""
        return max(MIN_OBJECT_SIZE, 2 * self.longest)

    def add(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append ``records``; returns how many were added."""
        lines = [orjson.dumps(record, default=str, option=_ENCODE) for record in records]
        self.add_lines(lines)
        return len(lines)

    def add_lines(self, lines: Sequence[bytes]) -> None:
        """Append records already encoded, one JSON object per line, each ending in ``\\n``."""
        if self._file is None:
            raise ValueError("the spool is closed")
        if lines:
            self._file.write(b"".join(lines))
            self.count += len(lines)
            self.longest = max(self.longest, max(map(len, lines)))
            self.fields = self.fields or self.longest > 3  # b"{}\n" is an empty record

    def clear(self) -> None:
        """Empty the file for the next batch."""
        if self._file is None:
            raise ValueError("the spool is closed")
        self._file.seek(0)
        self._file.truncate()
        self.count, self.longest, self.fields = 0, 0, False

    def flush(self) -> None:
        """Write what is buffered to the file, so that DuckDB reads all of it."""
        if self._file is not None:
            self._file.flush()

    def finish(self) -> None:
        """Flush and close the file for writing; it can then be read."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close and remove the file."""
        self.finish()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def read_json(source: Spool | Sequence[str], columns: Mapping[str, str]) -> str:
    """The ``read_json(...)`` table function reading ``source`` (a spool, or JSON Lines files)
    as rows of ``columns`` (name: DuckDB type), in file order; a missing field is ``NULL``.

    A spool's buffered lines are flushed to its file first.
    """
    spec = ", ".join(f"{literal(name)}: {literal(type_)}" for name, type_ in columns.items())
    return f"read_json({_files(source)}, columns = {{{spec}}}, auto_detect = false)"


def column_types(
    connection: duckdb.DuckDBPyConnection, source: Spool | Sequence[str]
) -> dict[str, str]:
    """The fields of the records in ``source`` and the types they are stored as (see the
    module docstring), in the order DuckDB found them."""
    inferred = connection.execute(
        f"DESCRIBE SELECT * FROM read_json({_files(source)}, sample_size = -1, "
        "maximum_depth = 2, union_by_name = true)"
    ).fetchall()
    return {str(row[0]): stored_type(str(row[1])) for row in inferred}


def table_columns(connection: duckdb.DuckDBPyConnection, table: str) -> dict[str, str] | None:
    """The columns of ``table`` (temporary or main schema; its name matched case-insensitively,
    as DuckDB matches identifiers) and their types, in order; ``None`` when it does not exist.

    Looked up by name (``connection.table``: about 0.3 ms), not in ``information_schema``, which
    lists every column of every table first (6-7 ms with 200 tables, and a pipeline asks at each
    source's every commit and end). A name not found raises before anything runs, so the
    caller's transaction goes on (DuckDB 1.0 and later)."""
    import duckdb  # lazy: start-up time

    try:
        relation = connection.table(quote(table))
    except duckdb.CatalogException:
        return None
    return {
        str(name): str(type_) for name, type_ in zip(relation.columns, relation.types, strict=True)
    }


def stored_type(inferred: str) -> str:
    """The column type for a field DuckDB's reader typed ``inferred``.

    Nested values are ``JSON``, not ``STRUCT``/``LIST``: the shape of nested API data varies
    between batches (a key appears, a list holds objects of another shape), and a ``STRUCT``
    column cannot take a new member without rewriting the column, whereas a ``JSON`` column
    takes any value and keeps the text as the API sent it. A field null on every line
    (``"NULL"``) is ``JSON`` too, as it may hold anything later.
    """
    if inferred.endswith("]") or inferred.startswith(_NESTED) or inferred in ('"NULL"', "NULL"):
        return "JSON"
    if inferred in _KEPT or inferred.startswith("DECIMAL"):
        return inferred
    return "VARCHAR"


def _files(source: Spool | Sequence[str]) -> str:
    """The file argument and options of read_json for ``source``."""
    if isinstance(source, Spool):
        source.flush()
        return f"{literal(source.path)}, {_FORMAT}, maximum_object_size = {source.object_size}"
    paths = "[" + ", ".join(literal(str(path)) for path in source) + "]"
    return f"{paths}, {_FORMAT}"
