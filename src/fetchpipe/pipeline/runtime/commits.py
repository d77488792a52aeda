"""A source's pages committed in batches: its records and their journal rows, in one transaction.

The records of a source's pages go to its spool as the pages are read (the rows of its
``unnest`` tables to a spool each); every ``every`` seconds (or after ``records`` records, or at
the source's end) the spools and the pages' journal rows are committed to the stage tables on
the destination's thread, in one transaction, with the request log's rows of those pages'
requests (and the run's events so far). A crash loses at most the
pages since the last commit, and the next run fetches them again (:mod:`.resume`).
"""

from __future__ import annotations

import asyncio
import time

from fetchpipe._log import emit, logger
from fetchpipe.destinations.duckdb_ingest import Spool
from fetchpipe.destinations.pipelines import LoadError
from fetchpipe.destinations.pipelines.journal import PageEntry
from fetchpipe.destinations.run_log import LogRows, RequestRecorder
from fetchpipe.pipeline.runtime.destination import DestinationThread
from fetchpipe.pipeline.runtime.source_run import SourceRun

COMMIT_EVERY = 1.0
"""Seconds between commits of a source's fetched pages: a crash loses at most this much."""
COMMIT_RECORDS = 50_000
"""Records after which a source's pages are committed whatever the time."""
_LOG = logger("pipeline")
DEBUG = 10


class Commits:
    """Commits the pages of the source runs of run ``run_id`` when it is time."""

    def __init__(
        self,
        thread: DestinationThread,
        run_id: str,
        *,
        every: float = COMMIT_EVERY,
        records: int = COMMIT_RECORDS,
        recorder: RequestRecorder | None = None,
    ) -> None:
        self._thread = thread
        self._run_id = run_id
        self._every = every
        self._records = records
        self._recorder = recorder
        """Its events so far go with each commit."""

    def maybe_commit(self, run: SourceRun, *, last: bool = False) -> None:
        """Commit the pages read since the last commit, when it is time (or ``last``)."""
        if not run.entries:
            return
        spool = run.spool
        count = spool.count if spool is not None else 0
        due = time.monotonic() - run.committed_at >= self._every
        if not (last or due or count >= self._records):
            return
        entries, run.entries = run.entries, []
        events = self._recorder.take_events() if self._recorder is not None else []
        log, run.requests = LogRows(run.requests, events), []
        run.committed_at = time.monotonic()
        tables: dict[str, Spool] | None = None
        if spool is not None:
            spool.finish()
            run.spool = Spool(prefix=f"fetchpipe-{run.source.name}-")
            if run.source.unnest:  # the child rows of these pages, committed with them
                tables, run.tables = run.tables, run.new_tables()
                for rows in tables.values():
                    rows.finish()
        future = asyncio.ensure_future(self._commit(run, spool, entries, tables, log))
        run.commits.append(future)

    async def _commit(
        self,
        run: SourceRun,
        spool: Spool | None,
        entries: list[PageEntry],
        tables: dict[str, Spool] | None,
        log: LogRows,
    ) -> int:
        destination = self._thread.destination
        try:
            staged = await self._thread.call(
                destination.stage_pages,
                run.source.name,
                spool,
                self._run_id,
                entries,
                tables,
                log,
            )
            run.committed_pages += len(entries)
            emit(
                _LOG,
                DEBUG,
                "page_committed",
                f"{run.source.name}: {len(entries)} page(s), {staged} record(s) committed",
                source=run.source.name,
                pages=len(entries),
                records=staged,
            )
            return staged
        except LoadError as exc:
            if run.suspended:  # these pages are not kept: the source fails after all
                run.suspended, run.failure = False, None
            run.fail(str(exc))
            return 0
        finally:
            for used in (spool, *(tables or {}).values()):
                if used is not None:
                    used.discard()
