"""``fetchpipe bench ...``: each scenario prints its table and ratios, and writes its report as
JSON (``--json``) and a bar chart as SVG (``--chart``) when asked. ``bench all`` runs every
scenario in turn and writes both files of each into ``--out-dir``.

The command line reaches this group by name (``fetchpipe.bench.cli:bench``), so the library never
imports the benchmarks. Here: the group; the commands are in :mod:`.commands`, the scenarios they
run in :mod:`.scenarios`, what they print and write in :mod:`.output`.
"""

from __future__ import annotations

import os

import click

from fetchpipe.bench.cli.commands import (
    all_command,
    cache_command,
    faults,
    latency,
    memory,
    pipeline_command,
    politeness_command,
    readahead,
    scale_command,
    seed_command,
    startup_command,
    throughput,
)
from fetchpipe.bench.cli.many_sources import many_sources_command
from fetchpipe.bench.cli.report import report_command
from fetchpipe.bench.cli.scale_pipeline import scale_pipeline_command
from fetchpipe.bench.report import raise_nofile_limit


@click.group()
def bench() -> None:
    """Measure fetchpipe against baselines run in the same invocation."""
    raise_nofile_limit()
    go_direct()


def go_direct() -> None:
    """Every client of a benchmark reaches its servers directly, whatever proxy the shell
    names: they all run on this machine, and a proxy in between would measure the proxy (and
    fail where it cannot reach 127.0.0.x). ``NO_PROXY=*`` is read alike by fetchpipe,
    requests, httpx and aiohttp, and the child processes inherit it."""
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "*"


for _command in (
    seed_command,
    startup_command,
    throughput,
    latency,
    memory,
    readahead,
    faults,
    pipeline_command,
    politeness_command,
    report_command,
    all_command,
    cache_command,
    scale_command,
    scale_pipeline_command,
    many_sources_command,
):
    bench.add_command(_command)
