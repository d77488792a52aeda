"""Fixtures for CLI tests: a simulated fleet in a thread and a runner for real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from fetchpipe.sim import Fleet

RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def cli_fleet() -> Iterator[Fleet]:
    """Four simulated hosts in a thread, shared by the CLI tests (stats are cumulative)."""
    with Fleet(minute=0.01, hosts=4).running_in_thread() as running:
        yield running


@pytest.fixture
def run_cli() -> RunCli:
    """Run ``python -m fetchpipe ARGS`` with FETCHPIPE_TESTING=1 (and ``env`` added to the
    environment); returns the finished process."""

    def run(
        *args: str,
        stdin: str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "FETCHPIPE_TESTING": "1", "COLUMNS": "120", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "fetchpipe", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=environ,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )

    return run
