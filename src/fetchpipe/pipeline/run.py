"""Running a pipeline: every source's pages through one :class:`~fetchpipe.Fetcher`.

::

    report = await PipelineRunner(pipeline, select=["reviews"]).run()

One engine run serves all sources, so the limits of a host hold across them. Its input is a
queue of page jobs that grows while results arrive: a source's first page, the pages its
paginator finds next (all at once when the first page tells the total), and for a child source
one job per parent record, queued as soon as the parent's page is read (a streaming fan-out).
The run ends when no job is queued or in flight.

A source's records go to a :class:`~fetchpipe.pipeline.spool.Spool` as pages arrive; when its
last page is in (and its parent's), the spool is loaded in one transaction together with the
source's incremental state. A source that fails writes nothing and keeps its state; the others
go on. Authentication is added to each request just before it is sent, only on the source's
own origin; a 401 is retried once after the authenticator renews its credential.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from fetchpipe._exceptions import ConfigError, FetchpipeError
from fetchpipe._fetcher import Fetcher
from fetchpipe._models import Request, Result
from fetchpipe._models import Source as ResultSource
from fetchpipe.engine.transport import Transport
from fetchpipe.pipeline.auth import Authenticator, authenticator_for
from fetchpipe.pipeline.config import Pipeline
from fetchpipe.pipeline.errors import did_you_mean
from fetchpipe.pipeline.files import FileLoader
from fetchpipe.pipeline.load import DuckDBLoader, LoadError, WriteMode
from fetchpipe.pipeline.models import Destination, Source
from fetchpipe.pipeline.pagination import (
    Page,
    PageRequest,
    PaginationError,
    Paginator,
    paginator_for,
)
from fetchpipe.pipeline.records import (
    RecordsError,
    extract_records,
    latest_cursor,
    render_url,
    with_parent,
)
from fetchpipe.pipeline.report import RunReport, SourceReport
from fetchpipe.pipeline.spool import Spool

__all__ = ["Loader", "PipelineRunner", "loader_for", "new_run_id"]

_FROM_CACHE = frozenset({ResultSource.CACHE, ResultSource.REVALIDATED})
_CURSOR = "cursor"


class Loader(Protocol):
    """A destination: reads a source's state, loads a spool of records with new state."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read_state(self, source: str) -> dict[str, Any] | None: ...

    def load_spool(
        self,
        table: str,
        spool: Spool,
        *,
        write: WriteMode,
        primary_key: Sequence[str] | None,
        run_id: str,
        state: Mapping[str, object] | None = None,
        source: str | None = None,
    ) -> int: ...


def loader_for(destination: Destination) -> Loader:
    """The loader of a parsed destination (DuckDB file, JSONL or Parquet directory)."""
    if destination.kind == "duckdb":
        return DuckDBLoader(destination.path)
    return FileLoader(destination.path, destination.kind)


