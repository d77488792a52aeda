"""A source's ``incremental`` block: load only what changed since the last run.

::

    incremental: {cursor_field: updated_at, param: updated_since, initial: "2025-01-01T00:00:00Z",
                  type: datetime, lookback: 2h, format: "%Y-%m-%d %H:%M:%S"}

The greatest ``cursor_field`` among a run's records (compared by ``type``: see
:mod:`.cursors`) is stored with them; the next run sends it as ``param``, moved back by
``lookback`` when set (records updated late are fetched again, and merged by primary key:
``write: append`` would load them twice, so it is refused with a lookback).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from fetchpipe.pipeline.spec.base import FrozenModel, Text
from fetchpipe.pipeline.spec.cursors import (
    CursorError,
    CursorRule,
    CursorType,
    infer_type,
    parse_datetime,
    parse_duration,
    parse_number,
)
from fetchpipe.pipeline.spec.errors import Problem, Problems


class Incremental(FrozenModel):
    """Load only what changed: the greatest ``cursor_field`` seen is sent as ``param`` next
    time (``initial`` the first time), moved back by ``lookback``."""

    cursor_field: Text
    param: Text
    initial: str | int | float | None = None
    type: CursorType | None = Field(
        default=None,
        description="How cursor values compare: datetime (as instants, whatever their UTC "
        "offset), number or string. Inferred from initial when absent.",
    )
    lookback: str | float | None = Field(
        default=None,
        description="Send the stored cursor minus this window, to fetch late records again: "
        "a duration such as 2h, 30m, 1d (seconds as a number) for a datetime, a number for a "
        "number. Needs write: merge or replace.",
    )
    format: Text | None = Field(
        default=None,
        description="A datetime cursor is sent in this strftime pattern (UTC), e.g. "
        "'%Y-%m-%d %H:%M:%S'; values that are not ISO 8601 are read with it.",
    )

    @property
    def cursor_type(self) -> CursorType | None:
        """``type``, or the type of ``initial``; None: the first value seen decides."""
        return self.type or infer_type(self.initial)

    def rule(self) -> CursorRule:
        """How this source's cursor compares and is sent."""
        kind = self.cursor_type
        back: timedelta | Decimal | None = None
        if self.lookback is not None:
            number = kind == "number"
            back = parse_number(self.lookback) if number else parse_duration(self.lookback)
        return CursorRule(self.cursor_field, kind, self.format, back)

    def first_value(self) -> str | int | float | None:
        """What the first run sends: ``initial`` (in ``format`` when there is one)."""
        if self.initial is None:
            return None
        return self.rule().sent(self.initial, stored=False)

    def value_of(self, text: str, stored: Any = None) -> str | int | float:
        """``text`` (given by hand) as a cursor value of this block's type (else the type of the
        ``stored`` value, else a number if it is one): a number for a number cursor, the text
        itself otherwise. CursorError when it is not of the type."""
        kind = self.cursor_type or infer_type(stored)
        if kind is None:
            try:
                parse_number(text)
            except CursorError:
                kind = infer_type(text) or "string"
            else:
                kind = "number"
        if kind == "number":
            number = parse_number(text)
            return int(number) if number == number.to_integral_value() else float(number)
        if kind == "datetime":
            parse_datetime(text, self.format)
            return text.strip()
        return text

    @model_validator(mode="after")
    def _check(self) -> Incremental:
        problems: list[Problem] = []
        kind = self.cursor_type
        if self.type is not None and self.initial is not None:
            try:
                CursorRule(self.cursor_field, self.type, self.format).key(self.initial)
            except CursorError as exc:
                problems.append(Problem(("initial",), str(exc)))
        if self.format is not None:
            if kind not in ("datetime", None):
                problems.append(
                    Problem(("format",), f"is for datetime cursors; this one is a {kind}")
                )
            elif "%" not in self.format:
                problems.append(
                    Problem(
                        ("format",),
                        "has no strftime directive. HINT: write a pattern such as "
                        "'%Y-%m-%d %H:%M:%S'",
                    )
                )
            else:
                try:
                    parse_datetime("2025-01-02T03:04:05Z").strftime(self.format)
                except ValueError as exc:
                    problems.append(Problem(("format",), f"is not a strftime pattern: {exc}"))
        if self.lookback is not None:
            problems.extend(_lookback_problems(self.lookback, kind))
        if problems:
            raise Problems(problems)
        return self


def _lookback_problems(lookback: str | float, kind: CursorType | None) -> list[Problem]:
    where = ("lookback",)
    if kind is None:
        return [
            Problem(
                where,
                "needs the cursor's type. HINT: add type: datetime (or number), or an initial "
                "value",
            )
        ]
    if kind == "string":
        return [
            Problem(
                where,
                "moves a datetime or a number back; text cannot be. HINT: set type: datetime "
                "or number, or remove lookback",
            )
        ]
    try:
        if kind == "number":
            if isinstance(lookback, str) or parse_number(lookback) < Decimal(0):
                raise CursorError(
                    f"{lookback!r} is not a window for a number cursor. HINT: give a number "
                    "to subtract, such as 100"
                )
        else:
            parse_duration(lookback)
    except CursorError as exc:
        return [Problem(where, str(exc))]
    return []


def incremental_problems(incremental: Incremental | None, write: str) -> list[Problem]:
    """Problems of the block with the source's write mode: a lookback fetches records that are
    stored already, which ``append`` would store twice."""
    if incremental is None or incremental.lookback is None or write != "append":
        return []
    return [
        Problem(
            ("incremental", "lookback"),
            "fetches records that were loaded already, and write: append would load them "
            "twice. HINT: use write: merge with a primary_key (records seen again replace "
            "their rows)",
        )
    ]
