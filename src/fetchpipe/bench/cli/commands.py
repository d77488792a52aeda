"""The commands of ``fetchpipe bench``: each parses its options and runs its scenario
(:mod:`fetchpipe.bench.cli.scenarios`); ``bench all`` runs several in turn."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from fetchpipe._config import TRANSPORTS
from fetchpipe.bench.cli.output import chart_option, finish, json_option, scale_option
from fetchpipe.bench.cli.scenarios import (
    SCENARIOS,
    dead_api_scenario,
    faults_scenario,
    flaky_api_scenario,
    latency_scenario,
    memory_scenario,
    pipeline_scenario,
    politeness_scenario,
    readahead_scenario,
    scale_scenario,
    seed_scenario,
    startup_scenario,
    throughput_scenario,
    toxic_faults_scenario,
)
from fetchpipe.bench.report import machine, write_json
from fetchpipe.cli.options import names_option, number, transport_option, whole_number


def _sizes(text: str, option: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            "give whole numbers separated by commas", param_hint=option
        ) from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("give at least one size, each at least 1", param_hint=option)
    return sizes


@click.command("seed")
@scale_option
@whole_number(
    "--rounds", minimum=1, default=1, help="Fresh runs per method; the table shows the median."
)
@json_option
@chart_option
def seed_command(
    scale: float, rounds: int, json_path: Path | None, chart_path: Path | None
) -> None:
    """The seed's table: 50 APIs one by one, threads, gather, fetchpipe, fetchpipe+cache."""
    finish(seed_scenario(scale, rounds, json_path, chart_path))


@click.command("startup")
@whole_number(
    "--runs",
    minimum=1,
    default=5,
    help="Runs per command after one warm-up, the commands taking turns; the table shows the "
    "median.",
)
@scale_option
@click.option(
    "--seed/--no-seed",
    default=True,
    show_default=True,
    help="Also time the seed's 50 APIs: `fetchpipe fetch` against the seed's gather script.",
)
@json_option
@chart_option
def startup_command(
    runs: int, scale: float, seed: bool, json_path: Path | None, chart_path: Path | None
) -> None:
    """Whole processes: --version and fetch --help vs importing aiohttp, orjson, uvloop.

    Each command is a process of its own, timed from spawn to exit: the baseline python -c
    "import aiohttp, orjson, uvloop", fetchpipe --version and fetchpipe fetch --help (target:
    baseline + 0.05 s); then the seed's 50 APIs (one minute = --scale seconds) fetched by the
    seed's gather script and by fetchpipe fetch --out run.jsonl (target: 1.05x the script).
    """
    finish(startup_scenario(runs, scale if seed else None, json_path, chart_path))


