"""What a run leaves in its DuckDB file beside its records: its row, its requests, its events.

Three tables, the same for a pipeline's destination (its DuckDB file, or
``DIR/_fetchpipe.duckdb``) and for ``fetch --out x.duckdb``:

- ``_fetchpipe_runs``: one row per run: id, pipeline (``fetch`` for a fetch), status
  (``running`` until it ends, then ``done``, ``failed`` or ``abandoned``), start and end, and
  ``politeness``: per host where something of the kind happened, the limit in force, the
  throttles received and the time paused (JSON: host -> ``HostRateReport.as_dict``, see
  :mod:`fetchpipe._host_rates`; written with the run's last rows). A pipeline's journal
  (:mod:`.pipelines.journal`) keeps its hash and selection there too. A file made before
  ``politeness`` existed gets the column when a run opens it (:func:`create_tables`); readers
  take a file without it as a run with no such figures.
- ``_fetchpipe_requests``: one row per request (:data:`REQUEST_COLUMNS`): its source, host,
  method and redacted URL; its outcome (:data:`OUTCOMES`), status, error kind and message,
  attempts, where the response came from (``origin``: network, cache, revalidated, stale) and
  its size; and its times, in seconds: ``queued_at`` and ``start_offset`` from the run's start,
  ``queue_wait`` (queued to first attempt), ``time_to_headers`` (first attempt to the headers of
  the last), ``total_time`` (first attempt to result, waits between attempts included).
  ``weight`` is 1, or 1/sample for a row kept by sampling (:class:`RequestRecorder`): sums of
  ``weight`` estimate counts when the run kept a sample.
- ``_fetchpipe_events``: what happened to hosts and attempts, at ``start_offset`` seconds from
  the run's start:
  ``request_retried`` (why, the wait), ``retry_refused`` (retry budget spent),
  ``host_paused`` (a Retry-After), ``host_down`` (the breaker opened: ``wait`` is its
  cool-down) and ``host_up``.

A pipeline commits the rows of the requests of a source's pages in the same transaction as
those pages (and the events so far with them); the rows of requests that led to no committed
page (failures, skips) and the last events are written when the run ends. ``fetch`` writes them
with each batch of results. Rows never hold a secret: the URL and the message are redacted by
the recorder's ``redact`` (the pipeline's secrets, credential query values, URL passwords).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fetchpipe._log import full_url, host_of
from fetchpipe._models import Provenance, Result
from fetchpipe._redact import redact_text, redact_url
from fetchpipe.destinations.duckdb_ingest import Spool, quote, read_json, table_columns

if TYPE_CHECKING:
    import duckdb

RUNS_TABLE = "_fetchpipe_runs"
REQUESTS_TABLE = "_fetchpipe_requests"
EVENTS_TABLE = "_fetchpipe_events"

RUNS_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (run_id VARCHAR PRIMARY KEY, pipeline VARCHAR, "
    "config_hash VARCHAR, selected JSON, full_refresh BOOLEAN, status VARCHAR, "
    "started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, politeness JSON)"
)
RUNS_ADDED = {"politeness": "JSON"}
"""Columns of ``_fetchpipe_runs`` added since the table was first made: given to an older
file's table when a run opens it."""

REQUEST_COLUMNS = {
    "run_id": "VARCHAR",
    "source": "VARCHAR",
    "host": "VARCHAR",
    "method": "VARCHAR",
    "url": "VARCHAR",
    "outcome": "VARCHAR",
    "status": "INTEGER",
    "error": "VARCHAR",
    "message": "VARCHAR",
    "attempts": "INTEGER",
    "origin": "VARCHAR",
    "bytes": "BIGINT",
    "queued_at": "DOUBLE",
    "start_offset": "DOUBLE",
    "queue_wait": "DOUBLE",
    "time_to_headers": "DOUBLE",
    "total_time": "DOUBLE",
    "weight": "DOUBLE",
}
"""The columns of ``_fetchpipe_requests`` and their types, in order."""

EVENT_COLUMNS = {
    "run_id": "VARCHAR",
    "start_offset": "DOUBLE",
    "event": "VARCHAR",
    "source": "VARCHAR",
    "host": "VARCHAR",
    "url": "VARCHAR",
    "attempt": "INTEGER",
    "status": "INTEGER",
    "error": "VARCHAR",
    "wait": "DOUBLE",
    "message": "VARCHAR",
}
"""The columns of ``_fetchpipe_events`` and their types, in order."""

