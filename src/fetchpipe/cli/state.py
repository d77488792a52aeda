"""``fetchpipe state show|set|reset``: a pipeline's incremental state, by hand, between runs.

- ``show PIPELINE``: each source's type, cursor, when and by what it was stored, and the value
  its next run sends.
- ``set PIPELINE SOURCE VALUE``: store VALUE as the source's cursor, checked against its type
  (the next run sends it, moved back by ``lookback``).
- ``reset PIPELINE SOURCE``: forget the cursor: the next run starts from ``initial``.

``--shard K/N`` on each: the state of shard K's destination (``run --shard K/N``), for its
sources.

Exit codes: 0 done; 1 the destination cannot be opened (another run holds it); 2 an invalid
pipeline file, an unknown source (with a suggestion), a value of the wrong type, or a change
while a run of the pipeline is unfinished. Nothing is sent.

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.options import json_flag, shard_selector
from fetchpipe.cli.pipeline import load_without_env

if TYPE_CHECKING:
    from fetchpipe.destinations.pipelines import Destination
    from fetchpipe.pipeline.spec.config import PipelineSpec
    from fetchpipe.pipeline.spec.models import Source

BY_HAND = "set by hand"
"""What the state table's run id says of a cursor set with ``fetchpipe state set``."""
T = TypeVar("T")
_UNCHANGED = "nothing was changed"

_pipeline_argument = click.argument("pipeline_file", metavar="PIPELINE", type=click.Path())
_shard_option = click.option(
    "--shard",
    default=None,
    metavar="K/N",
    help="The state of shard K of N: in the destination `run --shard K/N` writes to.",
)
_source_argument = click.argument("source_name", metavar="SOURCE")


@click.group("state")
def state_group() -> None:
    """Show or change the incremental state of PIPELINE's sources (nothing is sent)."""


@state_group.command("show")
@_pipeline_argument
@json_flag
@_shard_option
def show(pipeline_file: str, as_json: bool, shard: str | None) -> None:
    """Each source's cursor, when it was stored, and what its next run sends."""
    pipeline = _pipeline(pipeline_file, shard)
    rows = _with_destination(pipeline, lambda d: d.states()) if _exists(pipeline) else {}
    sources: list[dict[str, Any]] = []
    for source in _held(pipeline, shard):
        incremental = source.incremental
        stored = rows.get(source.name)
        cursor = (stored.state or {}).get("cursor") if stored is not None else None
        sources.append(
            {
                "source": source.name,
                "type": None if incremental is None else incremental.cursor_type,
                "cursor": cursor,
                "updated_at": None if stored is None else _when(stored.updated_at),
                "by": None if stored is None else stored.run_id,
                "sends": _sends(source, cursor),
            }
        )
    if as_json:
        out = {"pipeline": pipeline.name, "destination": str(pipeline.target), "sources": sources}
        click.echo(pipeline.redact(json.dumps(out, indent=2, default=str)))
        return
    lines = [f"pipeline {pipeline.name} -> {pipeline.target}"]
    for row in sources:
        if row["type"] is None and pipeline.source(row["source"]).incremental is None:
            lines.append(f"{row['source']}: no incremental state (no incremental block)")
            continue
        kind = row["type"] or "type from the first value"
        if row["cursor"] is None:
            text = f"{row['source']} ({kind}): no cursor stored"
        else:
            text = f"{row['source']} ({kind}): cursor {row['cursor']}, {_stored_by(row)}"
        sends = row["sends"]
        lines.append(text + (f"; the next run sends {sends}" if sends else ""))
    click.echo(pipeline.redact("\n".join(lines)))


