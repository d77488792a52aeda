"""The destination for a pipeline's destination URL, chosen by its kind.

A module of its own, as :mod:`fetchpipe.destinations.fetch.factory` is for the sinks: the
destinations import the package (the protocol and its errors), the package imports none of
them, and the runner knows only the protocol.
"""

from __future__ import annotations

from pathlib import Path

from fetchpipe.destinations.pipelines import Destination
from fetchpipe.destinations.pipelines.duckdb import DuckDBLoader
from fetchpipe.destinations.pipelines.files import FileLoader


def destination_for(kind: str, path: str | Path) -> Destination:
    """The destination of kind ``kind`` at ``path``, not opened yet: a DuckDB file
    (``duckdb``) or a directory of files (``jsonl``, ``parquet``; another kind is a
    :class:`~fetchpipe.destinations.pipelines.LoadError` naming it)."""
    if kind == "duckdb":
        return DuckDBLoader(path)
    return FileLoader(path, kind)
