"""What a report shows, as one frozen value: a run, its request rows and events, the run before.

:func:`read_run` takes it from the tables a run leaves in its DuckDB file
(:mod:`fetchpipe.destinations.run_log`); :func:`from_rows` makes it from rows kept in memory
(``fetch --out x.jsonl --report``, whose output has no request log). Either way the report is
drawn from this value alone (:func:`fetchpipe.report.html.render`): what is shown is what the
tables hold, and a report can be drawn again later with ``fetchpipe report``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fetchpipe.destinations.run_log import (
    EVENT_COLUMNS,
    EVENTS_TABLE,
    REQUEST_COLUMNS,
    REQUESTS_TABLE,
    RunSummary,
    read_runs,
)

if TYPE_CHECKING:
    import duckdb

REQUEST_FIELDS = tuple(name for name in REQUEST_COLUMNS if name != "run_id")
"""The fields of a :class:`RunData` request row, in order (the table's columns but the run)."""
EVENT_FIELDS = tuple(name for name in EVENT_COLUMNS if name != "run_id")
"""The fields of an event row, in order."""


class NoRun(LookupError):
    """The database holds no such run (or no run at all)."""


@dataclass(frozen=True, slots=True)
class RunData:
    """A run as its report shows it.

    ``requests`` and ``events`` are tuples of the fields :data:`REQUEST_FIELDS` and
    :data:`EVENT_FIELDS`, in the order they started. ``previous`` is the run of the same
    pipeline before this one, if any. ``rates`` maps a host to its configured rate limit
    (requests per second, ``None``: no limit); a host missing from it has an unknown limit
    (a report drawn from a destination alone does not know the limits it ran with).
    """

    run: RunSummary
    requests: tuple[tuple[Any, ...], ...]
    events: tuple[tuple[Any, ...], ...]
    previous: RunSummary | None = None
    rates: Mapping[str, float | None] | None = None

    @property
    def sampled(self) -> bool:
        """Whether the run kept a sample of its requests (``report.sample`` below 1)."""
        weight = REQUEST_FIELDS.index("weight")
        return any(row[weight] not in (None, 1.0) for row in self.requests)


def _tables(connection: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        str(row[0])
        for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    }


def read_run(
    connection: duckdb.DuckDBPyConnection,
    run_id: str | None = None,
    pipeline: str | None = None,
    rates: Callable[[str], float | None] | None = None,
) -> RunData:
    """The run ``run_id`` (or the latest of ``pipeline``, or the latest of all) in the database.

    ``rates`` gives a host's configured rate limit, when known. Raises :class:`NoRun`.
    """
    if run_id is None:
        latest = read_runs(connection, pipeline, limit=1)
        if not latest:
            raise NoRun("no runs" + (f" of pipeline {pipeline}" if pipeline else ""))
        run_id = latest[0].run_id
    found = connection.execute(
        "SELECT pipeline, started_at FROM _fetchpipe_runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if found is None:
        raise NoRun(f"no run {run_id}")
    name = str(found[0])
    history = read_runs(connection, name, limit=1_000_000)
    ids = [run.run_id for run in history]
    here = ids.index(run_id)
    run = history[here]
    previous = history[here + 1] if here + 1 < len(history) else None
    tables = _tables(connection)
    requests: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    if REQUESTS_TABLE in tables:
        names = ", ".join(f'"{n}"' for n in REQUEST_FIELDS)
        requests = connection.execute(
            f"SELECT {names} FROM {REQUESTS_TABLE} WHERE run_id = ? "
            "ORDER BY queued_at, start_offset",
            [run_id],
        ).fetchall()
    if EVENTS_TABLE in tables:
        names = ", ".join(f'"{n}"' for n in EVENT_FIELDS)
        events = connection.execute(
            f"SELECT {names} FROM {EVENTS_TABLE} WHERE run_id = ? ORDER BY start_offset",
            [run_id],
        ).fetchall()
    return RunData(run, tuple(requests), tuple(events), previous, _rates_of(requests, rates))


def _rates_of(
    requests: Iterable[Sequence[Any]], rates: Callable[[str], float | None] | None
) -> Mapping[str, float | None] | None:
    if rates is None:
        return None
    host = REQUEST_FIELDS.index("host")
    return {str(row[host]): rates(str(row[host])) for row in requests if row[host] is not None}


def from_rows(
    run: RunSummary,
    requests: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    rates: Callable[[str], float | None] | None = None,
) -> RunData:
    """A :class:`RunData` from rows as :class:`~fetchpipe.destinations.run_log.RequestRecorder`
    makes them (dicts), with no run before it."""
    request_rows = sorted(
        (tuple(row.get(name) for name in REQUEST_FIELDS) for row in requests),
        key=lambda row: row[REQUEST_FIELDS.index("queued_at")] or 0.0,
    )
    event_rows = sorted(
        (tuple(row.get(name) for name in EVENT_FIELDS) for row in events),
        key=lambda row: row[0] or 0.0,
    )
    for row in request_rows:
        run.requests += 1
        attempts = row[REQUEST_FIELDS.index("attempts")] or 1
        run.retries += max(0, attempts - 1)
        kind = row[REQUEST_FIELDS.index("outcome")]
        run.cache_hits += kind in ("cache", "revalidated")
        run.failures += kind == "failed"
    return RunData(
        run, tuple(request_rows), tuple(event_rows), None, _rates_of(request_rows, rates)
    )


__all__ = ["EVENT_FIELDS", "REQUEST_FIELDS", "NoRun", "RunData", "from_rows", "read_run"]
