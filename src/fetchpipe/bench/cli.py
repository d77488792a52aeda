"""`fetchpipe bench ...` commands: each scenario prints its table and ratios, and writes its
report as JSON (``--json``) and a bar chart as SVG (``--chart``) when asked. ``bench all`` runs
every scenario in turn and writes both files of each into ``--out-dir``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import click

from fetchpipe._config import TRANSPORTS
from fetchpipe._exceptions import ConfigError
from fetchpipe.bench.report import machine, raise_nofile_limit, write_json, write_text

SCENARIOS = ("seed", "throughput", "latency", "memory", "faults")


class Report(Protocol):
    def lines(self) -> list[str]: ...

    def to_json(self) -> dict[str, Any]: ...

    def chart(self, subtitle: str) -> str: ...


def _subtitle() -> str:
    info = machine()
    return (
        f"{info['cores']} cores · Python {info['python']} · {info['system']} · "
        f"{info['date'][:10]} · fetchpipe {info['packages']['fetchpipe']}"
    )


def _emit(report: Report, json_path: Path | None, chart_path: Path | None) -> None:
    for line in report.lines():
        click.echo(line)
    if json_path is not None:
        write_json(json_path, report.to_json())
        click.echo(f"wrote {json_path}")
    if chart_path is not None:
        write_text(chart_path, report.chart(_subtitle()))
        click.echo(f"wrote {chart_path}")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


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


_json_option = click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None
)
_chart_option = click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a bar chart here (SVG).",
)


@click.group()
def bench() -> None:
    """Measure fetchpipe against baselines run in the same invocation."""
    raise_nofile_limit()


# --- the scenarios, shared by their own command and by `bench all` ----------------------------

# Each scenario imports its modules when it runs (lazy: start-up time): `fetchpipe bench --help`
# loads none of them, nor the engine.


def seed_scenario(
    scale: float, rounds: int, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import seed
    from fetchpipe.bench.fleet import running_fleet

    with running_fleet(scale) as fleet:
        report = seed.measure(fleet, rounds)
    _emit(report, json_path, chart_path)
    return report.clean


def throughput_scenario(
    requests_: int,
    concurrency: int,
    rounds: int,
    extras: str | None,
    json_path: Path | None,
    chart_path: Path | None,
    transports: str | None = None,
) -> bool:
    from fetchpipe._fetcher import run
    from fetchpipe.bench import server
    from fetchpipe.bench import throughput as scenario

    names = None if extras is None else _names(extras)
    chosen = None if transports is None else _names(transports)
    try:
        scenario.available_clients(names)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--extras") from None
    try:
        scenario.available_clients([], chosen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--transport") from None
    with server.running_server() as base_url:
        report = run(scenario.measure(base_url, requests_, concurrency, rounds, names, chosen))
    _emit(report, json_path, chart_path)
    return report.clean


def latency_scenario(
    requests_: int,
    concurrency: int,
    delay_ms: int,
    rounds: int,
    json_path: Path | None,
    chart_path: Path | None,
    transport: str = "aiohttp",
) -> bool:
    from fetchpipe._fetcher import run
    from fetchpipe.bench import latency as scenario
    from fetchpipe.bench import server

    with server.running_server() as base_url:
        report = run(
            scenario.measure(base_url, requests_, concurrency, delay_ms, rounds, transport)
        )
    _emit(report, json_path, chart_path)
    return report.clean


def memory_scenario(
    sizes: list[int],
    concurrency: int,
    ceiling_mb: float,
    json_path: Path | None,
    chart_path: Path | None,
) -> bool:
    from fetchpipe.bench import memory as scenario
    from fetchpipe.bench import server

    with server.running_server() as base_url:
        report = scenario.measure_sizes(base_url, sizes, concurrency, ceiling_mb)
    _emit(report, json_path, chart_path)
    return report.clean


def faults_scenario(
    requests_: int, retry_after: int, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import faults as scenario
    from fetchpipe.bench.fleet import running_fleet

    with running_fleet(0.1) as fleet:
        report = scenario.measure(fleet, requests_, retry_after)
    _emit(report, json_path, chart_path)
    return True  # failures are what this scenario counts


def toxic_faults_scenario(
    requests_: int, retry_after: int, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import faults as scenario

    with scenario.running_toxics() as server:
        report = scenario.measure_toxics(server, requests_, retry_after)
    _emit(report, json_path, chart_path)
    return True  # failures are what this scenario counts


def dead_api_scenario(dead: int, json_path: Path | None, chart_path: Path | None) -> bool:
    from fetchpipe.bench import failing_apis as scenario
    from fetchpipe.bench.fleet import running_fleet

    with running_fleet(0.1) as fleet:
        report = scenario.measure_dead(fleet, dead, max(1, dead // 10))
    _emit(report, json_path, chart_path)
    return True  # failures are what this scenario counts


def flaky_api_scenario(
    requests_: int, retry_after: int, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import failing_apis as scenario
    from fetchpipe.bench.faults import running_toxics

    with running_toxics(hosts=1) as server:
        report = scenario.measure_flaky(server, requests_, retry_after)
    _emit(report, json_path, chart_path)
    return True  # failures are what this scenario counts


def pipeline_scenario(
    pages: int,
    records: int,
    delay_ms: int,
    clients: list[str],
    rounds: int,
    timeout: float,
    json_path: Path | None,
    chart_path: Path | None,
) -> bool:
    from fetchpipe.bench import pipeline as scenario
    from fetchpipe.bench.pages_server import running_pages_server

    with running_pages_server(pages, records, delay_ms) as base_url:
        report = scenario.measure(base_url, pages, records, delay_ms, clients, rounds, timeout)
    _emit(report, json_path, chart_path)
    return report.clean


def startup_scenario(
    runs: int, scale: float | None, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import startup as scenario

    try:
        report = scenario.measure(runs, scale)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _emit(report, json_path, chart_path)
    return report.clean


def _finish(clean: bool) -> None:
    if not clean:
        click.echo("some requests failed: the figures are not comparable", err=True)
        sys.exit(1)


# --- the commands -----------------------------------------------------------------------------

_scale_option = click.option(
    "--scale",
    default=0.1,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds that stand for one minute of the seed's API latencies.",
)


@bench.command("seed")
@_scale_option
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Fresh runs per method; the table shows the median.",
)
@_json_option
@_chart_option
def seed_command(
    scale: float, rounds: int, json_path: Path | None, chart_path: Path | None
) -> None:
    """The seed's table: 50 APIs one by one, threads, gather, fetchpipe, fetchpipe+cache."""
    _finish(seed_scenario(scale, rounds, json_path, chart_path))


