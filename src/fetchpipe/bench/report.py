"""What every benchmark report carries: the machine, the date, package versions; file output."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import resource
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGES = ("fetchpipe", "aiohttp", "uvloop", "orjson", "requests", "aiometer", "httpx")


def optional_module(name: str) -> ModuleType | None:
    """The module if it is installed, else ``None`` (for the optional comparison clients)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def version_of(package: str) -> str | None:
    """Installed version of ``package``, or ``None``."""
    import importlib.metadata  # not at the top: it costs the command line's start-up time

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Cores, Python, OS, package versions and the date (UTC) of this run."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "platform": platform.platform(),
        "packages": {name: version_of(name) for name in PACKAGES},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` with the machine added, creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**payload, "machine": machine()}, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to the hard limit; return the new soft limit.

    A benchmark at concurrency 1,000 holds about 1,000 sockets in each process.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    target = hard if hard != infinity else 65536
    if soft != infinity and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # pragma: no cover - some systems cap it lower
            pass
    return soft


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB.

    On Linux this is ``VmHWM``: ``ru_maxrss`` carries the parent's peak across ``exec``, so a
    child started by a large parent would report at least the parent's size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if platform.system() == "Darwin":  # pragma: no cover - bytes there, KiB on Linux
        return peak / (1024 * 1024)
    return peak / 1024


def percent(value: float, base: float) -> str:
    """``value`` against ``base`` as a signed percentage, e.g. ``+2.1%``."""
    return f"{(value / base - 1) * 100:+.1f}%" if base > 0 else "n/a"
