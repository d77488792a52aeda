"""The request log of a fetch whose requests ran in other processes (``fetch --executor``).

Each batch a worker ran brings back the rows of its requests and events (made there by the
same :class:`~fetchpipe.destinations.run_log.RequestRecorder` as a local run's, their times
counted from the driver's start); the driver adds them here as batches finish. They wait in
temporary JSON Lines files (the driver's memory stays flat whatever the run's size), and when
the output is merged they go, with the run's row (and its politeness figures per host), into
a DuckDB output's ``_fetchpipe_runs``,
``_fetchpipe_requests`` and ``_fetchpipe_events`` in one transaction
(:meth:`GatheredLog.write_into`), as a local ``fetch --out x.duckdb`` leaves them; for another
output the report reads them back (:meth:`GatheredLog.rows`), as a local run keeps them in
memory.

A batch that a worker's death made run again reports once, from its last try: its rows are
gathered once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from fetchpipe._exceptions import SinkError
from fetchpipe.destinations import run_log
from fetchpipe.destinations.duckdb_ingest import Spool


class GatheredLog:
    """The rows of one run's requests and events, gathered from its batches."""

    def __init__(self, run_id: str, started_at: datetime) -> None:
        self.run_id = run_id
        self.started_at = started_at
        self._requests = Spool(prefix="fetchpipe-log-")
        self._events = Spool(prefix="fetchpipe-log-")

    @property
    def requests(self) -> int:
        """Request rows gathered so far."""
        return self._requests.count

    def add(
        self, requests: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
    ) -> None:
        """A finished batch's rows."""
        self._requests.add(requests)
        self._events.add(events)

    def write_into(
        self,
        database: str | Path,
        ended_at: datetime,
        politeness: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """The run's row (``done``, with its ``politeness`` figures per host when given), its
        requests and its events into ``database``'s run tables, in one transaction; SinkError
        when it cannot (nothing is written then)."""
        import duckdb  # lazy: start-up time

        for spool in (self._requests, self._events):
            spool.finish()
        try:
            with duckdb.connect(str(database)) as connection:
                connection.execute("BEGIN TRANSACTION")
                run_log.insert_fetch_run(connection, self.run_id, self.started_at, ended_at)
                if politeness is not None:  # the run's figures per host, on its row
                    run_log.insert(connection, run_log.LogRows([], [], politeness, self.run_id))
                for table, columns, spool in (
                    (run_log.REQUESTS_TABLE, run_log.REQUEST_COLUMNS, self._requests),
                    (run_log.EVENTS_TABLE, run_log.EVENT_COLUMNS, self._events),
                ):
                    if spool.count:
                        run_log.insert_spool(connection, table, columns, spool)
                connection.execute("COMMIT")
        except duckdb.Error as exc:  # rolled back with the connection
            raise SinkError(f"cannot record the run in {str(database)!r}: {exc}") from exc

    def rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The request rows and the event rows, in the order they were added."""
        found: list[list[dict[str, Any]]] = []
        for spool in (self._requests, self._events):
            spool.finish()
            with open(spool.path, "rb") as lines:
                found.append([orjson.loads(line) for line in lines if line.strip()])
        return found[0], found[1]

    def discard(self) -> None:
        """Remove the temporary files."""
        self._requests.discard()
        self._events.discard()
