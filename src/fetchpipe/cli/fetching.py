"""What ``fetch`` and ``demo`` share: a run's settings, the output file, and the run itself
(every result written to the sink, progress and the summary on stderr), and how they speak.

Imports of the engine, the sinks and rich happen inside the functions (lazy: start-up time):
``fetchpipe fetch --help`` loads none of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from fetchpipe._config import Limits, Timeouts
from fetchpipe._exceptions import ConfigError, InputError, SinkError
from fetchpipe._log import RunContext, emit, logger, new_run_id, run_context
from fetchpipe._models import Request
from fetchpipe._redact import redact_text
from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.engine.aimd import DEFAULT_ADAPTIVE, AdaptivePolicy
from fetchpipe.engine.breaker import DEFAULT_BREAKER, BreakerPolicy
from fetchpipe.engine.retry import RetryPolicy

if TYPE_CHECKING:
    from fetchpipe.cli.plain_console import Output
    from fetchpipe.cli.summary import Summary
    from fetchpipe.destinations.fetch import Sink
    from fetchpipe.engine.cache.http_cache import HttpCache
    from fetchpipe.engine.proxies import ProxyPolicy
    from fetchpipe.engine.security import SecurityPolicy
    from fetchpipe.engine.tls import TlsPolicy

_LOG = logger("fetch")
INFO = 20


@dataclass(frozen=True, slots=True)
class Settings:
    """How a command fetches: the :class:`~fetchpipe.Fetcher`'s arguments (``proxy``: the
    environment's unless given)."""

    limits: Limits
    retry: RetryPolicy
    timeouts: Timeouts
    headers: Mapping[str, str]
    cache: HttpCache | None = None
    security: SecurityPolicy | None = None
    transport: str = "aiohttp"
    breaker: BreakerPolicy | None = DEFAULT_BREAKER
    proxy: ProxyPolicy | str | None = "env"
    tls: TlsPolicy | None = None
    adaptive: AdaptivePolicy | None = DEFAULT_ADAPTIVE
    state_dir: str = ".fetchpipe"


def stderr() -> Output:
    """The console of notes, progress and the summary (plain text unless stderr is a terminal)."""
    from fetchpipe.cli.plain_console import stderr_console

    return stderr_console()


def note(text: str) -> None:
    """``note: TEXT`` on stderr: what the command did to a file on its own (a torn line cut off,
    a damaged cache set aside)."""
    stderr().print(f"note: {text}", markup=False, highlight=False, soft_wrap=True)


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``3 requests``, ``1 entry``."""
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def sink_for(out: str) -> Sink:
    """The sink of ``--out``, not opened yet; exit 2 for a file it cannot write."""
    from fetchpipe.destinations.fetch.factory import open_sink

    try:
        return open_sink(out)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--out'") from None


def opened(sink: Sink) -> Sink:
    """``sink``, opened (exit 2 if it cannot be), after saying what opening did to its file."""
    try:
        sink.open()
    except SinkError as exc:
        raise BadUsage(str(exc)) from None
    said = getattr(sink, "note", None)  # what opening did to the file (a torn line cut off)
    if isinstance(said, str):
        note(said)
    return sink


@dataclass(slots=True)
class RunLog:
    """What a run recorded of itself, for its report: its id and start, and, when the output
    keeps no request log (JSONL), the rows of its requests and events in memory."""

    run_id: str
    started_at: datetime
    in_database: bool
    requests: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    ended_at: datetime | None = None
    politeness: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Host -> what the run met there (its limit, throttles, pauses), for the report."""


