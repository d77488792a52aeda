"""The destinations of pipelines: a table per source, its state, the run journal.

The runner talks to one :class:`Destination` (this module: the protocol, its write modes and
:class:`LoadError`); :func:`.factory.destination_for` picks the class for a destination URL's
kind, and only it knows them:

- :mod:`.duckdb`: :class:`~.duckdb.DuckDBLoader`, the tables of a DuckDB file;
- :mod:`.files`: :class:`~.files.FileLoader`, a directory of JSON Lines or Parquet files;
- :mod:`.staging`: :class:`~.staging.StagedStore`, the base of both: the DuckDB database with
  the state, the journal and the staged records of a run;
- :mod:`.tables`: record batches in DuckDB (types, schema evolution, merge);
- :mod:`.journal`: which run is unfinished and which of its pages are committed.

A new destination is a :class:`~.staging.StagedStore` subclass with its own ``apply``, made by
:func:`.factory.destination_for` for its kind (the kinds a pipeline file may name are checked by
the pipeline's model). It imports what its parent package :mod:`fetchpipe.destinations` may
(core values, orjson, duckdb inside functions), nothing of the pipeline package, whose runner
imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from fetchpipe._exceptions import SinkError
from fetchpipe.destinations.duckdb_ingest import Spool
from fetchpipe.destinations.pipelines.journal import EndedSource, PageEntry, RunRecord
from fetchpipe.destinations.run_log import LogRows

WriteMode = Literal["append", "replace", "merge"]
"""How a source's records reach its table: added, in place of the table's, or upserted by key."""


class LoadError(SinkError):
    """Records could not be loaded; nothing of the failed load was written."""


@dataclass(frozen=True, slots=True)
class ChildTable:
    """A table of a source's list elements (a pipeline's ``unnest``), staged with the source's
    pages and written with its table, in the same transaction.

    ``link`` pairs each child column that carries a field of the parent's primary key with that
    field: under ``merge`` the child rows of a re-loaded parent are deleted by it before the new
    ones are written, and with ``index`` (the element's position) it keys the child rows.
    """

    name: str
    index: str
    link: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StagedPages:
    """A source's pages read since its last commit, to stage (:meth:`Destination.stage_many`):
    its records (``spool``; ``None`` for a source fetched but not written), their journal
    ``entries``, the rows of its child ``tables`` (table -> spool) and the ``log`` rows of
    their requests."""

    source: str
    spool: Spool | None
    entries: Sequence[PageEntry]
    tables: Mapping[str, Spool] | None = None
    log: LogRows | None = None


@dataclass(frozen=True, slots=True)
class SourceEnd:
    """A source to apply to its table (:meth:`Destination.finish_many`), with what
    :meth:`Destination.finish_source` takes."""

    table: str
    write: WriteMode
    primary_key: Sequence[str] | None
    state: Mapping[str, object] | None = None
    tables: Sequence[ChildTable] = ()


@dataclass(frozen=True, slots=True)
class StoredState:
    """A source's row of the state table: its state, who wrote it (a run id, or the marker of
    a change by hand) and when."""

    state: dict[str, Any] | None
    run_id: str | None
    updated_at: datetime | None


class Destination(Protocol):
    """Where a pipeline's sources land, as the runner drives it.

    ``open`` (a :class:`LoadError` when another run holds it) and ``close`` around a run. A run
    is begun, or the unfinished one found and resumed, through the journal calls; pages are
    staged as they commit (their records, the rows of their ``tables`` (:class:`ChildTable`),
    their journal rows and the rows of their requests, in one transaction; ``stage_many``: the
    pages of several sources in one; ``record_log`` writes the rows of the others); a source
    ends by ``finish_source`` (its stage and its tables' applied with its state; several at
    once: ``finish_many``) or ``discard_source`` (failed, unchanged, or fetched only for its
    children). ``written_rows``: the rows a run left in a table. Calls come from one thread at
    a time.
    """

    def open(self) -> None: ...

    def close(self) -> None: ...

    # --- the journal ----------------------------------------------------------------------------

    def unfinished_run(self, pipeline: str) -> RunRecord | None: ...

    def begin_run(self, run: RunRecord) -> None: ...

    def end_run(
        self,
        run_id: str,
        status: str,
        sources: Sequence[str],
        ended_at: datetime | None = None,
    ) -> None: ...

    def committed_pages(self, run_id: str) -> list[PageEntry]: ...

    def ended_sources(self, run_id: str) -> dict[str, EndedSource]: ...

    # --- state and records ----------------------------------------------------------------------

    def read_state(self, source: str) -> dict[str, Any] | None: ...

    # --- state by hand (``fetchpipe state``), between runs ------------------------------------

    @property
    def database(self) -> Path:
        """The DuckDB file that holds the state and the journal."""
        ...

    def states(self) -> dict[str, StoredState]: ...

    def set_state(self, source: str, state: Mapping[str, object], by: str) -> None: ...

    def reset_state(self, source: str) -> bool: ...

    def stage_pages(
        self,
        source: str,
        spool: Spool | None,
        run_id: str,
        entries: Sequence[PageEntry],
        tables: Mapping[str, Spool] | None = None,
        log: LogRows | None = None,
    ) -> int: ...

    def stage_many(self, run_id: str, batches: Sequence[StagedPages]) -> list[int | LoadError]: ...

    def record_log(self, log: LogRows) -> None: ...

    def discard_source(
        self,
        run_id: str,
        source: str,
        status: str,
        reason: str | None = None,
        tables: Sequence[str] = (),
    ) -> None: ...

    def finish_source(
        self,
        table: str,
        *,
        write: WriteMode,
        primary_key: Sequence[str] | None,
        run_id: str,
        state: Mapping[str, object] | None = None,
        tables: Sequence[ChildTable] = (),
    ) -> int: ...

    def finish_many(self, run_id: str, sources: Sequence[SourceEnd]) -> list[int | LoadError]: ...

    def written_rows(self, table: str, run_id: str) -> int: ...


__all__ = [
    "ChildTable",
    "Destination",
    "LoadError",
    "SourceEnd",
    "StagedPages",
    "StoredState",
    "WriteMode",
]
