"""What a run met at each host, for the summaries and the report: :class:`HostRateReport`.

A plain value of the core (standard library only) so that every layer that shows it can: the
engine fills it in (:mod:`fetchpipe.engine.politeness`), the summaries print its ``text``, the
destinations keep its ``as_dict`` as JSON in the run's row, and the HTML report reads it back
with :meth:`HostRateReport.from_dict`.

A host may be fetched by several engines in one run (a cluster ``fetch`` runs a task's batches
one after another, each on an engine of its own, and splits a heavy host over several tasks at
once): :meth:`HostRateReport.then` and :meth:`HostRateReport.beside` say what the host met over
two engines' reports, :func:`one_after_another` and :func:`side_by_side` over two engines' reports
of every host.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple


class LimitInForce(NamedTuple):
    """A host's limit in force (:attr:`HostRateReport.in_force`), in parts a table can show."""

    kind: Literal["published", "learned", "configured", "none known"]
    figure: str | None = None
    """``10 per 2 s`` (as published), ``18.5/s``; ``None`` when none is known."""
    detail: str | None = None
    """The headers a published limit was read from, or a learned rate's ceiling
    (``ceiling 50/s``), if any."""


@dataclass(slots=True)
class HostRateReport:
    """What a run met at one host: the limit in force (configured, published or learned), the
    throttles it answered, the time it was held back."""

    host: str
    throttled: int = 0
    """429 answers received."""
    paused: float = 0.0
    """Seconds the host's next request was held back: by a Retry-After, or a published quota
    spent until its reset. (Waits between requests at the host's configured or learned rate
    are not counted: the request log's ``queue_wait`` shows them per request.)"""
    published: str | None = None
    """The limit the host published, e.g. ``10 per 2 s``."""
    per_second: float | None = None
    """The rate in force at the end: the published quota's, or the learned one."""
    learned: bool = False
    """``per_second`` was learned from 429s (AIMD) rather than read."""
    unavailable: int = 0
    """503 answers with a ``Retry-After`` received (a throttle by another name)."""
    source: str | None = None
    """The headers the published limit was read from: ``RateLimit-Policy``, ``RateLimit`` or
    ``X-RateLimit-*`` (several joined by ``+``)."""
    configured: float | None = None
    """The host's configured ``max_per_second`` (the ceiling of a learned rate), if any."""

    def as_dict(self) -> dict[str, object]:
        return {
            "throttled": self.throttled,
            "unavailable": self.unavailable,
            "paused_seconds": round(self.paused, 3),
            "published": self.published,
            "source": self.source,
            "per_second": None if self.per_second is None else round(self.per_second, 3),
            "learned": self.learned,
            "configured": self.configured,
            "limit": self.limit,
        }

    @property
    def in_force(self) -> LimitInForce:
        """The limit in force and how it is known: the published one, else a learned rate,
        else the configured one (the words of :attr:`limit` and of the report's table)."""
        if self.published is not None:
            return LimitInForce("published", self.published, self.source or None)
        if self.learned and self.per_second is not None:
            ceiling = None if self.configured is None else f"ceiling {self.configured:g}/s"
            return LimitInForce("learned", f"{self.per_second:.3g}/s", ceiling)
        if self.configured is not None:
            return LimitInForce("configured", f"{self.configured:g}/s")
        return LimitInForce("none known")

    @property
    def limit(self) -> str:
        """The limit in force as words: ``published 10 per 2 s (RateLimit-Policy)``, ``learned
        18.5/s (ceiling 50/s)``, ``configured 5/s``, or ``none known``."""
        known = self.in_force
        words = known.kind if known.figure is None else f"{known.kind} {known.figure}"
        return words if known.detail is None else f"{words} ({known.detail})"

    @property
    def text(self) -> str:
        """``published 10 per 2 s (X-RateLimit-*), 0 429s, paused 36.8 s``, as summaries show
        it (503s with a Retry-After only when there were any)."""
        plural = "" if self.throttled == 1 else "s"
        unavailable = f", {self.unavailable} 503{'' if self.unavailable == 1 else 's'}"
        return (
            f"{self.limit}, {self.throttled} 429{plural}"
            + (unavailable if self.unavailable else "")
            + f", paused {self.paused:.1f} s"
        )

    def then(self, later: HostRateReport) -> HostRateReport:
        """What the host met over this engine's run and then ``later``'s (the next engine at the
        host, e.g. a cluster task's next batch): the counts and the time paused added up; the
        limit in force is ``later``'s when it knows one (read or learned), else this one's.

        The later one, not the strictest: the limit in force is the one at the end, and the
        later engine started from this one's state (a learned rate is handed on to it and moves
        on from there; a published limit is read again from the host's next answer), so what it
        knows is newer. A later engine that met nothing of the kind keeps the earlier limit."""
        knows = later.in_force.kind in ("published", "learned")
        limit = later if knows else self
        return dataclasses.replace(
            limit,
            host=self.host,
            throttled=self.throttled + later.throttled,
            unavailable=self.unavailable + later.unavailable,
            paused=self.paused + later.paused,
            configured=later.configured if later.configured is not None else self.configured,
        )

    def beside(self, other: HostRateReport) -> HostRateReport:
        """What the host met from this engine and ``other`` at the same time, each with its
        share of the host's limits (the parts of a host a cluster ``fetch`` split over several
        tasks): the counts and the time paused added up, and the limit in force for the host as
        a whole:

        - a published limit is the host's, whichever part read it: it wins over a learned rate
          (read, not guessed), and of two the stricter (the lower rate) is kept;
        - learned rates add up, as the parts' configured shares do: the host was sent the sum.
          A part that learned nothing counts at its configured share; with none, it adds
          nothing (the sum is then what the host is known to have been sent at least)."""
        published = [r for r in (self, other) if r.published is not None]
        if published:
            limit = min(published, key=_published_rate)
            per_second, learned = limit.per_second, False
        else:
            limit = self
            learned = self.learned or other.learned
            per_second = _sum(_rate_in_force(self), _rate_in_force(other)) if learned else None
        return dataclasses.replace(
            limit,
            host=self.host,
            throttled=self.throttled + other.throttled,
            unavailable=self.unavailable + other.unavailable,
            paused=self.paused + other.paused,
            per_second=per_second,
            learned=learned,
            configured=_sum(self.configured, other.configured),
        )

    @classmethod
    def from_dict(cls, host: str, values: Mapping[str, object]) -> HostRateReport:
        """The report :meth:`as_dict` wrote (unknown or missing keys: their defaults)."""

        def number(key: str) -> float | None:
            value = values.get(key)
            return float(value) if isinstance(value, int | float) else None

        def text(key: str) -> str | None:
            value = values.get(key)
            return value if isinstance(value, str) else None

        return cls(
            host,
            throttled=int(number("throttled") or 0),
            paused=number("paused_seconds") or 0.0,
            published=text("published"),
            per_second=number("per_second"),
            learned=values.get("learned") is True,
            unavailable=int(number("unavailable") or 0),
            source=text("source"),
            configured=number("configured"),
        )


def _published_rate(report: HostRateReport) -> float:
    return math.inf if report.per_second is None else report.per_second


def _rate_in_force(report: HostRateReport) -> float | None:
    return report.per_second if report.learned else report.configured


def _sum(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return first if second is None else second
    return first + second


def one_after_another(
    earlier: Mapping[str, HostRateReport], later: Mapping[str, HostRateReport]
) -> dict[str, HostRateReport]:
    """Every host's report over an engine's run and then the next one's
    (:meth:`HostRateReport.then`); neither mapping is changed."""
    combined = dict(earlier)
    for host, report in later.items():
        before = combined.get(host)
        combined[host] = report if before is None else before.then(report)
    return combined


def side_by_side(
    first: Mapping[str, HostRateReport], second: Mapping[str, HostRateReport]
) -> dict[str, HostRateReport]:
    """Every host's report over two engines that ran at the same time
    (:meth:`HostRateReport.beside`; a host only one of them met is as that one says it);
    neither mapping is changed."""
    combined = dict(first)
    for host, report in second.items():
        other = combined.get(host)
        combined[host] = report if other is None else other.beside(report)
    return combined


__all__ = ["HostRateReport", "LimitInForce", "one_after_another", "side_by_side"]
