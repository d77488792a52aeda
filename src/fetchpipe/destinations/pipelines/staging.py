"""The DuckDB database a run keeps its bookkeeping in: state, journal, staged records.

For a DuckDB destination it is the destination file itself; for JSONL and Parquet it is
``DIR/_fetchpipe.duckdb``. While a source runs, its pages are committed in batches to a stage
table together with their journal rows (:meth:`StagedStore.stage_pages`); when the source ends,
:meth:`StagedStore.finish_source` has a subclass apply the stage to the destination with the
source's state (:meth:`~StagedStore.apply` of :class:`~.duckdb.DuckDBLoader` and
:class:`~.files.FileLoader`). DuckDB locks the file for one writing process: a second run on
the same destination fails at once with a message saying so.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from fetchpipe.destinations import run_log
from fetchpipe.destinations.duckdb_ingest import Spool, quote
from fetchpipe.destinations.lifecycle import OpenClose
from fetchpipe.destinations.pipelines import (
    ChildTable,
    LoadError,
    SourceEnd,
    StagedPages,
    StoredState,
    WriteMode,
    journal,
)
from fetchpipe.destinations.pipelines.children import stage_with_children
from fetchpipe.destinations.pipelines.journal import PageEntry, RunRecord, stage_table
from fetchpipe.destinations.pipelines.tables import BATCH, stage_records
from fetchpipe.destinations.run_log import LogRows

# duckdb is imported where a database is opened or used (lazy): importing the runner loads it
# only when a destination needs it.
if TYPE_CHECKING:
    import duckdb

STATE_TABLE = "_fetchpipe_state"
State = Mapping[str, object] | None
"""A source's incremental state to commit with its records (``None``: leave it as it is)."""
T = TypeVar("T")
_LOCK_PID = re.compile(r"\(PID (\d+)\)")


def check_write(table: str, write: str, key: Sequence[str]) -> None:
    """LoadError for an unknown write mode, or a merge without a primary key."""
    if write not in ("append", "replace", "merge"):
        raise LoadError(f"unknown write mode {write!r}. HINT: use append, replace or merge")
    if write == "merge" and not key:
        raise LoadError(f"table {table!r}: write 'merge' needs a primary key")


class DestinationInUse(LoadError):
    """Another process has the destination's database open (another run is active)."""


