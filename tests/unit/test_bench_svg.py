"""The benchmark charts: plain SVG that parses, one labelled bar per row."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from fetchpipe.bench.svg import Bar, Marker, bar_chart, nice_step

SVG = "{http://www.w3.org/2000/svg}"


def _groups(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return [g for g in root.iter(f"{SVG}g") if "bar" in g.get("class", "").split()]


def test_one_group_per_row_with_a_bar_and_its_texts() -> None:
    bars = [
        Bar("sequential", 13.6, "13.6 s"),
        Bar("fetchpipe", 1.53, "1.53 s", highlight=True),
        Bar("cache & <friends>", None, "not available (no HTTP cache yet)"),
    ]
    svg = bar_chart("Seed & co", bars, axis="seconds", subtitle="2 cores", marker=Marker(1.5, "x"))
    groups = _groups(svg)
    assert [g.get("data-label") for g in groups] == [b.label for b in bars]
    for group, bar in zip(groups, bars, strict=True):
        texts = {t.get("class"): t.text for t in group.iter(f"{SVG}text")}
        assert texts == {"label": bar.label, "value": bar.text}
        rects = list(group.iter(f"{SVG}rect"))
        assert len(rects) == (0 if bar.value is None else 1)
    widths = [float(next(g.iter(f"{SVG}rect")).get("width", "0")) for g in groups[:2]]
    assert widths[0] / widths[1] == pytest.approx(13.6 / 1.53, rel=0.01)
    root = ET.fromstring(svg)
    assert root.findtext(f"{SVG}title") == "Seed & co"
    marker = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "marker")
    assert marker.get("data-value") == "1.5"


def test_axis_leaves_room_for_the_value_text() -> None:
    svg = bar_chart("t", [Bar("a", 200.0, "200 landed · 150 retries · 1.50 s")], axis="n")
    root = ET.fromstring(svg)
    rect = next(root.iter(f"{SVG}g")).find(f"{SVG}rect")
    assert rect is not None
    end = float(rect.get("x", "0")) + float(rect.get("width", "0"))
    assert end + 7.2 * 34 < float(root.get("width", "0"))


@pytest.mark.parametrize(
    ("span", "step"), [(13.6, 5.0), (1.0, 0.2), (0.3, 0.1), (7000, 2000), (0.0, 1.0)]
)
def test_nice_step(span: float, step: float) -> None:
    assert nice_step(span) == pytest.approx(step)
