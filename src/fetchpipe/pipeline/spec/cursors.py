"""Incremental cursor values, typed: how they compare and what is sent next time. Pure.

A cursor has one of three types (:data:`CursorType`):

- ``datetime``: ISO 8601 text compared as instants, whatever its UTC offset
  (``2025-01-01T10:00:00+02:00`` is earlier than ``2025-01-01T09:00:00Z``); a time without an
  offset is taken as UTC, a date alone as its midnight UTC. With a ``format`` (a strftime
  pattern), text that is not ISO 8601 is read with it too.
- ``number``: integers, decimals, or text holding one (``"00123"``), compared as numbers
  (exactly: as :class:`~decimal.Decimal`).
- ``string``: compared as text.

Without a type (and no ``initial`` to infer it from) the first value seen decides
(:func:`infer_type`). The greatest value is kept as it was written (:meth:`CursorRule.greater`):
what is stored is what the API sent, readable by any version. What is sent next time
(:meth:`CursorRule.sent`) is that value as it is, or, with a ``lookback`` window, the value
minus the window (a datetime as ISO 8601 UTC, or in ``format``).
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

CursorType = Literal["datetime", "number", "string"]
CURSOR_TYPES: tuple[CursorType, ...] = ("datetime", "number", "string")
Key = datetime | Decimal | str
"""A cursor value as it compares."""

_LOOKS_LIKE_A_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}|$)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)")
_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


class CursorError(ValueError):
    """A value that is not of the cursor's type; the message says what it is and what to do."""


def infer_type(value: Any) -> CursorType | None:
    """The type a value implies: a number, ISO 8601 date-time text (``YYYY-MM-DD`` first), or
    other text; ``None`` for ``None`` (and for a boolean or a container: no type fits)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        if _LOOKS_LIKE_A_DATE.match(value.strip()):
            try:
                parse_datetime(value)
            except CursorError:
                return "string"
            return "datetime"
        return "string"
    return None


def parse_datetime(value: Any, fmt: str | None = None) -> datetime:
    """``value`` as an aware UTC instant: ISO 8601 text (``Z`` or an offset; none is UTC), or
    text in ``fmt`` (strptime). CursorError otherwise."""
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
            if fmt is not None:
                with contextlib.suppress(ValueError):
                    parsed = datetime.strptime(text, fmt)
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    shown = _shown(value)
    also = f" nor in the format {fmt!r}" if fmt is not None else ""
    raise CursorError(
        f"{shown} is not an ISO 8601 date-time{also}. HINT: give text such as "
        "2025-01-01T09:00:00Z, or set incremental.type: number or string"
    )


def parse_number(value: Any) -> Decimal:
    """``value`` as an exact number: an int, a finite float, or text holding one."""
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            number = Decimal(str(value).strip())  # a float as written (its repr), not its bits
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return number
    raise CursorError(
        f"{_shown(value)} is not a number. HINT: set incremental.type: datetime or string"
    )


def cursor_key(value: Any, kind: CursorType, fmt: str | None = None) -> Key:
    """``value`` as it compares under ``kind``; CursorError when it is not of that type."""
    if kind == "datetime":
        return parse_datetime(value, fmt)
    if kind == "number":
        return parse_number(value)
    if isinstance(value, str):
        return value
    raise CursorError(
        f"{_shown(value)} is not text. HINT: set incremental.type: number, or datetime"
    )


def parse_duration(value: Any) -> timedelta:
    """A lookback window: seconds as a number, or text such as ``2h``, ``90m``, ``1d12h``,
    ``30s``, ``1w`` (units w, d, h, m, s).

    Written here rather than taken from a library: one regular expression reads these forms,
    and the maintained parsers read other ones (ISO 8601 ``PT2H``).
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    if seconds is None or not (math.isfinite(seconds) and seconds >= 0):
        raise CursorError(
            f"{_shown(value)} is not a duration. HINT: write it as 2h, 30m, 1d or 90s "
            "(or a number of seconds)"
        )
    return timedelta(seconds=seconds)


def iso_utc(instant: datetime) -> str:
    """``instant`` as ISO 8601 in UTC, ending in ``Z`` (microseconds only when there are)."""
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True, slots=True)
class CursorRule:
    """How the cursor of one source compares and what is sent from it.

    ``kind`` None: decided by the first value compared (:func:`infer_type`). ``lookback`` is a
    :class:`timedelta` for a datetime cursor, a :class:`Decimal` for a number.
    """

    field: str
    kind: CursorType | None = None
    format: str | None = None
    lookback: timedelta | Decimal | None = None

    def key(self, value: Any, kind: CursorType | None = None) -> Key:
        """``value`` as it compares (under ``kind`` when the rule has none)."""
        kind = self.kind or kind or infer_type(value)
        if kind is None:
            raise CursorError(f"{_shown(value)} is not a cursor value (text or a number)")
        return cursor_key(value, kind, self.format)

    def greater(self, current: Any, value: Any) -> Any:
        """The greater of two cursor values, each kept as written; a tie keeps ``current``,
        ``None`` is no value. CursorError when one is not of the type."""
        if value is None:
            return current
        if current is None:
            self.key(value)  # checked, so that a bad first value is reported at once
            return value
        kind = self.kind or infer_type(current)  # both compared under one type
        try:
            new = self.key(value, kind)
        except CursorError:
            if self.kind is not None:
                raise
            raise CursorError(
                f"{_shown(value)} does not compare with {_shown(current)} (read as a {kind}). "
                "HINT: set incremental.type: datetime, number or string"
            ) from None
        greater: bool = new > self.key(current, kind)  # type: ignore[operator]
        return value if greater else current

    def sent(self, cursor: Any, *, stored: bool) -> str | int | float:
        """The parameter value for ``cursor``: from the stored state (``stored``) minus the
        lookback window, or the ``initial`` value as written; a datetime with a ``format`` is
        sent in it (in UTC), one moved back by the window as ISO 8601 UTC."""
        kind = self.kind or infer_type(cursor)
        back = self.lookback if stored else None
        if kind == "datetime" and (self.format is not None or back is not None):
            instant = parse_datetime(cursor, self.format)
            if isinstance(back, timedelta):
                instant -= back
            return instant.strftime(self.format) if self.format else iso_utc(instant)
        if kind == "number" and isinstance(back, Decimal):
            moved = parse_number(cursor) - back
            return int(moved) if moved == moved.to_integral_value() else float(moved)
        self.key(cursor, kind)
        return cursor  # type: ignore[no-any-return]  # checked by key(): text or a number


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
