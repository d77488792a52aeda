"""A source during a run (:class:`SourceRun`) and the page jobs of its requests (:class:`PageJob`).

A source run starts with its stored incremental cursor and its parent's run (a child source
is fetched once per parent record), collects the records of its pages in a spool between
commits, and fails at most once: the first reason is kept, redacted. How it ends is
:mod:`.finish`'s part; its states, in order:

- ``outstanding``: jobs of it queued or in flight;
- ``drained``: nothing of it is queued or in flight any more, nor of its parent: its end
  has begun;
- ``finished``: its end is recorded (written, or discarded).

``ended_earlier`` marks a source that ended in an earlier attempt of a resumed run: it is not
fetched again, and ends as it ended then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fetchpipe._redact import public_url
from fetchpipe.destinations.duckdb_ingest import Spool
from fetchpipe.destinations.pipelines import ChildTable, WriteMode
from fetchpipe.destinations.pipelines.journal import EndedSource, PageEntry
from fetchpipe.pipeline.runtime.auth import Authenticator
from fetchpipe.pipeline.runtime.pagination import PageRequest, Paginator, paginator_for
from fetchpipe.pipeline.runtime.report import SourceReport, Status
from fetchpipe.pipeline.spec.cursors import CursorError, CursorRule
from fetchpipe.pipeline.spec.models import ApiKeyAuth, Source

CURSOR = "cursor"
"""The key of the incremental cursor in a source's stored state."""

_ENDED_STATUS: dict[str, Status] = {
    "done": "ok",
    "failed": "failed",
    "unchanged": "unchanged",
    "fetched": "fetched",
}


