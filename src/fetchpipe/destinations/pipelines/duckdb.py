"""Loading records into the tables of a DuckDB file, with each source's state in the same
transaction as the records it covers.

:class:`DuckDBLoader` keeps the run's journal and stage tables in the destination file itself
(see :mod:`.staging`): when a source ends, its stage is applied to its table, its state written,
the source marked done and the stage dropped, all in one transaction. ``append`` inserts;
``replace`` drops the table and creates it from the source's records (typed by them);
``merge`` upserts by primary key (see :mod:`.tables`). The source's child tables (``unnest``)
are written in the same transaction, by the same mode (see :mod:`.children`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fetchpipe.destinations.duckdb_ingest import quote, table_columns
from fetchpipe.destinations.pipelines import ChildTable, LoadError, SourceEnd, WriteMode
from fetchpipe.destinations.pipelines.children import data_columns, has_fields, write_child
from fetchpipe.destinations.pipelines.journal import stage_table
from fetchpipe.destinations.pipelines.staging import StagedStore, State, check_write
from fetchpipe.destinations.pipelines.tables import (
    RUN_ID_COLUMN,
    dedupe,
    write_rows,
)

if TYPE_CHECKING:
    import duckdb

__all__ = ["DuckDBLoader"]


class DuckDBLoader(StagedStore):
    """Loads records into tables of the DuckDB file ``path`` (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, label=str(path))
        self.path = Path(path)

    def apply(
        self,
        table: str,
        write: WriteMode,
        key: list[str],
        run_id: str,
        state: State,
        tables: Sequence[ChildTable] = (),
    ) -> int:
        """Apply the source's stage to ``table`` and its child ``tables``' stages to theirs,
        with its state, mark it done and drop the stages, in one transaction. Returns the rows
        written to ``table``."""

        def work(connection: duckdb.DuckDBPyConnection) -> int:
            return self._apply_in(connection, table, write, key, run_id, state, tables)

        return self.transaction(f"load the records of {table!r}", work)

    def finish_many(self, run_id: str, sources: Sequence[SourceEnd]) -> list[int | LoadError]:
        """End several sources in one transaction: one commit for all (a run of many small
        sources ends most of them at once, and a commit each waited on the disk one after
        another). When it fails, each is ended alone in its own, so that a source that cannot
        be applied fails alone."""
        if len(sources) == 1:
            return [self.finish_alone(run_id, sources[0])]

        def work(connection: duckdb.DuckDBPyConnection) -> list[int | LoadError]:
            written: list[int | LoadError] = []
            for end in sources:
                key = list(end.primary_key or ())
                check_write(end.table, end.write, key)
                written.append(
                    self._apply_in(
                        connection, end.table, end.write, key, run_id, end.state, end.tables
                    )
                )
            return written

        try:
            return self.transaction(f"load the records of {len(sources)} sources", work)
        except LoadError:
            pass  # each alone, below: a source that fails takes no other with it
        return [self.finish_alone(run_id, end) for end in sources]

    def _apply_in(
        self,
        connection: duckdb.DuckDBPyConnection,
        table: str,
        write: WriteMode,
        key: list[str],
        run_id: str,
        state: State,
        tables: Sequence[ChildTable],
    ) -> int:
        """:meth:`apply` inside the caller's transaction."""
        stage = stage_table(table)
        columns = table_columns(connection, stage)
        relation, parents = stage, 0
        if columns is not None and tables and write == "merge":
            relation, parents = dedupe(connection, stage, columns, key)  # the ones that win
        for child in tables:
            write_child(connection, child, write, relation if parents else None)
        rows = 0
        if write == "replace":
            if has_fields(columns):
                connection.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            elif table_columns(connection, table) is not None:
                connection.execute(f"DELETE FROM {quote(table)}")  # no records: keep columns
        if columns is not None:
            rows = write_rows(
                connection,
                table,
                relation,
                data_columns(columns),
                key if write == "merge" else (),
            )
        names = [child.name for child in tables]
        self.end_source(connection, run_id, table, "done", rows=rows, state=state, tables=names)
        return rows

    def written_rows(self, table: str, run_id: str) -> int:
        if table_columns(self.conn(), table) is None:
            return 0
        row = (
            self.conn()
            .execute(
                f"SELECT count(*) FROM {quote(table)} WHERE {quote(RUN_ID_COLUMN)} = ?", [run_id]
            )
            .fetchone()
        )
        return int(row[0]) if row is not None else 0
