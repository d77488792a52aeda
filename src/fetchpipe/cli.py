"""The ``fetchpipe`` command line: parses, calls the library, prints.

Exit codes: 0 every request ok; 1 some requests failed (every success is still written) or the
results could not be written; 2 bad usage or input, found before any request is sent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import click
from rich.console import Console

from fetchpipe._config import HostLimits, Limits, Timeouts
from fetchpipe._exceptions import ConfigError, InputError, SinkError
from fetchpipe._input import InputFile, LineError, parse_header, parse_rate
from fetchpipe._models import Request
from fetchpipe._progress import reporter_for
from fetchpipe._summary import Summary, render
from fetchpipe.bench.cli import bench
from fetchpipe.engine.retry import RetryPolicy, set_testing
from fetchpipe.sinks import Sink, open_sink

DEFAULT_OUT = "fetchpipe.duckdb"


class BadInput(click.ClickException):
    """Bad input or settings, found before any request was sent."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class _Settings:
    limits: Limits
    retry: RetryPolicy
    timeouts: Timeouts
    headers: Mapping[str, str]


def _stderr() -> Console:
    return Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fetchpipe")
def main() -> None:
    """Fetch many HTTP/JSON APIs at once, politely and reliably, into DuckDB or JSONL."""
    if os.environ.get("FETCHPIPE_TESTING") == "1":
        set_testing(True)


main.add_command(bench)


@main.group()
def sim() -> None:
    """The simulated API fleet on 127.0.0.x."""


@sim.command()
@click.option("--hosts", default=50, show_default=True, type=click.IntRange(1, 254))
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--minute",
    default=0.1,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds that stand for one minute of the seed's API latencies.",
)
def serve(hosts: int, port: int, minute: float) -> None:
    """Run the fleet in the foreground until Ctrl-C."""
    from fetchpipe.sim import serve as serve_fleet

    serve_fleet(host_count=hosts, port=port, minute=minute)


def _parse_rates(values: Iterable[str]) -> dict[str, float]:
    rates: dict[str, float] = {}
    for text in values:
        try:
            host, rate = parse_rate(text)
        except LineError as exc:
            raise click.BadParameter(str(exc), param_hint="'--rate'") from None
        rates[host] = rate
    return rates


