"""The run journal: which run is unfinished, which of its pages are committed, what they led to.

Kept in DuckDB tables next to the records (in the destination file, or in
``DIR/_fetchpipe.duckdb`` beside a file destination), so that a page's records and its journal
entry commit in one transaction:

- ``_fetchpipe_runs`` (defined with the request log, :mod:`fetchpipe.destinations.run_log`):
  one row per run: id, pipeline, a hash of its configuration, the sources it was asked to
  write, and its status (``running`` until it ends; a run that never ended, the
  process having died or been stopped, is resumed by the next ``fetchpipe run``).
- ``_fetchpipe_pages``: one row per committed page of the unfinished run: the source, the
  page's key, how many records, whether it came from the cache, the greatest incremental cursor
  among its records, and the jobs it led to (next pages, and a child source's first page per
  record). Resuming fetches the jobs that committed pages led to and that are not committed
  themselves, so no committed page is fetched again and none is missed.
- ``_fetchpipe_sources``: per source of the run, once it ended: ``done`` (records applied to
  the table with its state), ``unchanged`` or ``failed``.

Job URLs are stored without credential query parameters (the authenticator adds them again
when the job is sent), so no secret reaches the journal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from fetchpipe.destinations import run_log
from fetchpipe.destinations.duckdb_ingest import Spool, read_json
from fetchpipe.destinations.run_log import RUNS_TABLE, SOURCES_TABLE

if TYPE_CHECKING:
    import duckdb

PAGES_TABLE = "_fetchpipe_pages"
STAGE_PREFIX = "_fetchpipe_stage_"

_PAGE_COLUMNS = {
    "run_id": "VARCHAR",
    "source": "VARCHAR",
    "page_key": "VARCHAR",
    "records": "BIGINT",
    "cached": "BOOLEAN",
    "cursor": "VARCHAR",
    "jobs": "VARCHAR",
}
"""The journal's page rows as read from their spool (``cursor`` and ``jobs`` are JSON text)."""
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {PAGES_TABLE} (run_id VARCHAR, source VARCHAR, "
    "page_key VARCHAR, records BIGINT, cached BOOLEAN, cursor JSON, jobs JSON)",
    f"CREATE TABLE IF NOT EXISTS {SOURCES_TABLE} (run_id VARCHAR, source VARCHAR, "
    "status VARCHAR, rows BIGINT, reason VARCHAR, ended_at TIMESTAMPTZ)",
)


def stage_table(source: str) -> str:
    """The table that holds a source's committed records until the source ends."""
    return f"{STAGE_PREFIX}{source}"


def page_key(
    source: str,
    url: str,
    params: Mapping[str, Any],
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """A page's identity within a run: its source, URL and query parameters, and its json body
    and own headers when it has them (pages of a cursor sent in the body share URL and
    parameters). A page without either keeps the key it had before bodies existed, so the
    journal of an interrupted run of an earlier version still names its pages."""
    parts: list[Any] = [source, url, sorted((k, str(v)) for k, v in params.items())]
    if body is not None:
        parts.append(["json", body])
    if headers:
        parts.append(["headers", sorted((k.lower(), v) for k, v in headers.items())])
    text = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(text).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class JournalJob:
    """A job a committed page led to, as stored: enough to send it again after a restart.

    ``base`` is the URL its paginator started from (page-number and offset pages are built from
    it); ``parallel`` marks one of the pages handed out at once after a known total;
    ``include`` holds the parent values a child record gets (``include_parent``);
    ``params`` are the parameters of its own (a page number, a cursor) and ``inherit`` names the
    source's parameters it also had; ``body`` is its json body (its cursor in it, when sent
    there) and ``headers`` its own headers (a cursor header), both without secrets.
    """

    source: str
    url: str
    params: Mapping[str, Any]
    number: int
    send_credentials: bool
    base: str
    parallel: bool = False
    include: Mapping[str, Any] | None = None
    inherit: tuple[str, ...] = ()
    """Names of the source's own parameters the page had: they come back from the source's
    configuration (so no secret is stored, and a rotated one is used)."""
    body: Any = None
    headers: Mapping[str, str] | None = None

    @property
    def key(self) -> str:
        return page_key(self.source, self.url, self.params, self.body, self.headers)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "s": self.source,
            "u": self.url,
            "p": dict(self.params),
            "n": self.number,
            "c": self.send_credentials,
            "b": self.base,
        }
        if self.parallel:
            out["par"] = True
        if self.include:
            out["i"] = dict(self.include)
        if self.inherit:
            out["h"] = list(self.inherit)
        if self.body is not None:
            out["j"] = self.body
        if self.headers:
            out["hd"] = dict(self.headers)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JournalJob:
        return cls(
            source=str(data["s"]),
            url=str(data["u"]),
            params=dict(data.get("p") or {}),
            number=int(data.get("n", 1)),
            send_credentials=bool(data.get("c", True)),
            base=str(data.get("b", data["u"])),
            parallel=bool(data.get("par", False)),
            include=data.get("i"),
            inherit=tuple(data.get("h") or ()),
            body=data.get("j"),
            headers=data.get("hd"),
        )


