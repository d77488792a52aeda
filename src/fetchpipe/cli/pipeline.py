"""``fetchpipe validate``, ``plan`` and ``schema`` (nothing is sent) and ``fetchpipe run``.

Exit codes: 0 valid; 2 an invalid pipeline file, every problem printed as
``file:line: field.path: message``. ``--skip-env`` (validate, plan) checks a file whose
``${VAR}`` variables are not set, as in CI without the secrets: without it an unset variable is
a problem like any other.

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from fetchpipe._exceptions import ConfigError, ExecutorError
from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.executor_options import executor_options
from fetchpipe.cli.options import (
    comma_separated,
    json_flag,
    log_options,
    metrics_option,
    report_option,
    seconds,
    shard_selector,
    state_dir_option,
    whole_number,
)

if TYPE_CHECKING:  # each command imports what it uses: listing the commands loads no pydantic
    from rich.console import Console

    from fetchpipe.cli.sharded import ScaleOut
    from fetchpipe.pipeline.api import OpenCluster
    from fetchpipe.pipeline.runtime.runner import PipelineRunner
    from fetchpipe.pipeline.spec.config import PipelineSpec
    from fetchpipe.pipeline.spec.errors import PipelineError

_NO_TERMINAL_WIDTH = 10_000
"""The summary table's width limit without a terminal: wider than any table (rich sizes one to
its cells, and would cut them to 80 columns, its default)."""

_pipeline_argument = click.argument(
    "pipeline_file", metavar="PIPELINE", type=click.Path(dir_okay=False, allow_dash=False)
)


def _skip_env_flag(what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option(
        "--skip-env",
        is_flag=True,
        help="Check everything but the environment: an unset ${VAR} is no error, and the "
        f"values that use one are not checked ({what}). For CI without the secrets.",
    )


def _load(path: str, *, skip_env: bool = False) -> PipelineSpec:
    """The pipeline, or BadUsage listing its problems; with ``skip_env``, NeedsEnvironment
    when it cannot be read without the unset variables (the caller says what that means)."""
    from fetchpipe.pipeline.spec.config import PipelineSpec
    from fetchpipe.pipeline.spec.errors import NeedsEnvironment, PipelineError

    try:
        return PipelineSpec.from_file(path, skip_env=skip_env)
    except NeedsEnvironment:
        raise
    except PipelineError as exc:
        raise _invalid(path, exc) from None


def load_without_env(
    path: str, needs: Callable[[tuple[str | int, ...]], bool], why: str
) -> PipelineSpec:
    """The pipeline file at ``path``, read without the variables only its requests need (for a
    command that sends nothing); exit 2 listing the unset values whose field paths ``needs``
    picks (those the command reads), then ``path: why``."""
    from fetchpipe.pipeline.spec.errors import NeedsEnvironment, Problem

    try:
        pipeline = _load(path, skip_env=True)
    except NeedsEnvironment as exc:
        needed: list[Problem] = list(exc.problems)
    else:
        needed = [p for p in pipeline.unchecked if needs(p.path)]
        if not needed:
            return pipeline
    text = "\n".join(p.render(path) for p in needed)
    raise BadUsage(f"{text}\n{path}: {why}", plain=True)


def _invalid(path: str, exc: PipelineError) -> BadUsage:
    """Each problem on its line (``file:line: field.path: message``), then how many."""
    count = len(exc.problems)
    noun = "problem" if count == 1 else "problems"
    return BadUsage(f"{exc}\n{path}: {count} {noun}; nothing was sent", plain=True)


@click.command()
@_pipeline_argument
@_skip_env_flag("they are listed")
def validate(pipeline_file: str, skip_env: bool) -> None:
    """Check PIPELINE (YAML or TOML) without sending any request."""
    from fetchpipe.pipeline.spec.errors import NeedsEnvironment

    try:
        pipeline = _load(pipeline_file, skip_env=skip_env)
    except NeedsEnvironment as exc:
        click.echo(
            f"{pipeline_file}: ok as far as it can be checked without the environment; these "
            f"values, and the checks that need them, were not checked:\n{exc}"
        )
        return
    names = ", ".join(s.name for s in pipeline.ordered_sources())
    count = len(pipeline.sources)
    children = [f"{u.table} (from {s.name}.{u.field})" for s in pipeline.sources for u in s.unnest]
    click.echo(
        f"{pipeline_file}: ok: pipeline {pipeline.name}, {count} "
        f"source{'' if count == 1 else 's'} ({names})"
        + (f", unnest tables {', '.join(children)}" if children else "")
        + f" -> {pipeline.target}"
    )
    for problem in pipeline.unchecked:
        click.echo(problem.render(pipeline_file))


@click.command()
@_pipeline_argument
@json_flag
@whole_number(
    "--pages",
    minimum=1,
    help="Assume this many pages per paginated source run.  [default: unknown]",
)
@whole_number(
    "--records-per-page",
    minimum=0,
    help="Assume this many records per page where the file does not say.  [default: unknown]",
)
@seconds(
    "--latency", help="Assume this response time, to bound the time by the concurrency limits."
)
@_skip_env_flag("they show as unset")
def plan(
    pipeline_file: str,
    as_json: bool,
    pages: int | None,
    records_per_page: int | None,
    latency: float | None,
    skip_env: bool,
) -> None:
    """Show what PIPELINE would request and at least how long it takes; sends nothing.

    Sources are listed parents first. Pages of paginated sources (and so the requests of their
    children) are unknown until fetched unless assumed with --pages and --records-per-page.
    Header values and secrets are never shown. With --skip-env, a value from an unset
    variable shows as unset (https://unset.invalid at the start of a URL): a host's limits
    apply only where its name is written in the file.
    """
    from fetchpipe.pipeline.plan.plan import build_plan, render
    from fetchpipe.pipeline.spec.errors import NeedsEnvironment

    try:
        pipeline = _load(pipeline_file, skip_env=skip_env)
    except NeedsEnvironment as exc:
        raise BadUsage(
            f"{exc}\n{pipeline_file}: the plan needs these values: set the variables; "
            "nothing was sent",
            plain=True,
        ) from None
    for problem in pipeline.unchecked:
        click.echo(problem.render(pipeline_file), err=True)
    result = build_plan(pipeline, pages=pages, records_per_page=records_per_page, latency=latency)
    text = json.dumps(result.as_dict(), indent=2) if as_json else render(result)
    click.echo(pipeline.redact(text))


@click.command()
def schema() -> None:
    """Print the JSON Schema of pipeline files (for editors)."""
    from fetchpipe.pipeline.spec.config import PipelineSpec

    click.echo(json.dumps(PipelineSpec.json_schema(), indent=2))


def _write_outputs(
    pipeline: PipelineSpec, run_id: str, report: str | None, metrics: str | None
) -> None:
    """The HTML report and the metrics of the run ``run_id``, from the destination's request
    log."""
    import duckdb

    from fetchpipe.destinations.pipelines.factory import destination_for
    from fetchpipe.report import NoRun, rates_from, read_database, write_html, write_metrics

    target = pipeline.target
    database = destination_for(target.kind, target.path).database
    path = report if report is not None else metrics
    try:
        data = read_database(database, run_id=run_id, rates=rates_from(pipeline.limits()))
        if report is not None:
            path = report
            written = write_html(report, data, pipeline.redact)
            click.echo(f"report written to {written}", err=True)
        if metrics is not None:
            path = metrics
            click.echo(f"metrics written to {write_metrics(metrics, data)}", err=True)
    except (OSError, NoRun, duckdb.Error) as exc:
        raise click.ClickException(
            f"the run is loaded, but {path} could not be written: {pipeline.redact(str(exc))}"
        ) from None


def _one_shard(
    pipeline: PipelineSpec, file: str, shard: str, select: list[str] | None, stderr: Console
) -> tuple[PipelineSpec, list[str]]:
    """``pipeline`` writing to shard ``shard``'s destination, and the sources it runs there
    (those of ``select`` in the shard; empty: none), said on stderr. BadUsage for a bad
    ``--shard`` or an unknown ``--select`` name."""
    from fetchpipe.pipeline.spec import shards
    from fetchpipe.pipeline.spec.errors import did_you_mean

    selector = shard_selector(shard, "nothing was sent")
    names = [s.name for s in pipeline.sources]
    for name in select or ():
        if name not in names:
            raise BadUsage(
                f"{file}: --select {name!r}: no such source (the sources are "
                f"{', '.join(names)}){did_you_mean(name, names)}; nothing was sent",
                plain=True,
            )
    held = shards.shard_sources(pipeline, selector)
    chosen = held if select is None else [name for name in select if name in held]
    pipeline = shards.for_shard(pipeline, selector)
    which = ", ".join(held) if held else "none"
    stderr.print(
        pipeline.redact(
            f"shard {selector}: {len(held)} of {len(names)} sources ({which}) -> {pipeline.target}"
        ),
        markup=False,
    )
    return pipeline, chosen


def _no_sources(
    pipeline: PipelineSpec, json_path: str | None, outputs: str | None, stderr: Console
) -> None:
    """A shard (or a selection within it) with no source: said, an empty summary, exit 0."""
    from rich.console import Console

    from fetchpipe.pipeline.runtime.report import RunReport, summary_table

    stderr.print(
        "nothing to run in this shard: the sources asked for are in the other shards' runs"
        + (" (no report or metrics written)" if outputs is not None else ""),
        markup=False,
    )
    report = RunReport("(none)", pipeline.name, str(pipeline.target))
    Console(highlight=False, soft_wrap=True, width=_NO_TERMINAL_WIDTH).print(summary_table(report))
    if json_path is not None:
        with open(json_path, "w", encoding="utf-8") as out:
            out.write(json.dumps(report.as_dict(), indent=2, default=str))


@click.command("run")
@_pipeline_argument
@click.option(
    "--select",
    "select",
    multiple=True,
    metavar="NAME",
    help="Run only these sources (repeat, or comma-separated); parents they need are fetched "
    "but not written.",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Ignore stored incremental state and replace the tables of the sources run.",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Drop the unfinished run of this pipeline (interrupted, or kept because a host was "
    "down), if any, and start over (by default it is resumed: committed pages are not fetched "
    "again).",
)
@click.option(
    "--shard",
    "shard",
    default=None,
    metavar="K/N",
    help="Run only the sources of shard K of N (K from 0 to N-1; sources joined by a parent "
    "or sharing a host stay together) into the destination named with .shard-K-of-N: N runs "
    "cover the pipeline exactly once; `fetchpipe merge --pipeline` joins their tables.",
)
@seconds(
    "--commit-every",
    help="How often each source's fetched pages are committed to the destination's journal: "
    "an interrupted run loses at most this much work.",
    default=1.0,
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report as JSON."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@report_option(
    "the waterfall of its requests, figures per source and host, the failures, "
    "the previous run beside it (see `fetchpipe report`)."
)
@metrics_option
@log_options
@state_dir_option
@executor_options
def run_command(
    pipeline_file: str,
    select: tuple[str, ...],
    full_refresh: bool,
    restart: bool,
    shard: str | None,
    commit_every: float,
    json_path: str | None,
    quiet: bool,
    report_path: str | None,
    metrics_path: str | None,
    log_level: str | None,
    log_format: str,
    verbose: int,
    state_dir: str,
    executor: str,
    workers: int | None,
) -> None:
    """Run PIPELINE: fetch its sources and load them into its destination.

    Prints a line per source as it finishes (stderr) and a summary table (stdout). A run that
    was interrupted (the process died or was stopped), or kept unfinished because a source's host
    was down, is resumed with the same options.
    Exit codes: 0 every source ok or unchanged; 1 a source failed (the others were still
    loaded), or the destination is in use by another run; 2 an invalid pipeline file or
    option (nothing sent).

    With --executor dask (or a scheduler's address) the requests are sent from the cluster's
    workers, each host from one of them; the run itself (pages read, journal, writes) stays
    here.
    """
    from rich.console import Console

    from fetchpipe.cli import log_output
    from fetchpipe.cli.sharded import scale_out
    from fetchpipe.destinations.pipelines import LoadError
    from fetchpipe.engine.fetcher import run as run_loop
    from fetchpipe.pipeline.runtime.report import (
        SourceReport,
        failure_lines,
        source_line,
        summary_table,
    )
    from fetchpipe.pipeline.runtime.runner import PipelineRunner
    from fetchpipe.pipeline.spec.errors import PipelineError

    log_output.configure(log_level, log_format, verbose)
    scale = scale_out(executor, workers, None)
    pipeline = _load(pipeline_file)
    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    log_output.attach(stderr)
    live = stderr.is_terminal and not quiet
    for host in sorted(pipeline.defaults.security.insecure_hosts):
        stderr.print(
            f"warning: the TLS certificate of {host} is not verified (defaults.security."
            "insecure_hosts)",
            markup=False,
        )

    def finished(report: SourceReport) -> None:
        if not quiet and not live:
            stderr.print(pipeline.redact(source_line(report)), markup=False)

    chosen = comma_separated(select) or None
    if shard is not None:
        pipeline, chosen = _one_shard(pipeline, pipeline_file, shard, chosen, stderr)
        if not chosen:
            _no_sources(pipeline, json_path, report_path or metrics_path, stderr)
            return
    try:
        runner = PipelineRunner(
            pipeline,
            select=chosen,
            full_refresh=full_refresh,
            restart=restart,
            on_source_done=finished,
            commit_every=commit_every,
            state_dir=state_dir,
        )
    except PipelineError as exc:  # a file it names cannot be used: at its line
        raise _invalid(pipeline_file, exc) from None
    except ConfigError as exc:
        raise BadUsage(f"{pipeline_file}: {exc}; nothing was sent", plain=True) from None
    cluster = _open_cluster(scale, runner, stderr, quiet=quiet)
    try:
        if live:  # a table of the sources on stderr, refreshed while the run goes on
            from rich.live import Live

            with Live(
                get_renderable=lambda: summary_table(runner.report, live=True),
                console=stderr,
                refresh_per_second=4,
                transient=True,
            ):
                report = run_loop(runner.run())
        else:
            report = run_loop(runner.run())
    except LoadError as exc:
        raise click.ClickException(pipeline.redact(str(exc))) from None
    except ConfigError as exc:  # an interrupted run that cannot be resumed as asked
        raise BadUsage(f"{pipeline_file}: {pipeline.redact(str(exc))}", plain=True) from None
    except ExecutorError as exc:
        raise click.ClickException(pipeline.redact(str(exc))) from None
    finally:
        if cluster is not None:
            cluster.close()
    stdout = Console(highlight=False, soft_wrap=True)
    if not stdout.is_terminal:  # a pipe, a file, a CI log: no width to fit, so nothing is cut
        stdout = Console(highlight=False, soft_wrap=True, width=_NO_TERMINAL_WIDTH)
    stdout.print(summary_table(report))
    for line in failure_lines(report):
        stdout.print(pipeline.redact(line), markup=False)
    if json_path is not None:
        with open(json_path, "w", encoding="utf-8") as out:
            out.write(pipeline.redact(json.dumps(report.as_dict(), indent=2, default=str)))
    if report_path is not None or metrics_path is not None:
        _write_outputs(pipeline, report.run_id, report_path, metrics_path)
    if not report.ok:
        raise SystemExit(1)


def _open_cluster(
    scale: ScaleOut, runner: PipelineRunner, stderr: Console, *, quiet: bool
) -> OpenCluster | None:
    """The cluster ``--executor`` names, started or reached, as ``runner``'s engine (``None``:
    this process); one line on stderr says where the run goes. Exit 2 when it cannot be."""
    if not scale.on_cluster:
        return None
    from fetchpipe.pipeline.api import open_cluster

    try:
        cluster = open_cluster(scale.executor, scale.workers)
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    runner.engine = cluster.engine
    if not quiet:
        started = getattr(cluster.host, "started_in", None)
        took = "" if started is None else f", started in {started:.2f} s"
        engines = cluster.host.slots
        stderr.print(
            f"running on {cluster.host.description} ({engines} shard engine"
            f"{'s' if engines != 1 else ''}, each host on one{took}); pages are read and loaded "
            "here",
            markup=False,
        )
    return cluster