@bench.command("startup")
@click.option(
    "--runs",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Runs per command after one warm-up, the commands taking turns; the table shows the "
    "median.",
)
@_scale_option
@click.option(
    "--seed/--no-seed",
    default=True,
    show_default=True,
    help="Also time the seed's 50 APIs: `fetchpipe fetch` against the seed's gather script.",
)
@_json_option
@_chart_option
def startup_command(
    runs: int, scale: float, seed: bool, json_path: Path | None, chart_path: Path | None
) -> None:
    """Whole processes: --version and fetch --help vs importing aiohttp, orjson, uvloop.

    Each command is a process of its own, timed from spawn to exit: the baseline python -c
    "import aiohttp, orjson, uvloop", fetchpipe --version and fetchpipe fetch --help (target:
    baseline + 0.05 s); then the seed's 50 APIs (one minute = --scale seconds) fetched by the
    seed's gather script and by fetchpipe fetch --out run.jsonl (target: 1.05x the script).
    """
    _finish(startup_scenario(runs, scale if seed else None, json_path, chart_path))


@bench.command()
@click.option(
    "--requests", "requests_", default=20_000, show_default=True, help="Requests per run."
)
@click.option("--concurrency", default=100, show_default=True)
@click.option("--rounds", default=9, show_default=True, help="Rounds per client, order rotating.")
@click.option(
    "--transport",
    "transports",
    default=",".join(TRANSPORTS),
    show_default=True,
    help="Comma-separated fetchpipe transports to run beside the raw loop.",
)
@click.option(
    "--extras",
    default=None,
    help="Comma-separated clients to add: aiometer, httpx ('' for none).  "
    "[default: every installed one]",
)
@_json_option
@_chart_option
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
    _finish(
        throughput_scenario(
            requests_, concurrency, rounds, extras, json_path, chart_path, transports
        )
    )


