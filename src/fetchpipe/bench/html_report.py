"""``fetchpipe bench report``: how big the HTML report of a large run is, and how fast a browser
draws it, beside the report of a small run (the baseline) measured in the same invocation.

Each run is a real ``fetchpipe fetch --out x.duckdb --report x.html`` against the simulated
fleet (50 hosts; about one request in 50 meets a 503 first and is retried). Measured: the report's
size; the time to write it again from the DuckDB file (``fetchpipe report``, a process of its
own); and in headless Chromium (when installed) the time from navigation to the waterfall's
first drawing (``data-ready-ms``, the page's own ``performance.now()``), the median of a few
loads. The targets (README, "The HTML report"): under 5 MB and under 2 s at 10,000 requests.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@dataclass(frozen=True, slots=True)
class Measured:
    """The report of one run."""

    requests: int
    marks: int | None
    bytes: int
    write_seconds: float
    draw_ms: float | None
    """Median time from navigation to the first drawing; None without a browser."""


def _fleet_urls(fleet: Any, count: int, tag: str) -> list[str]:
    urls = []
    for n in range(count):
        host = n % fleet.hosts
        if n % 53 == 7:  # about 1 in 50, on every host in turn
            urls.append(fleet.url(f"/status/503,200?key={tag}-{n}", host=host))
        else:
            urls.append(fleet.url(f"/json?n={n}", host=host))
    return urls


def _fetchpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fetchpipe", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"},
    )


def browser() -> str | None:
    """A headless Chromium to draw the page with, if one is installed."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def draw(page: Path, executable: str, profile: Path) -> tuple[float, int]:
    """Milliseconds from navigation to the waterfall's first drawing, and the marks drawn."""
    done = subprocess.run(
        [
            executable,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    tag = re.search(r'<canvas id="waterfall"[^>]*>', done.stdout)
    if tag is None:
        raise RuntimeError(f"the browser drew no waterfall: {done.stderr[-500:]}")
    ready = re.search(r'data-ready-ms="(\d+)"', tag.group(0))
    marks = re.search(r'data-marks="(\d+)"', tag.group(0))
    if ready is None or marks is None:
        raise RuntimeError("the waterfall did not say when it was drawn")
    return float(ready.group(1)), int(marks.group(1))


def measure_one(fleet: Any, count: int, work: Path, loads: int) -> Measured:
    """Fetch ``count`` requests with ``--report``, then time the report's writing and drawing."""
    urls = work / f"urls-{count}.txt"
    urls.write_text("\n".join(_fleet_urls(fleet, count, f"{count}-{time.time_ns()}")) + "\n")
    out, page = work / f"run-{count}.duckdb", work / f"report-{count}.html"
    done = _fetchpipe("fetch", str(urls), "--out", str(out), "--report", str(page))
    if done.returncode not in (0, 1) or not page.exists():  # 1: some requests failed
        raise RuntimeError(f"the run of {count} requests failed: {done.stderr[-800:]}")
    started = time.perf_counter()
    again = _fetchpipe("report", str(out), "-o", str(page))
    write_seconds = time.perf_counter() - started
    if again.returncode != 0:
        raise RuntimeError(f"fetchpipe report failed: {again.stderr[-800:]}")
    executable = browser()
    draw_ms: float | None = None
    marks: int | None = None
    if executable is not None:
        times = []
        for n in range(loads):
            ms, marks = draw(page, executable, work / f"profile-{count}-{n}")
            times.append(ms)
        draw_ms = statistics.median(times)
    return Measured(count, marks, page.stat().st_size, write_seconds, draw_ms)


@dataclass(frozen=True, slots=True)
class ReportBench:
    """The large run's report beside the small one's."""

    baseline: Measured
    large: Measured
    browser: str | None

    def lines(self) -> list[str]:
        rows = [
            f"HTML report: a run of {self.large.requests:,} requests beside one of "
            f"{self.baseline.requests:,} (the baseline); browser: {self.browser or 'none'}",
            f"  {'requests':>10} {'marks':>8} {'size':>10} {'write (s)':>10} {'draw (ms)':>10}",
        ]
        for m in (self.baseline, self.large):
            marks = "-" if m.marks is None else f"{m.marks:,}"
            drawn = "-" if m.draw_ms is None else f"{m.draw_ms:.0f}"
            rows.append(
                f"  {m.requests:>10,} {marks:>8} {m.bytes / 1e6:>8.2f} MB "
                f"{m.write_seconds:>10.2f} {drawn:>10}"
            )
        ratios = self.ratios()
        rows.append(
            "  large / baseline: "
            + ", ".join(f"{name} {value:.1f}x" for name, value in ratios.items() if value)
        )
        return rows

    def ratios(self) -> dict[str, float | None]:
        b, large = self.baseline, self.large
        draw = None
        if b.draw_ms and large.draw_ms is not None:
            draw = large.draw_ms / b.draw_ms
        return {
            "size": large.bytes / b.bytes,
            "write": large.write_seconds / b.write_seconds,
            "draw": draw,
        }

    def to_json(self) -> dict[str, Any]:
        def one(m: Measured) -> dict[str, Any]:
            return {
                "requests": m.requests,
                "marks": m.marks,
                "bytes": m.bytes,
                "write_seconds": round(m.write_seconds, 3),
                "draw_ms": m.draw_ms,
            }

        return {
            "scenario": "report",
            "browser": self.browser,
            "baseline": one(self.baseline),
            "large": one(self.large),
            "ratios": {k: None if v is None else round(v, 2) for k, v in self.ratios().items()},
        }

    def chart(self, subtitle: str) -> str:
        from fetchpipe.bench.svg import Bar, bar_chart

        bars = [
            Bar(
                f"{m.requests:,} requests",
                m.draw_ms,
                f"{m.draw_ms or 0:.0f} ms, {m.bytes / 1e6:.2f} MB",
            )
            for m in (self.baseline, self.large)
        ]
        return bar_chart(
            "HTML report: time to draw in headless Chromium", bars, axis="ms", subtitle=subtitle
        )


def measure(requests: int, baseline: int, loads: int) -> ReportBench:
    """The report of a run of ``requests`` beside one of ``baseline`` requests."""
    from fetchpipe.sim import Fleet

    with (
        tempfile.TemporaryDirectory(prefix="fetchpipe-bench-report-") as directory,
        Fleet(hosts=50, minute=0.01).running_in_thread() as fleet,
    ):
        work = Path(directory)
        small = measure_one(fleet, baseline, work, loads)
        large = measure_one(fleet, requests, work, loads)
    return ReportBench(small, large, browser())