def new_run_id() -> str:
    """A unique run id that sorts by start time: UTC time to the microsecond, 6 random hex
    digits (``20261126T101500.123456Z-3fa2c1``)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


@dataclass(eq=False)
class _SourceRun:
    """One source during a run: its jobs, its spool, how it ends."""

    source: Source
    report: SourceReport
    write: bool
    mode: WriteMode
    params: dict[str, str | int | float | bool]
    parent: _SourceRun | None = None
    children: list[_SourceRun] = field(default_factory=list)
    auth: Authenticator = field(default_factory=Authenticator)
    spool: Spool | None = None
    outstanding: int = 0
    """Jobs queued or in flight."""
    changed: bool = False
    """A page came from the network (not a fresh cache entry or a 304)."""
    cursor: Any = None
    started: float = 0.0
    done: bool = False
    failure: str | None = None


@dataclass(eq=False, slots=True)
class _Job:
    run: _SourceRun
    paginator: Paginator
    page: PageRequest
    parent_record: Mapping[str, Any] | None = None
    reauthorized: bool = False


class PipelineRunner:
    """Runs the sources of a pipeline (or a selection) into its destination, once."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        select: Iterable[str] | None = None,
        full_refresh: bool = False,
        run_id: str | None = None,
        on_source_done: Callable[[SourceReport], None] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.full_refresh = full_refresh
        self.run_id = run_id or new_run_id()
        self.selected = _selection(pipeline, select)
        self.on_source_done = on_source_done
        self._transport = transport
        target = pipeline.target
        self.report = RunReport(self.run_id, pipeline.name, str(target))
        self.runs: dict[str, _SourceRun] = {}
        self._loader = loader_for(target)
        self._queue: collections.deque[_Job] = collections.deque()
        self._jobs: dict[int, _Job] = {}
        self._ids = 0
        self._wake = asyncio.Event()
        self._finishing: list[asyncio.Future[None]] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "fetchpipe-load")

    def redact(self, text: str) -> str:
        """``text`` with every secret of the pipeline masked."""
        return self.pipeline.redact(text)

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> RunReport:
        """Fetch and load every selected source; returns the report (see ``report.ok``)."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._loader.open)
        except LoadError:
            self._executor.shutdown(wait=False)
            raise
        try:
            await self._run_sources()
        finally:
            for run in self.runs.values():
                if run.spool is not None:
                    run.spool.discard()
            await loop.run_in_executor(self._executor, self._loader.close)
            self._executor.shutdown(wait=False)
            self.report.seconds = time.monotonic() - started
        return self.report

    async def _run_sources(self) -> None:
        pipeline = self.pipeline
        loop = asyncio.get_running_loop()
        for source in pipeline.ordered_sources():
            if source.name not in self.selected:
                continue
            state = None
            if source.incremental is not None and not self.full_refresh:
                state = await loop.run_in_executor(
                    self._executor, self._loader.read_state, source.name
                )
            self._add_run(source, state)
        async with (
            aiohttp.ClientSession() as token_session,
            Fetcher(
                limits=pipeline.limits(),
                retry=pipeline.retry_policy(),
                timeouts=pipeline.timeouts(),
                headers=pipeline.defaults.headers,
                transport=self._transport,
                cache=pipeline.http_cache(),
            ) as fetcher,
        ):
            for run in self.runs.values():
                run.auth = authenticator_for(run.source.auth, session=token_session)
                if run.parent is None:
                    self._start(run, run.source.url, None)
                    self._maybe_done(run)
            try:
                async for result in fetcher.stream(self._feed()):
                    await self._handle(result)
                await asyncio.gather(*self._finishing)
            finally:
                self.report.hosts_down = dict(fetcher.hosts_down)
                self.report.retries_denied = fetcher.retries_denied

    def _add_run(self, source: Source, state: Mapping[str, Any] | None) -> None:
        write = source.name in self.selected and self.selected[source.name]
        mode: WriteMode = "replace" if self.full_refresh and write else source.write
        params = dict(source.params)
        cursor = None
        if source.incremental is not None:
            cursor = source.incremental.initial
            if state is not None and state.get(_CURSOR) is not None:
                cursor = state[_CURSOR]
            if cursor is not None:
                params[source.incremental.param] = cursor
        report = SourceReport(source.name, status="running")
        run = _SourceRun(source, report, write, mode, params, cursor=cursor)
        run.started = time.monotonic()
        if write:
            run.spool = Spool(prefix=f"fetchpipe-{source.name}-")
        parent_name = source.parent
        if parent_name is not None:
            run.parent = self.runs[parent_name]
            run.parent.children.append(run)
        self.runs[source.name] = run
        self.report.sources.append(report)

    # --- jobs ---------------------------------------------------------------------------------

    def _start(self, run: _SourceRun, url: str, parent_record: Mapping[str, Any] | None) -> None:
        """Queue the first page of a source run (of one parent record for a child)."""
        source = run.source
        paginator = paginator_for(
            source.paginate, url, run.params, allow_cross_origin=source.allow_cross_origin
        )
        self._enqueue(_Job(run, paginator, paginator.first(), parent_record))

    def _enqueue(self, job: _Job) -> None:
        job.run.outstanding += 1
        self._queue.append(job)
        self._wake.set()

    async def _feed(self) -> AsyncIterator[Request]:
        """The engine's input: jobs as requests, until none is queued or in flight."""
        while True:
            while self._queue:
                job = self._queue.popleft()
                if job.run.failure is not None:
                    self._settle(job.run)
                    continue
                try:
                    request = await self._request(job)
                except FetchpipeError as exc:  # credentials could not be obtained
                    self._fail(job.run, str(exc))
                    self._settle(job.run)
                    continue
                yield request
            if not self._jobs:
                return
            self._wake.clear()
            await self._wake.wait()

    async def _request(self, job: _Job) -> Request:
        page = job.page
        self._ids += 1
        self._jobs[self._ids] = job
        params = {k: _param_text(v) for k, v in page.params.items()}
        headers = dict(job.run.source.headers) if page.send_credentials else {}
        request = Request(
            page.url,
            headers=headers or None,
            params=params or None,
            key=self._ids,
            expect="bytes",  # parsed by the handler, one page at a time (see _read_page)
        )
        try:
            return await job.run.auth.apply(request, same_origin=page.send_credentials)
        except BaseException:
            del self._jobs[self._ids]
            raise

    async def _handle(self, result: Result) -> None:
        job = self._jobs.pop(int(result.key or 0))
        run = job.run
        try:
            if run.failure is not None:
                return
            if (
                result.status == 401
                and not job.reauthorized
                and job.page.send_credentials
                and await run.auth.on_unauthorized(result.request)
            ):
                job.reauthorized = True
                self._enqueue(job)
                return
            if not result.ok:
                self._fail(run, _failure(job, result))
                return
            self._read_page(job, result)
        except (RecordsError, PaginationError) as exc:
            self._fail(run, f"{_where(job)}: {exc}")
        finally:
            self._settle(run)
            self._wake.set()

    def _read_page(self, job: _Job, result: Result) -> None:
        run, source, report = job.run, job.run.source, job.run.report
        # Bodies are parsed here rather than by the engine's workers: results waiting in the
        # engine's queue stay compact bytes, and one parsed page at a time is alive.
        body = _parse_json(result.body)
        records = extract_records(body, source.records)
        if job.parent_record is not None and source.include_parent:
            include = source.include_parent
            records = [with_parent(r, job.parent_record, include) for r in records]
        if source.incremental is not None:
            run.cursor = latest_cursor(records, source.incremental.cursor_field, run.cursor)
        report.pages += 1
        report.records += len(records)
        if result.source in _FROM_CACHE:
            report.cached_pages += 1
        else:
            run.changed = True
        if run.spool is not None:
            run.spool.add(records)
        page = Page(job.page, job.page.url, result.headers, body, len(records))
        for request in job.paginator.next(page):
            self._enqueue(_Job(run, job.paginator, request, job.parent_record))
        for child in run.children:
            self._fan_out(child, records)

    def _fan_out(self, child: _SourceRun, records: list[dict[str, Any]]) -> None:
        """Queue the child's first page for each parent record."""
        if child.failure is not None:
            return
        template, parent = child.source.url, child.parent
        assert parent is not None
        try:
            for record in records:
                self._start(child, render_url(template, {parent.source.name: record}), record)
        except RecordsError as exc:
            self._fail(child, str(exc))

    # --- ends of source runs --------------------------------------------------------------------

    def _fail(self, run: _SourceRun, reason: str) -> None:
        if run.failure is None:
            run.failure = self.redact(reason)

    def _settle(self, run: _SourceRun) -> None:
        run.outstanding -= 1
        self._maybe_done(run)

    def _maybe_done(self, run: _SourceRun) -> None:
        """End ``run`` once nothing of it is queued or in flight and its parent has ended."""
        if run.done or run.outstanding > 0:
            return
        if run.parent is not None and not run.parent.done:
            return
        run.done = True
        self._finishing.append(asyncio.ensure_future(self._finish(run)))
        for child in run.children:
            if run.failure is not None:
                self._fail(child, f"parent source {run.source.name!r} failed")
            self._maybe_done(child)

    async def _finish(self, run: _SourceRun) -> None:
        report, spool = run.report, run.spool
        loop = asyncio.get_running_loop()
        try:
            if run.failure is not None:
                report.status, report.reason = "failed", run.failure
            elif spool is None:
                report.status = "fetched"
            elif not run.changed and report.pages and not self.full_refresh:
                report.status = "unchanged"
            else:
                spool.finish()
                state = None
                if run.source.incremental is not None:
                    state = {_CURSOR: run.cursor}
                    report.cursor = run.cursor
                load = functools.partial(
                    self._loader.load_spool,
                    run.source.name,
                    spool,
                    write=run.mode,
                    primary_key=run.source.key_fields,
                    run_id=self.run_id,
                    state=state,
                )
                report.status = "loading"
                try:
                    report.rows = await loop.run_in_executor(self._executor, load)
                    report.status = "ok"
                except LoadError as exc:
                    report.status, report.reason = "failed", self.redact(str(exc))
                    report.cursor = None
        finally:
            if spool is not None:
                spool.discard()
                run.spool = None
            report.seconds = time.monotonic() - run.started
        if self.on_source_done is not None:
            self.on_source_done(report)


