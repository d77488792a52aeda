"""One command run as a process of its own, timed by this one from spawn to exit.

Interpreter start, imports and teardown all count, as they do for a user who runs the command.
Its output goes to ``stdout.txt`` and ``stderr.txt`` in its working folder (files: no pipe for
this process to drain while it times); the last lines are kept for a report when it fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

STDERR_LINES = 5


@dataclass(frozen=True, slots=True)
class Finished:
    seconds: float
    exit_code: int | None
    """``None``: killed at the timeout."""
    output_tail: str


def _tail(workdir: Path) -> str:
    """The last lines the process wrote to stderr (or stdout when stderr is empty)."""
    for name in ("stderr.txt", "stdout.txt"):
        path = workdir / name
        text = path.read_text(errors="replace") if path.exists() else ""
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        if lines:
            return "\n".join(lines[-STDERR_LINES:])
    return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process and whatever it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def spawn(command: list[str], workdir: Path, env: dict[str, str], timeout: float) -> Finished:
    """Run ``command`` in ``workdir``, output to files there; seconds from spawn to exit.

    The wait blocks until the process ends (``Popen.wait`` with a timeout polls instead, in
    steps of up to 50 ms, which a start-up of 0.1 s cannot afford); a timer kills the process
    at ``timeout``.
    """
    killed = threading.Event()

    def kill(proc: subprocess.Popen[bytes]) -> None:
        killed.set()
        _stop(proc)

    with (workdir / "stdout.txt").open("wb") as out, (workdir / "stderr.txt").open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, kill, (proc,))
        timer.daemon = True
        timer.start()
        try:
            code: int | None = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # interrupted while waiting
                _stop(proc)
                proc.wait()
        seconds = time.perf_counter() - start
    return Finished(seconds, None if killed.is_set() else code, _tail(workdir))
