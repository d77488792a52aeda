"""Loading records into the tables of a DuckDB file, with each source's state in the same
transaction as the records it covers.

:class:`DuckDBLoader` keeps the run's journal and stage tables in the destination file itself
(see :mod:`.staging`): when a source ends, its stage is applied to its table, its state written,
the source marked done and the stage dropped, all in one transaction. ``append`` inserts;
``replace`` drops the table and creates it from the source's records (typed by them);
``merge`` upserts by primary key (see :mod:`.tables`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fetchpipe.destinations.duckdb_ingest import quote
from fetchpipe.destinations.pipelines import WriteMode
from fetchpipe.destinations.pipelines.journal import stage_table
from fetchpipe.destinations.pipelines.staging import StagedStore, State
from fetchpipe.destinations.pipelines.tables import META_COLUMNS, table_columns, write_rows

if TYPE_CHECKING:
    import duckdb

__all__ = ["DuckDBLoader"]


class DuckDBLoader(StagedStore):
    """Loads records into tables of the DuckDB file ``path`` (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, label=str(path))
        self.path = Path(path)

    def apply(self, table: str, write: WriteMode, key: list[str], run_id: str, state: State) -> int:
        """Apply the source's stage to ``table`` with its state, mark it done and drop the
        stage, in one transaction. Returns the rows written."""
        stage = stage_table(table)

        def work(connection: duckdb.DuckDBPyConnection) -> int:
            columns = table_columns(connection, stage)
            rows = 0
            if write == "replace":
                if columns is not None and set(columns) - set(META_COLUMNS):
                    connection.execute(f"DROP TABLE IF EXISTS {quote(table)}")
                elif table_columns(connection, table) is not None:
                    connection.execute(f"DELETE FROM {quote(table)}")  # no records: keep columns
            if columns is not None:
                rows = write_rows(
                    connection, table, stage, columns, key if write == "merge" else ()
                )
            self.end_source(connection, run_id, table, "done", rows=rows, state=state)
            return rows

        return self.transaction(f"load the records of {table!r}", work)
