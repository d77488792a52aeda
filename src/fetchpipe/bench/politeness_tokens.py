"""The tokens part of ``fetchpipe bench politeness``: one token against two on an API that
publishes its limit per token (``/limited/published/...?per=token``: ``--limit`` requests per
``--window`` seconds for each ``Authorization`` value, 429 beyond).

fetchpipe with its defaults sends the same ``--tokens`` requests first with one token, then with
two (``Request.lanes``: each token a lane of the host, paced by its own published headers).
Reported: requests landed, the server's 429s, time, throughput, and the two-token run's
throughput as a ratio of the one-token run's (the ideal is the number of tokens).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fetchpipe._models import Lane, Request
from fetchpipe.bench.fault_report import ratio
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.engine.fetcher import Fetcher, run

HOST = 2
"""The fleet's host the tokens' API runs on (the other scenarios use 0 and 1)."""


@dataclass(slots=True)
class TokensRun:
    """fetchpipe with ``tokens`` tokens."""

    tokens: int
    landed: int = 0
    seconds: float = 0.0
    accepted: int = 0
    rejected: int = 0

    @property
    def throughput(self) -> float:
        return self.landed / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "landed": self.landed,
            "seconds": round(self.seconds, 3),
            "throughput": round(self.throughput, 3),
            "server_accepted": self.accepted,
            "server_429": self.rejected,
        }


@dataclass(slots=True)
class TokensReport:
    requests: int
    limit: int
    window: int
    runs: list[TokensRun] = field(default_factory=list)

    @property
    def speedup(self) -> float | None:
        """Throughput with two tokens over throughput with one."""
        if len(self.runs) < 2:
            return None
        return ratio(self.runs[1].throughput, self.runs[0].throughput)

    def lines(self) -> list[str]:
        out = [
            f"tokens: {self.requests} requests to an API publishing {self.limit} per "
            f"{self.window} s per token (429 beyond), fetchpipe with its defaults",
            f"  {'tokens':>8s} {'landed':>9s} {'429s':>6s} {'seconds':>8s} {'req/s':>7s}",
        ]
        for r in self.runs:
            out.append(
                f"  {r.tokens:8d} {f'{r.landed}/{self.requests}':>9s} {r.rejected:6d} "
                f"{r.seconds:8.2f} {r.throughput:7.2f}"
            )
        speedup = self.speedup
        if speedup is not None:
            out.append(f"  two tokens / one: throughput {speedup:.2f}x (ideal 2x)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "limit": self.limit,
            "window": self.window,
            "runs": [r.to_json() for r in self.runs],
            "ratio_throughput_two_vs_one": self.speedup,
        }


def _lanes(count: int, stamp: str) -> tuple[Lane, ...]:
    return tuple(
        Lane(f"tokens[{i}]", headers={"Authorization": f"Bearer bench-{stamp}-{i}"})
        for i in range(count)
    )


async def _fetch(requests: list[Request]) -> int:
    landed = 0
    async with Fetcher() as fetcher:
        async for result in fetcher.stream(requests):
            landed += result.ok
    return landed


def measure(fleet: RemoteFleet, requests: int, limit: int, window: int) -> TokensReport:
    """One token, then two, each run on a key of its own."""
    report = TokensReport(requests, limit, window)
    stamp = f"{time.time():.0f}"
    base = fleet.base_urls[HOST]
    for tokens in (1, 2):
        key = f"tokens-{tokens}-{stamp}"
        lanes = _lanes(tokens, key)
        urls = [
            f"{base}/limited/published/{i}?limit={limit}&window={window}&key={key}&per=token"
            for i in range(requests)
        ]
        start = time.perf_counter()
        landed = run(_fetch([Request(url, lanes=lanes) for url in urls]))
        seconds = time.perf_counter() - start
        counts = fleet.limited_counts(key)
        report.runs.append(
            TokensRun(tokens, landed, seconds, counts["accepted"], counts["rejected"])
        )
    return report
