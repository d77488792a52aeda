"""What every ``fetchpipe bench`` command prints and writes: the report's table, its JSON
(``--json``) and bar chart (``--chart``), and exit 1 when the figures are not comparable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

import click

from fetchpipe.bench.report import machine, write_json, write_text
from fetchpipe.cli.options import minute_option


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


def emit(report: Report, json_path: Path | None, chart_path: Path | None) -> None:
    """Print ``report``'s table; write its JSON and its chart where asked."""
    for line in report.lines():
        click.echo(line)
    if json_path is not None:
        write_json(json_path, report.to_json())
        click.echo(f"wrote {json_path}")
    if chart_path is not None:
        write_text(chart_path, report.chart(_subtitle()))
        click.echo(f"wrote {chart_path}")


def finish(clean: bool) -> None:
    """Exit 1 (after saying why) unless every request of the scenario succeeded."""
    if not clean:
        click.echo("some requests failed: the figures are not comparable", err=True)
        sys.exit(1)


json_option = click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None
)
chart_option = click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a bar chart here (SVG).",
)
scale_option = minute_option("--scale", minimum=0.001)
