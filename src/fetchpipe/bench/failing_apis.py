"""Two APIs that misbehave as a whole: one that is down, one that is flaky.

``fetchpipe bench faults --dead-api``: 1,000 requests to a simulated host answering 500 to
everything, interleaved with 100 requests to healthy hosts (one after every ten). Reported for
each client: the time to finish, the healthy requests landed, the requests the dead host
received and how many of them were retries. The naive ``gather`` sends everything once;
fetchpipe runs with its defaults (the breaker fails the dead host's requests fast), and again
with its circuit breaker off, so the retry budget alone is seen.

``fetchpipe bench faults --flaky-api``: 160 requests to one host of the toxic server, 40% of
them failing once or twice before a 200 (503s, 429 with ``Retry-After: 1``, a reset mid-body,
a truncated body; 8 of each of the 8 kinds, in a shuffled but fixed order). Reported: records
landed, retries, retries refused by the budget, whether the breaker opened, and the time.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fetchpipe.bench.fault_clients import FETCHPIPE, GATHER, Client, ClientRun, measure_clients
from fetchpipe.bench.fault_report import (
    FAILED,
    LANDED,
    REFUSED,
    RETRIES,
    SECONDS,
    SERVER_REQUESTS,
    ClientsReport,
    Column,
    ratio,
)
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.bench.svg import Marker
from fetchpipe.sim.toxics import Burst, ResetPeer, RetryAfter, Toxic, Truncate, toxic_path

DEAD, HEALTHY = "dead", "healthy"
NO_BREAKER = Client("no-breaker", "fetchpipe (breaker off)", {"breaker": None})


# --- the dead API ------------------------------------------------------------------------------


def dead_plan(
    base_urls: Sequence[str], dead: int, healthy: int, run_id: str
) -> list[tuple[str, str]]:
    """(kind, URL) pairs: ``dead`` requests to the first host's ``/status/500``, with one of
    ``healthy`` requests to the other hosts after every ``dead // healthy``."""
    others = list(base_urls[1:]) or list(base_urls)
    every = max(1, dead // healthy) if healthy else dead + 1
    plan: list[tuple[str, str]] = []
    sent = 0
    for i in range(dead):
        plan.append((DEAD, f"{base_urls[0]}/status/500?key={run_id}-dead-{i}"))
        if (i + 1) % every == 0 and sent < healthy:
            plan.append((HEALTHY, f"{others[sent % len(others)]}/item/{sent}?key={run_id}"))
            sent += 1
    for n in range(sent, healthy):
        plan.append((HEALTHY, f"{others[n % len(others)]}/item/{n}?key={run_id}"))
    return plan


@dataclass(slots=True)
class DeadApiReport(ClientsReport):
    """The server's count of each run is the dead host's: the requests it received."""

    dead: int
    healthy: int
    dead_host: str

    def lines(self) -> list[str]:
        columns = (
            SECONDS,
            Column("healthy landed", 16, lambda r: f"{r.landed_of[HEALTHY]}/{self.healthy}"),
            Column("dead host got", 15, lambda r: r.server_requests),
            Column("of them retries", 17, lambda r: r.retries_of[DEAD]),
        )
        out = [
            f"dead API: {self.dead} requests to {self.dead_host}, which answers 500 to "
            f"everything, and {self.healthy} to healthy hosts (one after every "
            f"{max(1, self.dead // max(1, self.healthy))})",
            *self.table(columns),
            *self.error_lines("dead host's requests", DEAD, then=_hosts_down),
        ]
        fp, naive = self.fetchpipe, self.gather
        out.append(
            f"fetchpipe finished in {fp.seconds:.2f} s ({fp.seconds / naive.seconds:.1f}x "
            f"gather's {naive.seconds:.2f} s); the dead host got {fp.server_requests} requests "
            f"({fp.server_requests / naive.server_requests:.1%} of gather's "
            f"{naive.server_requests}), {fp.retries_of[DEAD]} of them retries; "
            f"{fp.landed_of[HEALTHY]}/{self.healthy} healthy requests landed"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        fp, naive = self.fetchpipe, self.gather
        return {
            "scenario": "faults",
            "mode": "dead-api",
            "dead": self.dead,
            "healthy": self.healthy,
            "dead_host": self.dead_host,
            "runs": [
                r.to_json(
                    healthy_landed=r.landed_of[HEALTHY],
                    dead_failed=r.failed_of[DEAD],
                    dead_retries=r.retries_of[DEAD],
                    dead_received=r.server_requests,
                    dead_errors=r.failed_by_error(DEAD),
                    hosts_down=r.hosts_down,
                )
                for r in self.runs
            ],
            "ratio_seconds": ratio(fp.seconds, naive.seconds),
            "ratio_dead_received": ratio(fp.server_requests, naive.server_requests),
        }

    def chart(self, subtitle: str) -> str:
        return self.bars(
            f"A dead API ({self.dead:,} requests) beside {self.healthy} healthy ones: requests "
            "the dead host received",
            lambda r: r.server_requests,
            lambda r: (
                f"{r.server_requests} requests ({r.retries_of[DEAD]} retries) · "
                f"{r.seconds:.2f} s · {r.landed_of[HEALTHY]}/{self.healthy} healthy landed"
            ),
            axis="requests sent to the dead host (lower is better)",
            subtitle=subtitle,
            marker=Marker(float(self.dead), f"{self.dead:,} requests"),
        )


def _hosts_down(r: ClientRun) -> str:
    return f"; hosts down: {', '.join(r.hosts_down)}" if r.hosts_down else ""


def measure_dead(fleet: RemoteFleet, dead: int, healthy: int) -> DeadApiReport:
    """Each client on fresh keys with the fleet's counters reset."""
    dead_host = fleet.base_urls[0].split("//", 1)[1].rsplit(":", 1)[0]

    def plan(run_id: str) -> list[tuple[str, str]]:
        return dead_plan(fleet.base_urls, dead, healthy, run_id)

    def received(stats: Mapping[str, Any]) -> int:
        return int(stats["hosts"].get(dead_host, {}).get("requests", 0))

    runs = measure_clients(fleet, (GATHER, FETCHPIPE, NO_BREAKER), plan, received=received)
    return DeadApiReport(dead, healthy, dead_host, runs=runs)


# --- the flaky API -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlakyKind:
    label: str
    toxic: Toxic | None


def flaky_kinds(retry_after: int = 1) -> tuple[FlakyKind, ...]:
    """The eight faults of the flaky API: each kind failing once, then twice."""
    kinds = []
    for times in (1, 2):
        suffix = "once" if times == 1 else "twice"
        kinds += [
            FlakyKind(f"503 {suffix}", Burst(statuses=(503,), times=times)),
            FlakyKind(
                f"429 Retry-After {suffix}",
                RetryAfter(form="seconds", delay=float(retry_after), times=times),
            ),
            FlakyKind(f"reset mid-body {suffix}", ResetPeer(times=times)),
            FlakyKind(f"truncated {suffix}", Truncate(times=times)),
        ]
    return tuple(kinds)


OK_KIND = FlakyKind("ok", None)


def flaky_plan(
    base_url: str, count: int, run_id: str, retry_after: int = 1
) -> list[tuple[FlakyKind, str]]:
    """``count`` (kind, URL) pairs: 40% through the faults of :func:`flaky_kinds` in turn, the
    rest good, shuffled in a fixed order."""
    kinds = flaky_kinds(retry_after)
    faulty = count * 2 // 5
    plan = [kinds[i % len(kinds)] for i in range(faulty)] + [OK_KIND] * (count - faulty)
    random.Random(12).shuffle(plan)
    urls = []
    for i, kind in enumerate(plan):
        key = f"{run_id}-{i}"
        path = toxic_path(kind.toxic, key=key) if kind.toxic else f"/item/{i}?key={key}"
        urls.append((kind, base_url + path))
    return urls


@dataclass(slots=True)
class FlakyApiReport(ClientsReport):
    """The flaky API's figures: both clients, one host, 40% of the requests failing at first."""

    requests: int
    faulty: int
    retry_after: int

    def lines(self) -> list[str]:
        out = [
            f"flaky API: {self.requests} requests to one host, {self.faulty} "
            f"({self.faulty / self.requests:.0%}) failing once or twice before a 200: 503, 429 "
            f"with Retry-After: {self.retry_after}, reset mid-body, truncated body",
            *self.table((LANDED, FAILED, RETRIES, REFUSED, SERVER_REQUESTS, SECONDS)),
            *self.error_lines("failed by error"),
        ]
        fp, naive = self.fetchpipe, self.gather
        down = ", ".join(fp.hosts_down) or "none"
        out.append(
            f"fetchpipe landed {fp.landed} of {self.requests} ({fp.refused} retries refused by "
            f"the budget; hosts down: {down}), gather {naive.landed}; {fp.seconds:.2f} s"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        fp, naive = self.fetchpipe, self.gather
        return {
            "scenario": "faults",
            "mode": "flaky-api",
            "requests": self.requests,
            "faulty": self.faulty,
            "retry_after": self.retry_after,
            "runs": [
                r.totals_json(
                    retries_refused=r.refused,
                    hosts_down=r.hosts_down,
                    failed_by_error=r.failed_by_error(),
                )
                for r in self.runs
            ],
            "ratio_landed": ratio(fp.landed, naive.landed),
        }

    def chart(self, subtitle: str) -> str:
        return self.bars(
            f"A flaky API: {self.requests} requests, {self.faulty / self.requests:.0%} failing "
            "once or twice: records landed",
            lambda r: r.landed,
            lambda r: (
                f"{r.landed} landed · {r.retries} retries ({r.refused} refused) · {r.seconds:.2f} s"
            ),
            axis="records landed (higher is better)",
            subtitle=subtitle,
            marker=Marker(float(self.requests), f"all {self.requests}"),
        )


def measure_flaky(server: RemoteFleet, requests: int, retry_after: int) -> FlakyApiReport:
    """Each client on fresh keys with the server's counters reset."""

    def plan(run_id: str) -> list[tuple[str, str]]:
        pairs = flaky_plan(server.base_urls[0], requests, run_id, retry_after)
        return [(kind.label, url) for kind, url in pairs]

    runs = measure_clients(server, (GATHER, FETCHPIPE), plan)
    return FlakyApiReport(requests, requests * 2 // 5, retry_after, runs=runs)
