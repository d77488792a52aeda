"""The ``fetchpipe`` command line: parses, calls the library, prints.

Exit codes: 0 every request ok; 1 some requests failed (every success is still written) or the
results could not be written; 2 bad usage or input, found before any request is sent.
Secrets stay out of what is printed and written: header values are never shown, API-key query
parameters and URL passwords are redacted (see :mod:`fetchpipe._redact`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fetchpipe import __version__
from fetchpipe._config import TRANSPORTS, HostLimits, Limits, Timeouts
from fetchpipe._exceptions import ConfigError, InputError, SinkError
from fetchpipe._lazy_group import LazyGroup
from fetchpipe._models import Request
from fetchpipe._redact import redact_text
from fetchpipe.engine.breaker import DEFAULT_BREAKER, ON_OPEN, BreakerPolicy
from fetchpipe.engine.cache import DEFAULT_PATH
from fetchpipe.engine.retry import DEFAULT_RETRY, RetryPolicy, set_testing

if TYPE_CHECKING:
    from fetchpipe._input import InputFile
    from fetchpipe._plain_console import Output
    from fetchpipe._summary import Summary
    from fetchpipe.destinations.fetch import Sink
    from fetchpipe.engine.cache.http_cache import HttpCache
    from fetchpipe.engine.security import SecurityPolicy

# Every command imports what it uses inside its function: `fetchpipe --version` and
# `fetchpipe fetch --help` load no HTTP client, and `fetch` no pipeline, pydantic or DuckDB
# (unless --out is a .duckdb file). The commands of other modules load when called.

DEFAULT_OUT = "fetchpipe.duckdb"
DEFAULT_CACHE = str(DEFAULT_PATH)


class BadInput(click.ClickException):
    """Bad input or settings, found before any request was sent."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class _Settings:
    limits: Limits
    retry: RetryPolicy
    timeouts: Timeouts
    headers: Mapping[str, str]
    cache: HttpCache | None = None
    security: SecurityPolicy | None = None
    transport: str = "aiohttp"
    breaker: BreakerPolicy | None = DEFAULT_BREAKER


def _stderr() -> Output:
    from fetchpipe._plain_console import stderr_console

    return stderr_console()


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    lazy_subcommands={
        "bench": "fetchpipe.bench.cli:bench",
        "validate": "fetchpipe.pipeline.cli:validate",
        "plan": "fetchpipe.pipeline.cli:plan",
        "schema": "fetchpipe.pipeline.cli:schema",
        "run": "fetchpipe.pipeline.cli:run_command",
    },
)
@click.version_option(__version__)
def main() -> None:
    """Fetch many HTTP/JSON APIs at once, politely and reliably, into DuckDB or JSONL."""
    if os.environ.get("FETCHPIPE_TESTING") == "1":
        set_testing(True)


def entry_point(prog_name: str | None = None) -> None:
    """The ``fetchpipe`` program (the console script, ``python -m fetchpipe``): :data:`main`,
    then an exit without the interpreter's teardown (see :mod:`fetchpipe._quick_exit`)."""
    from fetchpipe._quick_exit import leave

    try:
        main(prog_name=prog_name)  # click's standalone mode: it always ends in SystemExit
    except SystemExit as exc:
        leave(exc.code)


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
    from fetchpipe._input import LineError, parse_rate

    rates: dict[str, float] = {}
    for text in values:
        try:
            host, rate = parse_rate(text)
        except LineError as exc:
            raise click.BadParameter(str(exc), param_hint="'--rate'") from None
        rates[host] = rate
    return rates


def _parse_headers(values: Iterable[str]) -> dict[str, str]:
    from fetchpipe._input import LineError, parse_header

    headers: dict[str, str] = {}
    for index, text in enumerate(values, 1):
        try:
            name, value = parse_header(text)
        except LineError as exc:
            raise click.BadParameter(f"header #{index}: {exc}", param_hint="'--header'") from None
        headers[name] = value
    return headers


