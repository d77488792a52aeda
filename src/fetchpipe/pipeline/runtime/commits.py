"""A source's pages committed in batches: its records and their journal rows, in one transaction.

The records of a source's pages go to its spool as the pages are read (the rows of its
``unnest`` tables to a spool each); every ``every`` seconds (or after ``records`` records, or at
the source's end) the spools and the pages' journal rows are committed to the stage tables on
the destination's thread, in one transaction, with the request log's rows of those pages'
requests (and the run's events so far). A crash loses at most the
pages since the last commit, and the next run fetches them again (:mod:`.resume`).

The commits due while the destination's thread is busy wait, and go together when it is free:
the pages of every source among them in one transaction
(:meth:`~fetchpipe.destinations.pipelines.staging.StagedStore.stage_many`). A run of a hundred
small sources made a transaction per source per commit, one after another on the one thread,
and took 4.6 to 11 times the fetching's time (``fetchpipe bench many-sources``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fetchpipe._log import emit, logger
from fetchpipe.destinations.duckdb_ingest import Spool
from fetchpipe.destinations.pipelines import LoadError, StagedPages
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
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Future[None] | None = None

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
        pages = StagedPages(run.source.name, spool, entries, tables, log)
        waiting = _Waiting(run, pages, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        run.commits.append(waiting.staged)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        """Stage what waits, all of it in one call, until nothing waits: a commit due while
        the destination's thread is busy goes with the others due then, in one transaction."""
        destination = self._thread.destination
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                outcomes = await self._thread.call(
                    destination.stage_many, self._run_id, [w.pages for w in group]
                )
            except asyncio.CancelledError:
                for waiting in (*group, *self._waiting):
                    waiting.discard()
                    waiting.staged.cancel()
                raise
            except Exception as exc:  # not a LoadError: each source's finish raises it
                for waiting in group:
                    waiting.discard()
                    if not waiting.staged.done():
                        waiting.staged.set_exception(exc)
                continue
            for waiting, outcome in zip(group, outcomes, strict=True):
                waiting.discard()
                staged = self._settle(waiting, outcome)
                if not waiting.staged.done():  # its source's end was cancelled meanwhile
                    waiting.staged.set_result(staged)

    @staticmethod
    def _settle(waiting: _Waiting, outcome: int | LoadError) -> int:
        """Account for one source's staged pages; a LoadError fails the source."""
        run, entries = waiting.run, waiting.pages.entries
        if isinstance(outcome, LoadError):
            if run.suspended:  # these pages are not kept: the source fails after all
                run.suspended, run.failure = False, None
            run.fail(str(outcome))
            return 0
        run.committed_pages += len(entries)
        emit(
            _LOG,
            DEBUG,
            "page_committed",
            f"{run.source.name}: {len(entries)} page(s), {outcome} record(s) committed",
            source=run.source.name,
            pages=len(entries),
            records=outcome,
        )
        return outcome


@dataclass(slots=True)
class _Waiting:
    """A source's pages waiting to be staged, and the future of their staging."""

    run: SourceRun
    pages: StagedPages
    staged: asyncio.Future[int]

    def discard(self) -> None:
        """Remove the spools' files (staged, or never to be)."""
        for used in (self.pages.spool, *(self.pages.tables or {}).values()):
            if used is not None:
                used.discard()
