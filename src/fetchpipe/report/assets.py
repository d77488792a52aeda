"""The report's style sheet and script, inlined into each report (no network, no files).

They are the files beside this module (package data): ``report.css``, ``errors.js`` and
``waterfall.js``. The waterfall is drawn on a canvas by :data:`SCRIPT` from the JSON the page
carries: one bar per request row, whatever the run's size (a canvas draws 10,000 bars in
milliseconds, where as many SVG elements would weigh on the page). The script also writes
what it drew into the page: ``data-marks`` (bars drawn), ``data-ready-ms`` (time from
navigation to the first drawing) and the errors it met (``#errors``), which the browser tests
read.
"""

from __future__ import annotations

from importlib.resources import files

COLOURS = {
    "ok": "#4e79a7",
    "retried": "#f28e2b",
    "failed": "#e15759",
    "cache": "#59a14f",
    "revalidated": "#8cd17d",
    "stale": "#b07aa1",
    "skipped": "#9d9d9d",
}
"""A request's colour by outcome (Tableau 10: tells apart for most colour vision)."""
QUEUE_COLOUR = "#c9d3df"
PAUSE_COLOUR = "rgba(242, 142, 43, 0.22)"
DOWN_COLOUR = "rgba(225, 87, 89, 0.18)"


def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


STYLE = _asset("report.css")
"""The page's style sheet."""
SCRIPT = _asset("waterfall.js")
"""The waterfall: layout (a row per host or source, lanes for requests that overlap), drawing,
zoom, pan and tooltips."""
ERRORS_SCRIPT = _asset("errors.js")
"""Runs first: any error of the page is written into ``#errors`` (empty when all went well)."""

__all__ = [
    "COLOURS",
    "DOWN_COLOUR",
    "ERRORS_SCRIPT",
    "PAUSE_COLOUR",
    "QUEUE_COLOUR",
    "SCRIPT",
    "STYLE",
]
