"""Run summary: a pure accumulator of results, and its renderings (rich table, one line)."""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fetchpipe._models import ErrorKind, Provenance, Result
from fetchpipe.cli.plain_console import Output, PlainConsole, plain_line

if TYPE_CHECKING:
    from rich.table import Table

    from fetchpipe.engine.politeness import HostRateReport

SOURCES = (Provenance.CACHE, Provenance.REVALIDATED, Provenance.STALE, Provenance.NETWORK)
"""The order sources are shown in."""


@dataclass
class Summary:
    """Counts and latencies of a run. Call :meth:`add` per result; set ``wall_time`` at the end.

    Latencies are kept as 8-byte floats (one per result) so percentiles are exact.
    ``by_source`` counts results by where their response came from; a request missing from
    the cache in offline mode came from nowhere and is counted in ``not_cached`` instead.
    Set ``cache_used`` to show the sources even when every result came from the network.
    """

    total: int = 0
    ok: int = 0
    retries: int = 0
    by_error: Counter[ErrorKind] = field(default_factory=Counter)
    by_source: Counter[Provenance] = field(default_factory=Counter)
    wall_time: float | None = None
    cache_used: bool = False
    hosts_down: dict[str, int] = field(default_factory=dict)
    """Host -> times its circuit breaker opened (copied from the fetcher at the end)."""
    retries_denied: int = 0
    """Retries refused by a host's retry budget."""
    rate_limits: dict[str, HostRateReport] = field(default_factory=dict)
    """Host -> its rate limit read or learned, 429s, time paused (copied from the fetcher at
    the end; only hosts where something of the kind happened)."""
    quotas_spent: dict[str, str] = field(default_factory=dict)
    """Host -> why its requests were not sent and when its quota resets (spent quotas)."""
    notes: list[tuple[str, str]] = field(default_factory=list)
    """Extra ``(figure, value)`` rows the table ends with (a distributed run's executor)."""
    _latencies: array[float] = field(default_factory=lambda: array("d"), repr=False)
    _sorted: list[float] = field(default_factory=list, repr=False)

    def add(self, result: Result) -> None:
        self.total += 1
        if result.error is None:
            self.ok += 1
        else:
            self.by_error[result.error] += 1
        if result.error is not ErrorKind.NOT_CACHED:
            self.by_source[result.source] += 1
        self.retries += result.retries
        self._latencies.append(result.elapsed)

    def add_counts(
        self,
        *,
        total: int,
        ok: int,
        retries: int,
        by_error: Mapping[ErrorKind, int],
        by_source: Mapping[Provenance, int],
        latencies: Iterable[float],
    ) -> None:
        """Count many results at once, as :meth:`add` would have one by one (a batch run on
        another process: ``by_source`` without the ``not_cached`` ones)."""
        self.total += total
        self.ok += ok
        self.retries += retries
        self.by_error.update(by_error)
        self.by_source.update(by_source)
        self._latencies.extend(latencies)

    @property
    def failed(self) -> int:
        return self.total - self.ok

    @property
    def not_cached(self) -> int:
        """Requests the cache had no entry for, in offline mode (failed as ``not_cached``)."""
        return self.by_error[ErrorKind.NOT_CACHED]

    @property
    def quota_exhausted(self) -> int:
        """Requests not sent because their host's quota was spent."""
        return self.by_error[ErrorKind.QUOTA_EXHAUSTED]

    @property
    def shows_sources(self) -> bool:
        """Whether renderings list the sources: a cache was used, or something came from one."""
        return self.cache_used or any(
            count for source, count in self.by_source.items() if source is not Provenance.NETWORK
        )

    def sources(self) -> list[tuple[str, int]]:
        """``(label, count)`` for every source (zeros too), then ``not cached`` if any."""
        rows = [(source.value, self.by_source[source]) for source in SOURCES]
        if self.not_cached:
            rows.append(("not cached", self.not_cached))
        return rows

    def failures(self) -> list[tuple[ErrorKind, int]]:
        """Failed requests by reason, most frequent first."""
        return sorted(self.by_error.items(), key=lambda item: (-item[1], item[0].value))

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of ``elapsed`` (seconds); ``None`` with no results."""
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be within 0..100, got {p!r}")
        if not self._latencies:
            return None
        if len(self._sorted) != len(self._latencies):
            self._sorted = sorted(self._latencies)
        ordered = self._sorted
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    @property
    def p50(self) -> float | None:
        return self.percentile(50)

    @property
    def p95(self) -> float | None:
        return self.percentile(95)

    @property
    def max_latency(self) -> float | None:
        return max(self._latencies) if self._latencies else None

    @property
    def rate(self) -> float | None:
        """Results per second of wall time."""
        if not self.wall_time:
            return None
        return self.total / self.wall_time


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _failure_text(summary: Summary) -> str:
    return ", ".join(f"{kind.value} {count}" for kind, count in summary.failures())


def _source_text(summary: Summary) -> str:
    return ", ".join(f"{label} {count}" for label, count in summary.sources())


def one_line(summary: Summary) -> str:
    """The summary as one plain line, e.g. for logs; the sources close it when shown."""
    failed = f"{summary.failed} failed"
    if summary.failed:
        failed += f" ({_failure_text(summary)})"
    rate = "-" if summary.rate is None else f"{summary.rate:.1f}"
    line = (
        f"{summary.total} requests: {summary.ok} ok, {failed} | {summary.retries} retries | "
        f"p50 {_seconds(summary.p50)}, p95 {_seconds(summary.p95)} | {rate} req/s | "
        f"wall {_seconds(summary.wall_time)}"
    )
    if summary.shows_sources:
        line += f" | {_source_text(summary)}"
    if summary.hosts_down:
        line += f" | hosts down: {', '.join(sorted(summary.hosts_down))}"
    if summary.rate_limits:
        throttled = sum(r.throttled for r in summary.rate_limits.values())
        paused = sum(r.paused for r in summary.rate_limits.values())
        hosts = len(summary.rate_limits)
        line += (
            f" | rate limits: {hosts} host{'' if hosts == 1 else 's'}, {throttled} 429s, "
            f"paused {paused:.1f} s"
        )
    return line


TITLE = "fetchpipe summary"


def rows(summary: Summary) -> list[tuple[str, str]]:
    """The table's rows, ``(figure, value)``, in rich markup (green and red)."""
    out = [
        ("requests", str(summary.total)),
        ("ok", f"[green]{summary.ok}[/green]"),
        ("failed", f"[red]{summary.failed}[/red]" if summary.failed else "0"),
    ]
    for kind, count in summary.failures():
        out.append((f"  {kind.value}", str(count)))
    out.append(("retries", str(summary.retries)))
    if summary.retries_denied:
        out.append(("  refused by budget", str(summary.retries_denied)))
    for host, openings in sorted(summary.hosts_down.items()):
        times = "once" if openings == 1 else f"{openings} times"
        out.append((f"[red]host down[/red] {host}", f"breaker opened {times}"))
    for host, report in sorted(summary.rate_limits.items()):
        out.append((f"rate limit {host}", report.text))
    if summary.shows_sources:
        out.append(("sources", ""))
        for label, count in summary.sources():
            out.append((f"  {label}", str(count)))
    out.append(("latency p50", _seconds(summary.p50)))
    out.append(("latency p95", _seconds(summary.p95)))
    out.append(("requests/s", "-" if summary.rate is None else f"{summary.rate:.1f}"))
    out.append(("wall time", _seconds(summary.wall_time)))
    out.extend(summary.notes)
    return out


