"""``fetchpipe merge PARTS... --out OUT``: the outputs of ``fetch --shard K/N`` runs, or the part
files a distributed run left (``OUT.parts/RUN/``), appended to one output.

Into a ``.duckdb`` file every part lands in one transaction (all or none): Parquet, JSON Lines
and DuckDB files. Into a ``.jsonl`` file, JSON Lines parts are appended in order. Exit 2 for a
missing part or a file of another kind, before anything is written; the parts are left as
they are.
"""

from __future__ import annotations

import click

from fetchpipe._exceptions import ConfigError, SinkError
from fetchpipe.cli.bad_usage import BadUsage


@click.command("merge")
@click.argument("parts", nargs=-1, required=True, type=click.Path(exists=False))
@click.option(
    "--out",
    "-o",
    required=True,
    help="The output the parts are appended to: a .duckdb file (table 'responses') or a "
    ".jsonl file.",
)
def merge(parts: tuple[str, ...], out: str) -> None:
    """Append the results in PARTS to --out.

    PARTS are the outputs of `fetch --shard K/N` runs (.jsonl or .duckdb files), Parquet or
    JSON Lines part files, or directories holding the part files of a distributed run (a run
    that stopped keeps them in OUT.parts/RUN/). Each part is merged once: merge a part twice
    and its rows are there twice.
    """
    from fetchpipe.cli.fetching import counted, stderr
    from fetchpipe.destinations.fetch import merge as merging

    try:
        files = merging.gather(parts)
        if not files:
            raise BadUsage(
                f"no part files in {', '.join(parts)}. HINT: give .jsonl, .parquet or .duckdb "
                "files, or a directory of part-*.parquet / part-*.jsonl files"
            )
        merged = merging.merge(files, out)
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    except SinkError as exc:
        raise click.ClickException(str(exc)) from None
    console = stderr()
    if merged.torn:
        console.print(
            f"note: {counted(merged.torn, 'part')} ended in a torn line (a run was killed "
            "while writing): its complete lines were merged",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"merged {counted(merged.rows, 'result')} from {counted(merged.files, 'file')} into {out}",
        markup=False,
        highlight=False,
    )
