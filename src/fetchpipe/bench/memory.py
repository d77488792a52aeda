"""Memory: peak RSS of a fetchpipe run over N URLs, measured in a child process of its own.

The URLs come from a generator, and results are counted and dropped as they arrive, as a
pipeline streaming into a sink would do. Peak RSS is the child's own ``ru_maxrss``, so the
parent's imports and the server never count.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from fetchpipe._config import Limits
from fetchpipe._fetcher import Fetcher, run


@dataclass(frozen=True, slots=True)
class MemoryRun:
    client: str
    urls: int
    ok: int
    seconds: float
    peak_rss_mb: float

    def to_json(self) -> dict[str, Any]:
        return {"scenario": "memory", **asdict(self)}


def _urls(base_url: str, count: int) -> Iterator[str]:
    for i in range(count):
        yield f"{base_url}/item/{i}"


async def _fetch(base_url: str, count: int, concurrency: int) -> int:
    ok = 0
    async with Fetcher(limits=Limits(max_concurrency=concurrency)) as fetcher:
        async for result in fetcher.stream(_urls(base_url, count)):
            ok += result.ok
    return ok


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child_main(argv: list[str]) -> None:
    base_url, count, concurrency = argv[0], int(argv[1]), int(argv[2])
    start = time.perf_counter()
    ok = run(_fetch(base_url, count, concurrency))
    elapsed = time.perf_counter() - start
    print(json.dumps(asdict(MemoryRun("fetchpipe", count, ok, elapsed, _peak_rss_mb()))))


def measure(base_url: str, urls: int, concurrency: int) -> MemoryRun:
    out = subprocess.run(
        [sys.executable, "-m", "fetchpipe.bench.memory", base_url, str(urls), str(concurrency)],
        check=True,
        capture_output=True,
        text=True,
    )
    return MemoryRun(**json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    child_main(sys.argv[1:])
