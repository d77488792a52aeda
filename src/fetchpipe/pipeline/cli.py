"""``fetchpipe validate``, ``fetchpipe plan`` and ``fetchpipe schema``: nothing is sent.

Exit codes: 0 valid; 2 an invalid pipeline file, every problem printed as
``file:line: field.path: message``.
"""

from __future__ import annotations

import json

import click

from fetchpipe.pipeline.config import Pipeline
from fetchpipe.pipeline.errors import PipelineError
from fetchpipe.pipeline.plan import build_plan, render

_pipeline_argument = click.argument(
    "pipeline_file", metavar="PIPELINE", type=click.Path(dir_okay=False, allow_dash=False)
)


class InvalidPipeline(click.ClickException):
    """An invalid pipeline file: exit 2, nothing sent."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(self.format_message(), err=True)


def _load(path: str) -> Pipeline:
    try:
        return Pipeline.from_file(path)
    except PipelineError as exc:
        count = len(exc.problems)
        noun = "problem" if count == 1 else "problems"
        raise InvalidPipeline(f"{exc}\n{path}: {count} {noun}; nothing was sent") from None


@click.command()
@_pipeline_argument
def validate(pipeline_file: str) -> None:
    """Check PIPELINE (YAML or TOML) without sending any request."""
    pipeline = _load(pipeline_file)
    names = ", ".join(s.name for s in pipeline.ordered_sources())
    count = len(pipeline.sources)
    click.echo(
        f"{pipeline_file}: ok: pipeline {pipeline.name}, {count} "
        f"source{'' if count == 1 else 's'} ({names}) -> {pipeline.target}"
    )


@click.command()
@_pipeline_argument
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@click.option(
    "--pages",
    type=click.IntRange(min=1),
    default=None,
    help="Assume this many pages per paginated source run.  [default: unknown]",
)
@click.option(
    "--records-per-page",
    type=click.IntRange(min=0),
    default=None,
    help="Assume this many records per page where the file does not say.  [default: unknown]",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Assume this response time, to bound the time by the concurrency limits.",
)
def plan(
    pipeline_file: str,
    as_json: bool,
    pages: int | None,
    records_per_page: int | None,
    latency: float | None,
) -> None:
    """Show what PIPELINE would request and at least how long it takes; sends nothing.

    Sources are listed parents first. Pages of paginated sources (and so the requests of their
    children) are unknown until fetched unless assumed with --pages and --records-per-page.
    Header values and secrets are never shown.
    """
    pipeline = _load(pipeline_file)
    result = build_plan(pipeline, pages=pages, records_per_page=records_per_page, latency=latency)
    text = json.dumps(result.as_dict(), indent=2) if as_json else render(result)
    click.echo(pipeline.redact(text))


@click.command()
def schema() -> None:
    """Print the JSON Schema of pipeline files (for editors)."""
    click.echo(json.dumps(Pipeline.json_schema(), indent=2))
