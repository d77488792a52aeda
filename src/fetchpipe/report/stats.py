"""The report's figures, computed from a :class:`~fetchpipe.report.data.RunData` alone.

Pure functions: per source and per host (:func:`groups`), the slowest requests and the failures
(:func:`slowest`, :func:`failures`), and the comparison with the previous run
(:func:`comparison`). Counts are sums of the rows' weights (exact unless the run kept a sample);
latencies are of the rows kept (every slow request is kept, so the maximum is exact).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fetchpipe.report.data import EVENT_FIELDS, REQUEST_FIELDS, RunData

_R = {name: i for i, name in enumerate(REQUEST_FIELDS)}
_E = {name: i for i, name in enumerate(EVENT_FIELDS)}
_PARTS = re.compile(r"\d+|\D+")
FROM_CACHE = frozenset({"cache", "revalidated"})


def natural(name: str) -> tuple[tuple[int, int, str], ...]:
    """A sort key that puts ``127.0.0.2`` before ``127.0.0.10`` (numbers as numbers)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in _PARTS.findall(name)
    )


def field_of(row: Sequence[Any], name: str) -> Any:
    """The field ``name`` of a request row."""
    return row[_R[name]]


def event_field(row: Sequence[Any], name: str) -> Any:
    """The field ``name`` of an event row."""
    return row[_E[name]]


def done_at(row: Sequence[Any]) -> float:
    """Seconds from the run's start to the request's result."""
    return float(field_of(row, "start_offset") or 0.0) + float(field_of(row, "total_time") or 0.0)


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``values`` (linear between the closest ranks)."""
    if not values:
        return None
    position = (len(values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


@dataclass(slots=True)
class Group:
    """The figures of one source or host."""

    name: str
    requests: float = 0.0
    failed: int = 0
    retries: int = 0
    cache_hits: float = 0.0
    bytes: float = 0.0
    network: float = 0.0
    first_start: float = math.inf
    last_done: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    limit: float | None = None

    @property
    def p50(self) -> float | None:
        return quantile(self.latencies, 0.5)

    @property
    def p95(self) -> float | None:
        return quantile(self.latencies, 0.95)

    @property
    def max(self) -> float | None:
        return self.latencies[-1] if self.latencies else None

    @property
    def hit_ratio(self) -> float | None:
        return self.cache_hits / self.requests if self.requests else None

    @property
    def rate(self) -> float | None:
        """Requests sent per second, from the group's first send to its last network result."""
        span = self.last_done - self.first_start
        if self.network < 2 or span <= 0:
            return None
        return self.network / span


def reason(status: Any, error: Any) -> str:
    """Why an attempt failed, in a word: ``HTTP 503``, ``timeout``."""
    if status is not None and (error in (None, "http_status")):
        return f"HTTP {status}"
    return str(error or "error")


def groups(data: RunData, by: str) -> list[Group]:
    """The figures per ``by`` (``source`` or ``host``), the busiest first."""
    found: dict[str, Group] = {}
    for row in data.requests:
        name = str(field_of(row, by) or "-")
        group = found.get(name)
        if group is None:
            group = found[name] = Group(name)
            if by == "host" and data.rates is not None:
                group.limit = data.rates.get(name)
        weight = float(field_of(row, "weight") or 1.0)
        group.requests += weight
        kind = field_of(row, "outcome")
        group.failed += kind == "failed"
        group.retries += max(0, int(field_of(row, "attempts") or 1) - 1)
        size = field_of(row, "bytes")
        group.bytes += float(size) * weight if size is not None else 0.0
        group.latencies.append(float(field_of(row, "total_time") or 0.0))
        if kind in FROM_CACHE:
            group.cache_hits += weight
        if field_of(row, "origin") in ("network", "revalidated", "stale"):
            group.network += weight
            group.first_start = min(group.first_start, float(field_of(row, "start_offset") or 0))
            group.last_done = max(group.last_done, done_at(row))
    for event in data.events:
        if event_field(event, "event") != "request_retried":
            continue
        group = found.get(str(event_field(event, by) or "-"))
        if group is not None:
            group.reasons[reason(event_field(event, "status"), event_field(event, "error"))] += 1
    for group in found.values():
        group.latencies.sort()
    return sorted(found.values(), key=lambda g: (-g.requests, natural(g.name)))


def slowest(data: RunData, count: int = 20) -> list[tuple[Any, ...]]:
    """The ``count`` requests that took longest from their first attempt to their result (the
    time in the queue, the limits' doing, is shown beside it), the slowest first."""
    return sorted(data.requests, key=lambda row: -float(field_of(row, "total_time") or 0))[:count]


def failures(data: RunData) -> list[tuple[Any, ...]]:
    """Every failed request, in the order they were queued."""
    return [row for row in data.requests if field_of(row, "outcome") == "failed"]


def outcome_counts(data: RunData) -> Counter[str]:
    """Requests per outcome (weights summed, rounded)."""
    counts: Counter[str] = Counter()
    for row in data.requests:
        counts[str(field_of(row, "outcome"))] += round(float(field_of(row, "weight") or 1.0))
    return counts


def run_seconds(data: RunData) -> float:
    """The run's length: from its row's start to its end, or to its last result when that is
    later (a fetch's row starts with its first write) or the run has not ended."""
    last = max((done_at(row) for row in data.requests), default=0.0)
    return max(data.run.seconds or 0.0, last)


@dataclass(frozen=True, slots=True)
class Compared:
    """A figure of this run beside the previous run's (None: unknown, or not in that run)."""

    now: float | None
    before: float | None

    @property
    def change(self) -> float | None:
        if self.now is None or self.before is None:
            return None
        return self.now - self.before


@dataclass(frozen=True, slots=True)
class Comparison:
    """This run beside the previous one: its totals, and rows and requests per source."""

    totals: dict[str, Compared]
    """``seconds``, ``requests``, ``retries``, ``failed requests``."""
    sources: dict[str, tuple[Compared, Compared]]
    """A source (of either run) -> its rows, its requests."""


def comparison(data: RunData) -> Comparison | None:
    """This run beside the previous one; None without a previous run."""
    before = data.previous
    if before is None:
        return None
    now = data.run
    totals = {
        "seconds": Compared(now.seconds, before.seconds),
        "requests": Compared(now.requests, before.requests),
        "retries": Compared(now.retries, before.retries),
        "failed requests": Compared(now.failures, before.failures),
    }
    sources = {}
    for name in dict.fromkeys([*now.sources, *before.sources]):
        a = now.sources.get(name, {})
        b = before.sources.get(name, {})
        sources[name] = (
            Compared(a.get("rows"), b.get("rows")),
            Compared(a.get("requests"), b.get("requests")),
        )
    return Comparison(totals, sources)


__all__ = [
    "Compared",
    "Comparison",
    "Group",
    "comparison",
    "done_at",
    "failures",
    "field_of",
    "groups",
    "natural",
    "outcome_counts",
    "quantile",
    "reason",
    "run_seconds",
    "slowest",
]
