"""The command line's exit without teardown: exit handlers run, output is flushed, and Python's
own exit is kept where a quick one could lose something. Each case is a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A module-level object whose finalizer prints: Python's teardown runs it, a quick exit does not.
_TEARDOWN = "class Noisy:\n    def __del__(self):\n        print('torn down')\nnoisy = Noisy()\n"


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _TEARDOWN + code, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_no_teardown_but_exit_handlers_run_and_buffered_output_is_written() -> None:
    proc = _python(
        "import atexit, sys\n"
        "atexit.register(print, 'handler ran')\n"
        "sys.stdout.write('buffered, no newline')\n"
        "from fetchpipe.cli.quick_exit import leave\n"
        "leave(3)\n"
    )
    assert (proc.returncode, proc.stdout) == (3, "buffered, no newlinehandler ran\n")


@pytest.mark.parametrize(("code", "exit_code"), [("None", 0), ("0", 0), ("True", 1)])
def test_exit_codes(code: str, exit_code: int) -> None:
    proc = _python(f"from fetchpipe.cli.quick_exit import leave\nleave({code})\n")
    assert (proc.returncode, proc.stderr) == (exit_code, "")


def test_a_message_is_printed_as_python_prints_it() -> None:
    proc = _python("from fetchpipe.cli.quick_exit import leave\nleave('no such file')\n")
    assert (proc.returncode, proc.stderr) == (1, "no such file\n")


def test_a_running_thread_is_waited_for() -> None:
    proc = _python(
        "import threading, time\n"
        "def work():\n"
        "    time.sleep(0.3)\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=work).start()\n"
        "from fetchpipe.cli.quick_exit import leave\n"
        "leave(0)\n"
    )
    assert (proc.returncode, proc.stdout) == (0, "thread finished\ntorn down\n")


def test_the_program_exits_through_it_with_click_s_exit_codes() -> None:
    entry = "import atexit\natexit.register(print, 'handler ran')\n"
    entry += "from fetchpipe.cli import entry_point\nentry_point(prog_name='fetchpipe')\n"
    version = _python(entry, "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("fetchpipe, version ")
    assert version.stdout.endswith("\nhandler ran\n")  # and no teardown
    usage = _python(entry, "fetch")
    assert usage.returncode == 2 and "Missing argument 'URLS'" in usage.stderr
