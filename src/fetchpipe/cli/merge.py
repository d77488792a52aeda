"""``fetchpipe merge``: results of several runs brought together.

- ``fetchpipe merge PARTS... --out OUT``: the outputs of ``fetch --shard K/N`` runs, or the part
  files a distributed run left (``OUT.parts/RUN/``), appended to one output. Into a ``.duckdb``
  file every part lands in one transaction (all or none): Parquet, JSON Lines and DuckDB files.
  Into a ``.jsonl`` file, JSON Lines parts are appended in order.
- ``fetchpipe merge --pipeline PIPELINE --shards N``: the tables of the ``N`` shard destinations
  of ``run PIPELINE --shard K/N`` copied into the pipeline's own destination (see
  :mod:`fetchpipe.destinations.pipelines.merge`).

Exit 2 for a missing part or shard destination, a file of another kind, or a table in two
shards, before anything is written; the parts and shards are left as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fetchpipe._exceptions import ConfigError, SinkError
from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.pipeline import load_without_env

if TYPE_CHECKING:
    from pathlib import Path

    from fetchpipe.pipeline.spec.config import PipelineSpec


@click.command("merge")
@click.argument("parts", nargs=-1, type=click.Path(exists=False))
@click.option(
    "--out",
    "-o",
    default=None,
    help="The output the parts are appended to: a .duckdb file (table 'responses') or a "
    ".jsonl file.",
)
@click.option(
    "--pipeline",
    "pipeline_file",
    default=None,
    metavar="PIPELINE",
    type=click.Path(dir_okay=False),
    help="Merge the shard destinations of `run PIPELINE --shard K/N` (K = 0 .. N-1) into "
    "PIPELINE's destination, each table replaced by its shard's.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1, max=256),
    default=None,
    metavar="N",
    help="How many shards the pipeline ran in (the N of --shard K/N); with --pipeline.",
)
def merge(
    parts: tuple[str, ...], out: str | None, pipeline_file: str | None, shards: int | None
) -> None:
    """Append the results in PARTS to --out, or merge a pipeline's shards (--pipeline).

    PARTS are the outputs of `fetch --shard K/N` runs (.jsonl or .duckdb files), Parquet or
    JSON Lines part files, or directories holding the part files of a distributed run (a run
    that stopped keeps them in OUT.parts/RUN/). Each part is merged once: merge a part twice
    and its rows are there twice.

    With --pipeline PIPELINE --shards N: the tables of the N shard destinations that `run
    PIPELINE --shard K/N` wrote (shop.shard-K-of-N.duckdb beside shop.duckdb) are copied into
    PIPELINE's destination, each table replacing the one of that name (DuckDB: in one
    transaction). Merge again after the next shard runs: the tables are then as the shards
    have them.
    """
    if pipeline_file is not None or shards is not None:
        if pipeline_file is None or shards is None or parts or out is not None:
            raise BadUsage(
                "--pipeline and --shards go together, without PARTS or --out. HINT: fetchpipe "
                "merge --pipeline shop.yaml --shards 4 (the pipeline's destination is the output)"
            )
        _merge_shards(_pipeline(pipeline_file), pipeline_file, shards)
        return
    if not parts or out is None:
        raise BadUsage(
            "give the PARTS and --out, or --pipeline and --shards. HINT: fetchpipe merge "
            "a.jsonl b.jsonl --out all.duckdb, or fetchpipe merge --pipeline shop.yaml --shards 4"
        )
    _merge_parts(parts, out)


def _merge_parts(parts: tuple[str, ...], out: str) -> None:
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


def _pipeline(path: str) -> PipelineSpec:
    """The pipeline file, read without the variables only its requests need (nothing is
    sent): its name, destination and sources' names, URLs (they place a source in its shard)
    and unnest tables must be set; exit 2 listing those that are not."""
    why = "the merge needs these values: set the variables; nothing was merged"
    return load_without_env(path, _places_tables, why)


def _places_tables(path: tuple[str | int, ...]) -> bool:
    """A value that says which tables there are and which shard holds them."""
    return path[:1] in (("name",), ("destination",)) or (
        len(path) >= 3 and path[0] == "sources" and path[2] in ("name", "url", "unnest")
    )


def _merge_shards(pipeline: PipelineSpec, pipeline_file: str, count: int) -> None:
    """Check every shard destination, then copy each table from the shard that owns it."""
    from pathlib import Path

    from fetchpipe.cli.fetching import counted, stderr
    from fetchpipe.destinations.pipelines import LoadError
    from fetchpipe.destinations.pipelines.merge import merge_tables, tables_in
    from fetchpipe.distributed.sharding import ShardSelector
    from fetchpipe.pipeline.spec.shards import shard_target, table_shards

    target = pipeline.target
    owners = table_shards(pipeline, count)
    paths = {k: Path(shard_target(target, ShardSelector(k, count)).path) for k in range(count)}
    for index in sorted(set(owners.values())):
        if not paths[index].exists():
            raise BadUsage(
                f"shard {index}/{count}'s destination {paths[index]} is missing; nothing was "
                f"merged. HINT: run `fetchpipe run {pipeline_file} --shard {index}/{count}` "
                "first (with the same N as --shards)"
            )
    try:
        held = {k: tables_in(target.kind, path) for k, path in paths.items() if path.exists()}
    except LoadError as exc:
        raise click.ClickException(str(exc)) from None
    sources = _owned_tables(owners, held, paths, pipeline_file, count)
    console = stderr()
    missing = sorted(set(owners) - set(sources))
    if missing:
        console.print(
            f"note: not in their shard's destination yet (their source has loaded nothing): "
            f"{', '.join(missing)}; left as they are",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    try:
        copied = merge_tables(target.kind, target.path, sources)
    except LoadError as exc:
        raise click.ClickException(pipeline.redact(str(exc))) from None
    what = "row" if target.kind == "duckdb" else "file"
    for table, n in copied.items():
        shard = owners[table]
        console.print(
            f"{table}: {counted(n, what)} from shard {shard}/{count}", markup=False, highlight=False
        )
    shards_used = len({owners[t] for t in copied})
    console.print(
        f"merged {counted(len(copied), 'table')} from {counted(shards_used, 'shard')} into "
        f"{pipeline.target}",
        markup=False,
        highlight=False,
    )


def _owned_tables(
    owners: dict[str, int],
    held: dict[int, set[str]],
    paths: dict[int, Path],
    pipeline_file: str,
    count: int,
) -> dict[str, Path]:
    """Table -> the shard destination to copy it from; BadUsage for a table in two shards, or
    in a shard that does not run its source (files of another N or another pipeline)."""
    found: dict[str, Path] = {}
    for table, owner in owners.items():
        holders = sorted(k for k, tables in held.items() if table in tables)
        if len(holders) > 1:
            listed = " and ".join(str(paths[k]) for k in holders)
            raise BadUsage(
                f"table {table!r} is in {listed}: in two shards; nothing was merged. HINT: its "
                f"source runs in shard {owner}/{count} of {pipeline_file}: remove the other "
                "shard's destination (written with another N, or before the pipeline's sources "
                "changed) and run that shard again"
            )
        if holders and holders[0] != owner:
            raise BadUsage(
                f"table {table!r} is in {paths[holders[0]]}, but its source runs in shard "
                f"{owner}/{count} of {pipeline_file}; nothing was merged. HINT: the shard "
                "destinations were written with another N or before the pipeline's sources "
                f"changed: merge with that N, or run `fetchpipe run {pipeline_file} --shard "
                f"K/{count}` for every K again"
            )
        if holders:
            found[table] = paths[owner]
    return found