@dataclass(slots=True)
class PageEntry:
    """A committed page of a source: the journal row written with its records."""

    source: str
    key: str
    records: int
    cached: bool
    cursor: Any = None
    jobs: list[JournalJob] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as the journal knows it."""

    run_id: str
    pipeline: str
    config_hash: str
    selected: tuple[str, ...] | None
    full_refresh: bool
    status: str = "running"
    started_at: datetime | None = None
    """When the run began (read back for an unfinished run: a resumed run's times count
    from it)."""


def create_tables(connection: duckdb.DuckDBPyConnection) -> None:
    run_log.create_tables(connection)  # the runs (with their requests and events)
    for statement in _SCHEMA:
        connection.execute(statement)


def unfinished_run(connection: duckdb.DuckDBPyConnection, pipeline: str) -> RunRecord | None:
    """The pipeline's latest run that never ended, if any."""
    row = connection.execute(
        "SELECT run_id, pipeline, config_hash, selected, full_refresh, status, started_at "
        f"FROM {RUNS_TABLE} WHERE pipeline = ? AND status = 'running' "
        "ORDER BY started_at DESC LIMIT 1",
        [pipeline],
    ).fetchone()
    if row is None:
        return None
    selected = orjson.loads(row[3]) if row[3] is not None else None
    return RunRecord(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        tuple(selected) if selected is not None else None,
        bool(row[4]),
        str(row[5]),
        row[6],
    )


def begin_run(connection: duckdb.DuckDBPyConnection, run: RunRecord) -> None:
    selected = None if run.selected is None else orjson.dumps(list(run.selected)).decode()
    connection.execute(
        f"INSERT INTO {RUNS_TABLE} (run_id, pipeline, config_hash, selected, full_refresh, "
        "status, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?)",
        [
            run.run_id,
            run.pipeline,
            run.config_hash,
            selected,
            run.full_refresh,
            run.started_at or _now(),
        ],
    )


def end_run(
    connection: duckdb.DuckDBPyConnection,
    run_id: str,
    status: str,
    sources: Iterable[str],
    ended_at: datetime | None = None,
) -> None:
    """Mark the run ended (at ``ended_at``, now by default: the runner gives the instant its
    log says) and drop its bookkeeping: page rows and leftover stage tables."""
    for source in sources:
        connection.execute(f"DROP TABLE IF EXISTS {stage_table(source)}")
    connection.execute(f"DELETE FROM {PAGES_TABLE} WHERE run_id = ?", [run_id])
    connection.execute(
        f"UPDATE {RUNS_TABLE} SET status = ?, ended_at = ? WHERE run_id = ?",
        [status, ended_at or _now(), run_id],
    )


def insert_pages(
    connection: duckdb.DuckDBPyConnection, run_id: str, entries: Sequence[PageEntry]
) -> None:
    """Journal rows of committed pages (inside the caller's transaction), in one statement
    through the one ingest path (a statement per row cost about 2 ms each: the most of a
    commit of many small pages)."""
    if not entries:
        return
    spool = Spool(prefix="fetchpipe-pages-")
    try:
        spool.add(
            {
                "run_id": run_id,
                "source": e.source,
                "page_key": e.key,
                "records": e.records,
                "cached": e.cached,
                "cursor": None
                if e.cursor is None
                else orjson.dumps(e.cursor, default=str).decode(),
                "jobs": orjson.dumps([job.as_json() for job in e.jobs], default=str).decode(),
            }
            for e in entries
        )
        names = ", ".join(_PAGE_COLUMNS)
        # the JSON columns are read as the text encoded here, and stored as that text
        connection.execute(
            f"INSERT INTO {PAGES_TABLE} ({names}) SELECT {names} FROM "
            f"{read_json(spool, _PAGE_COLUMNS)}"
        )
    finally:
        spool.discard()


def committed_pages(connection: duckdb.DuckDBPyConnection, run_id: str) -> list[PageEntry]:
    rows = connection.execute(
        f"SELECT source, page_key, records, cached, cursor, jobs FROM {PAGES_TABLE} "
        "WHERE run_id = ? ORDER BY rowid",
        [run_id],
    ).fetchall()
    return [
        PageEntry(
            str(r[0]),
            str(r[1]),
            int(r[2]),
            bool(r[3]),
            None if r[4] is None else orjson.loads(r[4]),
            [JournalJob.from_json(j) for j in orjson.loads(r[5] or "[]")],
        )
        for r in rows
    ]


def mark_source(
    connection: duckdb.DuckDBPyConnection,
    run_id: str,
    source: str,
    status: str,
    rows: int,
    reason: str | None = None,
) -> None:
    """Record that a source of the run ended (inside the caller's transaction). ``reason``
    (why it failed) must already be free of secrets."""
    connection.execute(
        f"INSERT INTO {SOURCES_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, source, status, rows, reason, _now()],
    )


@dataclass(frozen=True, slots=True)
class EndedSource:
    """How a source of an interrupted run ended before the interruption."""

    status: str
    rows: int
    reason: str | None


def ended_sources(connection: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, EndedSource]:
    """Source -> how it ended, for the sources of the run that ended."""
    rows = connection.execute(
        f"SELECT source, status, rows, reason FROM {SOURCES_TABLE} WHERE run_id = ?", [run_id]
    ).fetchall()
    return {
        str(r[0]): EndedSource(str(r[1]), int(r[2] or 0), None if r[3] is None else str(r[3]))
        for r in rows
    }


def _now() -> datetime:
    return datetime.now(UTC)
