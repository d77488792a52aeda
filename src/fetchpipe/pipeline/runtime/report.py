"""What a pipeline run did: one :class:`SourceReport` per source, in a :class:`RunReport`.

While the run goes on a source is ``running`` (pages being fetched), then ``loading``. It ends
in one of four states:

- ``ok``: every page fetched; its records (and incremental state) committed together. Requests
  whose error status the source's ``on_status`` skips are counted in ``skipped``.
- ``unchanged``: every page came from the cache, fresh or confirmed by a 304; nothing written.
- ``failed``: a page could not be fetched or read (``reason`` says why); nothing of this run
  was written for it and its state did not advance. Other sources go on. When the page failed
  because its host was down, the pages the source had read are kept in the journal and the run
  stays unfinished (``RunReport.unfinished``): the next run resumes the source from them.
- ``fetched``: fetched only because a selected source needs its records (``--select`` of a
  child); not written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fetchpipe.engine.politeness import HostRateReport

if TYPE_CHECKING:
    from rich.table import Table

Status = Literal["running", "loading", "ok", "unchanged", "failed", "fetched"]


@dataclass(slots=True)
class SourceReport:
    """One source of a run."""

    name: str
    status: Status = "ok"
    pages: int = 0
    records: int = 0
    rows: int = 0
    """Rows written to the destination (after duplicate keys of a merge were removed)."""
    tables: dict[str, int] = field(default_factory=dict)
    """Rows written to each of its ``unnest`` tables."""
    cached_pages: int = 0
    """Pages answered by the cache (fresh, or confirmed by a 304)."""
    skipped: int = 0
    """Requests whose error status the source's ``on_status`` skips: no records, no failure."""
    seconds: float = 0.0
    reason: str | None = None
    cursor: Any = None
    """The incremental cursor stored by this run (``None`` without ``incremental``)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "pages": self.pages,
            "records": self.records,
            "rows": self.rows,
            "tables": dict(self.tables),
            "cached_pages": self.cached_pages,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "cursor": self.cursor,
        }


@dataclass(slots=True)
class RunReport:
    """A whole run: its id, where it wrote, and each source in dependency order."""

    run_id: str
    pipeline: str
    destination: str
    sources: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0
    resumed: bool = False
    """True when this run continued one that was interrupted."""
    hosts_down: dict[str, int] = field(default_factory=dict)
    """Host -> times its circuit breaker opened during the run."""
    hosts_waited: bool = False
    """The breaker held a down host's requests (``on_open: wait``) instead of failing them."""
    unfinished: bool = False
    """A source failed because its host was down: the run is kept in the journal, and the next
    run of the pipeline on this destination resumes it (``--restart`` drops it)."""
    retries_denied: int = 0
    """Retries refused by a host's retry budget."""
    rate_limits: dict[str, HostRateReport] = field(default_factory=dict)
    """Host -> its rate limit read or learned, 429s received, seconds paused (hosts where
    any of these happened)."""
    quotas_spent: dict[str, str] = field(default_factory=dict)
    """Host -> its spent quota and when it resets (the sources of these hosts are suspended)."""
    warnings: list[str] = field(default_factory=list)
    """What the run could do but the next one may not (e.g. a refresh token rotated)."""

    @property
    def ok(self) -> bool:
        """True when no source failed."""
        return all(s.status != "failed" for s in self.sources)

    @property
    def failed(self) -> list[SourceReport]:
        return [s for s in self.sources if s.status == "failed"]

    def source(self, name: str) -> SourceReport:
        for report in self.sources:
            if report.name == name:
                return report
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "destination": self.destination,
            "ok": self.ok,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "sources": [s.as_dict() for s in self.sources],
            "hosts_down": dict(self.hosts_down),
            "unfinished": self.unfinished,
            "retries_denied": self.retries_denied,
            "rate_limits": {host: info.as_dict() for host, info in self.rate_limits.items()},
            "quotas_spent": dict(self.quotas_spent),
            "warnings": list(self.warnings),
        }


# --- rendering ------------------------------------------------------------------------------------

