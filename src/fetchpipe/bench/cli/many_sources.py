"""``fetchpipe bench many-sources``: a local pipeline of many small paginated sources into JSONL
and DuckDB, beside the engine alone on the same pages (:mod:`fetchpipe.bench.many_sources`)."""

from __future__ import annotations

from pathlib import Path

import click

from fetchpipe.bench.cli.output import chart_option, emit, finish, json_option
from fetchpipe.cli.options import whole_number


@click.command("many-sources")
@whole_number("--hosts", minimum=1, default=50, help="Loopback hosts of the server.")
@whole_number("--sources", minimum=1, default=2, help="Paginated sources per host.")
@whole_number("--pages", minimum=1, default=20, help="Pages per source, one after the other.")
@whole_number("--delay-ms", minimum=0, default=50, help="Server wait per request.")
@whole_number("--per-host", minimum=1, default=2, help="Requests in flight per host at most.")
@whole_number(
    "--rounds", minimum=1, default=1, help="Runs of each, taking turns; the table shows the median."
)
@json_option
@chart_option
def many_sources_command(
    hosts: int,
    sources: int,
    pages: int,
    delay_ms: int,
    per_host: int,
    rounds: int,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """Many small paginated sources in one process: the engine alone, then the pipeline into
    JSONL and into DuckDB; each time over the floor and over the engine's."""
    from fetchpipe.bench import many_sources as scenario
    from fetchpipe.bench.scale_server import running_scale_server

    workload = scenario.workload(hosts, sources, pages, delay_ms, per_host)
    with running_scale_server(hosts) as port:
        report = scenario.measure(workload, port, rounds)
    emit(report, json_path, chart_path)
    finish(report.clean)