def _retry_budget(text: str) -> float | None:
    """``--retry-budget``: a number of failed retries per host (at least 1), or ``off``."""
    if text.strip().lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 1 and math.isfinite(value)):
        raise click.BadParameter(
            f"{text[:40]!r} is not a retry budget. HINT: give the number of failed retries a "
            "host may have before its retries stop (at least 1, e.g. 50), or 'off'",
            param_hint="'--retry-budget'",
        )
    return value


def _settings(
    *,
    concurrency: int,
    per_host_concurrency: int | None,
    rates: Mapping[str, float],
    retries: int,
    retry_budget: float | None = DEFAULT_RETRY.budget,
    timeout: float | None,
    deadline: float | None,
    headers: Mapping[str, str],
    cache: HttpCache | None,
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
            retry=RetryPolicy(attempts=retries + 1, budget=retry_budget),
            timeouts=timeouts,
            headers=headers,
            cache=cache,
        )
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _sink_for(out: str) -> Sink:
    from fetchpipe.destinations.fetch.factory import open_sink

    try:
        return open_sink(out)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--out'") from None


def _open(sink: Sink) -> Sink:
    try:
        sink.open()
    except SinkError as exc:
        raise BadInput(str(exc)) from None
    note = getattr(sink, "note", None)  # what opening did to the file (a torn line cut off)
    if isinstance(note, str):
        _stderr().print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    return sink