class StagedStore(OpenClose):
    """One DuckDB database file with the state, journal and stage tables of a destination."""

    def __init__(self, database: str | Path, *, label: str) -> None:
        self.database = Path(database)
        self.label = label
        """The destination as shown in messages."""
        self._connection: duckdb.DuckDBPyConnection | None = None

    # --- opening --------------------------------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the database and its tables; DestinationInUse when it is locked."""
        import duckdb

        try:
            self.database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(
                f"cannot create the directory of {str(self.database)!r}: {exc.strerror or exc}"
            ) from exc
        try:
            # One DuckDB thread: measured on 100,000 records, a second thread used 60 MB more
            # memory for the load and saved no time (the event loop keeps a core busy).
            connection = duckdb.connect(str(self.database), config={"threads": 1})
        except duckdb.Error as exc:
            raise _open_error(self.database, exc) from exc
        try:
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(STATE_TABLE)} (source VARCHAR PRIMARY KEY, "
                "state JSON, run_id VARCHAR, updated_at TIMESTAMPTZ)"
            )
            journal.create_tables(connection)
        except duckdb.Error as exc:
            connection.close()
            raise LoadError(f"cannot prepare {str(self.database)!r}: {exc}") from exc
        self._connection = connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def conn(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            raise LoadError(f"{self.label!r} is not open. HINT: call open() first")
        return self._connection

    def transaction(self, what: str, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``work`` in one transaction: all of it is committed, or none (LoadError)."""
        import duckdb

        connection = self.conn()
        try:
            connection.execute("BEGIN TRANSACTION")
            result = work(connection)
            connection.execute("COMMIT")
        except (duckdb.Error, LoadError, OSError, TypeError) as exc:
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            if isinstance(exc, LoadError):
                raise
            raise LoadError(f"cannot {what} in {self.label!r}: {exc}") from exc
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            raise
        return result

    # --- state ----------------------------------------------------------------------------------

    def read_state(self, source: str) -> dict[str, Any] | None:
        """The state last committed for ``source``, or ``None``."""
        row = (
            self.conn()
            .execute(f"SELECT state FROM {quote(STATE_TABLE)} WHERE source = ?", [source])
            .fetchone()
        )
        if row is None or row[0] is None:
            return None
        state = json.loads(row[0])
        return state if isinstance(state, dict) else None

    def states(self) -> dict[str, StoredState]:
        """Every source's stored state, by source name."""
        rows = (
            self.conn()
            .execute(
                f"SELECT source, state, run_id, updated_at FROM {quote(STATE_TABLE)} "
                "ORDER BY source"
            )
            .fetchall()
        )
        found = {}
        for source, text, run_id, updated_at in rows:
            state = json.loads(text) if text is not None else None
            found[source] = StoredState(
                state if isinstance(state, dict) else None, run_id, updated_at
            )
        return found

    def set_state(self, source: str, state: Mapping[str, object], by: str) -> None:
        """Store ``state`` for ``source`` outside a run (``by`` in place of a run id)."""
        self.transaction(
            f"set the state of {source!r}", lambda c: self.write_state(c, source, state, by)
        )

    def reset_state(self, source: str) -> bool:
        """Forget the state of ``source``: its next run starts from its ``initial``. False
        when there was none."""

        def work(connection: duckdb.DuckDBPyConnection) -> bool:
            table = quote(STATE_TABLE)
            found = connection.execute(
                f"SELECT count(*) FROM {table} WHERE source = ?", [source]
            ).fetchone()
            connection.execute(f"DELETE FROM {table} WHERE source = ?", [source])
            return bool(found and found[0])

        return self.transaction(f"reset the state of {source!r}", work)

    @staticmethod
    def write_state(
        connection: duckdb.DuckDBPyConnection,
        source: str,
        state: Mapping[str, object],
        run_id: str,
    ) -> None:
        connection.execute(
            f"INSERT OR REPLACE INTO {quote(STATE_TABLE)} VALUES (?, ?, ?, ?)",
            [source, orjson.dumps(state, default=str).decode(), run_id, datetime.now(UTC)],
        )

    # --- the journal ------------------------------------------------------------------------------

    def unfinished_run(self, pipeline: str) -> RunRecord | None:
        return journal.unfinished_run(self.conn(), pipeline)

    def begin_run(self, run: RunRecord) -> None:
        journal.begin_run(self.conn(), run)

    def end_run(
        self,
        run_id: str,
        status: str,
        sources: Sequence[str],
        ended_at: datetime | None = None,
    ) -> None:
        self.transaction(
            "end the run", lambda c: journal.end_run(c, run_id, status, sources, ended_at)
        )

    def committed_pages(self, run_id: str) -> list[PageEntry]:
        return journal.committed_pages(self.conn(), run_id)

    def ended_sources(self, run_id: str) -> dict[str, journal.EndedSource]:
        return journal.ended_sources(self.conn(), run_id)

    def stage_pages(
        self,
        source: str,
        spool: Spool | None,
        run_id: str,
        entries: Sequence[PageEntry],
        tables: Mapping[str, Spool] | None = None,
        log: LogRows | None = None,
    ) -> int:
        """Commit the spool's records to the source's stage table with the pages' journal rows
        and the ``log`` rows of their requests (and the run's events), in one transaction (no
        spool: the journal rows alone, for a source that is fetched but not written).
        ``tables``: the rows of the source's child tables (table -> spool), staged in the same
        transaction (see :mod:`.children`). Returns the records staged."""

        def work(connection: duckdb.DuckDBPyConnection) -> int:
            staged = _stage_records(connection, source, spool, tables, run_id)
            journal.insert_pages(connection, run_id, entries)
            if log:
                run_log.insert(connection, log)
            return staged

        count = spool.count if spool is not None else 0
        try:
            return self.transaction(f"stage {count} record(s) of {source!r}", work)
        finally:
            self._drop_batch()

    def stage_many(self, run_id: str, batches: Sequence[StagedPages]) -> list[int | LoadError]:
        """Commit the pages of several sources, each batch as :meth:`stage_pages` does, in one
        transaction: one commit, one insert of all their journal rows and one of all their
        request log rows, however many sources. A run of many small sources commits them as
        they come, and a transaction each made the destination's thread the bottleneck (a
        commit waits on the disk; each insert is a statement).

        When that transaction fails, each batch is staged alone in its own, so that a batch
        that cannot be staged fails its source only. Returns, for each batch in order, the
        records staged or the LoadError that kept it out."""
        if len(batches) == 1:
            return [self._stage_alone(run_id, batches[0])]

        def work(connection: duckdb.DuckDBPyConnection) -> list[int | LoadError]:
            staged: list[int | LoadError] = [
                _stage_records(connection, b.source, b.spool, b.tables, run_id) for b in batches
            ]
            journal.insert_pages(connection, run_id, [e for b in batches for e in b.entries])
            log = _joined([b.log for b in batches if b.log])
            if log:
                run_log.insert(connection, log)
            return staged

        try:
            return self.transaction(f"stage the pages of {len(batches)} sources", work)
        except LoadError:
            pass  # each alone, below: a batch that fails takes no other with it
        finally:
            self._drop_batch()
        return [self._stage_alone(run_id, batch) for batch in batches]

    def _stage_alone(self, run_id: str, batch: StagedPages) -> int | LoadError:
        try:
            return self.stage_pages(
                batch.source, batch.spool, run_id, batch.entries, batch.tables, batch.log
            )
        except LoadError as exc:
            return exc

    def record_log(self, log: LogRows) -> None:
        """Write request and event rows that belong to no committed page (failures, skips, the
        last events), in one transaction."""
        if log:
            self.transaction("record the run's requests", lambda c: run_log.insert(c, log))

    def discard_source(
        self,
        run_id: str,
        source: str,
        status: str,
        reason: str | None = None,
        tables: Sequence[str] = (),
    ) -> None:
        """End a source without writing it (failed, or unchanged): drop its stage, and its
        child ``tables``' stages."""

        def work(connection: duckdb.DuckDBPyConnection) -> None:
            self.end_source(connection, run_id, source, status, reason=reason, tables=tables)

        self.transaction(f"end source {source!r}", work)

    def finish_source(
        self,
        table: str,
        *,
        write: WriteMode,
        primary_key: Sequence[str] | None,
        run_id: str,
        state: State = None,
        tables: Sequence[ChildTable] = (),
    ) -> int:
        """Write the source's staged records to ``table`` and its child ``tables``' rows to
        theirs (the destination's :meth:`apply`), then commit its state and its end, the stages
        dropped. Returns the rows from this run in ``table``."""
        key = list(primary_key or ())
        check_write(table, write, key)
        return self.apply(table, write, key, run_id, state, tables)

    def finish_many(self, run_id: str, sources: Sequence[SourceEnd]) -> list[int | LoadError]:
        """End several sources, each as :meth:`finish_source` does, in its own transaction (a
        destination whose apply is one transaction of its database may apply them in one).
        Returns, for each in order, the rows written or the LoadError that kept it out."""
        return [self.finish_alone(run_id, end) for end in sources]

    def finish_alone(self, run_id: str, end: SourceEnd) -> int | LoadError:
        try:
            return self.finish_source(
                end.table,
                write=end.write,
                primary_key=end.primary_key,
                run_id=run_id,
                state=end.state,
                tables=end.tables,
            )
        except LoadError as exc:
            return exc

    def apply(
        self,
        table: str,
        write: WriteMode,
        key: list[str],
        run_id: str,
        state: State,
        tables: Sequence[ChildTable] = (),
    ) -> int:
        """Apply the source's stage (and its child tables') to the destination and end the
        source (with :meth:`end_source`): what :meth:`finish_source` does once the write mode
        is checked. Each destination has its own."""
        raise NotImplementedError

    def written_rows(self, table: str, run_id: str) -> int:
        """The rows of ``table`` that run ``run_id`` wrote and that are there now. Each
        destination has its own."""
        raise NotImplementedError

    def end_source(
        self,
        connection: duckdb.DuckDBPyConnection,
        run_id: str,
        source: str,
        status: str,
        *,
        rows: int = 0,
        reason: str | None = None,
        state: State = None,
        tables: Sequence[str] = (),
    ) -> None:
        """Record that ``source`` ended, with its state when given, and drop its stage and its
        child ``tables``' (inside the caller's transaction)."""
        if state is not None:
            self.write_state(connection, source, state, run_id)
        journal.mark_source(connection, run_id, source, status, rows, reason)
        for name in (source, *tables):
            connection.execute(f"DROP TABLE IF EXISTS {stage_table(name)}")

    def _drop_batch(self) -> None:
        import duckdb

        with contextlib.suppress(duckdb.Error, LoadError):
            self.conn().execute(f"DROP TABLE IF EXISTS {BATCH}")


def _stage_records(
    connection: duckdb.DuckDBPyConnection,
    source: str,
    spool: Spool | None,
    tables: Mapping[str, Spool] | None,
    run_id: str,
) -> int:
    """Add the spool's records to the source's stage table (and its child tables' rows to
    theirs), inside the caller's transaction. Returns the records staged."""
    if spool is None:
        return 0
    now = datetime.now(UTC)
    if tables is not None:
        return stage_with_children(connection, source, spool, tables, run_id, now)
    return stage_records(connection, stage_table(source), spool, run_id, now)


def _joined(logs: Sequence[LogRows]) -> LogRows | None:
    """The rows of ``logs`` as one, in their order (the run's figures of the last that has
    them)."""
    if len(logs) <= 1:
        return logs[0] if logs else None
    joined = LogRows([row for log in logs for row in log.requests])
    joined.events = [row for log in logs for row in log.events]
    for log in logs:
        if log.politeness is not None:
            joined.politeness, joined.run_id = log.politeness, log.run_id
    return joined


def _open_error(path: Path, exc: Exception) -> LoadError:
    text = str(exc)
    if "lock" in text.lower():
        found = _LOCK_PID.search(text)
        who = f"process {found.group(1)}" if found else "another process"
        return DestinationInUse(
            f"{str(path)!r} is in use by {who}: another run on this destination is active, or a "
            "program has the file open. HINT: wait for it to end; runs on one destination go "
            "one at a time"
        )
    return LoadError(
        f"cannot open DuckDB file {str(path)!r}: {exc}. HINT: check that no other process has "
        "the file open and that it is a DuckDB file"
    )