@click.command()
@click.option(
    "--requests", "requests_", default=20_000, show_default=True, help="Requests per run."
)
@click.option("--concurrency", default=100, show_default=True)
@click.option("--rounds", default=9, show_default=True, help="Rounds per client, order rotating.")
@names_option(
    "--transport",
    "transports",
    default=",".join(TRANSPORTS),
    help="Comma-separated fetchpipe transports to run beside the raw loop.",
)
@names_option(
    "--extras",
    default=None,
    help="Comma-separated clients to add: aiometer, httpx ('' for none).  "
    "[default: every installed one]",
)
@json_option
@chart_option
def throughput(
    requests_: int,
    concurrency: int,
    rounds: int,
    transports: str,
    extras: str | None,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """fetchpipe (each transport) vs a raw aiohttp + Semaphore loop (and aiometer, httpx)."""
    finish(
        throughput_scenario(
            requests_, concurrency, rounds, extras, json_path, chart_path, transports
        )
    )


@click.command()
@click.option("--requests", "requests_", default=10_000, show_default=True)
@click.option("--concurrency", default=1_000, show_default=True)
@click.option("--delay-ms", default=100, show_default=True, help="Server wait per request.")
@click.option("--rounds", default=3, show_default=True, help="Alternating rounds per client.")
@transport_option("fetchpipe's transport (fast: pyreqwest).")
@json_option
@chart_option
def latency(
    requests_: int,
    concurrency: int,
    delay_ms: int,
    rounds: int,
    transport: str,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """N slow requests at concurrency C against the floor N / C x delay."""
    finish(
        latency_scenario(requests_, concurrency, delay_ms, rounds, json_path, chart_path, transport)
    )


@click.command()
@whole_number("--urls", minimum=1, help="One size only.")
@click.option(
    "--sizes", default="10000,100000,1000000", show_default=True, help="URL counts to measure."
)
@click.option("--concurrency", default=100, show_default=True)
@number(
    "--ceiling-mb",
    minimum=1,
    default=1500.0,
    help="Stop the naive gather when its RSS passes this.",
)
@json_option
@chart_option
def memory(
    urls: int | None,
    sizes: str,
    concurrency: int,
    ceiling_mb: float,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """Peak RSS of fetchpipe and of the naive gather over N URLs, each in its own process."""
    chosen = [urls] if urls is not None else _sizes(sizes, "--sizes")
    finish(memory_scenario(chosen, concurrency, ceiling_mb, json_path, chart_path))


@click.command("readahead")
@whole_number("--hosts", minimum=1, default=20, help="Hosts: 127.0.0.1 .. (at most 254).")
@whole_number("--per-host", minimum=1, default=300, help="URLs per host in the timed runs.")
@whole_number("--per-host-concurrency", minimum=1, default=3)
@whole_number("--concurrency", minimum=1, default=100)
@whole_number("--delay-ms", minimum=0, default=50, help="Server wait per request.")
@whole_number("--rounds", minimum=1, default=1, help="Rounds of sorted and shuffled, alternating.")
@whole_number(
    "--memory-urls",
    minimum=0,
    default=200_000,
    help="URLs of the memory runs, sorted then shuffled, no wait (0: none).",
)
@json_option
@chart_option
def readahead(
    hosts: int,
    per_host: int,
    per_host_concurrency: int,
    concurrency: int,
    delay_ms: int,
    rounds: int,
    memory_urls: int,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """An input sorted by host vs the same shuffled: time against the floor, peak RSS.

    Each run is a process of its own; the server, in its own, counts the hosts busy at once.
    """
    if hosts > 254:
        raise click.BadParameter("give at most 254 hosts (127.0.0.x)", param_hint="--hosts")
    finish(
        readahead_scenario(
            hosts,
            per_host,
            per_host_concurrency,
            concurrency,
            delay_ms,
            rounds,
            memory_urls,
            json_path,
            chart_path,
        )
    )


@click.command()
@whole_number(
    "--requests",
    "requests_",
    minimum=1,
    show_default="1000; 10000 with --toxics, 160 with --flaky-api",
)
@whole_number(
    "--retry-after", minimum=0, default=1, help="Seconds in the 429 answers' Retry-After."
)
@click.option(
    "--toxics",
    is_flag=True,
    help="The longer run: every toxic of the misbehaving server (latency, bandwidth, 1-byte "
    "slices, hangs, closes, resets, truncation, 5xx bursts, Retry-After in every form).",
)
@click.option(
    "--dead-api",
    is_flag=True,
    help="An API that is down: --requests (1000) to a host answering 500, a tenth as many "
    "to healthy hosts; time to finish, requests and retries the dead host got.",
)
@click.option(
    "--flaky-api",
    is_flag=True,
    help="A flaky API: --requests (160) to one host, 40% failing once or twice (503, 429, "
    "reset, truncated); records landed and retries refused by the budget.",
)
@json_option
@chart_option
def faults(
    requests_: int | None,
    retry_after: int,
    toxics: bool,
    dead_api: bool,
    flaky_api: bool,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """30% injected faults (503 bursts, 429 + Retry-After, resets): fetchpipe vs naive gather."""
    if toxics + dead_api + flaky_api > 1:
        raise click.UsageError("give at most one of --toxics, --dead-api and --flaky-api")
    if toxics:
        toxic_faults_scenario(requests_ or 10_000, retry_after, json_path, chart_path)
    elif dead_api:
        dead_api_scenario(requests_ or 1_000, json_path, chart_path)
    elif flaky_api:
        flaky_api_scenario(requests_ or 160, retry_after, json_path, chart_path)
    else:
        faults_scenario(requests_ or 1_000, retry_after, json_path, chart_path)


@click.command("pipeline")
@whole_number("--pages", minimum=1, default=100)
@whole_number("--records", minimum=1, default=1_000, help="Records per page.")
@whole_number("--delay-ms", minimum=0, default=5, help="Server wait per page.")
@names_option(
    "--clients",
    default="fetchpipe,floor,dlt",
    help="Comma-separated clients to run (dlt only when installed).",
)
@whole_number(
    "--rounds",
    minimum=1,
    default=1,
    help="Runs per client, order alternating; the table shows medians.",
)
@number("--timeout", minimum=1, default=600.0, help="Seconds before a client's process is killed.")
@json_option
@chart_option
def pipeline_command(
    pages: int,
    records: int,
    delay_ms: int,
    clients: str,
    rounds: int,
    timeout: float,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """One paged API into DuckDB with merge: `fetchpipe run`, a hand-rolled floor, and dlt.

    Each client runs as its own process, timed from spawn to exit; the table shows its seconds,
    the rows that landed, duplicate ids and its peak RSS.
    """
    from fetchpipe.bench.pipeline import parse_clients

    try:
        chosen = parse_clients(clients)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--clients") from None
    clean = pipeline_scenario(
        pages, records, delay_ms, chosen, rounds, timeout, json_path, chart_path
    )
    if not clean:
        click.echo("some clients failed or loaded the wrong rows (see above)", err=True)
        sys.exit(1)


@click.command("politeness")
@whole_number("--published", minimum=1, default=200, help="Requests to the published-limit API.")
@whole_number("--limit", minimum=1, default=10, help="Its quota per window.")
@whole_number("--window", minimum=1, default=2, help="Its window, whole seconds.")
@whole_number("--silent", minimum=1, default=600, help="Requests to the silent-limit API.")
@number("--rate", minimum=0.1, default=20.0, help="Requests per second the silent API allows.")
@whole_number("--concurrency", minimum=1, default=50, help="Concurrency against the silent API.")
@names_option(
    "--clients",
    default="fetchpipe,fixed,aiometer,gather",
    help="Comma-separated clients (aiometer only when installed).",
)
@number(
    "--settle",
    minimum=0,
    default=3.0,
    help="Seconds after which a client's 429s count as the 'after' share.",
)
@whole_number(
    "--tokens",
    minimum=0,
    default=60,
    help="Requests with one token, then two, to an API publishing --limit per --window per "
    "token (0: skip).",
)
@json_option
@chart_option
def politeness_command(
    published: int,
    limit: int,
    window: int,
    silent: int,
    rate: float,
    concurrency: int,
    clients: str,
    settle: float,
    tokens: int,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """Rate-limited APIs: fetchpipe adaptive vs fixed rate vs aiometer vs gather.

    An API publishing 10 requests per 2 s (429 beyond) and one silently allowing 20/s (a bare
    429 beyond): requests landed, 429s and their share, time and throughput. Then one token
    against two on an API that publishes its limit per token: the throughput ratio.
    """
    finish(
        politeness_scenario(
            published,
            limit,
            window,
            silent,
            rate,
            concurrency,
            clients,
            settle,
            json_path,
            chart_path,
            tokens,
        )
    )


@click.command("all")
@click.option(
    "--out-dir",
    default="bench-results",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@scale_option
@click.option("--throughput-requests", default=5_000, show_default=True)
@click.option("--rounds", default=3, show_default=True, help="Throughput and latency rounds.")
@click.option("--latency-requests", default=10_000, show_default=True)
@click.option("--memory-sizes", default="10000,100000,300000", show_default=True)
@number("--ceiling-mb", minimum=1, default=1500.0)
@click.option("--faults-requests", default=1_000, show_default=True)
@names_option("--only", default=",".join(SCENARIOS), help="Comma-separated scenarios to run.")
def all_command(
    out_dir: Path,
    scale: float,
    throughput_requests: int,
    rounds: int,
    latency_requests: int,
    memory_sizes: str,
    ceiling_mb: float,
    faults_requests: int,
    only: str,
) -> None:
    """Every scenario in turn; NAME.json and NAME.svg of each go into --out-dir."""
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        raise click.BadParameter(f"unknown scenario(s): {', '.join(unknown)}", param_hint="--only")
    sizes = _sizes(memory_sizes, "--memory-sizes")
    steps: dict[str, Callable[[Path, Path], bool]] = {
        "seed": lambda j, c: seed_scenario(scale, 1, j, c),
        "throughput": lambda j, c: throughput_scenario(
            throughput_requests, 100, rounds, None, j, c
        ),
        "latency": lambda j, c: latency_scenario(latency_requests, 1_000, 100, rounds, j, c),
        "memory": lambda j, c: memory_scenario(sizes, 100, ceiling_mb, j, c),
        "faults": lambda j, c: faults_scenario(faults_requests, 1, j, c),
    }
    clean = True
    for name in SCENARIOS:
        if name not in chosen:
            continue
        click.echo(f"== {name}")
        clean = steps[name](out_dir / f"{name}.json", out_dir / f"{name}.svg") and clean
        click.echo()
    finish(clean)


@click.command("cache")
@whole_number("--urls", minimum=1, default=1_000)
@whole_number("--concurrency", minimum=1, default=200)
@json_option
def cache_command(urls: int, concurrency: int, json_path: Path | None) -> None:
    """Warm re-read of N cached URLs: fetchpipe beside aiohttp-client-cache (when installed)."""
    from fetchpipe.bench import cache as scenario
    from fetchpipe.engine.fetcher import run

    reads = run(scenario.measure(urls, concurrency))
    click.echo(
        f"cache: warm re-read of {urls} cached URLs at concurrency {concurrency}, in-process"
    )
    for read in reads:
        if read.seconds is None:
            click.echo(f"  {read.client:22s} {read.note}")
            continue
        click.echo(
            f"  {read.client:22s} {read.seconds:7.3f} s  {read.from_cache} from the cache, "
            f"{read.server_requests} reached the server"
        )
    report = scenario.to_json(reads)
    if report["speedup_vs_aiohttp_client_cache"] is not None:
        click.echo(
            f"fetchpipe / aiohttp-client-cache speed: "
            f"{report['speedup_vs_aiohttp_client_cache']:.1f}x"
        )
    if json_path is not None:
        write_json(json_path, {**report, "machine": machine()})
        click.echo(f"wrote {json_path}")


@click.command("scale")
@whole_number("--requests", "requests_", minimum=1, default=50_000)
@whole_number("--hosts", minimum=1, default=500, help="Loopback hosts of the server.")
@whole_number("--delay-ms", minimum=0, default=50, help="Server wait per request.")
@whole_number("--per-host", minimum=1, default=4, help="Requests in flight per host at most.")
@whole_number("--workers", minimum=1, default=2, help="Worker processes of the LocalCluster.")
@json_option
@chart_option
def scale_command(
    requests_: int,
    hosts: int,
    delay_ms: int,
    per_host: int,
    workers: int,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """A latency-bound workload in one process, then on a Dask LocalCluster (fetchpipe[dask]).

    Time, the most requests in flight per host at the server, and the overhead of
    distribution: cluster start, plan, shipping, merge.
    """
    finish(scale_scenario(requests_, hosts, delay_ms, per_host, workers, json_path, chart_path))
