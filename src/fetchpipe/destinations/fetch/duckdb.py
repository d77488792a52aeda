"""DuckDB sink: one writer thread, fed by a bounded queue, inserting batches of records.

``write`` encodes the record and puts it on a queue bounded in bytes; when the writer falls
behind (a slow disk), ``write`` blocks, so memory stays bounded. The writer collects up to
``batch_rows`` records (or ``batch_bytes``, or whatever arrived within ``batch_seconds``) into a
:class:`~fetchpipe.destinations.duckdb_ingest.Spool` and inserts it with one
``INSERT ... SELECT FROM read_json(...)`` at the table's column types (the ingest path pipelines
use too; why ``read_json``: see :mod:`fetchpipe.destinations.duckdb_ingest`). Through this sink,
encoding and queueing included: 60,000-80,000 rows/s.

Durability: each batch is one ``INSERT`` in a transaction of its own (autocommit), in the
write-ahead log when it returns; a result is committed at most ``batch_seconds`` (0.5 s) plus
one insert after it was written. A process killed with SIGKILL leaves the file and its ``.wal``
with every committed batch; the next connection, read-only too, replays the log
(``tests/e2e/test_fetch_kill_resume.py``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fetchpipe._exceptions import SinkError
from fetchpipe._models import Result
from fetchpipe.destinations import run_log
from fetchpipe.destinations.duckdb_ingest import Spool, quote, read_json, table_columns
from fetchpipe.destinations.fetch import COLUMNS, encode_record
from fetchpipe.destinations.lifecycle import OpenClose
from fetchpipe.destinations.run_log import LogRows, RequestRecorder

# duckdb is imported in the methods that use it (lazy: start-up time): `fetch --out x.jsonl`
# imports this module through fetch.factory and loads no DuckDB.
if TYPE_CHECKING:
    import duckdb

TABLE = "responses"
COLUMN_TYPES = {
    "url": "VARCHAR",
    "method": "VARCHAR",
    "key": "VARCHAR",
    "status": "INTEGER",
    "ok": "BOOLEAN",
    "attempts": "INTEGER",
    "error": "VARCHAR",
    "error_message": "VARCHAR",
    "elapsed": "DOUBLE",
    "body": "JSON",
    "body_encoding": "VARCHAR",
    "fetched_at": "TIMESTAMPTZ",
    "source": "VARCHAR",
}
"""Column types of the table. ``key`` is stored as text (an integer key becomes its digits)."""

ROW = b"\0"
"""Between a result's record and its request log row in one queued item (JSON has no NUL)."""
ADDED_COLUMNS = {"source": "'network'"}
"""Columns added after the first release: an existing table without one gains it (``ALTER
TABLE ... ADD COLUMN``), its earlier rows set to the value given here (before the HTTP cache,
every response came from the network)."""


class _ByteQueue(queue.Queue[bytes | None]):
    """A queue bounded by the total size of its items; ``None`` (the end marker) counts 1."""

    def _init(self, maxsize: int) -> None:
        self.queue: deque[bytes | None] = deque()
        self._bytes = 0

    def _qsize(self) -> int:
        return self._bytes

    def _put(self, item: bytes | None) -> None:
        self.queue.append(item)
        self._bytes += len(item) if item else 1

    def _get(self) -> bytes | None:
        item = self.queue.popleft()
        self._bytes -= len(item) if item else 1
        return item

    def get_batch(self, max_items: int, max_bytes: int, timeout: float) -> list[bytes | None]:
        """Up to ``max_items`` items (or ``max_bytes``) at once; ``[]`` after ``timeout``.

        The end marker ``None`` is always the last item of a batch.
        """
        with self.not_empty:
            if not self._qsize():
                self.not_empty.wait(timeout)
            items: list[bytes | None] = []
            size = 0
            while self.queue and len(items) < max_items and size < max_bytes:
                item = self._get()
                items.append(item)
                if item is None:
                    break
                size += len(item)
            if items:
                self.not_full.notify_all()
            return items