def _resumed(source: InputFile, count: int, out: str) -> tuple[Iterable[Request], int]:
    """The requests of ``source`` whose success is not yet in ``out``, and how many there are.

    Says on stderr how many were skipped. Exits 2 when ``out`` cannot be resumed from.
    """
    from fetchpipe.destinations.fetch import resume

    try:
        stored = resume.load(out)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    console = _stderr()
    if not stored.exists:
        console.print(
            f"resuming: {out} does not exist yet; fetching all {count:,}",
            markup=False,
            highlight=False,
        )
        return source.requests(), count
    plan = resume.plan(source.requests(), stored)
    console.print(
        f"resuming: {plan.skipped:,} already fetched, skipped; {plan.to_fetch:,} to fetch",
        markup=False,
        highlight=False,
    )
    if stored.unreadable:
        console.print(
            f"note: {_counted(stored.unreadable, 'line')} of {out} held no result and "
            f"{'was' if stored.unreadable == 1 else 'were'} ignored",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if plan.unmatchable and stored.successes:
        console.print(
            f"note: {_counted(plan.unmatchable, 'request')} with params or a JSON body but no key "
            "cannot be matched with stored results and are fetched again. HINT: give each "
            'request a "key" in the input file',
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return resume.remaining(source.requests(), stored), plan.to_fetch


# --- the HTTP cache -------------------------------------------------------------------------------

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION_HINT = "seconds (3600) or a number with s, m, h, d or w (90s, 30m, 12h, 7d)"
_SQLITE_MAGIC = b"SQLite format 3\x00"


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``3600``, ``90s``, ``30m``, ``12h``, ``7d``, ``1w``, ``1.5h``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a duration. HINT: {_DURATION_HINT}")
    seconds = float(match[1]) * _UNIT_SECONDS[match[2].lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"{text[:40]!r} is too long a duration. HINT: {_DURATION_HINT}")
    return seconds


class Duration(click.ParamType[float, Any]):
    """A click type for :func:`parse_duration`."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_HOST_PATTERN = re.compile(r"[a-z0-9*?\[\]!._-]+", re.IGNORECASE)


def _parse_cache_ttls(values: Iterable[str]) -> tuple[float | None, dict[str, float]]:
    """``--cache-ttl`` values: the default lifetime and the lifetimes per host pattern or URL
    glob. The last value for the same pattern wins, as with ``--rate``."""

    default: float | None = None
    overrides: dict[str, float] = {}
    for text in values:
        pattern, equals, seconds = text.rpartition("=")
        pattern = pattern.strip()
        try:
            ttl = parse_duration(seconds)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--cache-ttl'") from None
        if not equals:
            default = ttl
        elif "/" in pattern:
            if not pattern.lower().startswith(("http://", "https://", "*")):
                raise click.BadParameter(
                    f"the URL glob {redact_text(pattern)[:80]!r} matches no URL. HINT: a URL glob "
                    "matches the whole URL, e.g. 'https://api.example.com/v1/*=600'",
                    param_hint="'--cache-ttl'",
                )
            overrides[pattern] = ttl
        elif _HOST_PATTERN.fullmatch(pattern):
            overrides[pattern] = ttl
        else:
            raise click.BadParameter(
                f"{redact_text(pattern)[:80]!r} is not a host pattern. HINT: SECONDS for every "
                "response without cache headers, HOST=SECONDS ('api.example.com', "
                "'*.example.com'; no scheme or port) or URLGLOB=SECONDS "
                "('https://api.example.com/v1/*')",
                param_hint="'--cache-ttl'",
            )
    return default, overrides


def _check_cache_file(path: Path) -> None:
    """Refuse (exit 2) a ``path`` that holds something other than a fetchpipe cache.

    The cache sets an unreadable file aside and starts afresh; that is meant for a damaged
    cache, not for a results file or another program's database given to ``--cache`` by
    mistake. A missing or empty file, or a damaged SQLite file, is fine.
    """
    import sqlite3

    if str(path) in ("", "-"):
        raise BadInput(
            f"{str(path)!r} is not a cache file path. HINT: e.g. --cache={DEFAULT_CACHE}"
        )
    if path.is_dir():
        raise BadInput(
            f"the cache {str(path)!r} is a folder. HINT: give a file, "
            f"e.g. --cache={path / 'cache.sqlite'}"
        )
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BadInput(f"cannot read the cache {str(path)!r}: {exc.strerror or exc}") from None
    hint = "HINT: give --cache a file of its own, e.g. --cache=.fetchpipe/cache.sqlite"
    if head and head != _SQLITE_MAGIC:
        raise BadInput(
            f"{str(path)!r} is not a fetchpipe cache (not an SQLite file); it was left as it "
            f"is. {hint}"
        )
    if not head:
        return
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.DatabaseError:
        return  # damaged: the cache sets it aside and says so
    if tables and "entries" not in tables:
        raise BadInput(
            f"{str(path)!r} is an SQLite database but not a fetchpipe cache; it was left as it "
            f"is. {hint}"
        )


def _open_cache(cache: HttpCache) -> HttpCache:
    """Open ``cache`` (exit 2 if it cannot be); print its note (a file set aside) once."""
    try:
        cache.open()
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    if cache.note:
        _stderr().print(f"note: {cache.note}", markup=False, highlight=False, soft_wrap=True)
    return cache


def _cache_for(
    path: str | None,
    ttls: tuple[str, ...],
    stale_if_error: float | None,
    offline: bool,
) -> HttpCache | None:
    """The ``HttpCache`` the options ask for, checked but not opened; ``None`` without one."""
    from fetchpipe.engine.cache.http_cache import HttpCache

    if path is None and offline:
        path = DEFAULT_CACHE
    if path is None:
        given = ["--cache-ttl"] if ttls else []
        if stale_if_error is not None:
            given.append("--stale-if-error")
        if given:
            raise BadInput(
                f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} a cache. "
                f"HINT: add --cache (the file {DEFAULT_CACHE}) or --cache=PATH"
            )
        return None
    ttl, overrides = _parse_cache_ttls(ttls)
    target = Path(path)
    _check_cache_file(target)
    if offline and not target.exists():
        raise BadInput(
            f"--offline: there is no cache at {path}. HINT: run once without --offline to fill "
            "it, or point --cache=PATH at an existing cache"
        )
    options: dict[str, Any] = {}
    if stale_if_error is not None:
        options["stale_if_error"] = stale_if_error
    try:
        return HttpCache(target, ttl=ttl, ttl_overrides=overrides, offline=offline, **options)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``3 requests``, ``1 entry``."""
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


async def _pump(
    requests: Iterable[Request], total: int | None, sink: Sink, settings: _Settings
) -> Summary:
    """Fetch ``requests``, writing every result to ``sink``: the one path of every command.

    ``wall_time`` is measured from just before the first request to the last result.
    """
    from fetchpipe._fetcher import Fetcher
    from fetchpipe._progress import reporter_for
    from fetchpipe._summary import Summary

    summary = Summary(cache_used=settings.cache is not None)
    with reporter_for(_stderr(), total) as progress:
        async with Fetcher(
            limits=settings.limits,
            retry=settings.retry,
            timeouts=settings.timeouts,
            headers=settings.headers,
            cache=settings.cache,
            security=settings.security,
            transport=settings.transport,
            breaker=settings.breaker,
        ) as fetcher:
            first = last = time.perf_counter()
            async for result in fetcher.stream(requests):
                sink.write(result)
                summary.add(result)
                progress.advance(result)
                last = time.perf_counter()
            summary.hosts_down = dict(fetcher.hosts_down)
            summary.retries_denied = fetcher.retries_denied
    summary.wall_time = last - first
    return summary


def _run(
    requests: Iterable[Request], total: int | None, sink: Sink, settings: _Settings, out: str
) -> Summary:
    """Run :func:`_pump` on the event loop, close the sink and print the summary."""
    from fetchpipe._fetcher import run
    from fetchpipe._summary import render

    try:
        try:
            summary = run(_pump(requests, total, sink, settings))
        finally:
            sink.close()
    except SinkError as exc:
        raise click.ClickException(f"{exc} (the run was stopped)") from None
    except InputError as exc:
        raise click.ClickException(redact_text(str(exc))) from None
    console = _stderr()
    render(summary, console)
    if summary.not_cached:
        console.print(
            f"{_counted(summary.not_cached, 'request')} had no cache entry (--offline): "
            "written as failed with error 'not_cached'. HINT: run without --offline to fetch them",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
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
    "--retry-budget",
    default="50",
    show_default=True,
    metavar="N|off",
    help="Failed retries a host may have before its retries stop (a retry that succeeds "
    "gives one back); off: no budget.",
)
@click.option(
    "--on-host-down",
    type=click.Choice(ON_OPEN),
    default="fail",
    show_default=True,
    help="When a host fails 20 requests in a row (its circuit breaker opens): fail its "
    "requests at once as host_down, or wait for it to recover.",
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
@click.option(
    "--cache",
    "cache_path",
    is_flag=False,
    flag_value=DEFAULT_CACHE,
    default=None,
    metavar="[PATH]",
    help=f"Keep responses in the SQLite file PATH and answer from it as HTTP caching allows "
    f"(fresh: no request; stale with an ETag or Last-Modified: revalidated). A bare --cache "
    f"means {DEFAULT_CACHE} (give a path as --cache=PATH).",
)
@click.option(
    "--cache-ttl",
    "cache_ttls",
    multiple=True,
    metavar="[PATTERN=]SECONDS",
    help="A lifetime (seconds, or 30m, 12h, 7d) for responses without cache headers: for all "
    "(3600), for hosts "
    "(api.example.com=600, '*.example.com=1h') or for URLs ('https://api.example.com/v1/*=1d'). "
    "Repeatable; the longest matching pattern wins.",
)
@click.option(
    "--stale-if-error",
    type=Duration(),
    default=None,
    metavar="SECONDS",
    help="When a refresh fails, answer with a stored response at most this stale: seconds, or "
    "30m, 12h, 7d (0: never).  [default: 86400]",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Send nothing: answer only from the cache (implies --cache). Requests it has no entry "
    "for fail with error 'not_cached'.",
)
@click.option(
    "--block-private",
    is_flag=True,
    help="Refuse requests to loopback, private, link-local and cloud-metadata addresses "
    "(checked on the resolved address, redirects included).",
)
@click.option(
    "--allow-address",
    "allow_addresses",
    multiple=True,
    metavar="IP|NETWORK",
    help="An address or network --block-private lets through (repeatable).",
)
@click.option(
    "--insecure-host",
    "insecure_hosts",
    multiple=True,
    metavar="HOST",
    help="Do not verify the TLS certificate of HOST (repeatable; a warning says so).",
)
@click.option(
    "--transport",
    type=click.Choice(TRANSPORTS),
    default="aiohttp",
    show_default=True,
    help="The HTTP client: aiohttp, or fast (pyreqwest, Rust reqwest/hyper; "
    "pip install 'fetchpipe[fast]'; it cannot apply --block-private).",
)
@click.option(
    "--max-redirects",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Redirects followed per request (0: the 3xx answer is the result).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Skip the requests whose successful result is already in --out (matched by key, "
    "else by method and URL); fetch the others, failed ones again, and append.",
)
def fetch(
    urls: str,
    out: str,
    concurrency: int,
    per_host_concurrency: int | None,
    rates: tuple[str, ...],
    retries: int,
    retry_budget: str,
    on_host_down: str,
    timeout: float | None,
    deadline: float | None,
    headers: tuple[str, ...],
    cache_path: str | None,
    cache_ttls: tuple[str, ...],
    stale_if_error: float | None,
    offline: bool,
    block_private: bool,
    allow_addresses: tuple[str, ...],
    insecure_hosts: tuple[str, ...],
    transport: str,
    max_redirects: int,
    resume: bool,
) -> None:
    """Fetch the requests in URLS (a file, or - for stdin) into --out.

    URLS holds one URL per line, or one JSON object per line with "url" and optionally
    "method", "headers", "key", "params" and "json". Blank lines and # comments are skipped.

    Every result records its source: network, cache, revalidated (the server answered 304) or
    stale (the refresh failed; a stored response answered). API-key query parameters and URL
    passwords are written as REDACTED / ***.

    Results reach --out at least once a second. After an interrupted run, --resume skips the
    requests with a successful result in --out (by "key", else by method and URL) and fetches
    the others, failed ones included; a torn last line is cut off before appending.
    """
    from fetchpipe._input import InputFile
    from fetchpipe.engine.security import SecurityPolicy
    from fetchpipe.engine.transport import fast_transport_problem

    cache = _cache_for(cache_path, cache_ttls, stale_if_error, offline)
    settings = _settings(
        concurrency=concurrency,
        per_host_concurrency=per_host_concurrency,
        rates=_parse_rates(rates),
        retries=retries,
        retry_budget=_retry_budget(retry_budget),
        timeout=timeout,
        deadline=deadline,
        headers=_parse_headers(headers),
        cache=cache,
    )
    try:
        security = SecurityPolicy(
            max_redirects=max_redirects,
            block_private=block_private,
            allow_addresses=allow_addresses,
            insecure_hosts=frozenset(insecure_hosts),
        )
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    if transport == "fast":
        problem = fast_transport_problem(security)
        if problem is not None:
            raise BadInput(problem)
    settings = dataclasses.replace(
        settings,
        security=security,
        transport=transport,
        breaker=BreakerPolicy(on_open="wait" if on_host_down == "wait" else "fail"),
    )
    for host in sorted(security.insecure_hosts):
        _stderr().print(
            f"warning: the TLS certificate of {host} is not verified (--insecure-host)",
            markup=False,
            highlight=False,
        )
    sink = _sink_for(out)
    try:
        source = InputFile.open(urls)
    except InputError as exc:
        raise BadInput(redact_text(str(exc))) from None
    with source:
        try:
            count = source.validate()
        except InputError as exc:
            raise BadInput(redact_text(str(exc))) from None
        requests: Iterable[Request] = source.requests()
        if resume:
            requests, count = _resumed(source, count, out)
        with contextlib.ExitStack() as stack:
            if cache is not None:
                stack.callback(cache.close)  # the fetcher closes it too; closing is idempotent
                _open_cache(cache)
            summary = _run(requests, count, _open(sink), settings, out)
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


# --- fetchpipe cache ... --------------------------------------------------------------------------

_cache_path_option = click.option(
    "--cache",
    "path",
    default=DEFAULT_CACHE,
    show_default=True,
    metavar="PATH",
    help="The cache file (as given to fetch --cache).",
)


@main.group(name="cache")
def cache_group() -> None:
    """Look into, prune or clear the HTTP cache of `fetch --cache`.

    A missing cache file is an empty cache: every command says "no cache at PATH" and exits 0.
    A file that is not a fetchpipe cache is left alone, and the command exits 2.
    """


def _existing_cache(path: str) -> HttpCache | None:
    """The opened cache at ``path``, or ``None`` (after saying so) when there is none."""
    from fetchpipe.engine.cache.http_cache import HttpCache

    target = Path(path)
    _check_cache_file(target)
    if not target.exists():
        click.echo(f"no cache at {path}")
        return None
    return _open_cache(HttpCache(target))


def _when(timestamp: float | None, now: float) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    return f"{moment} ({_age(now - timestamp)} ago)"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{max(0.0, seconds):.0f} s"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{n} bytes" if n < 1024 else f"{n} bytes ({value:.1f} {unit})"
    raise AssertionError("unreachable")


def _disk_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += Path(f"{path}{suffix}").stat().st_size
    return total


@cache_group.command(name="stats")
@_cache_path_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def cache_stats(path: str, as_json: bool) -> None:
    """Entries, their size, the oldest and newest stored response, and the path."""
    import orjson

    cache = _existing_cache(path)
    if cache is None:
        if as_json:
            click.echo(orjson.dumps({"path": path, "exists": False, "entries": 0, "bytes": 0}))
        return
    try:
        stats = cache.stats()
    finally:
        cache.close()
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "path": stats.path,
                    "exists": True,
                    "entries": stats.entries,
                    "bytes": stats.bytes,
                    "disk_bytes": _disk_bytes(Path(path)),  # the file and its write-ahead log
                    "oldest": stats.oldest,
                    "newest": stats.newest,
                }
            )
        )
        return
    now = time.time()
    disk = _disk_bytes(Path(path))
    rows = [
        ("path", stats.path),
        ("entries", str(stats.entries)),
        ("size", f"{_size(stats.bytes)} in entries; {_size(disk)} on disk"),
        ("oldest", _when(stats.oldest, now) or "-"),
        ("newest", _when(stats.newest, now) or "-"),
    ]
    for name, value in rows:
        click.echo(f"{name:<8} {value}")


@cache_group.command(name="prune")
@_cache_path_option
@click.option(
    "--older-than",
    type=Duration(),
    default=None,
    metavar="DURATION",
    help="Remove entries stored more than DURATION ago: seconds (3600) or 30m, 12h, 7d, 1w.",
)
def cache_prune(path: str, older_than: float | None) -> None:
    """Remove old entries, then keep the cache under its size cap (1 GiB).

    The size cap removes the least recently used entries first. Prints how many went.
    """
    cache = _existing_cache(path)
    if cache is None:
        return
    try:
        before = cache.stats().entries
        cache.storage.prune(None if older_than is None else time.time() - older_than)
        cache.storage.vacuum()
        after = cache.stats()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        cache.close()
    click.echo(
        f"removed {_counted(before - after.entries, 'entry')}; "
        f"{_counted(after.entries, 'entry')} left, {_size(after.bytes)}"
    )


@cache_group.command(name="clear")
@_cache_path_option
@click.option(
    "--url",
    "url_glob",
    default=None,
    metavar="GLOB",
    help="Only entries whose URL matches GLOB (*, ?, [...]; case-sensitive), e.g. "
    "'https://api.example.com/v1/*'. Stored URLs show credential parameters as REDACTED.",
)
def cache_clear(path: str, url_glob: str | None) -> None:
    """Remove every entry, or those whose URL matches --url. Prints how many went."""
    import sqlite3

    cache = _existing_cache(path)
    if cache is None:
        return
    try:
        removed = cache.storage.clear(url_glob)
    except (ConfigError, sqlite3.Error) as exc:
        raise click.ClickException(f"cannot clear the cache {path}: {exc}") from None
    finally:
        cache.close()
    which = "" if url_glob is None else f" matching {redact_text(url_glob)!r}"
    click.echo(f"removed {_counted(removed, 'entry')}{which}")
