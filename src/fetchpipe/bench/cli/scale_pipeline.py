"""``fetchpipe bench scale-pipeline``: a paginated pipeline over many hosts, in one process and
with its requests sent from a Dask LocalCluster (:mod:`fetchpipe.bench.scale_pipeline`)."""

from __future__ import annotations

from pathlib import Path

import click

from fetchpipe.bench.cli.output import chart_option, emit, finish, json_option
from fetchpipe.cli.options import whole_number


@click.command("scale-pipeline")
@whole_number("--hosts", minimum=1, default=50, help="Loopback hosts of the server.")
@whole_number("--sources", minimum=1, default=2, help="Paginated sources per host.")
@whole_number("--pages", minimum=1, default=20, help="Pages per source, one after the other.")
@whole_number("--delay-ms", minimum=0, default=50, help="Server wait per request.")
@whole_number("--per-host", minimum=1, default=2, help="Requests in flight per host at most.")
@whole_number("--workers", minimum=1, default=2, help="Worker processes of the LocalCluster.")
@json_option
@chart_option
def scale_pipeline_command(
    hosts: int,
    sources: int,
    pages: int,
    delay_ms: int,
    per_host: int,
    workers: int,
    json_path: Path | None,
    chart_path: Path | None,
) -> None:
    """A paginated pipeline over many hosts in one process, then with its requests sent from a
    Dask LocalCluster (fetchpipe[dask]): time, the most in flight per host at the server, the
    tables of both runs, the cluster run over the local one."""
    from fetchpipe.bench import scale_pipeline as scenario
    from fetchpipe.bench.scale_server import running_scale_server
    from fetchpipe.distributed.executor import INSTALL_HINT, dask_installed

    if not dask_installed():
        raise click.UsageError(
            f"bench scale-pipeline runs a Dask LocalCluster. HINT: {INSTALL_HINT}"
        )
    workload = scenario.Workload(hosts, sources, pages, delay_ms, per_host, workers)
    with running_scale_server(hosts) as port:
        report = scenario.measure(workload, port)
    emit(report, json_path, chart_path)
    finish(report.clean and report.limits_held)