OUTCOMES = ("ok", "retried", "failed", "cache", "revalidated", "stale", "skipped")
"""A request's outcome: ``ok`` at the first attempt, ``retried`` ok after more, ``failed``,
answered by the cache (``cache``, ``revalidated`` by a 304, ``stale`` after a failed refresh),
``skipped`` (an error status the source's ``on_status`` skips)."""

_ALWAYS_KEPT = frozenset({"retried", "failed", "stale", "skipped"})
_FROM_CACHE = {
    Provenance.CACHE: "cache",
    Provenance.REVALIDATED: "revalidated",
    Provenance.STALE: "stale",
}

SAMPLE = 1.0
"""The share of ordinary requests a run keeps (every one: see the README's Request log)."""
SLOW = 1.0
"""Seconds from which a request is slow: always kept, whatever the sample."""


def create_tables(connection: duckdb.DuckDBPyConnection) -> None:
    """The three tables, when they are missing."""
    connection.execute(RUNS_SCHEMA)
    for name, kind in RUNS_ADDED.items():
        connection.execute(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS {name} {kind}")
    for table, columns in ((REQUESTS_TABLE, REQUEST_COLUMNS), (EVENTS_TABLE, EVENT_COLUMNS)):
        definition = ", ".join(f"{quote(name)} {kind}" for name, kind in columns.items())
        connection.execute(f"CREATE TABLE IF NOT EXISTS {table} ({definition})")


def outcome(result: Result, skipped: bool = False) -> str:
    """The outcome of ``result`` (see :data:`OUTCOMES`)."""
    if skipped:
        return "skipped"
    cached = _FROM_CACHE.get(result.source)
    if cached is not None:
        return cached
    if result.error is not None:
        return "failed"
    return "retried" if result.attempts > 1 else "ok"


def _size(result: Result) -> int | None:
    body = result.body
    if isinstance(body, bytes | bytearray | memoryview | str):
        return len(body)
    length = result.headers.get("Content-Length") if result.headers else None
    return int(length) if length is not None and length.isdigit() else None


@dataclass(slots=True)
class LogRows:
    """Rows waiting to be written: requests and events, in the order they came."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    politeness: dict[str, dict[str, Any]] | None = None
    """The run's figures per host (``_fetchpipe_runs.politeness``), when they are known: with
    the run's last rows."""
    run_id: str | None = None
    """The run whose row ``politeness`` goes to."""

    def __bool__(self) -> bool:
        return bool(self.requests or self.events or self.politeness)


class RequestRecorder:
    """Makes the rows of one run's requests and events.

    ``started`` is the run's start on the clock of the results' timings (the event loop's);
    ``clock`` reads that clock (for the events). ``sample`` (0 < sample <= 1) is the share of
    ordinary requests kept: a failed, retried, stale or skipped request, and one that took at
    least ``slow`` seconds, is always kept; the others are kept at random (seeded by the run
    id) and weigh ``1 / sample``.
    """

    def __init__(
        self,
        run_id: str,
        started: float,
        clock: Callable[[], float],
        *,
        redact: Callable[[str], str] = redact_text,
        sample: float = SAMPLE,
        slow: float = SLOW,
    ) -> None:
        if not 0 < sample <= 1:
            raise ValueError(f"sample must be above 0 and at most 1, got {sample!r}")
        self.run_id = run_id
        self.started = started
        self.clock = clock
        self.redact = redact
        """The run's redaction; credential parameters and passwords go whatever it does."""
        self.sample = sample
        self.slow = slow
        self.events: list[dict[str, Any]] = []
        """Events not yet taken for writing (see :meth:`take_events`)."""
        self.started_at: datetime | None = None
        """When the run started (``started`` on the wall clock): its row's ``started_at``."""
        self.ended_at: datetime | None = None
        """When the run ended, every result written (set by the output that writes its row's
        ``ended_at``, for the log to say the same)."""
        self.politeness: dict[str, dict[str, Any]] | None = None
        """The run's figures per host, once its requests are done (``HostRateReport.as_dict``
        per host): written with the run's last rows."""
        self._lock = threading.Lock()  # fetch's writer thread takes what the loop records
        self._random = random.Random(run_id).random

    def row(
        self, result: Result, source: str | None, *, skipped: bool = False
    ) -> dict[str, Any] | None:
        """The row of ``result`` (a request of ``source``), or None when sampling leaves it out."""
        kind = outcome(result, skipped)
        t = result.timings
        started = t.started or t.done
        total = max(0.0, t.done - started)
        weight = 1.0
        if self.sample < 1 and kind not in _ALWAYS_KEPT and total < self.slow:
            if self._random() >= self.sample:
                return None
            weight = 1 / self.sample
        request = result.request
        message = result.error_message
        return {
            "run_id": self.run_id,
            "source": source,
            "host": host_of(request.url),
            "method": request.method,
            "url": self._redacted(full_url(request.url, request.params)),
            "outcome": kind,
            "status": result.status,
            "error": None if result.error is None else result.error.value,
            "message": None if message is None else self._redacted(message),
            "attempts": result.attempts,
            "origin": result.source.value,
            "bytes": _size(result),
            "queued_at": round(t.queued - self.started, 6),
            "start_offset": round(started - self.started, 6),
            "queue_wait": round(max(0.0, started - t.queued), 6),
            "time_to_headers": round(t.first_byte - started, 6) if t.first_byte else None,
            "total_time": round(total, 6),
            "weight": weight,
        }

    def _redacted(self, text: str) -> str:
        redact = self.redact
        return redact(text) if redact is redact_text else redact_url(redact(text))

    def event(self, name: str, fields: Mapping[str, Any]) -> None:
        """Record an engine event (a :data:`fetchpipe._log.RECORDED` one) as it happens:
        ``fields`` are the log record's, already redacted."""
        wait = fields.get("wait")
        event = {
            "run_id": self.run_id,
            "start_offset": round(self.clock() - self.started, 6),
            "event": name,
            "source": fields.get("source"),
            "host": fields.get("host"),
            "url": fields.get("url"),
            "attempt": fields.get("attempt"),
            "status": fields.get("status"),
            "error": fields.get("error"),
            "wait": wait if isinstance(wait, int | float) else None,
            "message": fields.get("message"),
        }
        with self._lock:
            self.events.append(event)

    def take_events(self) -> list[dict[str, Any]]:
        """The events recorded since the last call."""
        with self._lock:
            events, self.events = self.events, []
        return events


def insert(connection: duckdb.DuckDBPyConnection, rows: LogRows) -> None:
    """Insert ``rows`` (inside the caller's transaction), through the one ingest path; set the
    run's ``politeness`` when ``rows`` has it."""
    if rows.politeness is not None and rows.run_id is not None:
        connection.execute(
            f"UPDATE {RUNS_TABLE} SET politeness = ? WHERE run_id = ?",
            [json.dumps(rows.politeness, sort_keys=True), rows.run_id],
        )
    for table, columns, batch in (
        (REQUESTS_TABLE, REQUEST_COLUMNS, rows.requests),
        (EVENTS_TABLE, EVENT_COLUMNS, rows.events),
    ):
        if batch:
            _insert(connection, table, columns, batch)


def _insert(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    columns: Mapping[str, str],
    batch: Sequence[Mapping[str, Any]],
) -> None:
    spool = Spool(prefix="fetchpipe-log-")
    try:
        spool.add(batch)
        insert_spool(connection, table, columns, spool)
    finally:
        spool.discard()


def insert_spool(
    connection: duckdb.DuckDBPyConnection, table: str, columns: Mapping[str, str], spool: Spool
) -> None:
    """Insert the rows in ``spool`` (finished) into ``table``'s ``columns``, by name."""
    names = ", ".join(quote(name) for name in columns)
    connection.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {read_json(spool, columns)}"
    )