@dataclass(eq=False)
class SourceRun:
    """One source during a run: its jobs, its batches, how it ends."""

    source: Source
    report: SourceReport
    write: bool
    mode: WriteMode
    params: dict[str, str | int | float | bool]
    redact: Callable[[str], str]
    """Masks the pipeline's secrets in a failure's reason."""
    parent: SourceRun | None = None
    children: list[SourceRun] = field(default_factory=list)
    auth: Authenticator = field(default_factory=Authenticator)
    spool: Spool | None = None
    tables: dict[str, Spool] = field(default_factory=dict)
    """The rows of its ``unnest`` tables since the last commit, by table (with ``spool``)."""
    entries: list[PageEntry] = field(default_factory=list)
    """Pages read since the last commit."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Request log rows since the last commit (see :mod:`fetchpipe.destinations.run_log`)."""
    commits: list[asyncio.Future[int]] = field(default_factory=list)
    committed_at: float = 0.0
    outstanding: int = 0
    """Jobs queued or in flight."""
    changed: bool = False
    """A page came from the network (not a fresh cache entry or a 304)."""
    cursor: Any = None
    """The greatest incremental cursor value so far, as written (stored state, or initial)."""
    cursor_rule: CursorRule | None = None
    """How the cursor compares (None without ``incremental``)."""
    started: float = 0.0
    drained: bool = False
    """Nothing of it is queued or in flight any more, nor of its parent: its end has begun."""
    ended_earlier: bool = False
    """The source ended in an earlier attempt of this run (found in the journal)."""
    failure: str | None = None
    suspended: bool = False
    """Failed because a host was down: its committed pages are kept for the next run."""
    committed_pages: int = 0
    secret_params: frozenset[str] = frozenset()
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once its end is recorded (by :class:`~.finish.Finisher`: written or discarded), or
    at once when drained if it ended earlier."""

    @classmethod
    def start(
        cls,
        source: Source,
        *,
        write: bool,
        full_refresh: bool,
        state: Mapping[str, Any] | None,
        ended: EndedSource | None,
        parent: SourceRun | None,
        redact: Callable[[str], str],
    ) -> SourceRun:
        """The run of ``source``: from its stored ``state``, or as it ``ended`` before an
        interruption; ``write`` false when it is fetched only for a selected child."""
        mode: WriteMode = "replace" if full_refresh and write else source.write
        params = dict(source.params)
        cursor, rule, problem = None, None, None
        if source.incremental is not None:
            rule = source.incremental.rule()
            stored = None if state is None else state.get(CURSOR)
            cursor = source.incremental.initial if stored is None else stored
            if cursor is not None:
                try:
                    params[source.incremental.param] = rule.sent(cursor, stored=stored is not None)
                except CursorError as exc:
                    what = str(exc).partition(". HINT")[0]
                    problem = (
                        f"the stored incremental cursor does not fit the source: {what}. HINT: "
                        f"fetchpipe state set PIPELINE {source.name} VALUE, or state reset "
                        "(the next run starts from initial)"
                    )
        report = SourceReport(source.name, status="running")
        run = cls(source, report, write, mode, params, redact, cursor=cursor, cursor_rule=rule)
        if problem is not None:
            run.fail(problem)
        run.started = run.committed_at = time.monotonic()
        if isinstance(source.auth, ApiKeyAuth) and source.auth.in_ == "query":
            run.secret_params = frozenset({source.auth.name})
        if parent is not None:
            run.parent = parent
            parent.children.append(run)
        if ended is not None:  # ended before the run was interrupted: as it ended then
            run.ended_earlier = True
            report.rows = ended.rows
            if ended.status == "failed":
                run.failure = report.reason = ended.reason or "failed before an interruption"
            report.status = _ENDED_STATUS.get(ended.status, "failed")
        elif write:
            run.spool = Spool(prefix=f"fetchpipe-{source.name}-")
            run.tables = run.new_tables()
        return run

    def new_tables(self) -> dict[str, Spool]:
        """An empty spool for each of its ``unnest`` tables."""
        return {u.table: Spool(prefix=f"fetchpipe-{u.table}-") for u in self.source.unnest}

    def child_tables(self) -> list[ChildTable]:
        """Its ``unnest`` tables, as the destination writes them."""
        key = set(self.source.key_fields)
        return [
            ChildTable(
                u.table,
                u.index,
                tuple((c, f) for c, f in u.include_parent.items() if f in key),
            )
            for u in self.source.unnest
        ]

    def discard_spools(self) -> None:
        """Remove the spools of records not committed (when it ends, or the run does)."""
        for spool in (self.spool, *self.tables.values()):
            if spool is not None:
                spool.discard()
        self.spool, self.tables = None, {}

    def descendants(self) -> list[SourceRun]:
        return [d for child in self.children for d in (child, *child.descendants())]

    def paginator(self, url: str, body: Any) -> tuple[Paginator, PageRequest]:
        """A paginator for a run of this source from ``url`` with the json ``body`` (the
        source's, filled in from a parent record for a child), and its first request."""
        source = self.source
        paginator = paginator_for(
            source.paginate,
            url,
            self.params,
            body=body,
            allow_cross_origin=source.allow_cross_origin,
        )
        return paginator, paginator.first()

    def fail(self, reason: str) -> None:
        """Fail the source for ``reason`` (redacted), unless it failed already."""
        if self.failure is None:
            self.failure = self.redact(reason)

    def suspend(self, reason: str) -> None:
        """Fail the source for a host that is down, keeping its committed pages for the next
        run (see :mod:`.runner`)."""
        if self.failure is None:
            self.failure = self.redact(reason)
            self.suspended = True


@dataclass(eq=False, slots=True)
class PageJob:
    """A request of a source run: its page, the paginator that made it and will read it, the
    URL that paginator started from, the parent values its records get."""

    run: SourceRun
    paginator: Paginator
    page: PageRequest
    base: str
    include: Mapping[str, Any] | None = None
    reauthorized: bool = False

    @property
    def where(self) -> str:
        """The page, for messages: ``page 2 of https://api.example.com/items``."""
        return f"page {self.page.number} of {public_url(self.page.url)}"
