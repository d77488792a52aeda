"""Leave the process without the interpreter's teardown once the command line is done.

At exit Python frees every module and object it holds. After ``fetchpipe fetch`` that is some
400 modules (aiohttp, asyncio, click, ...), and freeing them takes about 0.1 s of CPU: more than
the seed's 50 APIs spend in fetchpipe's own code (``fetchpipe bench startup`` measures the
whole process). mypy ends the same way, for the same reason.

By then the command has closed what it wrote (sinks, the cache). :func:`leave` runs the exit
handlers (``atexit``: logging's flush, temporary files, pyreqwest's teardown wait), flushes
stdout and stderr, and ends the process with ``os._exit``. It keeps Python's own exit where a
quick one could lose something or say it differently: another thread that Python would wait
for, an exit "code" that is a message to print, an interactive session (``python -i``), or a
flush that fails (Python reports a closed pipe its own way).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def _others_running() -> bool:
    """Whether a thread that Python's exit would wait for is still running."""
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def leave(code: object) -> NoReturn:
    """Exit with ``code`` (``SystemExit.code``: ``None``, a number or a message)."""
    if code is None:
        code = 0
    if not isinstance(code, int) or sys.flags.inspect or _others_running():
        raise SystemExit(code)
    atexit._run_exitfuncs()  # what Python's exit would run; each runs once (the list is cleared)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code)
