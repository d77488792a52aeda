"""``fetchpipe bench report``: the HTML report of a large run (:mod:`..html_report`)."""

from __future__ import annotations

from pathlib import Path

import click

from fetchpipe.bench.cli.output import chart_option, emit, json_option
from fetchpipe.cli.options import whole_number


@click.command("report")
@whole_number("--requests", minimum=1, default=10_000, help="Requests of the large run.")
@whole_number("--baseline", minimum=1, default=100, help="Requests of the baseline run.")
@whole_number("--loads", minimum=1, default=3, help="Browser loads per report (median shown).")
@json_option
@chart_option
def report_command(
    requests: int, baseline: int, loads: int, json_path: Path | None, chart_path: Path | None
) -> None:
    """The HTML report of a large run: its size, its writing and its drawing in Chromium.

    Two real fetches with --report (the large run, and a small one as the baseline); each
    report is written again by `fetchpipe report` (timed) and loaded in headless Chromium when
    installed (time from navigation to the waterfall's first drawing).
    """
    from fetchpipe.bench import html_report

    emit(html_report.measure(requests, baseline, loads), json_path, chart_path)
