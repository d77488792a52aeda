"""What a run met at each host, for the summaries and the report: :class:`HostRateReport`.

A plain value of the core (standard library only) so that every layer that shows it can: the
engine fills it in (:mod:`fetchpipe.engine.politeness`), the summaries print its ``text``, the
destinations keep its ``as_dict`` as JSON in the run's row, and the HTML report reads it back
with :meth:`HostRateReport.from_dict`.
"""

from __future__ import annotations

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


__all__ = ["HostRateReport", "LimitInForce"]
