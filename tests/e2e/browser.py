"""Headless Chromium for the report tests: the page as the browser left it, and a screenshot.

Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it). Without it the
tests that need it are skipped, saying so. The page is loaded from a file URL with no network:
the report must not need one (its Content-Security-Policy forbids any fetch anyway).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str:
    """The browser's executable; skips the test when there is none."""
    for name in NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.skip(
        "no headless Chromium on this machine: the report is checked in a browser. "
        "Install it with `apt-get install chromium` (Debian), as .ci/run does"
    )


def _run(args: list[str], profile: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless=new",
            "--no-sandbox",  # tests may run as root in a container
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Loaded:
    """A page after the browser ran its scripts."""

    dom: str
    seconds: float
    """Wall time of the browser's process (start-up included)."""
    console: tuple[str, ...]
    """What the page wrote to the console (errors and uncaught exceptions included)."""

    def attribute(self, element_id: str, name: str) -> str | None:
        """The attribute ``name`` of the element with id ``element_id``, as serialised."""
        tag = re.search(rf'<[a-z]+ [^>]*id="{re.escape(element_id)}"[^>]*>', self.dom)
        if tag is None:
            return None
        value = re.search(rf'\s{re.escape(name)}="([^"]*)"', tag.group(0))
        return None if value is None else value.group(1)

    def errors(self) -> str:
        """The text of ``#errors``: what the page's error catcher wrote (empty: none)."""
        found = re.search(r'<pre id="errors"[^>]*>(.*?)</pre>', self.dom, re.S)
        assert found is not None, "the page has no #errors element"
        return found.group(1)


def load(page: Path, tmp_path: Path, width: int = 1400) -> Loaded:
    """The DOM of ``page`` once its scripts ran, in a window ``width`` pixels wide."""
    started = time.perf_counter()
    done = _run(
        [
            "--enable-logging=stderr",  # the console's messages, as CONSOLE lines
            "--v=0",
            f"--window-size={width},1000",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        tmp_path / "chromium-profile",
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<html" in done.stdout, done.stderr[-2000:]
    console = tuple(line for line in done.stderr.splitlines() if ":CONSOLE" in line)
    return Loaded(done.stdout, seconds, console)


def screenshot(page: Path, png: Path, tmp_path: Path, height: int = 2400) -> Path:
    """A screenshot of ``page`` (1400 pixels wide) written to ``png``."""
    done = _run(
        [f"--window-size=1400,{height}", f"--screenshot={png}", page.resolve().as_uri()],
        tmp_path / "chromium-profile",
    )
    assert done.returncode == 0 and png.stat().st_size > 10_000, done.stderr[-2000:]
    return png
