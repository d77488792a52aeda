"""JSON Lines sink: one record per line, appended to the file, on disk within a second.

Durability: records wait in the file object's buffer (``buffer_size`` bytes) and reach the file
when the buffer fills, when a write comes ``flush_interval`` seconds or more after the last
flush, and, when results are written from a running event loop, by a timer ``flush_interval``
after the first record that waits (a stall would otherwise keep the last results of a burst in
memory). A process killed at any moment loses at most the last ``flush_interval`` of results.

Whole lines only: each record is one ``write`` of a complete line, and CPython's
``BufferedWriter``, when a write does not fit, first writes out what it holds (whole earlier
writes) and then takes the new one, so the file always ends on a line boundary between
flushes (``tests/integration/test_sinks.py`` checks it). Only a kill inside the ``write``
system call itself, or a full disk, can leave a torn last line. The standard buffer was kept
rather than one of our own: a ``bytearray`` or ``BytesIO`` buffer measured ~8% slower per
record, a list of encoded lines twice as slow. The time check on each write is one clock read
and one comparison; the timer is armed once per flush.

Appending to a file that ends in a torn line (no newline, not valid JSON: a killed run's last
write) first cuts that fragment off, so that no record is glued onto it and every line of the
file stays readable by a strict JSON Lines reader; a complete last line that only lacks its
newline keeps its content and gains the newline. :attr:`JsonlSink.note` says what was done.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path
from typing import BinaryIO

import orjson

from fetchpipe._exceptions import SinkError
from fetchpipe._models import Result
from fetchpipe.destinations.fetch import encode_record
from fetchpipe.destinations.lifecycle import OpenClose

FLUSH_INTERVAL = 1.0
"""Seconds a result may wait in memory before it is written to the file."""

_DUCKDB_MAGIC = b"DUCK"
_TAIL_CHUNK = 64 * 1024


class JsonlSink(OpenClose):
    """Appends one JSON object per result to ``path`` (created when missing)."""

    def __init__(
        self,
        path: str | Path,
        *,
        buffer_size: int = 1024 * 1024,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.path = Path(path)
        self.written = 0
        self.note: str | None = None
        """What :meth:`open` did to the end of an existing file, or ``None``."""
        self._buffer_size = buffer_size
        self._flush_interval = flush_interval
        self._file: BinaryIO | None = None
        self._waiting = False
        self._flushed_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._error: SinkError | None = None
        self._error_raised = False

    def open(self) -> None:
        try:
            file = open(self.path, "ab", buffering=self._buffer_size)  # noqa: SIM115
        except OSError as exc:
            raise SinkError(
                f"cannot open {str(self.path)!r} for writing: {exc.strerror or exc}. "
                "HINT: check that the directory exists and is writable"
            ) from exc
        try:
            self.note = _repair_tail(self.path, file.fileno())
        except BaseException:
            file.close()
            raise
        self._file = file
        self._flushed_at = time.monotonic()

    def write(self, result: Result) -> None:
        file = self._file
        if file is None:
            raise SinkError(f"{str(self.path)!r} is not open. HINT: call open() first")
        if self._error is not None:
            self._error_raised = True
            raise self._error
        try:
            file.write(encode_record(result))
        except OSError as exc:
            raise self._failed(exc) from exc
        self.written += 1
        if time.monotonic() - self._flushed_at >= self._flush_interval:
            self.flush()
        elif not self._waiting:  # the first record to wait since the last flush
            self._waiting = True
            self._arm_timer()

    def flush(self) -> None:
        """Write every waiting record to the file now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting = False
        self._flushed_at = time.monotonic()
        if self._file is None:
            return
        try:
            self._file.flush()
        except OSError as exc:
            raise self._failed(exc) from exc

    def raw_file(self) -> BinaryIO:
        """The open file, for appending whole lines of records as bytes (merging parts);
        :meth:`flush` first so that nothing written through :meth:`write` waits behind them."""
        if self._file is None:
            raise SinkError(f"{str(self.path)!r} is not open. HINT: call open() first")
        return self._file

    def _failed(self, exc: OSError) -> SinkError:
        self._error = SinkError(f"cannot write to {str(self.path)!r}: {exc.strerror or exc}")
        self._error_raised = True
        return self._error

    def _arm_timer(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop: the check on each write is all there is
        self._timer = loop.call_later(self._flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.flush()
        except SinkError:
            self._error_raised = False  # kept: raised by the next write or by close()

    def close(self) -> None:
        """Write what waits and close the file."""
        file, self._file = self._file, None
        if file is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            file.close()  # flushes first; closes the file even when that fails
        except OSError as exc:
            if self._error is None:
                self._failed(exc)
                self._error_raised = False
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            raise self._error


def _repair_tail(path: Path, fd: int) -> str | None:
    """Make the file open as ``fd`` (appending) end in a newline; say what was done, if anything.

    Refuses (:class:`SinkError`) a file that is not JSON Lines, so that nothing is appended to
    (or cut off) another kind of file given by mistake.
    """
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return None
    size = info.st_size
    with open(path, "rb") as reader:
        head = reader.read(4096)
        kind = _not_jsonl(head)
        if kind is not None:
            raise SinkError(
                f"{str(path)!r} is {kind}: nothing was written to it. "
                "HINT: give --out a new file name, or the right extension for this file"
            )
        reader.seek(size - 1)
        if reader.read(1) == b"\n":
            return None
        start = _last_line_start(reader, size)
        reader.seek(start)
        tail = reader.read()
    try:
        orjson.loads(tail)
    except orjson.JSONDecodeError:
        os.ftruncate(fd, start)
        return (
            f"{path} ended in a torn line ({len(tail)} bytes, from an interrupted run): "
            "it was removed; its request is not in the file"
        )
    os.write(fd, b"\n")
    return f"{path} ended without a newline: one was added"


def _not_jsonl(head: bytes) -> str | None:
    """What the file starting with ``head`` is, when it is not JSON Lines of objects."""
    if head[8:12] == _DUCKDB_MAGIC:
        return "a DuckDB database, not JSON Lines"
    text = head.lstrip()
    if text and not text.startswith(b"{"):
        return "not JSON Lines of results (its first line does not start with '{')"
    return None


def _last_line_start(reader: BinaryIO, size: int) -> int:
    """The offset just after the last newline of the file (0 without one)."""
    end = size
    while end > 0:
        begin = max(0, end - _TAIL_CHUNK)
        reader.seek(begin)
        chunk = reader.read(end - begin)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return begin + newline + 1
        end = begin
    return 0
