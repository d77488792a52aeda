"""Fixtures for CLI tests: a simulated fleet in a thread and a runner for real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class CountingServer(ThreadingHTTPServer):
    """A local HTTP server that answers 200 to everything and counts what it receives."""

    hits = 0


class _CountingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, CountingServer)
        self.server.hits += 1
        self.send_response(200)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[CountingServer]:
    """A :class:`CountingServer` on 127.0.0.1 (the tests that use it assert it gets nothing)."""
    httpd = CountingServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
