"""A source run's records on their way to the destination: JSON lines in a temporary file.

Records are written as pages arrive, so a source of any size costs the memory of one page; the
destination then loads the whole file in bulk with DuckDB's ``read_json`` (one transaction per
source run). Until it is loaded, nothing of the run is in the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import IO, Any, Self

import orjson

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_BUFFER = 1 << 20


class Spool:
    """An append-only temporary JSON Lines file of records; removed by :meth:`discard`."""

    def __init__(self, directory: str | None = None, *, prefix: str = "fetchpipe-") -> None:
        fd, self.path = tempfile.mkstemp(prefix=prefix, suffix=".jsonl", dir=directory)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb", buffering=_BUFFER)
        self.count = 0
        self.longest = 0
        """Bytes of the longest line (DuckDB's reader needs a bound on object size)."""
        self.fields = False
        """True once a record with at least one field was added."""

    def add(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append ``records``; returns how many were added."""
        if self._file is None:
            raise ValueError("the spool is closed")
        lines = [orjson.dumps(record, default=str, option=_OPTIONS) for record in records]
        if lines:
            self._file.write(b"".join(lines))
            self.count += len(lines)
            self.longest = max(self.longest, max(map(len, lines)))
            self.fields = self.fields or self.longest > 3  # b"{}\n" is an empty record
        return len(lines)

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()
