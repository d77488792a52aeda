"""The command line in a process where Dask cannot be imported, as on a machine without the
``dask`` extra."""

from __future__ import annotations

import subprocess
import sys

_HIDDEN = (
    "import sys; sys.modules['distributed'] = None; sys.argv[0] = 'fetchpipe'; "
    "from fetchpipe.cli import entry_point; entry_point()"
)


def run_without_dask(*args: str) -> subprocess.CompletedProcess[str]:
    """``fetchpipe ARGS`` with ``import distributed`` failing."""
    return subprocess.run(
        [sys.executable, "-c", _HIDDEN, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
