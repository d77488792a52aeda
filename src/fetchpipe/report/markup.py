"""The bits of HTML the report's sections share: escaped text and a table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any


def text(value: Any) -> str:
    return escape("" if value is None else str(value))


def table(head: Sequence[tuple[str, bool]], body: Iterable[Sequence[tuple[str, str]]]) -> str:
    """A table: ``head`` is (title, left-aligned); each cell is (html, css class)."""
    cells = "".join(f'<th class="{"l" if left else ""}">{escape(t)}</th>' for t, left in head)
    lines = [
        "<tr>" + "".join(f'<td class="{css}">{content}</td>' for content, css in row) + "</tr>"
        for row in body
    ]
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


__all__ = ["table", "text"]
