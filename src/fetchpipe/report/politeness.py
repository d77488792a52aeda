"""The report's "Politeness per host": for each host where something of the kind happened, the
limit in force and where it came from (configured, published in which headers, or learned from
429s), the 429s and the 503s with a ``Retry-After`` it answered, and the time it was paused.

Drawn from the run's ``politeness`` (``_fetchpipe_runs.politeness``, or the run in memory for a
JSONL fetch: :attr:`~fetchpipe.destinations.run_log.RunSummary.politeness`), the figures the
summary printed; hosts are listed the most throttled first.
"""

from __future__ import annotations

from fetchpipe._host_rates import HostRateReport
from fetchpipe.report.data import RunData
from fetchpipe.report.markup import table, text

MAX_HOSTS = 200
"""Hosts listed (the most throttled first); the table says how many more there are."""

NOTHING = (
    '<p class="note">No host published a rate limit, answered a 429 or a 503 with '
    "Retry-After, or was paused in this run (or the run was recorded before these figures "
    "were kept).</p>"
)


def hosts(data: RunData) -> list[HostRateReport]:
    """The run's hosts' figures, the most throttled first, then the longest paused."""
    reports = [HostRateReport.from_dict(host, v) for host, v in data.run.politeness.items()]
    return sorted(reports, key=lambda r: (-(r.throttled + r.unavailable), -r.paused, r.host))


def _limit(report: HostRateReport) -> tuple[str, str]:
    """The limit in force and how it is known, as two cells' text."""
    known = report.in_force
    figure = "–" if known.figure is None else known.figure
    if known.kind == "published":
        return figure, f"published ({known.detail or 'headers'})"
    if known.kind == "learned":
        ceiling = "" if known.detail is None else f", {known.detail}"
        return figure, f"learned from 429s (AIMD{ceiling})"
    return figure, known.kind


def section(data: RunData) -> str:
    """The table (or a line saying there is nothing to show)."""
    reports = hosts(data)
    if not reports:
        return NOTHING
    head = [
        ("host", True),
        ("limit in force", False),
        ("known from", True),
        ("429s", False),
        ("503 + Retry-After", False),
        ("paused", False),
    ]
    rows = []
    for report in reports[:MAX_HOSTS]:
        limit, known = _limit(report)
        rows.append(
            [
                (text(report.host), "l"),
                (text(limit), ""),
                (text(known), "l"),
                (f"{report.throttled:,}", "up" if report.throttled else ""),
                (f"{report.unavailable:,}", "up" if report.unavailable else ""),
                (f"{report.paused:.1f} s", ""),
            ]
        )
    more = ""
    if len(reports) > MAX_HOSTS:
        more = f'<p class="note">and {len(reports) - MAX_HOSTS:,} more hosts</p>'
    note = (
        '<p class="note">Paused: time the host\'s next request was held back by a Retry-After '
        "or a published quota spent until its reset (waits between requests at a configured "
        "or learned rate show as queue time in the waterfall).</p>"
    )
    return f'<div class="scroll">{table(head, rows)}</div>{more}{note}'


__all__ = ["MAX_HOSTS", "NOTHING", "hosts", "section"]