def _parse_headers(values: Iterable[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for index, text in enumerate(values, 1):
        try:
            name, value = parse_header(text)
        except LineError as exc:
            raise click.BadParameter(f"header #{index}: {exc}", param_hint="'--header'") from None
        headers[name] = value
    return headers


def _settings(
    *,
    concurrency: int,
    per_host_concurrency: int | None,
    rates: Mapping[str, float],
    retries: int,
    timeout: float | None,
    deadline: float | None,
    headers: Mapping[str, str],
) -> _Settings:
    try:
        per_host = HostLimits(max_concurrency=per_host_concurrency)
        hosts = {
            host: HostLimits(max_concurrency=per_host_concurrency, max_per_second=rate)
            for host, rate in rates.items()
        }
        # --timeout bounds the whole attempt, so no tighter idle-read bound applies.
        timeouts = Timeouts() if timeout is None else Timeouts(read=None, total=timeout)
        if deadline is not None:
            timeouts = Timeouts(timeouts.connect, timeouts.read, timeouts.total, deadline)
        return _Settings(
            limits=Limits(max_concurrency=concurrency, per_host=per_host, hosts=hosts),
            retry=RetryPolicy(attempts=retries + 1),
            timeouts=timeouts,
            headers=headers,
        )
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _sink_for(out: str) -> Sink:
    try:
        return open_sink(out)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--out'") from None


def _open(sink: Sink) -> Sink:
    try:
        sink.open()
    except SinkError as exc:
        raise BadInput(str(exc)) from None
    return sink


async def _pump(
    requests: Iterable[Request], total: int | None, sink: Sink, settings: _Settings
) -> Summary:
    """Fetch ``requests``, writing every result to ``sink``: the one path of every command.

    ``wall_time`` is measured from just before the first request to the last result.
    """
    from fetchpipe._fetcher import Fetcher

    summary = Summary()
    with reporter_for(_stderr(), total) as progress:
        async with Fetcher(
            limits=settings.limits,
            retry=settings.retry,
            timeouts=settings.timeouts,
            headers=settings.headers,
        ) as fetcher:
            first = last = time.perf_counter()
            async for result in fetcher.stream(requests):
                sink.write(result)
                summary.add(result)
                progress.advance(result)
                last = time.perf_counter()
    summary.wall_time = last - first
    return summary


def _run(
    requests: Iterable[Request], total: int | None, sink: Sink, settings: _Settings, out: str
) -> Summary:
    """Run :func:`_pump` on the event loop, close the sink and print the summary."""
    from fetchpipe._fetcher import run

    try:
        try:
            summary = run(_pump(requests, total, sink, settings))
        finally:
            sink.close()
    except SinkError as exc:
        raise click.ClickException(f"{exc} (the run was stopped)") from None
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    console = _stderr()
    render(summary, console)
    console.print(f"results written to {out}", markup=False, highlight=False)
    return summary


@main.command()
@click.argument("urls", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--out",
    "-o",
    default=DEFAULT_OUT,
    show_default=True,
    help="Where results go: a .duckdb file (table 'responses') or a .jsonl file. Appends.",
)
@click.option(
    "--concurrency",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests in flight at once, over all hosts.",
)
@click.option(
    "--per-host-concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Requests in flight at once to one host.  [default: no limit]",
)
@click.option(
    "--rate",
    "rates",
    multiple=True,
    metavar="HOST=N",
    help="At most N requests per second to HOST ('*.example.com' matches subdomains). Repeatable.",
)
@click.option(
    "--retries",
    default=3,
    show_default=True,
    type=click.IntRange(min=0),
    help="Retries after the first attempt.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Time for one attempt: connect, headers and body.  [default: 60]",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Total time for one request, all attempts and waits included.",
)
@click.option(
    "--header",
    "-H",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="A header sent with every request. Repeatable. Values are never printed.",
)
def fetch(
    urls: str,
    out: str,
    concurrency: int,
    per_host_concurrency: int | None,
    rates: tuple[str, ...],
    retries: int,
    timeout: float | None,
    deadline: float | None,
    headers: tuple[str, ...],
) -> None:
    """Fetch the requests in URLS (a file, or - for stdin) into --out.

    URLS holds one URL per line, or one JSON object per line with "url" and optionally
    "method", "headers", "key", "params" and "json". Blank lines and # comments are skipped.
    """
    settings = _settings(
        concurrency=concurrency,
        per_host_concurrency=per_host_concurrency,
        rates=_parse_rates(rates),
        retries=retries,
        timeout=timeout,
        deadline=deadline,
        headers=_parse_headers(headers),
    )
    sink = _sink_for(out)
    try:
        source = InputFile.open(urls)
    except InputError as exc:
        raise BadInput(str(exc)) from None
    with source:
        try:
            count = source.validate()
        except InputError as exc:
            raise BadInput(str(exc)) from None
        summary = _run(source.requests(), count, _open(sink), settings, out)
    if summary.failed:
        raise click.exceptions.Exit(1)


@main.command()
@click.option("--out", "-o", default="demo.duckdb", show_default=True, help="A .duckdb or .jsonl.")
@click.option(
    "--minute",
    default=0.1,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds that stand for one minute of the seed's API latencies.",
)
def demo(out: str, minute: float) -> None:
    """Fetch 50 simulated APIs at once; compare with the slowest.

    Starts the simulated fleet, fetches its 50 APIs into --out as `fetch` would, prints the
    summary and then the slowest API's latency next to the time for all of them.
    """
    from fetchpipe.sim import Fleet

    settings = _Settings(Limits(), RetryPolicy(), Timeouts(), {})
    sink = _open(_sink_for(out))
    try:
        with Fleet(minute=minute).running_in_thread() as fleet:
            requests = [Request(url, key=n) for n, url in enumerate(fleet.api_urls)]
            configured = max(fleet.latencies) * minute
            summary = _run(requests, len(requests), sink, settings, out)
    finally:
        sink.close()
    measured = summary.max_latency or 0.0
    wall = summary.wall_time or 0.0
    click.echo(
        f"slowest API {measured:.3f} s (configured {configured:.3f} s) | "
        f"all {summary.total} APIs {wall:.3f} s "
        f"({_overhead(wall, measured)} vs slowest, {_overhead(wall, configured)} vs configured)"
    )
    if summary.failed:
        raise click.exceptions.Exit(1)


def _overhead(total: float, base: float) -> str:
    if base <= 0:
        return "n/a"
    return f"{(total / base - 1) * 100:+.1f}%"
