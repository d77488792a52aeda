"""Faults: the fleet with 30% of the requests failing at first, fetchpipe against naive gather.

The request list is deterministic. Every host gets the same mix: of each 10 requests, one
answers 503 twice before a 200, one answers 429 with ``Retry-After`` once, one has its
connection reset mid-body once, and seven answer 200 right away. fetchpipe (default settings)
retries; the seed's ``asyncio.gather`` drops what fails. Landed records, retries, the requests
the fleet received and the time are reported for each.

``--toxics`` is the longer run: the misbehaving server of :mod:`fetchpipe.sim.toxics` (in a
child process) instead of the fleet, and in place of the three faults every toxic in turn
(latency, bandwidth, 1-byte slices, hangs before and after the headers, a close without
response, a reset mid-body, truncated bodies, a 5xx burst and 429/503 with Retry-After in every
form), 10,000 requests by default. fetchpipe runs with a read timeout below the hangs; the
report adds failures by error, the server's request count and the retries per first attempt.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fetchpipe._config import Timeouts
from fetchpipe.bench.child import running_child_json, wait_for_stdin_eof
from fetchpipe.bench.fault_clients import FETCHPIPE, GATHER, Client, measure_clients
from fetchpipe.bench.fault_report import (
    FAILED,
    LANDED,
    RETRIES,
    SECONDS,
    SERVER_REQUESTS,
    ClientsReport,
    ratio,
)
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.bench.report import raise_nofile_limit
from fetchpipe.bench.svg import Marker
from fetchpipe.engine.fetcher import run
from fetchpipe.sim.toxics import MixEntry, ToxicServer, toxic_mix

OK = "ok"
BURST_503 = "503 burst"
RATE_LIMITED = "429 Retry-After"
RESET = "reset"
KINDS = (OK, BURST_503, RATE_LIMITED, RESET)
COLUMNS = (LANDED, FAILED, RETRIES, SERVER_REQUESTS, SECONDS)


def fault_plan(
    base_urls: list[str], count: int, run_id: str, retry_after: int
) -> list[tuple[str, str]]:
    """``count`` (kind, URL) pairs; request i goes to host ``i % hosts``.

    Any 10 consecutive requests hold one of each fault, so a count that is a multiple of 10 is
    exactly 30% faults.
    """
    hosts = len(base_urls)
    plan = []
    for i in range(count):
        base = base_urls[i % hosts]
        key = f"{run_id}-{i}"
        slot = (i + i // hosts) % 10  # each host, and each 10 in a row, gets every slot
        if slot == 0:
            plan.append((BURST_503, f"{base}/status/503,503,200?key={key}"))
        elif slot == 3:
            plan.append((RATE_LIMITED, f"{base}/ratelimit?key={key}&times=1&after={retry_after}"))
        elif slot == 6:
            plan.append((RESET, f"{base}/reset?key={key}&times=1"))
        else:
            plan.append((OK, f"{base}/item/{i}"))
    return plan


def _by_kind(counts: Counter[str], kinds: Sequence[str] = KINDS) -> dict[str, int]:
    return {kind: counts.get(kind, 0) for kind in kinds}


@dataclass(slots=True)
class _MixedFaultsReport(ClientsReport):
    """What the default run and the toxics run share: requests over hosts, some faulty."""

    requests: int
    hosts: int
    retry_after: int
    planned: dict[str, int]

    @property
    def faulty(self) -> int:
        return self.requests - self.planned[OK]

    def landed_line(self, note: str = "") -> str:
        fp, naive = self.fetchpipe, self.gather
        records = fp.landed / naive.landed if naive.landed else float("inf")
        return (
            f"fetchpipe landed {fp.landed} of {self.requests} ({fp.landed / self.requests:.1%}"
            f"{note}), gather {naive.landed} ({naive.landed / self.requests:.1%}): "
            f"{records:.2f}x the records in {fp.seconds / naive.seconds:.1f}x the time"
        )

    def ratios(self) -> dict[str, float | None]:
        fp, naive = self.fetchpipe, self.gather
        return {
            "ratio_landed": ratio(fp.landed, naive.landed),
            "ratio_seconds": ratio(fp.seconds, naive.seconds),
        }

    def landed_chart(self, title: str, subtitle: str, marker: Marker) -> str:
        return self.bars(
            title,
            lambda r: r.landed,
            lambda r: f"{r.landed} landed · {r.retries} retries · {r.seconds:.2f} s",
            axis="records landed (higher is better)",
            subtitle=subtitle,
            marker=marker,
        )


@dataclass(slots=True)
class FaultsReport(_MixedFaultsReport):
    def lines(self) -> list[str]:
        out = [
            f"faults: {self.requests} requests over {self.hosts} simulated hosts, {self.faulty} "
            f"({self.faulty / self.requests:.0%}) with injected faults: "
            f"{self.planned[BURST_503]} x 503,503 then 200; {self.planned[RATE_LIMITED]} x 429 "
            f"with Retry-After: {self.retry_after} once; {self.planned[RESET]} x reset mid-body "
            "once",
            *self.table(COLUMNS),
        ]
        for r in self.runs:
            cells = ", ".join(
                f"{kind} {r.landed_by_kind[kind]}/{self.planned[kind]}" for kind in KINDS
            )
            out.append(f"  landed by kind, {r.name}: {cells}")
        out.append(self.landed_line())
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "faults",
            "requests": self.requests,
            "hosts": self.hosts,
            "faulty": self.faulty,
            "retry_after": self.retry_after,
            "planned": self.planned,
            "runs": [r.totals_json(landed_by_kind=r.landed_by_kind) for r in self.runs],
            **self.ratios(),
        }

    def chart(self, subtitle: str) -> str:
        return self.landed_chart(
            f"{self.requests:,} requests, {self.faulty / self.requests:.0%} with faults: "
            "records landed",
            subtitle,
            Marker(float(self.requests), f"all {self.requests:,}"),
        )


def measure(fleet: RemoteFleet, requests: int, retry_after: int) -> FaultsReport:
    """Run the naive gather, then fetchpipe, each on fresh keys with the fleet's counters reset."""

    def plan(run_id: str) -> list[tuple[str, str]]:
        return fault_plan(fleet.base_urls, requests, run_id, retry_after)

    return FaultsReport(
        requests,
        len(fleet.base_urls),
        retry_after,
        _by_kind(Counter(kind for kind, _ in plan(""))),
        runs=measure_clients(fleet, (GATHER, FETCHPIPE), plan, KINDS),
    )


