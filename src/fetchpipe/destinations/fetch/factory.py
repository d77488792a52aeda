"""The sink for an output path, chosen by its extension.

It is a module of its own because the sinks import the package (the record format they all
write): the package imports none of them.
"""

from __future__ import annotations

from pathlib import Path

from fetchpipe._exceptions import ConfigError
from fetchpipe.destinations.fetch import Sink
from fetchpipe.destinations.fetch.duckdb import DuckDBSink
from fetchpipe.destinations.fetch.jsonl import JsonlSink


def open_sink(path: str | Path) -> Sink:
    """The sink for ``path``, by extension (``.jsonl`` or ``.duckdb``), not opened yet.

    Raises :class:`ConfigError` for any other extension.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".jsonl":
        return JsonlSink(target)
    if suffix == ".duckdb":
        return DuckDBSink(target)
    raise ConfigError(
        f"cannot write results to {str(path)!r}: unknown extension {suffix or '(none)'!r}. "
        "HINT: use a path ending in .duckdb (a 'responses' table) or .jsonl (one JSON per line)"
    )
