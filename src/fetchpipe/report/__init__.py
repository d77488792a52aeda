"""The HTML report of a run: a view over the request log its destination keeps.

:func:`write_report` reads a run from a DuckDB file (:mod:`.data`), computes its figures
(:mod:`.stats`) and writes one self-contained HTML page (:mod:`.html`, with :mod:`.assets`);
:func:`write_metrics` writes its figures for Prometheus (:mod:`.metrics`). Used by ``fetchpipe
report``, ``fetch --report/--metrics`` and ``run --report/--metrics``. DuckDB is imported when a
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


def write_metrics(path: str | Path, data: RunData) -> Path:
    """Write the run's metrics in the Prometheus text format (:mod:`.metrics`) to ``path``,
    replaced whole (node_exporter's textfile collector must never read half a file)."""
    from fetchpipe.report import metrics

    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(metrics.render(data), encoding="utf-8")
    partial.replace(target)
    return target


def read_database(
    database: str | Path,
    *,
    run_id: str | None = None,
    pipeline: str | None = None,
    rates: Callable[[str], float | None] | None = None,
) -> RunData:
    """The run ``run_id`` (else the latest of ``pipeline``, else the latest) kept in the DuckDB
    file ``database``, opened read-only. Raises :class:`NoRun`, and ``duckdb.Error`` when the
    file cannot be opened."""
    import duckdb  # lazy: start-up time

    connection = duckdb.connect(str(database), read_only=True)
    try:
        return read_run(connection, run_id, pipeline, rates)
    finally:
        connection.close()


def write_report(
    database: str | Path,
    path: str | Path,
    *,
    run_id: str | None = None,
    pipeline: str | None = None,
    rates: Callable[[str], float | None] | None = None,
    redact: Callable[[str], str] = redact_text,
) -> Path:
    """Write the report of a run kept in the DuckDB file ``database`` (see
    :func:`read_database`) to ``path``."""
    data = read_database(database, run_id=run_id, pipeline=pipeline, rates=rates)
    return write_html(path, data, redact)


__all__ = [
    "NoRun",
    "RunData",
    "from_rows",
    "rates_from",
    "read_database",
    "read_run",
    "render",
    "write_html",
    "write_metrics",
    "write_report",
]
