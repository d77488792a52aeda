"""Running a pipeline: every source's pages through one :class:`~fetchpipe.Fetcher`.

::

    report = await PipelineRunner(pipeline, select=["reviews"]).run()

One engine run serves all sources, so the limits of a host hold across them. Its input is a
queue of page jobs that grows while results arrive: a source's first page, the pages its
paginator finds next (all at once when the first page tells the total), and for a child source
one job per parent record, queued as soon as the parent's page is read (a streaming fan-out).
The run ends when no job is queued or in flight.

A source's records go to a :class:`~fetchpipe.destinations.duckdb_ingest.Spool` as pages arrive
and are committed in batches (every ``commit_every`` seconds) to a stage table, each batch in one
transaction with the journal rows of its pages. When the source's last page
is in (and its parent's), the stage is applied to the destination in one transaction with the
source's incremental state. A source that fails writes nothing and keeps its state; the others
go on. A run that never ended (the process died, or was stopped) is resumed by the next run on
the destination: committed pages are not fetched again, the pages they led to are.

A source that fails because its host is down (a ``host_down`` result: the host's circuit
breaker opened) is *suspended* rather than ended: the pages it read are committed, its stage
and journal are kept, and the run is left unfinished, so that the next run resumes it from its
committed pages (the sources that ended are not run again). Its children are suspended with it.

Authentication is added to each request just before it is sent, only on the source's own
origin; a 401 is retried once after the authenticator renews its credential.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import functools
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import orjson

from fetchpipe._exceptions import ConfigError, FetchpipeError
from fetchpipe._models import ErrorKind, Provenance, Request, Result
from fetchpipe._redact import SecretTokens, public_url
from fetchpipe.destinations.duckdb_ingest import Spool
from fetchpipe.destinations.pipelines import Destination, LoadError, WriteMode
from fetchpipe.destinations.pipelines.factory import destination_for
from fetchpipe.destinations.pipelines.journal import EndedSource, JournalJob, PageEntry, RunRecord
from fetchpipe.engine.fetcher import Fetcher
from fetchpipe.engine.security import address_refusal
from fetchpipe.engine.transports.base import Transport
from fetchpipe.pipeline.runtime.auth import Authenticator, authenticator_for
from fetchpipe.pipeline.runtime.pagination import (
    Page,
    PageRequest,
    PaginationError,
    Paginator,
    paginator_for,
)
from fetchpipe.pipeline.runtime.records import (
    RecordsError,
    extract_records,
    greater_cursor,
    latest_cursor,
    render_url,
)
from fetchpipe.pipeline.runtime.report import RunReport, SourceReport, Status
from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.pipeline.spec.errors import did_you_mean
from fetchpipe.pipeline.spec.models import ApiKeyAuth, Source
from fetchpipe.pipeline.spec.paths import MISSING, get_path

__all__ = ["PipelineRunner", "new_run_id"]

_FROM_CACHE = frozenset({Provenance.CACHE, Provenance.REVALIDATED})
_CURSOR = "cursor"
_ENDED_STATUS: dict[str, Status] = {
    "done": "ok",
    "failed": "failed",
    "unchanged": "unchanged",
    "fetched": "fetched",
}
_UNSET: Any = object()
COMMIT_EVERY = 1.0
"""Seconds between commits of a source's fetched pages: a crash loses at most this much."""
COMMIT_RECORDS = 50_000
"""Records after which a source's pages are committed whatever the time."""
T = TypeVar("T")


