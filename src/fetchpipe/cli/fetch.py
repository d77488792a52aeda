"""``fetchpipe fetch``: the requests of a file (or stdin) into DuckDB or JSONL.

Exit codes: 0 every request ok; 1 some requests failed (every success is still written) or the
results could not be written; 2 bad usage or input, found before any request is sent.
Header values are never shown; API-key query parameters, URL passwords and a URL's user name
given alone are redacted (see :mod:`fetchpipe._redact`).

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fetchpipe._config import READAHEAD
from fetchpipe._exceptions import ConfigError, InputError
from fetchpipe._models import Request
from fetchpipe._redact import redact_text
from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.cache import DEFAULT_CACHE, open_cache
from fetchpipe.cli.fetch_settings import cache_from_flags, settings_from_flags
from fetchpipe.cli.fetching import Settings, counted, fetch_into, opened, sink_for, stderr
from fetchpipe.cli.options import (
    Duration,
    log_options,
    metrics_option,
    network_options,
    parse_headers,
    parse_network,
    parse_quotas,
    parse_rates,
    parse_retry_budget,
    report_option,
    seconds,
    state_dir_option,
    transport_option,
    whole_number,
)
from fetchpipe.cli.sharded import ScaleOut, scale_options, scale_out
from fetchpipe.engine.aimd import DEFAULT_ADAPTIVE
from fetchpipe.engine.breaker import ON_OPEN, BreakerPolicy

if TYPE_CHECKING:
    from fetchpipe.cli.input import InputFile
    from fetchpipe.cli.summary import Summary
    from fetchpipe.destinations.fetch import Sink

# The command imports what it uses inside its function: `fetchpipe fetch --help` loads no HTTP
# client, and `fetch` no pipeline, pydantic or DuckDB (unless --out is a .duckdb file).

DEFAULT_OUT = "fetchpipe.duckdb"


def _resumed(source: InputFile, count: int, out: str) -> tuple[Iterable[Request], int]:
    """The requests of ``source`` whose success is not yet in ``out``, and how many there are.

    Says on stderr how many were skipped. Exits 2 when ``out`` cannot be resumed from.
    """
    from fetchpipe.destinations.fetch import resume

    try:
        stored = resume.load(out)
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    console = stderr()
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
            f"note: {counted(stored.unreadable, 'line')} of {out} held no result and "
            f"{'was' if stored.unreadable == 1 else 'were'} ignored",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if plan.unmatchable and stored.successes:
        console.print(
            f"note: {counted(plan.unmatchable, 'request')} with params or a JSON body but no key "
            "cannot be matched with stored results and are fetched again. HINT: give each "
            'request a "key" in the input file',
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return resume.remaining(source.requests(), stored), plan.to_fetch


@click.command()
@click.argument("urls", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--out",
    "-o",
    default=DEFAULT_OUT,
    show_default=True,
    help="Where results go: a .duckdb file (table 'responses') or a .jsonl file. Appends.",
)
@whole_number(
    "--concurrency", minimum=1, default=100, help="Requests in flight at once, over all hosts."
)
@whole_number(
    "--per-host-concurrency",
    minimum=1,
    help="Requests in flight at once to one host.  [default: no limit]",
)
@whole_number(
    "--readahead",
    minimum=0,
    default=READAHEAD,
    help="Requests read beyond the buffer, by host, while every host with work is at its "
    "limit (an input grouped by host keeps every host busy); past a few thousand they wait "
    "encrypted in a temporary file, deleted with the run. 0: read no further than the buffer.",
)
@click.option(
    "--rate",
    "rates",
    multiple=True,
    metavar="HOST=N",
    help="At most N requests per second to HOST ('*.example.com' matches subdomains). Repeatable.",
)
@click.option(
    "--quota",
    "quotas",
    multiple=True,
    metavar="HOST=N/PERIOD",
    help="At most N requests to HOST per calendar hour, day or month in UTC (N/hour, N/day, "
    "N/month), counted across runs and processes in --state-dir; beyond it, requests end as "
    "quota_exhausted with the time it resets. Repeatable.",
)
@state_dir_option
@whole_number("--retries", minimum=0, default=3, help="Retries after the first attempt.")
@click.option(
    "--retry-budget",
    default="50",
    show_default=True,
    metavar="N|off",
    help="Failed retries a host may have before its retries stop (a retry that succeeds "
    "gives one back); off: no budget.",
)
@click.option(
    "--adaptive/--no-adaptive",
    default=True,
    show_default=True,
    help="Pace each host by what it answers: the rate limits it publishes (RateLimit, "
    "X-RateLimit-*, its first request going alone to read them) and, for a host without "
    "--rate, a rate learned from its 429s (AIMD). --no-adaptive: only --rate and Retry-After.",
)
@click.option(
    "--on-host-down",
    type=click.Choice(ON_OPEN),
    default="fail",
    show_default=True,
    help="When a host fails 20 requests in a row (its circuit breaker opens): fail its "
    "requests at once as host_down, or wait for it to recover.",
)
@seconds(
    "--timeout",
    help="Time for one attempt: connect, headers and body.  [default: 60]",
    positive=True,
)
@seconds(
    "--deadline", help="Total time for one request, all attempts and waits included.", positive=True
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
@network_options
@transport_option(
    "The HTTP client: aiohttp, or fast (pyreqwest, Rust reqwest/hyper; "
    "pip install 'fetchpipe[fast]'; it cannot apply --block-private)."
)
@whole_number(
    "--max-redirects",
    minimum=0,
    default=10,
    help="Redirects followed per request (0: the 3xx answer is the result).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Skip the requests whose successful result is already in --out (matched by key, "
    "else by method and URL); fetch the others, failed ones again, and append.",
)
@report_option(
    "the waterfall of its requests, figures per host, the failures (see `fetchpipe report`)."
)
@metrics_option
@log_options
@scale_options
def fetch(
    urls: str,
    out: str,
    concurrency: int,
    per_host_concurrency: int | None,
    readahead: int,
    rates: tuple[str, ...],
    quotas: tuple[str, ...],
    state_dir: str,
    retries: int,
    retry_budget: str,
    adaptive: bool,
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
    proxy: str | None,
    no_proxy: bool,
    ca_bundle: str | None,
    client_cert: str | None,
    client_key: str | None,
    transport: str,
    max_redirects: int,
    resume: bool,
    report_path: str | None,
    metrics_path: str | None,
    log_level: str | None,
    log_format: str,
    verbose: int,
    executor: str,
    workers: int | None,
    shard: str | None,
) -> None:
    """Fetch the requests in URLS (a file, or - for stdin) into --out.

    URLS holds one URL per line, or one JSON object per line with "url" and optionally
    "method", "headers", "key", "params" and "json". Blank lines and # comments are skipped.

    Every result records its source: network, cache, revalidated (the server answered 304) or
    stale (the refresh failed; a stored response answered). API-key query parameters, URL
    passwords and a URL's user name given alone (often a token) are written as REDACTED / ***.

    Results reach --out at least once a second. After an interrupted run, --resume skips the
    requests with a successful result in --out (by "key", else by method and URL) and fetches
    the others, failed ones included; a torn last line is cut off before appending.

    Requests go through the proxies of HTTP_PROXY, HTTPS_PROXY and ALL_PROXY but for the hosts
    of NO_PROXY, unless --proxy or --no-proxy says otherwise; a proxy's password is never shown.
    """
    from fetchpipe.cli.input import InputFile
    from fetchpipe.cli.log_output import configure
    from fetchpipe.engine.security import SecurityPolicy
    from fetchpipe.engine.transports.factory import fast_transport_problem

    configure(log_level, log_format, verbose)

    scale = scale_out(executor, workers, shard)
    cache, cache_dir = cache_from_flags(cache_path, cache_ttls, stale_if_error, offline, scale)
    settings = settings_from_flags(
        concurrency=concurrency,
        per_host_concurrency=per_host_concurrency,
        rates=parse_rates(rates),
        quotas=parse_quotas(quotas),
        retries=retries,
        retry_budget=parse_retry_budget(retry_budget),
        timeout=timeout,
        deadline=deadline,
        headers=parse_headers(headers),
        cache=cache,
        readahead=readahead,
    )
    try:
        security = SecurityPolicy(
            max_redirects=max_redirects,
            block_private=block_private,
            allow_addresses=allow_addresses,
            insecure_hosts=frozenset(insecure_hosts),
        )
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    proxies, tls = parse_network(proxy, no_proxy, ca_bundle, client_cert, client_key)
    if transport == "fast":
        problem = fast_transport_problem(security)
        if problem is not None:
            raise BadUsage(problem)
    settings = dataclasses.replace(
        settings,
        security=security,
        transport=transport,
        proxy=proxies,
        tls=tls,
        breaker=BreakerPolicy(on_open="wait" if on_host_down == "wait" else "fail"),
        adaptive=DEFAULT_ADAPTIVE if adaptive else None,
        state_dir=state_dir,
    )
    for host in sorted(security.insecure_hosts):
        stderr().print(
            f"warning: the TLS certificate of {host} is not verified (--insecure-host)",
            markup=False,
            highlight=False,
        )
    sink = sink_for(out)
    try:
        source = InputFile.open(urls)
    except InputError as exc:
        raise BadUsage(redact_text(str(exc))) from None
    with source:
        try:
            count = source.validate()
        except InputError as exc:
            raise BadUsage(redact_text(str(exc))) from None
        requests: Iterable[Request] = source.requests()
        if resume:
            requests, count = _resumed(source, count, out)
        if scale.shard is not None or scale.on_cluster:
            outputs = (report_path, metrics_path)
            summary = _scaled(
                source, requests, count, resume, out, sink, settings, scale, cache_dir, outputs
            )
            if summary.failed:
                raise click.exceptions.Exit(1)
            return
        with contextlib.ExitStack() as stack:
            if cache is not None:
                stack.callback(cache.close)  # the fetcher closes it too; closing is idempotent
                open_cache(cache)
            summary = fetch_into(
                requests, count, opened(sink), settings, out, report_path, metrics_path
            )
    if summary.failed:
        raise click.exceptions.Exit(1)


def _scaled(
    source: InputFile,
    requests: Iterable[Request],
    count: int,
    resume: bool,
    out: str,
    sink: Sink,
    settings: Settings,
    scale: ScaleOut,
    cache_dir: str | None,
    outputs: tuple[str | None, str | None] = (None, None),
) -> Summary:
    """Fetch one shard of the input (``--shard``), here (with the report and metrics files
    ``outputs``) or on a cluster (``--executor``)."""
    from fetchpipe.cli.sharded import fetch_on_cluster, only_shard, say_shard
    from fetchpipe.distributed.sharding import count_hosts

    total: int | None = count
    if scale.shard is not None:
        selector = scale.shard
        kept = sum(1 for request in source.requests() if selector.holds(request.url))
        say_shard(selector, kept, count)
        requests = only_shard(requests, selector)
        total = None if resume else kept
    if not scale.on_cluster:
        with contextlib.ExitStack() as stack:
            if settings.cache is not None:
                stack.callback(settings.cache.close)
                open_cache(settings.cache)
            return fetch_into(requests, total, opened(sink), settings, out, *outputs)
    opened(sink).close()  # the output is checked (and created) before anything is sent
    urls = (request.url for request in source.requests())
    if scale.shard is not None:
        urls = (url for url in urls if scale.shard.holds(url))
    if settings.cache is not None and cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return fetch_on_cluster(
        requests, total, count_hosts(urls), out, settings, scale, cache_dir, outputs
    )