async def _pump(
    requests: Iterable[Request],
    total: int | None,
    sink: Sink,
    settings: Settings,
    log: RunLog | None = None,
) -> Summary:
    """Fetch ``requests``, writing every result to ``sink``, then close ``sink``: the one path
    of every command.

    The run lasts from just before the engine takes the first request to the moment every
    result is written (``sink`` closed): the log's ``run_started`` and ``run_ended`` (its
    ``seconds``), the run's row in a DuckDB output (``fetchpipe runs``) and the report all say
    so, from the same two instants. The summary's ``wall_time`` is from just before the first
    request to the last result (the closing of the output left out). With ``log`` (a report is
    asked for), the run's request rows are kept there when ``sink`` keeps no request log of its
    own.
    """
    from fetchpipe.cli.log_output import attach
    from fetchpipe.cli.progress import reporter_for
    from fetchpipe.cli.summary import Summary
    from fetchpipe.engine.fetcher import Fetcher

    summary = Summary(cache_used=settings.cache is not None)
    console = stderr()
    attach(console)  # log lines print through the console that draws the progress
    run_id = new_run_id() if log is None else log.run_id
    of = f" of {total:,}" if total is not None else ""
    context = RunContext(run_id)
    log_requests = getattr(sink, "log_requests", None)  # a DuckDB file keeps the request log
    kept: list[dict[str, Any]] | None = None  # the rows of a report, when the sink keeps none
    recorder = None
    if log_requests is not None or log is not None:
        from fetchpipe.destinations.run_log import RequestRecorder

        loop = asyncio.get_running_loop()
        recorder = RequestRecorder(run_id, loop.time(), loop.time)
        if log_requests is not None:
            log_requests(recorder)
        elif log is not None:
            kept = log.requests
        context = RunContext(run_id, on_event=recorder.event)
    with (
        run_context(context),
        reporter_for(console, total) as progress,
    ):
        async with Fetcher(
            limits=settings.limits,
            retry=settings.retry,
            timeouts=settings.timeouts,
            headers=settings.headers,
            cache=settings.cache,
            security=settings.security,
            transport=settings.transport,
            breaker=settings.breaker,
            proxy=settings.proxy,
            tls=settings.tls,
            adaptive=settings.adaptive,
            state_dir=settings.state_dir,
        ) as fetcher:
            started_at = datetime.now(UTC)  # the run starts: the engine takes requests next
            first = last = time.perf_counter()
            if recorder is not None:  # its rows' offsets and the run's row count from here
                recorder.started = asyncio.get_running_loop().time()
                recorder.started_at = started_at
            emit(_LOG, INFO, "run_started", f"fetch {run_id} started: requests{of}")
            async for result in fetcher.stream(requests):
                sink.write(result)
                if kept is not None and recorder is not None:
                    row = recorder.row(result, None)
                    if row is not None:
                        kept.append(row)
                summary.add(result)
                progress.advance(result)
                last = time.perf_counter()
            summary.hosts_down = dict(fetcher.hosts_down)
            summary.retries_denied = fetcher.retries_denied
            summary.rate_limits = dict(fetcher.rate_limits)
            hosts = {host: info.as_dict() for host, info in summary.rate_limits.items()}
            if recorder is not None:  # the run's row keeps them (the report's table)
                recorder.politeness = hosts
            if log is not None:
                log.politeness = hosts
            if fetcher.quotas is not None:
                summary.quotas_spent = fetcher.quotas.spent()
        summary.wall_time = last - first
        if kept is not None and recorder is not None and log is not None:
            log.events.extend(recorder.take_events())
        sink.close()  # every result written: the run ends (a DuckDB output notes when)
        ended_at = datetime.now(UTC)
        if recorder is not None and recorder.ended_at is not None:
            ended_at = recorder.ended_at
        seconds = (ended_at - started_at).total_seconds()
        if log is not None:
            log.started_at, log.ended_at = started_at, ended_at
        emit(
            _LOG,
            INFO,  # its failures are the summary's to say
            "run_ended",
            f"fetch {run_id} ended: {summary.total:,} requests, {summary.failed:,} failed "
            f"({seconds:.2f} s)",
            outcome="done" if not summary.failed else "failed",
            requests=summary.total,
            failed=summary.failed,
            seconds=round(seconds, 3),
        )
    return summary


def fetch_into(
    requests: Iterable[Request],
    total: int | None,
    sink: Sink,
    settings: Settings,
    out: str,
    report: str | None = None,
    metrics: str | None = None,
) -> Summary:
    """Fetch ``requests`` into ``sink`` on the event loop, close the sink, print the summary;
    then write the run's HTML report to ``report`` and its metrics to ``metrics``, if given."""
    from fetchpipe.engine.fetcher import run

    log = None
    if report is not None or metrics is not None:
        in_database = getattr(sink, "log_requests", None) is not None
        log = RunLog(new_run_id(), datetime.now(UTC), in_database)
    try:
        try:
            summary = run(_pump(requests, total, sink, settings, log))
        finally:
            sink.close()  # closed already unless the run stopped early
            if log is not None and log.ended_at is None:
                log.ended_at = datetime.now(UTC)
    except SinkError as exc:
        raise click.ClickException(f"{exc} (the run was stopped)") from None
    except InputError as exc:
        raise click.ClickException(redact_text(str(exc))) from None
    except ConfigError as exc:  # the transport could not be built: nothing was sent
        raise BadUsage(redact_text(str(exc))) from None
    print_summary(summary, out)
    if log is not None:
        write_outputs(report, metrics, log, out, settings)
    return summary


def print_summary(summary: Summary, out: str) -> None:
    """The summary on stderr, what --offline left unanswered, and where the results are."""
    from fetchpipe.cli.summary import render

    console = stderr()
    render(summary, console)
    if summary.not_cached:
        console.print(
            f"{counted(summary.not_cached, 'request')} had no cache entry (--offline): "
            "written as failed with error 'not_cached'. HINT: run without --offline to fetch them",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if summary.quota_exhausted:
        lines = [f"{counted(summary.quota_exhausted, 'request')} not sent: a quota is spent "]
        lines[0] += "(written as failed with error 'quota_exhausted')"
        lines += [f"quota: {m.removeprefix('not sent: ')}" for m in summary.quotas_spent.values()]
        for line in lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"results written to {out}", markup=False, highlight=False)


def write_outputs(
    report: str | None, metrics: str | None, log: RunLog, out: str, settings: Settings
) -> None:
    """The run's report and metrics: from ``out``'s request log, or from the rows in ``log``."""
    from fetchpipe.destinations.run_log import RunSummary
    from fetchpipe.report import from_rows, rates_from, read_database, write_html, write_metrics

    rates = rates_from(settings.limits)
    target = report if report is not None else metrics
    try:
        if log.in_database:
            import duckdb  # lazy: start-up time (the output is a DuckDB file: loaded already)

            try:
                data = read_database(out, run_id=log.run_id, rates=rates)
            except duckdb.Error as exc:
                raise OSError(str(exc)) from None
        else:
            run = RunSummary(
                log.run_id, "fetch", "done", log.started_at, log.ended_at, politeness=log.politeness
            )
            data = from_rows(run, log.requests, log.events, rates)
        if report is not None:
            target = report
            say(f"report written to {write_html(report, data)}")
        if metrics is not None:
            target = metrics
            say(f"metrics written to {write_metrics(metrics, data)}")
    except (OSError, LookupError) as exc:  # the results are written: say why the file is not
        raise click.ClickException(
            f"the results are in {out}, but {target} could not be written: {redact_text(str(exc))}"
        ) from None


def say(text: str) -> None:
    """A line on stderr, beside the summary."""
    stderr().print(text, markup=False, highlight=False)