# --- the longer run: every toxic of fetchpipe.sim.toxics ----------------------------------------

TOXIC_HOSTS = 50
HANG_SECONDS = 3.0
READ_TIMEOUT = 1.0
WITH_READ_TIMEOUT = Client(
    "fetchpipe",
    f"fetchpipe (read timeout {READ_TIMEOUT:g} s)",
    {"timeouts": Timeouts(read=READ_TIMEOUT)},
)


def toxic_kinds(mix: Sequence[MixEntry]) -> tuple[str, ...]:
    """The kinds of a toxic run's requests: ``ok`` and one per entry of the mix."""
    return (OK, *(entry.label for entry in mix))


def toxic_plan(
    base_urls: list[str], count: int, run_id: str, mix: Sequence[MixEntry]
) -> list[tuple[str, str]]:
    """``count`` (kind, URL) pairs like :func:`fault_plan`'s: 3 in each 10 requests, on every
    host, go through the next entry of ``mix`` in turn; the others are plain good requests."""
    hosts = len(base_urls)
    plan = []
    faults = 0
    for i in range(count):
        base = base_urls[i % hosts]
        key = f"{run_id}-{i}"
        if (i + i // hosts) % 10 in (0, 3, 6):
            entry = mix[faults % len(mix)]
            faults += 1
            plan.append((entry.label, base + entry.path(key)))
        else:
            plan.append((OK, f"{base}/item/{i}?key={key}"))
    return plan


@dataclass(slots=True)
class ToxicsReport(_MixedFaultsReport):
    """The longer run's figures: both clients against every toxic."""

    mix: tuple[MixEntry, ...] = ()

    @property
    def landable(self) -> int:
        """Requests a client that retries and honours Retry-After caps can land."""
        return self.requests - sum(self.planned[e.label] for e in self.mix if not e.landable)

    @property
    def retries_per_request(self) -> float:
        """fetchpipe's retries per first attempt (one first attempt per request)."""
        return self.fetchpipe.retries / self.requests if self.requests else 0.0

    def lines(self) -> list[str]:
        out = [
            f"faults with toxics: {self.requests} requests over {self.hosts} simulated hosts, "
            f"{self.faulty} ({self.faulty / self.requests:.0%}) through one of {len(self.mix)} "
            "toxics in turn, each spoiling the first request of its key (close and 5xx burst: "
            "the first two)",
            f"hangs last {HANG_SECONDS:g} s; Retry-After asks {self.retry_after} s; fetchpipe "
            f"has a read timeout of {READ_TIMEOUT:g} s and otherwise its defaults",
            *self.table(COLUMNS, label_width=32),
        ]
        out.append(f"  {'landed by kind':<30}" + "".join(f"{r.name:>11}" for r in self.runs))
        for kind in toxic_kinds(self.mix):
            cells = "".join(f"{r.landed_by_kind[kind]:>11}" for r in self.runs)
            out.append(f"  {kind:<22}{'of ' + str(self.planned[kind]):>8}{cells}")
        out += self.error_lines("failed by error")
        fp = self.fetchpipe
        out.append(
            f"fetchpipe retries / first attempts: {self.retries_per_request:.3f} "
            f"({fp.retries} retries for {self.requests} requests; the server received "
            f"{fp.server_requests})"
        )
        out.append(self.landed_line(f"; {self.landable} can land"))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": "faults",
            "mode": "toxics",
            "requests": self.requests,
            "hosts": self.hosts,
            "faulty": self.faulty,
            "landable": self.landable,
            "retry_after": self.retry_after,
            "hang_seconds": HANG_SECONDS,
            "read_timeout": READ_TIMEOUT,
            "kinds": [
                {"label": e.label, "path": e.path("KEY"), "landable": e.landable} for e in self.mix
            ],
            "planned": self.planned,
            "runs": [
                r.totals_json(landed_by_kind=r.landed_by_kind, failed_by_error=r.failed_by_error())
                for r in self.runs
            ],
            "retries_per_request": self.retries_per_request,
            **self.ratios(),
        }

    def chart(self, subtitle: str) -> str:
        return self.landed_chart(
            f"{self.requests:,} requests, {self.faulty / self.requests:.0%} through every "
            "toxic: records landed",
            subtitle,
            Marker(float(self.landable), f"{self.landable:,} can land"),
        )


