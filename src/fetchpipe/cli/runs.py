"""``fetchpipe runs PIPELINE|DESTINATION``: the run history kept in a destination.

Lists the latest runs, the latest first: id, start, duration, status, rows per source, and the
counts of their request log (requests, retries, cache hits, failures). PIPELINE is a pipeline
file (its runs in its destination); DESTINATION is a DuckDB file (a pipeline's, or ``fetch
--out x.duckdb``'s), a destination URL (``duckdb:///x.duckdb``, ``jsonl:///DIR``) or a
directory of a file destination. Nothing is sent and nothing is changed: the database is opened
read-only.

Exit codes: 0 listed (none, when the destination has none yet); 1 the database cannot be
opened (a run holds it); 2 no such file, or a pipeline file that cannot be read.

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import click

from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.options import json_flag, whole_number
from fetchpipe.cli.pipeline import _load as load_pipeline

if TYPE_CHECKING:
    from fetchpipe._config import Limits
    from fetchpipe.destinations.run_log import RunSummary

PIPELINE_SUFFIXES = (".yaml", ".yml", ".toml")
_SHOWN_STATUS = {"running": "unfinished"}
"""A run whose row says ``running`` is going on, or was interrupted: resumed by the next run."""


@click.command("runs")
@click.argument("target", metavar="PIPELINE|DESTINATION")
@whole_number("--limit", minimum=1, default=20, help="List the latest N runs.")
@json_flag
def runs_command(target: str, limit: int, as_json: bool) -> None:
    """List the runs kept in PIPELINE's destination, or in DESTINATION, the latest first.

    For each run: its id, start, duration, status, rows per source, and its requests, retries,
    cache hits and failures (from the request log, _fetchpipe_requests). Nothing is sent.
    """
    database, pipeline, redact, _ = database_of(target)
    runs = _read(database, pipeline, limit) if database.exists() else []
    if as_json:
        out = {
            "database": str(database),
            "pipeline": pipeline,
            "runs": [run.as_dict() for run in runs],
        }
        click.echo(redact(json.dumps(out, indent=2, default=str)))
        return
    if not runs:
        of = f" of pipeline {pipeline}" if pipeline is not None else ""
        click.echo(f"no runs{of} in {database}")
        return
    click.echo(redact("\n".join(_lines(runs, database))))


class Kept(NamedTuple):
    """Where the runs of a ``PIPELINE|DESTINATION`` argument are kept."""

    database: Path
    pipeline: str | None
    """The pipeline whose runs to show; None: every run in the database."""
    redact: Callable[[str], str]
    """The redaction of what is shown (the pipeline's secrets, credentials in URLs)."""
    limits: Limits | None
    """The pipeline's limits (None for a destination: they are not kept in it)."""


def database_of(target: str) -> Kept:
    """Where the runs of ``target`` (a pipeline file, a destination URL, a DuckDB file or a
    file destination's directory) are kept; exit 2 for a missing or unreadable file."""
    from fetchpipe._redact import redact_text

    path = Path(target)
    if target.lower().endswith(PIPELINE_SUFFIXES):
        if not path.is_file():
            raise BadUsage(f"no pipeline file {target!r}. HINT: give a YAML or TOML pipeline file")
        from fetchpipe.destinations.pipelines.factory import destination_for
        from fetchpipe.pipeline.spec.errors import NeedsEnvironment

        try:  # the secrets are not needed: nothing is sent
            spec = load_pipeline(target, skip_env=True)
        except NeedsEnvironment as exc:
            raise BadUsage(
                f"{exc}\n{target}: the destination needs these values: set the variables",
                plain=True,
            ) from None
        unset = [p for p in spec.unchecked if p.path[:1] in (("name",), ("destination",))]
        if unset:
            text = "\n".join(p.render(target) for p in unset)
            raise BadUsage(
                f"{text}\n{target}: the destination needs these values: set the variables",
                plain=True,
            )
        destination = spec.target
        database = destination_for(destination.kind, destination.path).database
        return Kept(database, spec.name, spec.redact, spec.limits())
    if "://" in target:
        from fetchpipe.pipeline.spec.destination import parse_destination

        try:
            url = parse_destination(target)
        except ValueError as exc:
            raise BadUsage(str(exc)) from None
        path = Path(url.path)
        if url.kind != "duckdb":
            path = path / _FILE_DATABASE
        return Kept(path, None, redact_text, None)  # as a pipeline names it: may have no runs yet
    if path.is_dir():
        return Kept(path / _FILE_DATABASE, None, redact_text, None)
    if not path.is_file():
        raise BadUsage(
            f"no such file {str(path)!r}. HINT: give a pipeline file, a DuckDB file (a "
            "pipeline's destination, or fetch --out x.duckdb), or a destination directory"
        )
    return Kept(path, None, redact_text, None)


_FILE_DATABASE = "_fetchpipe.duckdb"
"""Where a JSONL or Parquet destination keeps its runs (as ``destinations.pipelines.files``)."""


def _read(database: Path, pipeline: str | None, limit: int) -> list[RunSummary]:
    """The runs in ``database``, opened read-only; exit 1 when it cannot be opened."""
    import duckdb

    from fetchpipe.destinations.run_log import read_runs

    try:
        connection = duckdb.connect(str(database), read_only=True)
    except duckdb.Error as exc:
        raise click.ClickException(
            f"cannot open {str(database)!r}: {exc}. HINT: a run holds the file while it goes "
            "on; list the runs once it has ended"
        ) from None
    try:
        return read_runs(connection, pipeline, limit)
    except duckdb.Error as exc:
        raise click.ClickException(f"cannot read the runs in {str(database)!r}: {exc}") from None
    finally:
        connection.close()


def _lines(runs: list[RunSummary], database: Path) -> list[str]:
    """Three lines per run: what it was, its requests, its rows per source."""
    lines = [f"runs in {database}, the latest first"]
    for run in runs:
        started = "-"
        if run.started_at is not None:
            started = f"{run.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        seconds = "" if run.seconds is None else f", {run.seconds:.2f} s"
        status = _SHOWN_STATUS.get(run.status, run.status)
        lines.append(f"{run.run_id}  {run.pipeline}  {status}  {started}{seconds}")
        lines.append(
            f"  {run.requests:,} requests, {run.retries:,} retries, {run.cache_hits:,} cache "
            f"hits, {run.failures:,} failed"
        )
        rows = [
            f"{name} {values['rows']:,}"
            + ("" if values.get("status") in ("done", None) else f" ({values['status']})")
            for name, values in run.sources.items()
            if values.get("rows") is not None
        ]
        if rows:
            lines.append(f"  rows: {', '.join(rows)}")
    return lines