class DuckDBSink(OpenClose):
    """Appends results to ``table`` in the DuckDB file ``path`` (both created when missing)."""

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = TABLE,
        batch_rows: int = 1000,
        batch_seconds: float = 0.5,
        batch_bytes: int = 16 * 1024 * 1024,
        queue_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.path = Path(path)
        self.table = table
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.batch_bytes = batch_bytes
        self.written = 0
        """Rows inserted so far."""
        self._queue = _ByteQueue(queue_bytes)
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._thread: threading.Thread | None = None
        self._error: SinkError | None = None
        self._error_raised = False
        self._spool: Spool | None = None
        self._recorder: RequestRecorder | None = None
        self._run_begun = False
        columns = ", ".join(quote(name) for name in COLUMNS)
        self._insert = f"INSERT INTO {quote(table)} ({columns}) SELECT {columns} FROM "
        self._types = {name: COLUMN_TYPES[name] for name in COLUMNS}

    def open(self) -> None:
        import duckdb

        where = str(self.path)
        try:
            connection = duckdb.connect(where)
        except duckdb.Error as exc:
            raise SinkError(
                f"cannot open DuckDB file {where!r}: {exc}. HINT: check that the directory "
                "exists and that no other process has the file open"
            ) from exc
        try:
            self._prepare(connection)
            spool = Spool()
        except OSError as exc:
            connection.close()
            raise SinkError(f"cannot create a temporary file for DuckDB batches: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        self._spool = spool
        self._connection = connection
        self._thread = threading.Thread(
            target=self._run, args=(connection, spool), name="fetchpipe-duckdb", daemon=True
        )
        self._thread.start()

    def _prepare(self, connection: duckdb.DuckDBPyConnection) -> None:
        prepare_table(connection, self.table, self.path)

    def log_requests(self, recorder: RequestRecorder) -> None:
        """Keep the run's request log (``_fetchpipe_runs``, ``_fetchpipe_requests`` and
        ``_fetchpipe_events``, see :mod:`fetchpipe.destinations.run_log`) beside the results:
        each result's row is inserted in the transaction of its record. Before the first
        :meth:`write`."""
        self._recorder = recorder

    def write(self, result: Result) -> None:
        """Queue ``result`` for the writer; blocks while the queue is full."""
        self._check()
        if self._thread is None:
            raise SinkError(f"{str(self.path)!r} is not open. HINT: call open() first")
        line = encode_record(result)
        recorder = self._recorder
        if recorder is not None:
            row = recorder.row(result, None)
            if row is not None:
                line += ROW + orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        self._queue.put(line)

    def _check(self) -> None:
        if self._error is not None:
            self._error_raised = True
            raise self._error

    def close(self) -> None:
        """Insert what is queued, stop the writer and close the file."""
        thread, self._thread = self._thread, None
        connection, self._connection = self._connection, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        if connection is not None:
            if self._recorder is not None and self._error is None:
                self._end_run(connection)
            connection.close()
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.discard()
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            raise self._error

    def _run(self, connection: duckdb.DuckDBPyConnection, spool: Spool) -> None:
        try:
            self._loop(connection, spool)
        except BaseException as exc:  # pragma: no cover - a bug; keep producers unblocked
            self._error = SinkError(f"the DuckDB writer stopped: {exc!r}")
            self._drain()

    def _drain(self) -> None:
        while self._queue.get() is not None:
            pass

    def _loop(self, connection: duckdb.DuckDBPyConnection, spool: Spool) -> None:
        batch: list[bytes] = []
        size = 0
        end = 0.0
        while True:
            if batch:
                wait = end - time.monotonic()
                items = (
                    self._queue.get_batch(
                        self.batch_rows - len(batch), self.batch_bytes - size, wait
                    )
                    if wait > 0
                    else []
                )
            else:
                items = self._queue.get_batch(self.batch_rows, self.batch_bytes, 3600.0)
                end = time.monotonic() + self.batch_seconds
            finished = bool(items) and items[-1] is None
            for item in items:
                if item is not None:
                    batch.append(item)
                    size += len(item)
            if batch and (
                finished
                or not items
                or len(batch) >= self.batch_rows
                or size >= self.batch_bytes
                or time.monotonic() >= end
            ):
                if self._error is None:
                    self._insert_batch(connection, spool, batch)
                batch = []
                size = 0
            if finished:
                return

    def _insert_batch(
        self, connection: duckdb.DuckDBPyConnection, spool: Spool, batch: list[bytes]
    ) -> None:
        import duckdb

        log = None
        if self._recorder is not None:  # each item: the record, then its request's row
            log = LogRows([], self._recorder.take_events())
            records = []
            for item in batch:
                record, _, row = item.partition(ROW)
                records.append(record)
                if row:
                    log.requests.append(orjson.loads(row))
            batch = records
        try:
            connection.execute("BEGIN TRANSACTION")
            spool.clear()
            spool.add_lines(batch)
            connection.execute(self._insert + read_json(spool, self._types))
            if log is not None:
                self._begin_run(connection)
                run_log.insert(connection, log)
            connection.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            self._error = SinkError(
                f"cannot insert {len(batch)} row(s) into {self.table!r} in {str(self.path)!r}: "
                f"{exc}"
            )
            return
        self.written += len(batch)

    def _begin_run(self, connection: duckdb.DuckDBPyConnection) -> None:
        """The run's tables, and its row in ``_fetchpipe_runs`` (once, with its first batch)."""
        if self._run_begun or self._recorder is None:
            return
        recorder = self._recorder
        run_log.insert_fetch_run(
            connection, recorder.run_id, recorder.started_at or datetime.now(UTC)
        )
        self._run_begun = True

    def _end_run(self, connection: duckdb.DuckDBPyConnection) -> None:
        """The run's last events, and its row marked ``done``: ended once its results are in the
        file itself (a checkpoint first, which closing would do anyway), so that the end it
        records is the one its log tells a moment later (see ``fetchpipe runs``)."""
        import duckdb

        recorder = self._recorder
        assert recorder is not None
        try:
            connection.execute("CHECKPOINT")
            connection.execute("BEGIN TRANSACTION")
            self._begin_run(connection)
            run_log.insert(
                connection,
                LogRows([], recorder.take_events(), recorder.politeness, recorder.run_id),
            )
            ended_at = datetime.now(UTC)  # every result is in: the run's end (see run_log)
            connection.execute(
                f"UPDATE {run_log.RUNS_TABLE} SET status = 'done', ended_at = ? WHERE run_id = ?",
                [ended_at, recorder.run_id],
            )
            connection.execute("COMMIT")
            recorder.ended_at = ended_at
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            self._error = SinkError(f"cannot record the run in {str(self.path)!r}: {exc}")


def prepare_table(connection: duckdb.DuckDBPyConnection, table: str, path: str | Path) -> None:
    """Create ``table`` with the columns of :data:`COLUMN_TYPES` unless it exists; give an older
    table the columns added since (:data:`ADDED_COLUMNS`). Raises :class:`SinkError` for a table
    it cannot create or complete."""
    import duckdb

    definition = ", ".join(f"{quote(name)} {COLUMN_TYPES[name]}" for name in COLUMNS)
    try:
        connection.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({definition})")
        existing = table_columns(connection, table) or {}
    except duckdb.Error as exc:
        raise SinkError(f"cannot create table {table!r} in {str(path)!r}: {exc}") from exc
    missing = [name for name in COLUMNS if name not in existing]
    if any(name not in ADDED_COLUMNS for name in missing):
        raise SinkError(
            f"table {table!r} in {str(path)!r} exists without the column(s) "
            f"{', '.join(missing)}. HINT: write to a new file, or add the columns"
        )
    for name in missing:
        _add_column(connection, table, path, name)


def _add_column(
    connection: duckdb.DuckDBPyConnection, table: str, path: str | Path, name: str
) -> None:
    """Give an older table the column ``name``; its earlier rows get the column's filler."""
    import duckdb

    quoted, column = quote(table), quote(name)
    try:
        connection.execute("BEGIN TRANSACTION")
        connection.execute(f"ALTER TABLE {quoted} ADD COLUMN {column} {COLUMN_TYPES[name]}")
        connection.execute(f"UPDATE {quoted} SET {column} = {ADDED_COLUMNS[name]}")
        connection.execute("COMMIT")
    except duckdb.Error as exc:
        with contextlib.suppress(duckdb.Error):
            connection.execute("ROLLBACK")
        raise SinkError(
            f"cannot add the column {name!r} to table {table!r} in "
            f"{str(path)!r}: {exc}. HINT: write to a new file"
        ) from exc
