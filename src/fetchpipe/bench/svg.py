"""Horizontal bar charts as plain SVG text: one labelled bar per row, an axis, a marker line.

Each row is a ``<g class="bar">`` holding its ``<rect>`` and ``<text>`` labels, with the row's
name in ``data-label``; a row without a figure (``value=None``) has text and no ``<rect>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH = 820
CHAR_WIDTH = 7.2  # an estimate for 13 px sans-serif
PAD = 16
RIGHT = 40  # room for the last tick's number
ROW_HEIGHT = 30
BAR_HEIGHT = 20
TOP = 70
BOTTOM = 50
COLOUR = "#8da0b6"
HIGHLIGHT = "#2f9e44"


@dataclass(frozen=True, slots=True)
class Bar:
    """One row: ``label`` at the left, a bar of length ``value``, ``text`` after its end."""

    label: str
    value: float | None
    text: str
    highlight: bool = False


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical dashed line across the bars at ``value``, named ``label``."""

    value: float
    label: str


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def text_width(text: str) -> float:
    return CHAR_WIDTH * len(text)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:g}"


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    axis: str,
    subtitle: str = "",
    marker: Marker | None = None,
) -> str:
    """The chart as an SVG document (a string)."""
    label_width = max(120.0, max((text_width(b.label) for b in bars), default=0) + 2 * PAD)
    plot = WIDTH - label_width - RIGHT
    # The axis runs far enough for each bar's value text to fit after the bar.
    needed = [
        b.value * plot / max(plot - text_width(b.text) - PAD, plot * 0.3)
        for b in bars
        if b.value is not None
    ]
    if marker is not None:
        needed.append(marker.value)
    top_value = max(needed, default=1.0) or 1.0
    step = nice_step(top_value)
    axis_max = step * math.ceil(top_value / step)
    height = TOP + ROW_HEIGHT * len(bars) + BOTTOM

    def x(value: float) -> float:
        return label_width + plot * value / axis_max

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text class="title" x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="16" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    if subtitle:
        out.append(
            f'<text class="subtitle" x="{WIDTH / 2}" y="44" text-anchor="middle" '
            f'fill="#555">{escape(subtitle)}</text>'
        )
    axis_y = TOP + ROW_HEIGHT * len(bars)
    tick = 0.0
    while tick <= axis_max + step / 1000:
        tx = x(tick)
        out.append(
            f'<line class="grid" x1="{tx:.1f}" y1="{TOP - 6}" x2="{tx:.1f}" y2="{axis_y}" '
            'stroke="#e5e5e5"/>'
        )
        out.append(
            f'<text class="tick" x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" '
            f'fill="#333">{_number(tick)}</text>'
        )
        tick += step
    out.append(
        f'<line class="axis" x1="{label_width}" y1="{axis_y}" x2="{label_width + plot}" '
        f'y2="{axis_y}" stroke="#333"/>'
    )
    out.append(
        f'<text class="axis-label" x="{label_width + plot / 2}" y="{axis_y + 38}" '
        f'text-anchor="middle" fill="#333">{escape(axis)}</text>'
    )
    # The marker goes under the bars: the value texts' white outline keeps them readable.
    if marker is not None:
        mx = x(marker.value)
        anchor, label_x = ("end", mx - 4) if mx > label_width + plot * 0.7 else ("start", mx + 4)
        out.append(
            f'<g class="marker" data-value="{marker.value:g}">'
            f'<line x1="{mx:.1f}" y1="{TOP - 10}" x2="{mx:.1f}" y2="{axis_y}" stroke="#c92a2a" '
            'stroke-width="2" stroke-dasharray="6 4"/>'
            f'<text x="{label_x:.1f}" y="{TOP - 12}" fill="#c92a2a" text-anchor="{anchor}">'
            f"{escape(marker.label)}</text>"
            "</g>"
        )
    for index, bar in enumerate(bars):
        y = TOP + ROW_HEIGHT * index + (ROW_HEIGHT - BAR_HEIGHT) / 2
        middle = y + BAR_HEIGHT / 2 + 4
        kind = "bar" if bar.value is not None else "bar missing"
        out.append(f'<g class="{kind}" data-label={quoteattr(bar.label)}>')
        out.append(
            f'<text class="label" x="{label_width - 8}" y="{middle:.1f}" '
            f'text-anchor="end">{escape(bar.label)}</text>'
        )
        if bar.value is not None:
            colour = HIGHLIGHT if bar.highlight else COLOUR
            width = max(x(bar.value) - label_width, 1.0)
            out.append(
                f'<rect x="{label_width}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{BAR_HEIGHT}" fill="{colour}" fill-opacity="0.85"/>'
            )
            text_x = label_width + width + 6
        else:
            text_x = label_width + 6
        out.append(
            f'<text class="value" x="{text_x:.1f}" y="{middle:.1f}" fill="#222" '
            'stroke="white" stroke-width="3" paint-order="stroke">'
            f"{escape(bar.text)}</text>"
        )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
