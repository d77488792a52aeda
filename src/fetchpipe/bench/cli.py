"""`fetchpipe bench ...` commands."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

import click

from fetchpipe._fetcher import run


def _write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    payload = {**payload, "machine": _machine()}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    click.echo(f"wrote {path}")


def _machine() -> dict[str, Any]:
    import os

    import aiohttp

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "aiohttp": aiohttp.__version__,
    }


@click.group()
def bench() -> None:
    """Measure fetchpipe against a baseline in the same run."""


@bench.command()
@click.option(
    "--requests", "requests_", default=20_000, show_default=True, help="Requests per run."
)
@click.option("--concurrency", default=100, show_default=True)
@click.option("--rounds", default=9, show_default=True, help="Alternating rounds per client.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def throughput(requests_: int, concurrency: int, rounds: int, json_path: Path | None) -> None:
    """fetchpipe vs a raw aiohttp + Semaphore loop on one local server."""
    from fetchpipe.bench import server
    from fetchpipe.bench import throughput as scenario

    with server.running_server() as base_url:
        report = run(scenario.measure(base_url, requests_, concurrency, rounds))
    click.echo(
        f"throughput: {report.requests} small JSON responses, concurrency {report.concurrency}, "
        f"event loop {report.loop}, server in its own process, {rounds} alternating rounds"
    )
    for index, round_ in enumerate(report.rounds, 1):
        cells = "  ".join(
            f"{name} {r.rate:8.0f} req/s ({r.cpu_seconds / r.requests * 1e6:5.0f} µs CPU/req, "
            f"{r.ok} ok)"
            for name, r in round_.items()
        )
        click.echo(f"  round {index}: {cells}")
    raw = report.median_rate("raw_aiohttp")
    fast = report.median_rate("fetchpipe")
    click.echo(f"median: raw aiohttp+Semaphore {raw:.0f} req/s | fetchpipe {fast:.0f} req/s")
    wins = sum(r["fetchpipe"].rate > r["raw_aiohttp"].rate for r in report.rounds)
    click.echo(
        f"ratio fetchpipe / raw: {report.ratio:.2f} (fetchpipe faster in {wins} of "
        f"{len(report.rounds)} rounds)"
    )
    _write_json(json_path, report.to_json())
    if any(r.ok != r.requests for round_ in report.rounds for r in round_.values()):
        click.echo("some requests failed: the figures are not comparable", err=True)
        sys.exit(1)


@bench.command()
@click.option("--urls", default=1_000_000, show_default=True, help="URLs streamed through.")
@click.option("--concurrency", default=100, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def memory(urls: int, concurrency: int, json_path: Path | None) -> None:
    """Peak RSS of fetchpipe streaming N URLs (measured in its own process)."""
    from fetchpipe.bench import memory as scenario
    from fetchpipe.bench import server

    with server.running_server() as base_url:
        result = scenario.measure(base_url, urls, concurrency)
    click.echo(
        f"memory: {result.urls} URLs at concurrency {concurrency}: {result.ok} ok in "
        f"{result.seconds:.1f} s ({result.urls / result.seconds:.0f} req/s); "
        f"peak RSS {result.peak_rss_mb:.1f} MB"
    )
    _write_json(json_path, result.to_json())
