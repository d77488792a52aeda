"""A pipeline cut into ``N`` shards (``fetchpipe run --shard K/N``, ``fetchpipe merge
--pipeline``): which sources and tables each shard holds, and where each shard run writes.

The unit of a shard is a *source group* (:func:`fetchpipe.distributed.sharding.source_groups`):
sources joined by a parent link or sharing their own host (the host of the source's ``url``, as
the engine keys its limits). A group belongs to shard ``virtual_shard(least host) % N``, so ``N``
shard runs cover every source exactly once, every host is fetched by one of them, and a child
runs where its parent's records are. A source's ``unnest`` tables go with it.

``N`` shard runs cannot share one DuckDB file: shard ``K`` writes to the pipeline's destination
with ``.shard-K-of-N`` before its suffix (``shop.duckdb`` -> ``shop.shard-0-of-2.duckdb``; a
directory's name gets the same ending: ``out/shop`` -> ``out/shop.shard-0-of-2``), where it
keeps its own incremental state, journal and request log.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import TypeVar

from fetchpipe.distributed.sharding import (
    ShardSelector,
    SourceGroup,
    SourceLink,
    source_groups,
    sources_in_shard,
)
from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.pipeline.spec.destination import DestinationUrl
from fetchpipe.pipeline.spec.unnest import child_tables

P = TypeVar("P", bound=PipelineSpec)


def links(pipeline: PipelineSpec) -> list[SourceLink]:
    return [SourceLink(s.name, s.url, s.parent) for s in pipeline.sources]


def groups(pipeline: PipelineSpec) -> tuple[SourceGroup, ...]:
    """The pipeline's source groups, in the order of their first source in the file."""
    return source_groups(links(pipeline))


def shard_sources(pipeline: PipelineSpec, selector: ShardSelector) -> list[str]:
    """The sources shard ``selector`` runs, in file order (none: an empty shard)."""
    return sources_in_shard(links(pipeline), selector)


def table_shards(pipeline: PipelineSpec, count: int) -> dict[str, int]:
    """Every table the pipeline writes -> the shard (of ``count``) that writes it: a source's
    own and its ``unnest`` tables."""
    shard = {name: group.shard(count) for group in groups(pipeline) for name in group.sources}
    found: dict[str, int] = {}
    for source in sorted(pipeline.sources, key=lambda s: shard[s.name]):  # shard 0's first
        found[source.name] = shard[source.name]
        found.update(dict.fromkeys(child_tables([source.unnest]), shard[source.name]))
    return found


def shard_path(path: str, selector: ShardSelector, *, directory: bool = False) -> str:
    """``path`` with ``.shard-K-of-N`` before its suffix (``shop.duckdb`` ->
    ``shop.shard-0-of-2.duckdb``), or at the end of its name for a ``directory`` or a name
    without a suffix."""
    pure = PurePath(path)
    if pure.name in ("", "..") or path.rstrip("/").endswith("/."):  # "." or "..": name it
        pure = Path(path).resolve()
    ending = f".shard-{selector.index}-of-{selector.count}"
    if directory or not pure.suffix:
        return str(pure.with_name(pure.name + ending))
    return str(pure.with_name(pure.stem + ending + pure.suffix))


def shard_target(target: DestinationUrl, selector: ShardSelector) -> DestinationUrl:
    """Where shard ``selector`` of a pipeline writing to ``target`` writes (see the module)."""
    directory = target.kind != "duckdb"
    return DestinationUrl(target.kind, shard_path(target.path, selector, directory=directory))


def for_shard(pipeline: P, selector: ShardSelector) -> P:
    """``pipeline`` (a :class:`~fetchpipe.pipeline.Pipeline` too) writing to its shard's
    destination (:func:`shard_target`); the rest, its secrets and its file included, as they
    are. Run it with ``select=`` the :func:`shard_sources` (when there are any)."""
    target = shard_target(pipeline.target, selector)
    return pipeline.model_copy(update={"destination": str(target)})