def table(summary: Summary) -> Table:
    """The summary as a rich table."""
    from rich.table import Table  # lazy: start-up time; only a terminal gets the table

    grid = Table(title=TITLE, show_header=False, title_justify="left")
    grid.add_column("figure", style="bold")
    grid.add_column("value", justify="right")
    for figure, value in rows(summary):
        grid.add_row(figure, value)
    return grid


_COLOURS = re.compile(r"\[/?(?:green|red)\]")


def plain_table(summary: Summary, width: int) -> list[str] | None:
    """The lines rich prints for :func:`table` without a terminal (no colours), or ``None``
    where rich would do more than this: a cell with other markup, an emoji code or a character
    that is not printable ASCII, or a table wider than ``width`` (rich would fold it)."""
    cells = [(_COLOURS.sub("", figure), _COLOURS.sub("", value)) for figure, value in rows(summary)]
    if not all(plain_line(cell) and "[" not in cell for row in cells for cell in row):
        return None
    left = max(len(figure) for figure, _ in cells)
    right = max(len(value) for _, value in cells)
    total = left + right + 7  # 3 borders, a space either side of each cell
    if total > width or len(TITLE) > total:
        return None
    return [
        TITLE.ljust(total),
        f"┌{'─' * (left + 2)}┬{'─' * (right + 2)}┐",
        *(f"│ {figure:<{left}} │ {value:>{right}} │" for figure, value in cells),
        f"└{'─' * (left + 2)}┴{'─' * (right + 2)}┘",
    ]


def render(summary: Summary, console: Output) -> None:
    """Print the table, then the one-line form."""
    if isinstance(console, PlainConsole):
        lines = plain_table(summary, console.width)
        if lines is None:
            console.rich().print(table(summary))
        else:
            console.write_lines(lines)
    else:
        console.print(table(summary))
    console.print(one_line(summary), markup=False, highlight=False, soft_wrap=True)
