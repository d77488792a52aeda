"""``fetchpipe report PIPELINE|DESTINATION``: the HTML report of a run kept in a destination.

Reads the run (the latest, or ``--run ID``) from the request log of its destination
(``_fetchpipe_runs``, ``_fetchpipe_requests``, ``_fetchpipe_events``) and writes one
self-contained HTML page (:mod:`fetchpipe.report`). Nothing is sent; the database is opened
read-only. For a pipeline file, the report knows its rate limits (to compare with the rate
achieved) and its secrets (masked in the page, as in every output).

Exit codes: 0 written; 1 the database cannot be opened (a run holds it) or holds no such run;
2 no such file, or a pipeline file that cannot be read.

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import click

from fetchpipe.cli.runs import database_of

DEFAULT_REPORT = "report.html"


@click.command("report")
@click.argument("target", metavar="PIPELINE|DESTINATION")
@click.option("--run", "run_id", metavar="ID", help="The run to report.  [default: the latest]")
@click.option(
    "--out",
    "-o",
    default=DEFAULT_REPORT,
    show_default=True,
    type=click.Path(dir_okay=False, writable=True),
    help="The HTML file to write (replaced).",
)
def report_command(target: str, run_id: str | None, out: str) -> None:
    """Write the HTML report of a run kept in PIPELINE's destination, or in DESTINATION.

    One self-contained page (no network): the waterfall of the run's requests per host or
    source, figures per source and host (latency percentiles, retries and why, cache hits, rate
    achieved, bytes), the slowest requests, every failure, and the comparison with the previous
    run of the same pipeline. Nothing is sent. See `fetchpipe runs` for the run ids.
    """
    import duckdb

    from fetchpipe.report import NoRun, rates_from, write_report

    kept = database_of(target)
    if not kept.database.exists():
        raise click.ClickException(
            f"no runs in {str(kept.database)!r}: it does not exist yet. HINT: run the pipeline "
            "first (fetchpipe run), or fetch with --out x.duckdb"
        )
    try:
        path = write_report(
            kept.database,
            out,
            run_id=run_id,
            pipeline=kept.pipeline,
            rates=None if kept.limits is None else rates_from(kept.limits),
            redact=kept.redact,
        )
    except NoRun as exc:
        raise click.ClickException(
            f"{exc} in {str(kept.database)!r}. HINT: `fetchpipe runs {target}` lists its runs"
        ) from None
    except duckdb.Error as exc:
        raise click.ClickException(
            f"cannot read {str(kept.database)!r}: {exc}. HINT: a run holds the file while it "
            "goes on; write the report once it has ended"
        ) from None
    click.echo(f"report written to {path}")