# --- helpers ------------------------------------------------------------------------------------


def _selection(pipeline: Pipeline, select: Iterable[str] | None) -> dict[str, bool]:
    """Source name -> written, for the selected sources and the parents they need."""
    names = [s.name for s in pipeline.sources]
    if select is None:
        return dict.fromkeys(names, True)
    chosen: dict[str, bool] = {}
    for name in select:
        if name not in names:
            raise ConfigError(
                f"--select {name!r}: no such source (the sources are {', '.join(names)})"
                f"{did_you_mean(name, names)}"
            )
        chosen[name] = True
    for name in list(chosen):
        parent = pipeline.source(name).parent
        while parent is not None:
            chosen.setdefault(parent, False)
            parent = pipeline.source(parent).parent
    return chosen


def _parse_json(body: Any) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        preview = bytes(body[:60]).decode("utf-8", "replace")
        raise RecordsError(
            f"the response is not valid JSON ({exc}); it starts {preview!r}"
        ) from None


def _param_text(value: str | int | float | bool) -> str | int | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _display(url: str) -> str:
    """``url`` without user info, query or fragment: safe to show."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _where(job: _Job) -> str:
    return f"page {job.page.number} of {_display(job.page.url)}"


def _failure(job: _Job, result: Result) -> str:
    status = f"HTTP {result.status}, " if result.status is not None else ""
    message = result.error_message or str(result.error)
    tries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
    hint = ""
    if result.status in (401, 403):
        hint = ". HINT: check the source's auth settings"
    return f"{_where(job)}: {status}{message}{tries}{hint}"