def insert_fetch_run(
    connection: duckdb.DuckDBPyConnection,
    run_id: str,
    started_at: datetime,
    ended_at: datetime | None = None,
) -> None:
    """The run tables (:func:`create_tables`) and a fetch's row in ``_fetchpipe_runs``:
    ``running``, or ``done`` when ``ended_at`` is given."""
    create_tables(connection)
    connection.execute(
        f"INSERT INTO {RUNS_TABLE} (run_id, pipeline, full_refresh, status, started_at, "
        "ended_at) VALUES (?, 'fetch', false, ?, ?, ?)",
        [run_id, "running" if ended_at is None else "done", started_at, ended_at],
    )


# --- reading: fetchpipe runs ------------------------------------------------------------------

SOURCES_TABLE = "_fetchpipe_sources"
"""A pipeline's sources per run, as they ended (written by its journal)."""


@dataclass(slots=True)
class RunSummary:
    """A run as ``fetchpipe runs`` lists it: its row, its requests' counts and its sources.

    ``requests`` and ``cache_hits`` are sums of the rows' weights (exact unless the run kept a
    sample: then an estimate); ``retries`` and ``failures`` are exact (such requests are always
    kept). ``sources``: name -> its status, rows written and requests.
    """

    run_id: str
    pipeline: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    politeness: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Host -> what the run met there (``HostRateReport.as_dict``; empty: nothing, or a file
    made before the figures were kept)."""

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "requests": self.requests,
            "retries": self.retries,
            "cache_hits": self.cache_hits,
            "failures": self.failures,
            "sources": [
                {
                    "name": name,
                    "status": values.get("status"),
                    "rows": values.get("rows"),
                    "requests": values.get("requests", 0),
                }
                for name, values in self.sources.items()
            ],
            "politeness": self.politeness,
        }


def read_runs(
    connection: duckdb.DuckDBPyConnection, pipeline: str | None = None, limit: int = 20
) -> list[RunSummary]:
    """The latest ``limit`` runs (of ``pipeline``, or all), the latest first."""
    tables = {
        str(row[0])
        for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    }
    if RUNS_TABLE not in tables:
        return []
    where = "WHERE pipeline = ?" if pipeline is not None else ""
    politeness = (
        "politeness" if "politeness" in (table_columns(connection, RUNS_TABLE) or {}) else "NULL"
    )
    found = connection.execute(
        f"SELECT run_id, pipeline, status, started_at, ended_at, {politeness} FROM {RUNS_TABLE} "
        f"{where} ORDER BY started_at DESC, run_id DESC LIMIT ?",
        [*([pipeline] if pipeline is not None else []), limit],
    ).fetchall()
    runs = {
        str(r[0]): RunSummary(
            str(r[0]), str(r[1]), str(r[2]), r[3], r[4], politeness=_politeness(r[5])
        )
        for r in found
    }
    if not runs:
        return []
    ids = list(runs)
    if REQUESTS_TABLE in tables:
        for run_id, source, requests, retries, hits, failures in connection.execute(
            "SELECT run_id, source, round(sum(weight)), sum(greatest(attempts - 1, 0)), "
            "round(coalesce(sum(weight) FILTER (WHERE origin IN ('cache', 'revalidated')), 0)), "
            f"count(*) FILTER (WHERE outcome = 'failed') FROM {REQUESTS_TABLE} "
            "WHERE list_contains(?, run_id) GROUP BY run_id, source ORDER BY source",
            [ids],
        ).fetchall():
            run = runs[str(run_id)]
            run.requests += int(requests or 0)
            run.retries += int(retries or 0)
            run.cache_hits += int(hits or 0)
            run.failures += int(failures or 0)
            if source is not None:
                entry = run.sources.setdefault(str(source), {"status": None, "rows": None})
                entry["requests"] = int(requests or 0)
    if SOURCES_TABLE in tables:
        for run_id, source, status, rows in connection.execute(
            f"SELECT run_id, source, status, rows FROM {SOURCES_TABLE} "
            "WHERE list_contains(?, run_id) ORDER BY rowid",
            [ids],
        ).fetchall():
            entry = runs[str(run_id)].sources.setdefault(str(source), {"requests": 0})
            entry.update(status=str(status), rows=int(rows or 0))
    for run in runs.values():
        for entry in run.sources.values():
            entry.setdefault("requests", 0)
    return list(runs.values())


def _politeness(value: object) -> dict[str, dict[str, Any]]:
    """The ``politeness`` column's JSON as a dict of dicts (anything else: empty)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {str(host): dict(v) for host, v in value.items() if isinstance(v, dict)}


__all__ = [
    "EVENTS_TABLE",
    "EVENT_COLUMNS",
    "OUTCOMES",
    "REQUESTS_TABLE",
    "REQUEST_COLUMNS",
    "RUNS_ADDED",
    "RUNS_SCHEMA",
    "RUNS_TABLE",
    "SAMPLE",
    "SLOW",
    "SOURCES_TABLE",
    "LogRows",
    "RequestRecorder",
    "RunSummary",
    "create_tables",
    "insert",
    "insert_fetch_run",
    "insert_spool",
    "outcome",
    "read_runs",
]
