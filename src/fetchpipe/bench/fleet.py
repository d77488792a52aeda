"""The simulated 50-API fleet in a child process, so that blocking clients never stall it.

``python -m fetchpipe.bench.fleet MINUTE HOSTS`` prints one JSON line (port, API URLs, base
URLs, latencies) and serves until stdin closes. The parent reads the fleet's counters through
``GET /__stats`` and clears them with ``POST /__reset``.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fetchpipe.bench.child import running_child_json, wait_for_stdin_eof
from fetchpipe.bench.report import raise_nofile_limit
from fetchpipe.engine.fetcher import run
from fetchpipe.sim import Fleet


@dataclass(frozen=True, slots=True)
class RemoteFleet:
    """What the parent knows of a fleet running in a child process."""

    minute: float
    port: int
    api_urls: list[str]
    base_urls: list[str]
    latencies: list[float]

    def stats(self) -> dict[str, Any]:
        """The fleet's counters (``FleetStats.snapshot()``)."""
        with urllib.request.urlopen(self.base_urls[0] + "/__stats", timeout=10) as resp:
            stats: dict[str, Any] = json.loads(resp.read())
        return stats

    def limited_counts(self, key: str, after: float = 0.0) -> dict[str, int]:
        """What the rate-limited endpoints let through and answered 429 for ``key``
        (``Fleet.limited_counts``)."""
        url = f"{self.base_urls[0]}/limited/counts?key={key}&after={after}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            counts: dict[str, int] = json.loads(resp.read())
        return counts

    def reset(self) -> None:
        """Clear the counters and the per-key request numbers."""
        request = urllib.request.Request(self.base_urls[0] + "/__reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()


async def _serve(minute: float, hosts: int) -> None:
    async with Fleet(minute=minute, hosts=hosts) as fleet:
        info = {
            "minute": minute,
            "port": fleet.port,
            "api_urls": fleet.api_urls,
            "base_urls": fleet.base_urls,
            "latencies": list(fleet.latencies),
        }
        print(json.dumps(info), flush=True)
        await wait_for_stdin_eof()


def main() -> None:
    raise_nofile_limit()
    run(_serve(float(sys.argv[1]), int(sys.argv[2])))


@contextmanager
def running_fleet(minute: float, hosts: int = 50) -> Iterator[RemoteFleet]:
    """Start the fleet in a child process; yield how to reach it; stop it on exit."""
    args = ("fetchpipe.bench.fleet", repr(minute), str(hosts))
    with running_child_json("simulated fleet", *args) as info:
        yield RemoteFleet(**info)


if __name__ == "__main__":
    main()