def new_run_id() -> str:
    """A unique run id that sorts by start time: UTC time to the microsecond, 6 random hex
    digits (``20261126T101500.123456Z-3fa2c1``)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


@dataclass(eq=False)
class _SourceRun:
    """One source during a run: its jobs, its batches, how it ends."""

    source: Source
    report: SourceReport
    write: bool
    mode: WriteMode
    params: dict[str, str | int | float | bool]
    parent: _SourceRun | None = None
    children: list[_SourceRun] = field(default_factory=list)
    auth: Authenticator = field(default_factory=Authenticator)
    spool: Spool | None = None
    entries: list[PageEntry] = field(default_factory=list)
    """Pages read since the last commit."""
    commits: list[asyncio.Future[int]] = field(default_factory=list)
    committed_at: float = 0.0
    outstanding: int = 0
    """Jobs queued or in flight."""
    changed: bool = False
    """A page came from the network (not a fresh cache entry or a 304)."""
    cursor: Any = None
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
    """Set once its end is recorded (by :meth:`PipelineRunner._finish`: written or discarded),
    or at once when drained if it ended earlier."""

    def descendants(self) -> list[_SourceRun]:
        return [d for child in self.children for d in (child, *child.descendants())]


@dataclass(eq=False, slots=True)
class _Job:
    run: _SourceRun
    paginator: Paginator
    page: PageRequest
    base: str
    include: Mapping[str, Any] | None = None
    reauthorized: bool = False


class PipelineRunner:
    """Runs the sources of a pipeline (or a selection) into its destination, once."""

    def __init__(
        self,
        pipeline: PipelineSpec,
        *,
        select: Iterable[str] | None = None,
        full_refresh: bool = False,
        restart: bool = False,
        run_id: str | None = None,
        on_source_done: Callable[[SourceReport], None] | None = None,
        transport: Transport | None = None,
        commit_every: float = COMMIT_EVERY,
        commit_records: int = COMMIT_RECORDS,
    ) -> None:
        self.pipeline = pipeline
        self.full_refresh = full_refresh
        self.restart = restart
        self.run_id = run_id or new_run_id()
        self.select = None if select is None else tuple(select)
        self.selected = _selection(pipeline, self.select)
        self.on_source_done = on_source_done
        self.commit_every = commit_every
        self.commit_records = commit_records
        self._transport = transport
        target = pipeline.target
        self.report = RunReport(self.run_id, pipeline.name, str(target))
        self.runs: dict[str, _SourceRun] = {}
        self._loader: Destination = destination_for(target.kind, target.path)
        self._queue: collections.deque[_Job] = collections.deque()
        self._jobs: dict[int, _Job] = {}
        self._ids = 0
        self._wake = asyncio.Event()
        self._finishing: list[asyncio.Future[None]] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "fetchpipe-load")
        self._committed: dict[str, set[str]] = collections.defaultdict(set)
        """Keys of the pages an interrupted run had committed: never fetched again."""
        self._security = pipeline.security_policy()
        self._links_checked: dict[str, str | None] = {}
        """Host of a link found in a response -> why it is refused (None: allowed)."""
        self._secret_tokens = SecretTokens.of(pipeline.secret_values())
        """How the journal stores a secret left in a URL (see :meth:`_journal_job`)."""

    def redact(self, text: str) -> str:
        """``text`` with every secret of the pipeline masked."""
        return self.pipeline.redact(text)

    async def _io(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a destination call on the one thread that uses the database connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> RunReport:
        """Fetch and load every selected source; returns the report (see ``report.ok``).

        An exception (or cancellation) leaves the run unfinished in the journal: the next run
        on the destination resumes it.
        """
        started = time.monotonic()
        try:
            await self._io(self._loader.open)
        except LoadError:
            self._executor.shutdown(wait=False)
            raise
        try:
            committed = await self._begin()
            await self._run_sources(committed)
            if any(run.suspended for run in self.runs.values()):
                self.report.unfinished = True  # resumed by the next run (see the docstring)
            else:
                status = "done" if self.report.ok else "failed"
                names = [s.name for s in self.pipeline.sources]
                await self._io(self._loader.end_run, self.run_id, status, names)
        finally:
            for run in self.runs.values():
                if run.spool is not None:
                    run.spool.discard()
            await self._io(self._loader.close)
            self._executor.shutdown(wait=False)
            self.report.seconds = time.monotonic() - started
        return self.report

    async def _begin(self) -> list[PageEntry]:
        """Resume the unfinished run of this pipeline, or start a new one. Returns the pages
        the resumed run had committed."""
        loader, pipeline = self._loader, self.pipeline
        config_hash = pipeline.config_hash()
        unfinished = await self._io(loader.unfinished_run, pipeline.name)
        if unfinished is not None and self.restart:
            names = [s.name for s in pipeline.sources]
            await self._io(loader.end_run, unfinished.run_id, "abandoned", names)
            unfinished = None
        if unfinished is None:
            record = RunRecord(
                self.run_id, pipeline.name, config_hash, self.select, self.full_refresh
            )
            await self._io(loader.begin_run, record)
            return []
        _check_resumable(unfinished, config_hash, self.select, self.full_refresh)
        self.run_id = self.report.run_id = unfinished.run_id
        self.report.resumed = True
        return await self._io(loader.committed_pages, self.run_id)

    async def _run_sources(self, committed: list[PageEntry]) -> None:
        pipeline = self.pipeline
        ended = await self._io(self._loader.ended_sources, self.run_id) if committed else {}
        for source in pipeline.ordered_sources():
            if source.name not in self.selected:
                continue
            state = None
            if source.incremental is not None and not self.full_refresh:
                state = await self._io(self._loader.read_state, source.name)
            self._add_run(source, state, ended.get(source.name))
        async with (
            aiohttp.ClientSession() as token_session,
            Fetcher(
                limits=pipeline.limits(),
                retry=pipeline.retry_policy(),
                breaker=pipeline.breaker_policy(),
                timeouts=pipeline.timeouts(),
                headers=pipeline.defaults.headers,
                transport=self._transport or pipeline.defaults.transport,
                cache=pipeline.http_cache(),
                security=self._security,
            ) as fetcher,
        ):
            for run in self.runs.values():
                run.auth = authenticator_for(run.source.auth, session=token_session)
            self._seed(committed)
            for run in self.runs.values():
                self._finish_if_drained(run)
            try:
                async for result in fetcher.stream(self._feed()):
                    await self._handle(result)
                await asyncio.gather(*self._finishing)
            finally:
                self.report.hosts_down = dict(fetcher.hosts_down)
                self.report.hosts_waited = pipeline.defaults.breaker.on_open == "wait"
                self.report.retries_denied = fetcher.retries_denied

    def _add_run(
        self, source: Source, state: Mapping[str, Any] | None, ended: EndedSource | None
    ) -> None:
        write = self.selected[source.name]
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
        run.started = run.committed_at = time.monotonic()
        if isinstance(source.auth, ApiKeyAuth) and source.auth.in_ == "query":
            run.secret_params = frozenset({source.auth.name})
        parent_name = source.parent
        if parent_name is not None:
            run.parent = self.runs[parent_name]
            run.parent.children.append(run)
        if ended is not None:  # ended before the run was interrupted: as it ended then
            run.ended_earlier = True
            report.rows = ended.rows
            if ended.status == "failed":
                run.failure = report.reason = ended.reason or "failed before an interruption"
            report.status = _ENDED_STATUS.get(ended.status, "failed")
        elif write:
            run.spool = Spool(prefix=f"fetchpipe-{source.name}-")
        self.runs[source.name] = run
        self.report.sources.append(report)

    # --- jobs ---------------------------------------------------------------------------------

    def _seed(self, committed: list[PageEntry]) -> None:
        """Queue each source's first page, and after a restart every page that committed pages
        led to and that is not committed itself."""
        committed_keys = self._committed
        for entry in committed:
            run = self.runs.get(entry.source)
            if run is None or run.ended_earlier:
                continue
            committed_keys[entry.source].add(entry.key)
            run.report.pages += 1
            run.report.records += entry.records
            run.report.cached_pages += entry.cached
            run.changed = run.changed or not entry.cached
            if run.source.incremental is not None and entry.cursor is not None:
                field = run.source.incremental.cursor_field
                run.cursor = greater_cursor(run.cursor, entry.cursor, field)
        queued: set[tuple[str, str]] = set()
        for run in self.runs.values():
            if run.parent is None and not run.ended_earlier:
                paginator, first = self._paginator(run, run.source.url)
                key = self._journal_job(_Job(run, paginator, first, run.source.url)).key
                if key not in committed_keys[run.source.name]:
                    self._enqueue(_Job(run, paginator, first, run.source.url))
        for entry in committed:
            for job in entry.jobs:
                run = self.runs.get(job.source)
                if run is None or run.ended_earlier or job.key in committed_keys[job.source]:
                    continue
                if (job.source, job.key) in queued:
                    continue
                queued.add((job.source, job.key))
                self._enqueue(self._restored(run, job))

    def _paginator(self, run: _SourceRun, url: str) -> tuple[Paginator, PageRequest]:
        source = run.source
        paginator = paginator_for(
            source.paginate, url, run.params, allow_cross_origin=source.allow_cross_origin
        )
        return paginator, paginator.first()

    def _restored(self, run: _SourceRun, job: JournalJob) -> _Job:
        """A job read back from the journal, with its secrets put back (see _journal_job)."""
        base = self._secret_tokens.reveal(job.base)
        paginator, _ = self._paginator(run, base)
        paginator.issued = job.number
        paginator.parallel = job.parallel
        params = {**{k: run.params[k] for k in job.inherit if k in run.params}, **job.params}
        page = PageRequest(
            self._secret_tokens.reveal(job.url), params, job.number, job.send_credentials
        )
        return _Job(run, paginator, page, base, job.include)

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
                except FetchpipeError as exc:  # no credentials, or a refused link
                    self._fail(job.run, str(exc))
                    self._settle(job.run)
                    continue
                except Exception as exc:  # e.g. a URL the client cannot send: that source fails
                    self._fail(job.run, f"{_where(job)}: {type(exc).__name__}: {exc}")
                    self._settle(job.run)
                    continue
                yield request
            if not self._jobs:
                return
            self._wake.clear()
            await self._wake.wait()

    async def _request(self, job: _Job) -> Request:
        page = job.page
        if not page.send_credentials:  # a link to another origin, found in a response
            refused = await self._link_refusal(page.url)
            if refused is not None:
                raise PaginationError(f"{_where(job)}: {refused}")
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

    async def _link_refusal(self, url: str) -> str | None:
        """Why a link to another origin found in a response may not be fetched: its host is
        (or resolves to) a loopback, private, link-local or metadata address that is not in
        ``allow_addresses``. Checked whatever ``block_private`` says (an SSRF guard)."""
        host = urlsplit(url).hostname or ""
        if host in self._links_checked:
            return self._links_checked[host]
        policy = dataclasses.replace(self._security, block_private=True)
        reason: str | None = None
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            addresses = sorted({str(info[4][0]) for info in infos})
        except (OSError, UnicodeError, ValueError) as exc:
            text = getattr(exc, "strerror", None) or exc
            addresses, reason = [], f"its host {host!r} does not resolve ({text})"
        else:
            refused = [(a, r) for a in addresses if (r := address_refusal(policy, a)) is not None]
            if refused:
                address, why = refused[0]
                reason = (
                    f"the next page link goes to {host!r}, which is {address}, a {why}; not "
                    "followed. HINT: add the address to defaults.security.allow_addresses if "
                    "this is expected"
                )
        self._links_checked[host] = reason
        return reason

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
                if result.error is ErrorKind.HOST_DOWN:
                    self._suspend(run, _failure(job, result))
                else:
                    self._fail(run, _failure(job, result))
                return
            self._read_page(job, result)
            self._maybe_commit(run)
        except (RecordsError, PaginationError) as exc:
            self._fail(run, f"{_where(job)}: {exc}")
        except Exception as exc:  # a page this code did not expect: that source fails, alone
            self._fail(run, f"{_where(job)}: {type(exc).__name__}: {exc}")
        finally:
            self._settle(run)
            self._wake.set()

    def _read_page(self, job: _Job, result: Result) -> None:
        run, source, report = job.run, job.run.source, job.run.report
        # Bodies are parsed here rather than by the engine's workers: results waiting in the
        # engine's queue stay compact bytes, and one parsed page at a time is alive.
        body = _parse_json(result.body)
        records = extract_records(body, source.records)
        if job.include:
            include = job.include
            records = [{**r, **include} for r in records]
        page_cursor = None
        if source.incremental is not None:
            field = source.incremental.cursor_field
            page_cursor = latest_cursor(records, field, None)
            run.cursor = greater_cursor(run.cursor, page_cursor, field)
        cached = result.source in _FROM_CACHE
        report.pages += 1
        report.records += len(records)
        report.cached_pages += cached
        run.changed = run.changed or not cached
        if run.spool is not None:
            run.spool.add(records)
        page = Page(job.page, result.final_url or job.page.url, result.headers, body, len(records))
        following = [
            _Job(run, job.paginator, request, job.base, job.include)
            for request in job.paginator.next(page)
        ]
        children = [c for child in run.children for c in self._fan_out(child, records)]
        jobs = (*following, *children)
        journaled = [self._journal_job(j) for j in jobs]
        entry = PageEntry(
            source.name, self._journal_job(job).key, len(records), cached, page_cursor, journaled
        )
        run.entries.append(entry)
        committed = self._committed
        for next_job, stored in zip(jobs, journaled, strict=True):
            # After a restart, a page fetched again may lead to pages committed before the
            # interruption (another source's commits run on their own clock): not again.
            if committed and stored.key in committed[stored.source]:
                continue
            self._enqueue(next_job)

    def _fan_out(self, child: _SourceRun, records: list[dict[str, Any]]) -> list[_Job]:
        """The child's first page for each parent record."""
        if child.failure is not None or child.ended_earlier:
            return []
        template, parent = child.source.url, child.parent
        assert parent is not None
        include_paths = child.source.include_parent
        jobs = []
        try:
            for record in records:
                url = render_url(template, {parent.source.name: record})
                include = None
                if include_paths:
                    include = {}
                    for name, path in include_paths.items():
                        value = get_path(record, path)
                        if value is MISSING:
                            raise RecordsError(f"include_parent {name}: the parent has no {path!r}")
                        include[name] = value
                paginator, first = self._paginator(child, url)
                jobs.append(_Job(child, paginator, first, url, include))
        except RecordsError as exc:
            self._fail(child, str(exc))
            return []
        return jobs

    def _journal_job(self, job: _Job) -> JournalJob:
        """``job`` as the journal keeps it, without a secret: the source's own parameters are
        left out (they come back from the configuration, so a rotated secret still works),
        credential query parameters are dropped from the URL (the authenticator adds them),
        and any secret value left in a URL is replaced by a token naming its hash."""
        run = job.run
        hide = run.secret_params
        url = _without_params(job.page.url, hide) if hide else job.page.url
        extra = {k: v for k, v in job.page.params.items() if run.params.get(k, _UNSET) != v}
        inherit = tuple(k for k in job.page.params if k not in extra)
        return JournalJob(
            source=run.source.name,
            url=self._secret_tokens.hide(url),
            params=extra,
            inherit=inherit,
            number=job.page.number,
            send_credentials=job.page.send_credentials,
            base=self._secret_tokens.hide(job.base),
            parallel=job.paginator.parallel,
            include=job.include,
        )

    # --- commits --------------------------------------------------------------------------------

    def _maybe_commit(self, run: _SourceRun, *, last: bool = False) -> None:
        """Commit the pages read since the last commit, when it is time (or ``last``)."""
        if not run.entries:
            return
        spool = run.spool
        count = spool.count if spool is not None else 0
        due = time.monotonic() - run.committed_at >= self.commit_every
        if not (last or due or count >= self.commit_records):
            return
        entries, run.entries = run.entries, []
        run.committed_at = time.monotonic()
        if spool is not None:
            spool.finish()
            run.spool = Spool(prefix=f"fetchpipe-{run.source.name}-")
        future = asyncio.ensure_future(self._commit(run, spool, entries))
        run.commits.append(future)

    async def _commit(self, run: _SourceRun, spool: Spool | None, entries: list[PageEntry]) -> int:
        try:
            staged = await self._io(
                self._loader.stage_pages, run.source.name, spool, self.run_id, entries
            )
            run.committed_pages += len(entries)
            return staged
        except LoadError as exc:
            if run.suspended:  # these pages are not kept: the source fails after all
                run.suspended, run.failure = False, None
            self._fail(run, str(exc))
            return 0
        finally:
            if spool is not None:
                spool.discard()

    # --- ends of source runs --------------------------------------------------------------------

    def _fail(self, run: _SourceRun, reason: str) -> None:
        if run.failure is None:
            run.failure = self.redact(reason)

    def _suspend(self, run: _SourceRun, reason: str) -> None:
        """Fail ``run`` for a host that is down, keeping its committed pages (see the module
        docstring)."""
        if run.failure is None:
            run.failure = self.redact(reason)
            run.suspended = True

    def _settle(self, run: _SourceRun) -> None:
        run.outstanding -= 1
        self._finish_if_drained(run)

    def _finish_if_drained(self, run: _SourceRun) -> None:
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
                self._maybe_commit(run, last=True)
            self._finishing.append(asyncio.ensure_future(self._finish(run)))
        for child in run.children:
            if run.suspended:
                self._suspend(child, f"parent source {run.source.name!r} is suspended")
            elif run.failure is not None:
                self._fail(child, f"parent source {run.source.name!r} failed")
            self._finish_if_drained(child)

    async def _finish(self, run: _SourceRun) -> None:
        report, loader, name = run.report, self._loader, run.source.name
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
                await self._io(loader.discard_source, self.run_id, name, "failed", run.failure)
            elif not run.write:
                report.status = "fetched"
                await self._io(loader.discard_source, self.run_id, name, "fetched")
            elif not run.changed and report.pages and not self.full_refresh:
                report.status = "unchanged"
                await self._io(loader.discard_source, self.run_id, name, "unchanged")
            else:
                state = None
                if run.source.incremental is not None:
                    state = await self._state_after_children(run)
                report.status = "loading"
                report.rows = await self._io(
                    loader.finish_source,
                    name,
                    write=run.mode,
                    primary_key=run.source.key_fields,
                    run_id=self.run_id,
                    state=state,
                )
                report.status = "ok"
                report.cursor = run.cursor if state is not None else None
        except LoadError as exc:
            report.status, report.reason = "failed", self.redact(str(exc))
            report.cursor = None
        finally:
            if run.spool is not None:
                run.spool.discard()
                run.spool = None
            report.seconds = time.monotonic() - run.started
            run.finished.set()
        if self.on_source_done is not None:
            self.on_source_done(report)

    async def _state_after_children(self, run: _SourceRun) -> dict[str, Any] | None:
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
        return {_CURSOR: run.cursor}