def measure_toxics(server: RemoteFleet, requests: int, retry_after: int) -> ToxicsReport:
    """Run the naive gather, then fetchpipe, each on fresh keys with the counters reset."""
    mix = toxic_mix(hang=HANG_SECONDS, delay=float(retry_after))
    kinds = toxic_kinds(mix)

    def plan(run_id: str) -> list[tuple[str, str]]:
        return toxic_plan(server.base_urls, requests, run_id, mix)

    return ToxicsReport(
        requests,
        len(server.base_urls),
        retry_after,
        _by_kind(Counter(kind for kind, _ in plan("")), kinds),
        mix=mix,
        runs=measure_clients(server, (GATHER, WITH_READ_TIMEOUT), plan, kinds),
    )


# The toxic server in a child process, so that the clients measured have the parent to
# themselves: `python -m fetchpipe.bench.faults HOSTS` prints one JSON line and serves until
# stdin closes. The parent reads its counters through `GET /__stats` as for the fleet.


async def _serve_toxics(hosts: int) -> None:
    async with ToxicServer(hosts=hosts, max_hang=HANG_SECONDS) as server:
        print(json.dumps({"port": server.port, "base_urls": server.base_urls}), flush=True)
        await wait_for_stdin_eof()


@contextmanager
def running_toxics(hosts: int = TOXIC_HOSTS) -> Iterator[RemoteFleet]:
    """Start the toxic server in a child process; yield how to reach it; stop it on exit."""
    with running_child_json("toxic server", "fetchpipe.bench.faults", str(hosts)) as info:
        yield RemoteFleet(0.0, int(info["port"]), [], list(info["base_urls"]), [])


def main() -> None:
    raise_nofile_limit()
    run(_serve_toxics(int(sys.argv[1])))


if __name__ == "__main__":
    main()
