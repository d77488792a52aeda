"""Servers for benchmarks run as child processes, so the client under test has its own core.

A child prints one line (what the parent needs to reach it) and serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def running_child(module: str, *args: str) -> Iterator[str]:
    """Run ``python -m module args``; yield the first line it prints; stop it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line:
            proc.wait(timeout=5)
            raise RuntimeError(f"{module} did not start (exit code {proc.returncode})")
        yield line
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def running_child_json(what: str, module: str, *args: str) -> Iterator[dict[str, Any]]:
    """:func:`running_child` for a child whose first line is a JSON object; ``what`` names the
    server in the error when the line is not one."""
    with running_child(module, *args) as line:
        try:
            info: dict[str, Any] = json.loads(line)
        except ValueError:
            raise RuntimeError(f"{what} did not start (said {line!r})") from None
        yield info


async def wait_for_stdin_eof() -> None:
    """Return when the parent closes our stdin (or dies)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