# --- helpers ------------------------------------------------------------------------------------


def _selection(pipeline: PipelineSpec, select: Iterable[str] | None) -> dict[str, bool]:
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


def _check_resumable(
    run: RunRecord, config_hash: str, select: tuple[str, ...] | None, full_refresh: bool
) -> None:
    """A ConfigError when the unfinished run cannot be resumed as asked."""
    hint = "HINT: run with --restart to drop it and start over"
    if run.config_hash != config_hash:
        raise ConfigError(
            f"run {run.run_id} of this pipeline did not finish (it was interrupted, or a host "
            f"was down), and the pipeline file has changed since it started, so it cannot be "
            f"resumed. {hint}"
        )
    if (run.selected, run.full_refresh) != (select, full_refresh):
        was = f"--select {','.join(run.selected)}" if run.selected else "all sources"
        if run.full_refresh:
            was += " --full-refresh"
        raise ConfigError(
            f"run {run.run_id} of this pipeline did not finish; it ran {was}. Run with the "
            f"same options to resume it. {hint}"
        )


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


def _without_params(url: str, names: frozenset[str]) -> str:
    """``url`` without the query parameters in ``names`` (credentials, kept out of the
    journal; the authenticator adds them again)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _where(job: _Job) -> str:
    return f"page {job.page.number} of {public_url(job.page.url)}"


def _failure(job: _Job, result: Result) -> str:
    message = result.error_message or str(result.error)  # says how many attempts were made
    status = f"HTTP {result.status}, " if result.status is not None else ""
    if message.startswith(f"HTTP {result.status}"):
        status = ""
    hint = ""
    if result.status in (401, 403):
        hint = ". HINT: check the source's auth settings"
    return f"{_where(job)}: {status}{message}{hint}"