_STYLES = {
    "running": "yellow",
    "loading": "yellow",
    "ok": "green",
    "unchanged": "cyan",
    "failed": "bold red",
    "fetched": "dim",
}


def source_line(report: SourceReport) -> str:
    """One line for a finished source, e.g. ``products: ok, 5 pages, 250 records -> 250 rows``."""
    parts = [f"{report.pages} page{'' if report.pages == 1 else 's'}"]
    if report.cached_pages:
        parts.append(f"{report.cached_pages} from cache")
    parts.append(f"{report.records} records")
    if report.skipped:
        parts.append(f"{report.skipped} skipped")
    text = f"{report.name}: {report.status}, {', '.join(parts)}"
    if report.status == "ok":
        text += f" -> {report.rows} rows"
        text += "".join(f", {table}: {rows} rows" for table, rows in report.tables.items())
    if report.cursor is not None:
        text += f", cursor {report.cursor}"
    text += f" ({report.seconds:.2f} s)"
    if report.reason:
        text += f": {report.reason}"
    return text


def summary_table(report: RunReport, *, live: bool = False) -> Table:
    """The run's sources as a rich table, with the run's totals in the caption (``live``: the
    seconds so far, while the run goes on)."""
    # lazy: only the command line's table needs rich, not a run from the library
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"pipeline {report.pipeline} -> {report.destination}", title_justify="left")
    skips = any(s.skipped for s in report.sources)  # a column only when a request was skipped
    right = ["pages", "cached", *(["skipped"] if skips else []), "records", "rows", "seconds"]
    for name in ("source", "status", *right, "cursor"):
        table.add_column(name, justify="right" if name in right else "left")
    for s in report.sources:
        note = "" if s.cursor is None else str(s.cursor)
        table.add_row(
            Text(s.name),
            f"[{_STYLES[s.status]}]{s.status}[/]",
            str(s.pages),
            str(s.cached_pages),
            *((str(s.skipped),) if skips else ()),
            str(s.records),
            str(s.rows),
            "" if s.status in ("running", "loading") else f"{s.seconds:.2f}",
            Text(note),
        )
        for child, rows in s.tables.items():  # its unnest tables, below it
            blank = ("",) * (3 + skips)
            table.add_row(Text(f"  {child}"), "[dim]unnest[/]", *blank, str(rows), "", "")
    if live:
        return table
    failed = len(report.failed)
    resumed = " (resumed)" if report.resumed else ""
    table.caption = (
        f"run {report.run_id}{resumed}: {len(report.sources) - failed} ok, {failed} failed, "
        f"{report.seconds:.2f} s"
    )
    table.caption_justify = "left"
    return table


def failure_lines(report: RunReport) -> list[str]:
    """``failed: NAME: reason`` for each failed source, a note for a source that loaded with a
    caveat, then each host that was down, then the run's warnings."""
    lines = [f"failed: {s.name}: {s.reason}" for s in report.failed]
    lines += [
        f"note: {s.name}: {s.reason}" for s in report.sources if s.reason and s.status != "failed"
    ]
    for host, openings in sorted(report.hosts_down.items()):
        times = "once" if openings == 1 else f"{openings} times"
        if report.hosts_waited:
            then = "requests waited for a cool-down, then probed it one at a time"
        else:
            then = "its requests failed at once as host_down"
        lines.append(f"host down: {host} (its circuit breaker opened {times}: {then})")
    if report.unfinished:
        lines.append(
            f"run {report.run_id} is kept unfinished: the next `fetchpipe run` of this pipeline "
            "resumes it (committed pages are not fetched again); --restart drops it"
        )
    if report.retries_denied:
        lines.append(f"retries refused by a host's retry budget: {report.retries_denied}")
    for host, info in sorted(report.rate_limits.items()):
        lines.append(f"rate limit: {host}: {info.text}")
    for message in report.quotas_spent.values():
        lines.append(f"quota: {message.removeprefix('not sent: ')}")
    lines += [f"warning: {warning}" for warning in report.warnings]
    return lines
