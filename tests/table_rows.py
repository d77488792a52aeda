"""Every data table of a DuckDB destination, for comparing two runs' tables order-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb


def data_tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows without the run's own tables and columns (``_fetchpipe*``), sorted."""
    found = {}
    with duckdb.connect(str(db), read_only=True) as connection:
        for (table,) in connection.execute("SHOW TABLES").fetchall():
            if table.startswith("_fetchpipe"):
                continue
            columns = [
                row[0]
                for row in connection.execute(f'DESCRIBE "{table}"').fetchall()
                if not row[0].startswith("_fetchpipe")
            ]
            listed = ", ".join(f'"{c}"' for c in columns)
            rows = connection.execute(f'SELECT {listed} FROM "{table}"').fetchall()
            found[table] = sorted(rows, key=repr)
    return found
