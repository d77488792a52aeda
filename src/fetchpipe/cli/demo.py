"""``fetchpipe demo``: the simulated fleet's 50 APIs fetched at once, beside the slowest one.

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

from pathlib import Path

import click

from fetchpipe._config import Limits, Timeouts
from fetchpipe._models import Request
from fetchpipe.cli.fetching import Settings, fetch_into, opened, sink_for
from fetchpipe.cli.options import minute_option, report_option
from fetchpipe.engine.retry import RetryPolicy


@click.command()
@click.option("--out", "-o", default="demo.duckdb", show_default=True, help="A .duckdb or .jsonl.")
@minute_option()
@report_option("the waterfall shows every API finishing with the slowest.")
def demo(out: str, minute: float, report_path: str | None) -> None:
    """Fetch 50 simulated APIs at once; compare with the slowest.

    Starts the simulated fleet, fetches its 50 APIs into --out as `fetch` would, prints the
    summary and then the slowest API's latency next to the time for all of them.
    """
    from fetchpipe.sim import Fleet

    # The fleet is on this machine: directly, whatever proxy the environment names.
    settings = Settings(Limits(), RetryPolicy(), Timeouts(), {}, proxy=None)
    sink = opened(sink_for(out))
    try:
        with Fleet(minute=minute).running_in_thread() as fleet:
            requests = [Request(url, key=n) for n, url in enumerate(fleet.api_urls)]
            configured = max(fleet.latencies) * minute
            summary = fetch_into(requests, len(requests), sink, settings, out, report_path)
    finally:
        sink.close()
    measured = summary.max_latency or 0.0
    wall = summary.wall_time or 0.0
    click.echo(
        f"slowest API {measured:.3f} s (configured {configured:.3f} s) | "
        f"all {summary.total} APIs {wall:.3f} s "
        f"({_overhead(wall, measured)} vs slowest, {_overhead(wall, configured)} vs configured)"
    )
    if report_path is not None:
        click.echo(f"report: {Path(report_path).resolve().as_uri()}")
    if summary.failed:
        raise click.exceptions.Exit(1)


def _overhead(total: float, base: float) -> str:
    if base <= 0:
        return "n/a"
    return f"{(total / base - 1) * 100:+.1f}%"
