"""Running a pipeline: every source's pages through one :class:`~fetchpipe.Fetcher`.

::

    report = await PipelineRunner(pipeline, select=["reviews"]).run()

One engine run serves all sources, so the limits of a host hold across them. Its input is a
queue of page jobs that grows while results arrive (:mod:`.feed`): a source's first page, the
pages its paginator finds next (all at once when the first page tells the total), and for a
child source one job per parent record, queued as soon as the parent's page is read (a
streaming fan-out, :mod:`.pages`). The run ends when no job is queued or in flight.

A source's records go to a :class:`~fetchpipe.destinations.duckdb_ingest.Spool` as pages arrive
and are committed in batches (every ``commit_every`` seconds) to a stage table, each batch in
one transaction with the journal rows of its pages (:mod:`.commits`). When the source's last
page is in (and its parent's), the stage is applied to the destination in one transaction with
the source's incremental state (:mod:`.finish`). A source that fails writes nothing and keeps
its state; the others go on. A run that never ended (the process died, or was stopped) is
resumed by the next run on the destination: committed pages are not fetched again, the pages
they led to are (:mod:`.resume`).

A source that fails because its host is down (a ``host_down`` result: the host's circuit
breaker opened) or its host's quota is spent (``quota_exhausted``: ``hosts.HOST.quota``,
counted across runs in ``state_dir``) is *suspended* rather than ended: the pages it read are
committed, its stage and journal are kept, and the run is left unfinished, so that the next run
resumes it from its committed pages (the sources that ended are not run again). Its children
are suspended with it. A page of a suspended source that was in flight and is answered after
all is read and committed too (it was sent, and a quota paid for it), the pages it leads to
journaled for the next run rather than fetched.

Authentication is added to each request just before it is sent, only on the source's own
origin; a 401 is retried once after the authenticator renews its credential. A final error
status that the source's ``on_status`` skips ends that request with no records and no failure
(counted in the source's report as ``skipped``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from fetchpipe._exceptions import ConfigError
from fetchpipe._log import RunContext, emit, logger, run_context
from fetchpipe._models import ErrorKind, Result
from fetchpipe._redact import SecretTokens, body_excerpt
from fetchpipe.destinations.pipelines import LoadError
from fetchpipe.destinations.pipelines.factory import destination_for
from fetchpipe.destinations.pipelines.journal import EndedSource, PageEntry, RunRecord
from fetchpipe.destinations.run_log import LogRows, RequestRecorder
from fetchpipe.engine.quotas import DEFAULT_STATE_DIR
from fetchpipe.engine.tls import load_tls
from fetchpipe.engine.transports.base import Transport
from fetchpipe.pipeline.runtime import resume
from fetchpipe.pipeline.runtime.auth import Authenticator, LaneLabels, authenticator_for
from fetchpipe.pipeline.runtime.commits import COMMIT_EVERY, COMMIT_RECORDS, Commits
from fetchpipe.pipeline.runtime.destination import DestinationThread
from fetchpipe.pipeline.runtime.engines import EngineFactory, local_engine
from fetchpipe.pipeline.runtime.feed import JobQueue
from fetchpipe.pipeline.runtime.finish import Finisher
from fetchpipe.pipeline.runtime.pages import PageReader
from fetchpipe.pipeline.runtime.pagination import PaginationError
from fetchpipe.pipeline.runtime.records import RecordsError
from fetchpipe.pipeline.runtime.report import RunReport, SourceReport
from fetchpipe.pipeline.runtime.source_run import PageJob, SourceRun
from fetchpipe.pipeline.spec.auth import OAuth2RefreshToken
from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.pipeline.spec.errors import did_you_mean
from fetchpipe.pipeline.spec.models import Source

__all__ = ["PipelineRunner"]

_LOG = logger("pipeline")
INFO = 20


class PipelineRunner:
    """Runs the sources of a pipeline (or a selection) into its destination, once."""

    # The parts that work for one run id: made once the run is begun or resumed.
    _commits: Commits
    _finisher: Finisher
    _queue: JobQueue
    _pages: PageReader
    _recorder: RequestRecorder

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
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        engine: EngineFactory | None = None,
    ) -> None:
        """``engine`` makes what fetches the pages from the Fetcher's arguments (default: a
        Fetcher in this process; :func:`fetchpipe.distributed.cluster_engine`: a cluster's
        workers). Everything else of the run stays here, on this process."""
        if pipeline.unset_variables:  # loaded with skip_env: placeholders, not values
            raise ConfigError(
                "the pipeline was loaded without its environment (skip_env): it can be "
                f"checked, not run. HINT: set {', '.join(pipeline.unset_variables)} and load "
                "it again"
            )
        self.pipeline = pipeline
        self.full_refresh = full_refresh
        self.restart = restart
        self.run_id = run_id or resume.new_run_id()
        self.select = None if select is None else tuple(select)
        self.selected = _selection(pipeline, self.select)
        self.on_source_done = on_source_done
        self.commit_every = commit_every
        self.commit_records = commit_records
        self.state_dir = state_dir
        """Where host quotas are counted across runs (``quotas.sqlite``)."""
        self._transport = transport
        self.engine: EngineFactory = engine or local_engine
        """What makes the engine when the run begins (it may be set until then)."""
        target = pipeline.target
        self.report = RunReport(self.run_id, pipeline.name, str(target))
        self.runs: dict[str, SourceRun] = {}
        self._thread = DestinationThread(destination_for(target.kind, target.path))
        self._security = pipeline.security_policy()
        self._proxy, self._tls = pipeline.network()
        self._codec = resume.JobCodec(SecretTokens.of(pipeline.secret_values()))

    def redact(self, text: str) -> str:
        """``text`` with every secret of the pipeline masked."""
        return self.pipeline.redact(text)

    async def run(self) -> RunReport:
        """Fetch and load every selected source; returns the report (see ``report.ok``).

        An exception (or cancellation) leaves the run unfinished in the journal: the next run
        on the destination resumes it.
        """
        started = time.monotonic()
        thread, destination = self._thread, self._thread.destination
        try:
            await thread.call(destination.open)
        except LoadError:
            thread.shutdown()
            raise
        try:
            committed = await self._begin()
            recorder = self._recorder
            context = RunContext(self.run_id, self.redact, self._source_of, recorder.event)
            with run_context(context):
                await self._run_sources(committed)
            ended_at: datetime | None = None
            rest = [row for run in self.runs.values() for row in run.requests]
            hosts = {host: info.as_dict() for host, info in self.report.rate_limits.items()}
            log = LogRows(rest, recorder.take_events(), hosts, self.run_id)
            await thread.call(destination.record_log, log)
            status = "unfinished"
            if any(run.suspended for run in self.runs.values()):
                self.report.unfinished = True  # resumed by the next run (see the docstring)
            else:
                status = "done" if self.report.ok else "failed"
                names = self.pipeline.tables()
                ended_at = datetime.now(UTC)  # the run's end, in its row and its log alike
                await thread.call(destination.end_run, self.run_id, status, names, ended_at)
            seconds = ((ended_at or datetime.now(UTC)) - self._started_at).total_seconds()
            with run_context(context):
                emit(
                    _LOG,
                    INFO,  # how it ended is the summary's to say, and the failed sources'
                    "run_ended",
                    f"run {self.run_id} of {self.pipeline.name} ended: {status} ({seconds:.2f} s)",
                    outcome=status,
                    seconds=round(seconds, 3),
                )
        finally:
            for run in self.runs.values():
                run.discard_spools()
            await thread.call(destination.close)
            thread.shutdown()
            self.report.seconds = time.monotonic() - started
        return self.report

    async def _begin(self) -> list[PageEntry]:
        """Resume the unfinished run of this pipeline, or start a new one. Returns the pages
        the resumed run had committed."""
        pipeline = self.pipeline
        new = RunRecord(
            self.run_id,
            pipeline.name,
            pipeline.config_hash(),
            self.select,
            self.full_refresh,
            started_at=datetime.now(UTC),  # the run's start, in its row and its log alike
        )
        names = pipeline.tables()
        begun, committed = await resume.begin(
            self._thread, new, restart=self.restart, sources=names
        )
        if begun is not new:
            self.run_id = self.report.run_id = begun.run_id
            self.report.resumed = True
        loop = asyncio.get_running_loop()
        since = 0.0  # a resumed run's times count from its first start
        self._started_at = begun.started_at or new.started_at or datetime.now(UTC)
        if begun.started_at is not None:
            since = max(0.0, time.time() - begun.started_at.timestamp())
        report = pipeline.report
        self._recorder = RequestRecorder(
            self.run_id,
            loop.time() - since,
            loop.time,
            redact=self.redact,
            sample=report.sample,
            slow=report.slow,
        )
        with run_context(RunContext(self.run_id, self.redact)):
            how = "resumed" if self.report.resumed else "started"
            emit(
                _LOG,
                INFO,
                "run_started",
                f"run {self.run_id} of {pipeline.name} {how} -> {self.report.destination}",
                resumed=self.report.resumed,
                pipeline=pipeline.name,
            )
        return committed

    def _source_of(self, key: object) -> str | None:
        """The source of the request with ``key`` (one in flight), for the logs."""
        queue: JobQueue | None = getattr(self, "_queue", None)
        return None if queue is None else queue.source_of(key)

    async def _run_sources(self, committed: list[PageEntry]) -> None:
        pipeline, thread, destination = self.pipeline, self._thread, self._thread.destination
        ended = await thread.call(destination.ended_sources, self.run_id) if committed else {}
        for source in pipeline.ordered_sources():
            if source.name not in self.selected:
                continue
            state = None
            if source.incremental is not None and not self.full_refresh:
                state = await thread.call(destination.read_state, source.name)
            self._add_run(source, state, ended.get(source.name))
        self._commits = Commits(
            thread,
            self.run_id,
            every=self.commit_every,
            records=self.commit_records,
            recorder=self._recorder,
        )
        self._finisher = Finisher(
            thread,
            self._commits,
            self.run_id,
            full_refresh=self.full_refresh,
            on_source_done=self.on_source_done,
        )
        self._queue = JobQueue(self._security, self._finisher.settle)
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=load_tls(self._tls).context)
                if self._tls is not None
                else None
            ) as token_session,
            self.engine(
                limits=pipeline.limits(),
                retry=pipeline.retry_policy(),
                breaker=pipeline.breaker_policy(),
                timeouts=pipeline.timeouts(),
                headers=pipeline.defaults.headers,
                transport=self._transport or pipeline.defaults.transport,
                cache=pipeline.http_cache(),
                security=self._security,
                proxy=self._proxy,
                tls=self._tls,
                adaptive=pipeline.adaptive_policy(),
                state_dir=self.state_dir,
            ) as fetcher,
        ):
            shared: dict[OAuth2RefreshToken, Authenticator] = {}  # one per refresh token
            labels = LaneLabels()  # one label per credential of several, in every source
            for run in self.runs.values():
                run.auth = authenticator_for(
                    run.source.auth,
                    session=token_session,
                    shared=shared,
                    proxies=self._proxy,
                    labels=labels,
                    source=run.source.name,
                )
            self._seed(committed)
            for run in self.runs.values():
                self._finisher.finish_if_drained(run)
            try:
                async for result in fetcher.stream(self._queue.feed()):
                    await self._handle(result)
                await self._finisher.wait()
            finally:
                self._auth_warnings()
                self.report.hosts_down = dict(fetcher.hosts_down)
                self.report.hosts_waited = pipeline.defaults.breaker.on_open == "wait"
                self.report.retries_denied = fetcher.retries_denied
                self.report.rate_limits = dict(fetcher.rate_limits)
                if fetcher.quotas is not None:
                    self.report.quotas_spent = fetcher.quotas.spent()
                # what happened to the engine itself (a cluster's lost workers), if it says
                self.report.warnings.extend(getattr(fetcher, "notes", ()))

    def _auth_warnings(self) -> None:
        """The authenticators' warnings into the report, once each, naming their sources."""
        by_warning: dict[str, list[str]] = {}
        for run in self.runs.values():
            for warning in run.auth.warnings():
                by_warning.setdefault(warning, []).append(run.source.name)
        for warning, names in by_warning.items():
            self.report.warnings.append(self.redact(f"{', '.join(names)}: {warning}"))

    def _add_run(
        self, source: Source, state: Mapping[str, Any] | None, ended: EndedSource | None
    ) -> None:
        parent = source.parent
        run = SourceRun.start(
            source,
            write=self.selected[source.name],
            full_refresh=self.full_refresh,
            state=state,
            ended=ended,
            parent=None if parent is None else self.runs[parent],
            redact=self.redact,
        )
        self.runs[source.name] = run
        self.report.sources.append(run.report)
        how = "ended before the interruption" if run.ended_earlier else "started"
        emit(_LOG, INFO, "source_started", f"{source.name}: {how}", source=source.name)

    def _seed(self, committed: list[PageEntry]) -> None:
        """Queue each source's first page, and after a restart every page that committed pages
        led to and that is not committed itself."""
        committed_keys = resume.count_committed(committed, self.runs)
        self._pages = PageReader(self._queue, self._codec, committed_keys)
        for run in self.runs.values():
            if run.parent is None and not run.ended_earlier:
                paginator, first = run.paginator(run.source.url, run.source.body)
                key = self._codec.journaled(PageJob(run, paginator, first, run.source.url)).key
                if key not in committed_keys[run.source.name]:
                    self._queue.put(PageJob(run, paginator, first, run.source.url))
        for job in resume.restored_jobs(committed, self.runs, committed_keys, self._codec):
            self._queue.put(job)

    async def _handle(self, result: Result) -> None:
        job = self._queue.take(int(result.key or 0))
        run = job.run
        row = self._recorder.row(result, run.source.name, skipped=_skipped(run.source, result))
        if row is not None:
            run.requests.append(row)
        try:
            if run.failure is not None:
                if run.suspended and result.ok:  # sent and paid for: kept for the next run
                    self._pages.read(job, result, follow=False)
                return
            if (
                result.status == 401
                and not job.reauthorized
                and job.page.send_credentials
                and await run.auth.on_unauthorized(result.request)
            ):
                job.reauthorized = True
                self._queue.put(job)
                return
            if _skipped(run.source, result):
                run.report.skipped += 1
                return
            if not result.ok:
                reason = _failure(job, result, self.pipeline.secret_values())
                if result.error in _SUSPENDING:
                    run.suspend(reason)
                else:
                    run.fail(reason)
                return
            self._pages.read(job, result)
            self._commits.maybe_commit(run)
        except (RecordsError, PaginationError) as exc:
            run.fail(f"{job.where}: {exc}")
        except Exception as exc:  # a page this code did not expect: that source fails, alone
            run.fail(f"{job.where}: {type(exc).__name__}: {exc}")
        finally:
            self._finisher.settle(run)
            self._queue.wake()


_SUSPENDING = (ErrorKind.HOST_DOWN, ErrorKind.QUOTA_EXHAUSTED)
"""A page that ends so suspends its source: the next run resumes it."""


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


def _skipped(source: Source, result: Result) -> bool:
    """The final answer is an error status that the source's ``on_status`` skips."""
    return (
        result.error in (ErrorKind.HTTP_STATUS, ErrorKind.RATE_LIMITED)
        and result.status is not None
        and source.on_status.get(result.status) == "skip"
    )


def _failure(job: PageJob, result: Result, secrets: Collection[str]) -> str:
    """Why a page failed: the status, the engine's message, and what the server said (a short
    excerpt of an error response's body, masked: see :func:`body_excerpt`)."""
    message = result.error_message or str(result.error)  # says how many attempts were made
    status = f"HTTP {result.status}, " if result.status is not None else ""
    if message.startswith(f"HTTP {result.status}"):
        status = ""
    said = ""
    if result.status is not None and result.status >= 400:
        excerpt = body_excerpt(result.body, secrets)
        said = f"; body: {excerpt}" if excerpt else ""
    hint = ""
    if result.status in (401, 403):
        hint = ". HINT: check the source's auth settings"
    return f"{job.where}: {status}{message}{said}{hint}"
