"""The scenarios of ``fetchpipe bench``, each shared by its own command and by ``bench all``:
start the servers it needs, measure, print and write the report; ``True`` when its figures are
comparable.

Each scenario imports its modules when it runs (lazy: start-up time): ``fetchpipe bench --help``
loads none of them, nor the engine.
"""

from __future__ import annotations

from pathlib import Path

import click

from fetchpipe._exceptions import ConfigError
from fetchpipe.bench.cli.output import emit
from fetchpipe.cli.options import comma_separated

SCENARIOS = ("seed", "throughput", "latency", "memory", "faults")
"""The scenarios of ``bench all``, in the order it runs them."""


def seed_scenario(
    scale: float, rounds: int, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import seed
    from fetchpipe.bench.fleet import running_fleet

    with running_fleet(scale) as fleet:
        report = seed.measure(fleet, rounds)
    emit(report, json_path, chart_path)
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
    from fetchpipe.bench import server
    from fetchpipe.bench import throughput as scenario
    from fetchpipe.engine.fetcher import run

    names = None if extras is None else comma_separated([extras])
    chosen = None if transports is None else comma_separated([transports])
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
    emit(report, json_path, chart_path)
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
    from fetchpipe.bench import latency as scenario
    from fetchpipe.bench import server
    from fetchpipe.engine.fetcher import run

    with server.running_server() as base_url:
        report = run(
            scenario.measure(base_url, requests_, concurrency, delay_ms, rounds, transport)
        )
    emit(report, json_path, chart_path)
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
    emit(report, json_path, chart_path)
    return report.clean


def readahead_scenario(
    hosts: int,
    per_host: int,
    per_host_concurrency: int,
    concurrency: int,
    delay_ms: int,
    rounds: int,
    memory_urls: int,
    json_path: Path | None,
    chart_path: Path | None,
) -> bool:
    from fetchpipe.bench import readahead as scenario
    from fetchpipe.bench import server

    with server.running_servers(hosts) as base_urls:
        report = scenario.measure(
            base_urls, per_host, per_host_concurrency, concurrency, delay_ms, rounds, memory_urls
        )
    emit(report, json_path, chart_path)
    return report.clean


def faults_scenario(
    requests_: int, retry_after: int, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import faults as scenario
    from fetchpipe.bench.fleet import running_fleet

    with running_fleet(0.1) as fleet:
        report = scenario.measure(fleet, requests_, retry_after)
    emit(report, json_path, chart_path)
    return True  # failures are what this scenario counts


def toxic_faults_scenario(
    requests_: int, retry_after: int, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import faults as scenario

    with scenario.running_toxics() as server:
        report = scenario.measure_toxics(server, requests_, retry_after)
    emit(report, json_path, chart_path)
    return True  # failures are what this scenario counts


def dead_api_scenario(dead: int, json_path: Path | None, chart_path: Path | None) -> bool:
    from fetchpipe.bench import failing_apis as scenario
    from fetchpipe.bench.fleet import running_fleet

    with running_fleet(0.1) as fleet:
        report = scenario.measure_dead(fleet, dead, max(1, dead // 10))
    emit(report, json_path, chart_path)
    return True  # failures are what this scenario counts


def flaky_api_scenario(
    requests_: int, retry_after: int, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import failing_apis as scenario
    from fetchpipe.bench.faults import running_toxics

    with running_toxics(hosts=1) as server:
        report = scenario.measure_flaky(server, requests_, retry_after)
    emit(report, json_path, chart_path)
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
    emit(report, json_path, chart_path)
    return report.clean


def startup_scenario(
    runs: int, scale: float | None, json_path: Path | None, chart_path: Path | None
) -> bool:
    from fetchpipe.bench import startup as scenario

    try:
        report = scenario.measure(runs, scale)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    emit(report, json_path, chart_path)
    return report.clean


def politeness_scenario(
    published: int,
    limit: int,
    window: int,
    silent: int,
    rate: float,
    concurrency: int,
    clients: str,
    settle: float,
    json_path: Path | None,
    chart_path: Path | None,
    tokens: int = 0,
) -> bool:
    from fetchpipe.bench import politeness as scenario
    from fetchpipe.bench import politeness_tokens
    from fetchpipe.bench.fleet import running_fleet

    names = comma_separated([clients])
    unknown = sorted(set(names) - set(scenario.CLIENTS))
    if unknown or not names:
        raise click.BadParameter(
            f"unknown client(s): {', '.join(unknown) or '(none given)'}. HINT: choose among "
            f"{', '.join(scenario.CLIENTS)}",
            param_hint="--clients",
        )
    chosen = scenario.available(names)
    published_api, silent_api = scenario.apis(published, limit, window, silent, rate, concurrency)
    with running_fleet(0.01, hosts=3) as fleet:
        report = scenario.PolitenessReport(
            scenario.measure(fleet, published_api, chosen, settle),
            scenario.measure(fleet, silent_api, chosen, settle),
        )
        if tokens:
            report.tokens = politeness_tokens.measure(fleet, tokens, limit, window)
    emit(report, json_path, chart_path)
    return True  # 429s and failures are what this scenario counts


def scale_scenario(
    requests_: int,
    hosts: int,
    delay_ms: int,
    per_host: int,
    workers: int,
    json_path: Path | None,
    chart_path: Path | None,
) -> bool:
    from fetchpipe.bench import scale as scenario
    from fetchpipe.bench.scale_server import running_scale_server
    from fetchpipe.distributed.executor import INSTALL_HINT, dask_installed

    if not dask_installed():
        raise click.UsageError(f"bench scale runs a Dask LocalCluster. HINT: {INSTALL_HINT}")
    workload = scenario.Workload(requests_, hosts, delay_ms, per_host, workers)
    with running_scale_server(hosts) as port:
        report = scenario.measure(workload, port)
    emit(report, json_path, chart_path)
    return report.clean and report.limits_held
