"""The report the fault scenarios share, built from the clients' runs: a table with one row per
client, the failures by error, the runs as JSON, and a bar chart of one figure per client.

Each scenario's report (``faults``, ``faults --toxics``, ``--dead-api``, ``--flaky-api``)
subclasses :class:`ClientsReport` and says only what is its own: the opening lines, which
columns, which figure the chart shows and the closing summary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fetchpipe.bench.fault_clients import ClientRun
from fetchpipe.bench.svg import Bar, Marker, bar_chart


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the table: its title, right-aligned in ``width``, and each run's cell."""

    title: str
    width: int
    cell: Callable[[ClientRun], object]
    spec: str = ""
    """The cell's format spec after the width, e.g. ``.3f``."""


LANDED = Column("landed", 8, lambda r: r.landed)
FAILED = Column("failed", 8, lambda r: r.failed)
RETRIES = Column("retries", 9, lambda r: r.retries)
REFUSED = Column("refused", 9, lambda r: r.refused)
SERVER_REQUESTS = Column("server requests", 17, lambda r: r.server_requests)
SECONDS = Column("seconds", 9, lambda r: r.seconds, ".3f")


def ratio(value: float, base: float) -> float | None:
    """``value / base``, or ``None`` when ``base`` is 0."""
    return value / base if base else None


@dataclass(slots=True)
class ClientsReport:
    """The runs of one fault scenario, a client each; ``fetchpipe`` and ``gather`` among them."""

    runs: list[ClientRun] = field(default_factory=list, kw_only=True)

    def run(self, name: str) -> ClientRun:
        return next(r for r in self.runs if r.name == name)

    @property
    def fetchpipe(self) -> ClientRun:
        return self.run("fetchpipe")

    @property
    def gather(self) -> ClientRun:
        return self.run("gather")

    def table(self, columns: Sequence[Column], label_width: int = 30) -> list[str]:
        """The header and a row per run: the client's label, then the columns."""
        header = f"{'client':<{label_width}}" + "".join(f"{c.title:>{c.width}}" for c in columns)
        rows = [
            f"{r.label:<{label_width}}"
            + "".join(f"{c.cell(r):>{c.width}{c.spec}}" for c in columns)
            for r in self.runs
        ]
        return [header, *rows]

    def error_lines(
        self,
        title: str,
        *kinds: str,
        then: Callable[[ClientRun], str] = lambda r: "",
    ) -> list[str]:
        """``  {title}, {client}: {error} {n}, ...`` for each run (the requests of ``kinds``;
        none: all), followed by ``then(run)``."""
        lines = []
        for r in self.runs:
            errors = r.failed_by_error(*kinds).items()
            listed = ", ".join(f"{error} {n}" for error, n in errors) or "none"
            lines.append(f"  {title}, {r.name}: {listed}{then(r)}")
        return lines

    def bars(
        self,
        title: str,
        figure: Callable[[ClientRun], float],
        text: Callable[[ClientRun], str],
        *,
        axis: str,
        subtitle: str,
        marker: Marker,
    ) -> str:
        """A bar chart with one bar per run, fetchpipe's highlighted."""
        rows = [
            Bar(r.label, float(figure(r)), text(r), highlight=r.name == "fetchpipe")
            for r in self.runs
        ]
        return bar_chart(title, rows, axis=axis, subtitle=subtitle, marker=marker)
