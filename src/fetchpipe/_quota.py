"""Request quotas per calendar window (``Quota``), and the windows themselves, as pure values.

A quota is what an API sells: so many requests per hour, day or month. Windows are calendar
windows **in UTC**: an hour starts on the hour, a day at 00:00 UTC, a month on its first day at
00:00 UTC, whatever the machine's time zone, so that processes on machines in different zones
(or a run that crosses a daylight-saving change) count in the same window. The counting itself
(an SQLite file shared by processes) is :mod:`fetchpipe.engine.quota_ledger`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

from fetchpipe._exceptions import ConfigError

Period = Literal["hour", "day", "month"]
PERIODS: tuple[str, ...] = get_args(Period)


@dataclass(frozen=True, slots=True)
class Window:
    """One calendar window of a period: its name in the ledger, its start and its reset."""

    key: str
    """``2026-12-05T03`` (hour), ``2026-12-05`` (day), ``2026-12`` (month)."""
    start: datetime
    reset: datetime
    """The start of the next window (UTC): when the quota is whole again."""


@dataclass(frozen=True, slots=True)
class Quota:
    """``requests`` per ``per`` (``"hour"``, ``"day"`` or ``"month"``, calendar windows in
    UTC), counted across runs and processes."""

    requests: int
    per: Period = "day"

    def __post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int):
            raise ConfigError(
                f"quota requests must be a whole number, got {self.requests!r}. "
                "HINT: e.g. Quota(5000, 'day')"
            )
        if self.requests < 1:
            raise ConfigError(
                f"quota requests must be at least 1, got {self.requests!r}. "
                "HINT: leave the quota out for no quota"
            )
        if self.per not in PERIODS:
            raise ConfigError(
                f"quota per must be one of {', '.join(PERIODS)}, got {self.per!r}. "
                "HINT: windows are calendar hours, days or months in UTC"
            )

    def window(self, when: datetime) -> Window:
        """The window ``when`` (aware, any zone) falls in."""
        return window_of(self.per, when)

    @property
    def text(self) -> str:
        """``5000 requests per day (UTC)``."""
        return f"{self.requests} requests per {self.per} (UTC)"


def window_of(per: Period, when: datetime) -> Window:
    """The calendar window of ``per`` that ``when`` (an aware datetime) falls in, in UTC."""
    if when.tzinfo is None:
        raise ValueError("a quota window needs an aware datetime (UTC)")
    at = when.astimezone(UTC)
    if per == "hour":
        start = at.replace(minute=0, second=0, microsecond=0)
        return Window(start.strftime("%Y-%m-%dT%H"), start, start + timedelta(hours=1))
    if per == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start.strftime("%Y-%m-%d"), start, start + timedelta(days=1))
    if per == "month":
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if start.month == 12:
            reset = start.replace(year=start.year + 1, month=1)
        else:
            reset = start.replace(month=start.month + 1)
        return Window(start.strftime("%Y-%m"), start, reset)
    raise ValueError(f"unknown quota period {per!r}")


def parse_quota(text: str) -> Quota:
    """``300/day`` (also ``/hour``, ``/month``) -> :class:`Quota`; a clear error otherwise."""
    count, sep, per = text.strip().partition("/")
    per = per.strip().lower()
    if not sep or not count.strip().isdigit() or per not in PERIODS:
        raise ConfigError(
            f"a quota is N/hour, N/day or N/month, got {text!r}. HINT: e.g. 5000/day "
            "(calendar windows in UTC)"
        )
    return Quota(int(count), per)  # type: ignore[arg-type]  # checked against PERIODS above