@state_group.command("set")
@_pipeline_argument
@_source_argument
@click.argument("value")
@_shard_option
def set_command(pipeline_file: str, source_name: str, value: str, shard: str | None) -> None:
    """Store VALUE as the cursor of SOURCE, checked against its type."""
    from fetchpipe.pipeline.spec.cursors import CursorError

    pipeline = _pipeline(pipeline_file, shard)
    source = _incremental_source(pipeline, source_name, shard)
    incremental = source.incremental
    assert incremental is not None

    def checked(stored: Any) -> str | int | float:
        try:
            return incremental.value_of(value, stored)
        except CursorError as exc:
            what = str(exc).partition(". HINT")[0]
            kind = incremental.cursor_type
            hint = f". HINT: give a {kind}" if kind is not None else ""
            example = {"datetime": ", as 2025-01-01T09:00:00Z", "number": ", as 1200"}
            raise BadUsage(
                f"{source.name}: {what}; nothing was changed{hint}{example.get(kind or '', '')}"
            ) from None

    if incremental.cursor_type is not None:
        checked(None)  # before the destination is opened (or created)

    def change(destination: Destination) -> tuple[Any, Any]:
        _refuse_if_unfinished(pipeline, destination)
        stored = destination.read_state(source.name) or {}
        before = stored.get("cursor")
        cursor = checked(before)
        destination.set_state(source.name, {**stored, "cursor": cursor}, BY_HAND)
        return before, cursor

    before, cursor = _with_destination(pipeline, change)
    was = "" if before is None else f" (was {before})"
    click.echo(
        pipeline.redact(
            f"{source.name}: cursor set to {cursor}{was}; the next run sends "
            f"{_sends(source, cursor)}"
        )
    )


@state_group.command("reset")
@_pipeline_argument
@_source_argument
@_shard_option
def reset(pipeline_file: str, source_name: str, shard: str | None) -> None:
    """Forget the cursor of SOURCE: its next run starts from its initial value."""
    pipeline = _pipeline(pipeline_file, shard)
    source = _incremental_source(pipeline, source_name, shard)

    def change(destination: Destination) -> Any:
        _refuse_if_unfinished(pipeline, destination)
        before = (destination.read_state(source.name) or {}).get("cursor")
        destination.reset_state(source.name)
        return before

    before = _with_destination(pipeline, change) if _exists(pipeline) else None
    sends = _sends(source, None)
    then = f"the next run sends {sends}" if sends else "the next run sends no cursor"
    if before is None:
        click.echo(pipeline.redact(f"{source.name}: no cursor was stored; {then}"))
    else:
        click.echo(pipeline.redact(f"{source.name}: cursor {before} forgotten; {then} (initial)"))


# --- the parts ----------------------------------------------------------------------------------


def _pipeline(path: str, shard: str | None = None) -> PipelineSpec:
    """The pipeline file at ``path``, read without the variables it needs only to send
    requests, writing to the destination of ``shard`` (``K/N``) if given; exit 2 naming a near
    file name when there is none, or the variables the state needs when they are not set."""
    pipeline = _unsharded(path, urls=shard is not None)
    if shard is None:
        return pipeline
    from fetchpipe.pipeline.spec.shards import for_shard

    return for_shard(pipeline, shard_selector(shard, _UNCHANGED))


def _held(pipeline: PipelineSpec, shard: str | None) -> list[Source]:
    """The sources whose state is in ``pipeline``'s destination: those of ``shard``, or all."""
    if shard is None:
        return list(pipeline.sources)
    from fetchpipe.pipeline.spec.shards import shard_sources

    names = set(shard_sources(pipeline, shard_selector(shard, _UNCHANGED)))
    return [source for source in pipeline.sources if source.name in names]


def _unsharded(path: str, *, urls: bool) -> PipelineSpec:
    """The pipeline file at ``path`` (see :func:`_pipeline`); with ``urls``, the sources' URLs
    need their variables too (they place a source in its shard)."""
    from fetchpipe.pipeline.spec.errors import did_you_mean

    file = Path(path)
    if not file.is_file():
        folder = file.parent if file.parent.is_dir() else Path(".")
        names = [
            str(folder / p.name)
            for p in sorted(folder.iterdir())
            if p.suffix.lower() in (".yaml", ".yml", ".toml") and p.is_file()
        ]
        hint = did_you_mean(path, names) or ". HINT: give the pipeline's YAML or TOML file"
        raise BadUsage(f"no pipeline file {path!r}{hint}")

    def needs(field: tuple[str | int, ...]) -> bool:
        return _names_state(field) or (urls and field[:1] == ("sources",) and "url" in field)

    why = "the state needs these values: set the variables; nothing was changed"
    return load_without_env(path, needs, why)  # the secrets are not needed: nothing is sent


def _names_state(path: tuple[str | int, ...]) -> bool:
    """A value that says where the state is, or which: the pipeline's name, its destination, a
    source's name or incremental block."""
    return path[:1] in (("name",), ("destination",)) or (
        len(path) >= 3 and path[0] == "sources" and path[2] in ("name", "incremental")
    )