@bench.command()
@click.option("--requests", "requests_", default=10_000, show_default=True)
@click.option("--concurrency", default=1_000, show_default=True)
@click.option("--delay-ms", default=100, show_default=True, help="Server wait per request.")
@click.option("--rounds", default=3, show_default=True, help="Alternating rounds per client.")
@click.option(
    "--transport",
    type=click.Choice(TRANSPORTS),
    default="aiohttp",
    show_default=True,
    help="fetchpipe's transport (fast: pyreqwest).",
)
@_json_option
@_chart_option
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
    _finish(
        latency_scenario(requests_, concurrency, delay_ms, rounds, json_path, chart_path, transport)
    )


@bench.command()
@click.option("--urls", type=click.IntRange(min=1), default=None, help="One size only.")
@click.option(
    "--sizes", default="10000,100000,1000000", show_default=True, help="URL counts to measure."
)
@click.option("--concurrency", default=100, show_default=True)
@click.option(
    "--ceiling-mb",
    default=1500.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Stop the naive gather when its RSS passes this.",
)
@_json_option
@_chart_option
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
    _finish(memory_scenario(chosen, concurrency, ceiling_mb, json_path, chart_path))


@bench.command()
@click.option(
    "--requests",
    "requests_",
    default=None,
    type=click.IntRange(min=1),
    show_default="1000; 10000 with --toxics, 160 with --flaky-api",
)
@click.option(
    "--retry-after",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seconds in the 429 answers' Retry-After.",
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
@_json_option
@_chart_option
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


@bench.command("pipeline")
@click.option("--pages", default=100, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--records",
    default=1_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Records per page.",
)
@click.option(
    "--delay-ms",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Server wait per page.",
)
@click.option(
    "--clients",
    default="fetchpipe,floor,dlt",
    show_default=True,
    help="Comma-separated clients to run (dlt only when installed).",
)
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Runs per client, order alternating; the table shows medians.",
)
@click.option(
    "--timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds before a client's process is killed.",
)
@_json_option
@_chart_option
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


@bench.command("all")
@click.option(
    "--out-dir",
    default="bench-results",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@_scale_option
@click.option("--throughput-requests", default=5_000, show_default=True)
@click.option("--rounds", default=3, show_default=True, help="Throughput and latency rounds.")
@click.option("--latency-requests", default=10_000, show_default=True)
@click.option("--memory-sizes", default="10000,100000,300000", show_default=True)
@click.option("--ceiling-mb", default=1500.0, show_default=True, type=click.FloatRange(min=1))
@click.option("--faults-requests", default=1_000, show_default=True)
@click.option(
    "--only",
    default=",".join(SCENARIOS),
    show_default=True,
    help="Comma-separated scenarios to run.",
)
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
    _finish(clean)


@bench.command("cache")
@click.option("--urls", default=1_000, show_default=True, type=click.IntRange(min=1))
@click.option("--concurrency", default=200, show_default=True, type=click.IntRange(min=1))
@_json_option
def cache_command(urls: int, concurrency: int, json_path: Path | None) -> None:
    """Warm re-read of N cached URLs: fetchpipe beside aiohttp-client-cache (when installed)."""
    from fetchpipe._fetcher import run
    from fetchpipe.bench import cache as scenario

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
