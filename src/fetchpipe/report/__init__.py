"""The HTML report of a run: a view over the request log its destination keeps.

:func:`write_report` reads a run from a DuckDB file (:mod:`.data`), computes its figures
(:mod:`.stats`) and writes one self-contained HTML page (:mod:`.html`, with :mod:`.assets`).
Used by ``fetchpipe report``, ``fetch --report`` and ``run --report``. DuckDB is imported when a
report is read (lazy: start-up time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fetchpipe._config import Limits
from fetchpipe._redact import redact_text
from fetchpipe.report.data import NoRun, RunData, from_rows, read_run
from fetchpipe.report.html import render


def rates_from(limits: Limits) -> Callable[[str], float | None]:
    """A host's configured rate limit (requests per second; None: no limit) in ``limits``."""
    return lambda host: limits.for_host(host).max_per_second


def write_html(path: str | Path, data: RunData, redact: Callable[[str], str] = redact_text) -> Path:
    """Write the report of ``data`` to ``path`` (replaced whole: a reader never sees half).

    The rows were redacted when they were recorded; ``redact`` (the pipeline's secrets,
    credentials in URLs) goes over the page once more, as over every output."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(redact(render(data)), encoding="utf-8")
    partial.replace(target)
    return target


def write_report(
    database: str | Path,
    path: str | Path,
    *,
    run_id: str | None = None,
    pipeline: str | None = None,
    rates: Callable[[str], float | None] | None = None,
    redact: Callable[[str], str] = redact_text,
) -> Path:
    """Write the report of the run ``run_id`` (else the latest of ``pipeline``, else the latest)
    kept in the DuckDB file ``database`` to ``path``. Raises :class:`NoRun`, and
    ``duckdb.Error`` when the file cannot be opened."""
    import duckdb  # lazy: start-up time

    connection = duckdb.connect(str(database), read_only=True)
    try:
        data = read_run(connection, run_id, pipeline, rates)
    finally:
        connection.close()
    return write_html(path, data, redact)


__all__ = [
    "NoRun",
    "RunData",
    "from_rows",
    "rates_from",
    "read_run",
    "render",
    "write_html",
    "write_report",
]
