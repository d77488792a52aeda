"""A pipeline's destination URL: ``duckdb:///FILE``, ``jsonl://DIR`` or ``parquet://DIR``,
parsed (:func:`parse_destination`) and checked as a field of the pipeline file
(:data:`DestinationUrlText`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator

from fetchpipe.pipeline.spec.errors import did_you_mean

DESTINATION_KINDS = ("duckdb", "jsonl", "parquet")


@dataclass(frozen=True, slots=True)
class DestinationUrl:
    """A parsed destination URL: where the tables go, a DuckDB file or a directory of JSONL or
    Parquet files (:func:`fetchpipe.destinations.pipelines.factory.destination_for` makes what
    writes there).

    Public as ``fetchpipe.pipeline.Destination``, its name before
    :class:`fetchpipe.destinations.pipelines.Destination` (the protocol of what writes the
    tables) took it.
    """

    kind: Literal["duckdb", "jsonl", "parquet"]
    path: str

    def __str__(self) -> str:
        return f"{self.kind}:///{self.path}"


def parse_destination(text: str) -> DestinationUrl:
    """``KIND:///PATH`` or ``KIND://PATH`` with KIND ``duckdb``, ``jsonl`` or ``parquet``.

    As in database URLs, ``duckdb:///shop.duckdb`` is relative to the working directory and
    ``duckdb:////data/shop.duckdb`` is absolute. ValueError otherwise.
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(
            f"{text!r} is not a destination URL. "
            "HINT: write duckdb:///FILE.duckdb, jsonl://DIR or parquet://DIR"
        )
    kind = scheme.lower()
    path = rest[1:] if rest.startswith("/") else rest
    if kind not in DESTINATION_KINDS:
        hint = did_you_mean(scheme, DESTINATION_KINDS) or ". HINT: use duckdb, jsonl or parquet"
        raise ValueError(f"unknown destination scheme {scheme!r}{hint}")
    if not path:
        raise ValueError(f"{text!r} names no file or directory")
    return DestinationUrl(kind, path)  # type: ignore[arg-type]  # kind is checked above


def _destination(value: str) -> str:
    parse_destination(value)
    return value


DestinationUrlText = Annotated[str, AfterValidator(_destination)]
