"""How a source run ends: once nothing of it (nor of its parent) is queued or in flight.

Its last pages are committed, then, on the destination's thread, one of:

- failed: its stage and journal rows are discarded, its state is kept (a source that failed
  for a host that was down is *suspended*: its committed pages are kept for the next run);
- fetched only for a selected child, or every page unchanged: discarded, nothing written;
- otherwise its stage is applied to its table with its incremental state, in one transaction
  (with the stages of its ``unnest`` tables, applied to theirs); the sources that end while the
  destination's thread is busy are applied together when it is free (a DuckDB destination: in
  one transaction).

A parent's state waits for its children: see :meth:`Finisher._state_after_children`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fetchpipe._log import emit, logger
from fetchpipe.destinations.pipelines import LoadError, SourceEnd
from fetchpipe.pipeline.runtime.commits import Commits
from fetchpipe.pipeline.runtime.destination import DestinationThread
from fetchpipe.pipeline.runtime.report import SourceReport, source_line
from fetchpipe.pipeline.runtime.source_run import CURSOR, SourceRun

_LOG = logger("pipeline")
INFO, WARNING = 20, 30


class Finisher:
    """Ends the source runs of run ``run_id``, each once it is drained."""

    def __init__(
        self,
        thread: DestinationThread,
        commits: Commits,
        run_id: str,
        *,
        full_refresh: bool,
        on_source_done: Callable[[SourceReport], None] | None,
    ) -> None:
        self._thread = thread
        self._commits = commits
        self._run_id = run_id
        self._full_refresh = full_refresh
        self._on_source_done = on_source_done
        self._finishing: list[asyncio.Future[None]] = []
        self._ends: list[tuple[SourceEnd, asyncio.Future[int]]] = []
        self._applier: asyncio.Future[None] | None = None

    def settle(self, run: SourceRun) -> None:
        """One job of ``run`` is done (read, failed or dropped)."""
        run.outstanding -= 1
        self.finish_if_drained(run)

    def finish_if_drained(self, run: SourceRun) -> None:
        """Finish ``run`` once nothing of it is queued or in flight and its parent is drained."""
        if run.drained or run.outstanding > 0:
            return
        if run.parent is not None and not run.parent.drained:
            return
        run.drained = True
        if run.ended_earlier:
            run.finished.set()
        else:
            if run.failure is None or run.suspended:
                self._commits.maybe_commit(run, last=True)
            self._finishing.append(asyncio.ensure_future(self._finish(run)))
        for child in run.children:
            if run.suspended:
                child.suspend(f"parent source {run.source.name!r} is suspended")
            elif run.failure is not None:
                child.fail(f"parent source {run.source.name!r} failed")
            self.finish_if_drained(child)

    async def wait(self) -> None:
        """Wait for the ends begun so far."""
        await asyncio.gather(*self._finishing)

    async def _finish(self, run: SourceRun) -> None:
        report, destination, name = run.report, self._thread.destination, run.source.name
        call, run_id = self._thread.call, self._run_id
        tables = run.child_tables()
        names = [t.name for t in tables]
        await asyncio.gather(*run.commits)
        try:
            if run.suspended:
                report.status = "failed"
                report.reason = (
                    f"{run.failure}; its {run.committed_pages} committed pages are kept: the "
                    "next run of this pipeline resumes from them"
                )
            elif run.failure is not None:
                report.status, report.reason = "failed", run.failure
                await call(destination.discard_source, run_id, name, "failed", run.failure, names)
            elif not run.write:
                report.status = "fetched"
                await call(destination.discard_source, run_id, name, "fetched", None, names)
            elif not run.changed and report.pages and not self._full_refresh:
                report.status = "unchanged"
                await call(destination.discard_source, run_id, name, "unchanged", None, names)
            else:
                state = None
                if run.source.incremental is not None:
                    state = await self._state_after_children(run)
                report.status = "loading"
                report.rows = await self._apply(
                    SourceEnd(name, run.mode, run.source.key_fields, state, tables)
                )
                for table in names:
                    report.tables[table] = await call(destination.written_rows, table, run_id)
                report.status = "ok"
                report.cursor = run.cursor if state is not None else None
        except LoadError as exc:
            report.status, report.reason = "failed", run.redact(str(exc))
            report.cursor = None
        finally:
            run.discard_spools()
            report.seconds = time.monotonic() - run.started
            run.finished.set()
        emit(
            _LOG,
            WARNING if report.status == "failed" else INFO,
            "source_ended",
            source_line(report),
            source=name,
            outcome=report.status,
            rows=report.rows,
            pages=report.pages,
            records=report.records,
            reason=report.reason,
        )
        if self._on_source_done is not None:
            self._on_source_done(report)

    def _apply(self, end: SourceEnd) -> asyncio.Future[int]:
        """Apply a source to its table: with the others that end while the destination's
        thread is busy, all at once (see :meth:`_apply_waiting`). Its future raises the
        LoadError that kept it out."""
        applied: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._ends.append((end, applied))
        if self._applier is None or self._applier.done():
            self._applier = asyncio.ensure_future(self._apply_waiting())
        return applied

    async def _apply_waiting(self) -> None:
        """Apply what waits, in one call, until nothing waits (``finish_many``: a DuckDB
        destination applies them in one transaction)."""
        destination = self._thread.destination
        while self._ends:
            group, self._ends = self._ends, []
            try:
                outcomes = await self._thread.call(
                    destination.finish_many, self._run_id, [end for end, _ in group]
                )
            except asyncio.CancelledError:
                for _, applied in (*group, *self._ends):
                    applied.cancel()
                raise
            except Exception as exc:  # not a LoadError: each source's end raises it
                for _, applied in group:
                    if not applied.done():
                        applied.set_exception(exc)
                continue
            for (_, applied), outcome in zip(group, outcomes, strict=True):
                if applied.done():  # its source's end was cancelled meanwhile
                    continue
                if isinstance(outcome, LoadError):
                    applied.set_exception(outcome)
                else:
                    applied.set_result(outcome)

    async def _state_after_children(self, run: SourceRun) -> dict[str, Any] | None:
        """The incremental state to store with ``run``'s records: its cursor, unless a source
        below it failed. Records of a parent are what its children are fetched for: if the
        cursor moved past them, a failed child would never fetch those records' pages again.
        Waits for the children to end."""
        below = run.descendants()
        await asyncio.gather(*(d.finished.wait() for d in below))
        failed = [d.source.name for d in below if d.report.status == "failed"]
        if failed:
            run.report.reason = (
                f"incremental state not advanced: {', '.join(failed)} failed, and the next run "
                "must fetch these records' children again"
            )
            return None
        return {CURSOR: run.cursor}