def _incremental_source(pipeline: PipelineSpec, name: str, shard: str | None = None) -> Source:
    """The source called ``name``, which keeps a cursor (in ``shard``'s destination, if
    given); exit 2 otherwise."""
    from fetchpipe.pipeline.spec.errors import did_you_mean

    names = [s.name for s in pipeline.sources]
    if shard is not None and name in names and name not in {s.name for s in _held(pipeline, shard)}:
        from fetchpipe.pipeline.spec.shards import table_shards

        count = shard_selector(shard, _UNCHANGED).count
        owner = f"{table_shards(pipeline, count)[name]}/{count}"
        raise BadUsage(
            f"source {name!r} runs in shard {owner}, not {shard}: its state is in that "
            f"shard's destination; nothing was changed. HINT: --shard {owner}"
        )
    if name not in names:
        raise BadUsage(
            f"no source {name!r} in pipeline {pipeline.name} (its sources: {', '.join(names)})"
            f"{did_you_mean(name, names)}"
        )
    source = pipeline.source(name)
    if source.incremental is None:
        kept = [s.name for s in pipeline.sources if s.incremental is not None]
        these = f" (those with one: {', '.join(kept)})" if kept else ""
        raise BadUsage(
            f"source {name!r} keeps no cursor: it has no incremental block{these}. HINT: add "
            f"one to the source in {pipeline.file or 'the pipeline file'}, as `incremental: "
            "{cursor_field: updated_at, param: updated_since, initial: '2024-01-01T00:00:00Z'}` "
            "(a field of its records that grows, the query parameter that sends the greatest "
            "value seen, the value of the first run), then run it"
        )
    return source


def _exists(pipeline: PipelineSpec) -> bool:
    """The destination's state file exists (a pipeline never run has none: nothing to open)."""
    from fetchpipe.destinations.pipelines.factory import destination_for

    target = pipeline.target
    return destination_for(target.kind, target.path).database.exists()


def _with_destination(pipeline: PipelineSpec, work: Callable[[Destination], T]) -> T:
    """``work`` on the opened destination (created if need be); exit 1 when it cannot be
    opened (another run holds it)."""
    with _opened(pipeline) as destination:
        return work(destination)


@contextmanager
def _opened(pipeline: PipelineSpec) -> Iterator[Destination]:
    from fetchpipe.destinations.pipelines import LoadError
    from fetchpipe.destinations.pipelines.factory import destination_for

    target = pipeline.target
    destination = destination_for(target.kind, target.path)
    try:
        destination.open()
    except LoadError as exc:
        raise click.ClickException(pipeline.redact(str(exc))) from None
    try:
        yield destination
    except LoadError as exc:
        raise click.ClickException(pipeline.redact(str(exc))) from None
    finally:
        destination.close()


def _refuse_if_unfinished(pipeline: PipelineSpec, destination: Destination) -> None:
    """A run that did not finish resumes with the state it started from: not changed under it."""
    unfinished = destination.unfinished_run(pipeline.name)
    if unfinished is not None:
        raise BadUsage(
            f"run {unfinished.run_id} of pipeline {pipeline.name} did not finish; its next "
            "`fetchpipe run` resumes it from the state it started with, so nothing was changed. "
            "HINT: finish it with `fetchpipe run`, or drop it with `fetchpipe run --restart`, "
            "then change the state"
        )


def _sends(source: Source, cursor: Any) -> str | None:
    """``param=value`` the next run sends for ``cursor`` (``None``: from ``initial``)."""
    from fetchpipe.pipeline.spec.cursors import CursorError

    incremental = source.incremental
    if incremental is None:
        return None
    try:
        if cursor is None:
            value = incremental.first_value()
        else:
            value = incremental.rule().sent(cursor, stored=True)
    except CursorError as exc:
        return f"nothing: {str(exc).partition('. HINT')[0]} (fetchpipe state set or reset)"
    return None if value is None else f"{incremental.param}={value}"


def _when(moment: Any) -> str | None:
    return None if moment is None else str(moment.isoformat(timespec="seconds"))


def _stored_by(row: dict[str, Any]) -> str:
    by = row["by"]
    who = BY_HAND if by == BY_HAND else f"by run {by}"
    return f"stored {row['updated_at']} {who}"
