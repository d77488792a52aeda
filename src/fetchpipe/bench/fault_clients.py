"""The clients of the fault scenarios (faults, toxics, dead and flaky API) and what they measure.

Each scenario plans (kind, URL) pairs, kinds naming what the URL does ("ok", "503 burst",
"dead", ...). A :class:`Client` sends a plan: the seed's ``asyncio.gather`` (one GET per URL,
failures dropped) or fetchpipe with the options of the scenario. Its :class:`ClientRun` counts,
per kind, what landed, what failed and why, and the retries; :func:`measure_clients` runs each
client on a plan of its own, with the server's counters cleared before and read after.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.bench.seed_gather import gather as seed_gather
from fetchpipe.engine.fetcher import Fetcher, run

Plan = Sequence[tuple[str, str]]
"""(kind, URL) pairs."""


@dataclass(slots=True)
class ClientRun:
    """One client's pass over a plan: per kind, the requests landed, failed and retried."""

    name: str
    label: str
    kinds: tuple[str, ...]
    """The plan's kinds, in the order :attr:`landed_by_kind` lists them."""
    seconds: float = 0.0
    landed_of: Counter[str] = field(default_factory=Counter)
    failed_of: Counter[str] = field(default_factory=Counter)
    retries_of: Counter[str] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, error) -> failed requests: the exception's class for gather, the error kind
    (``http_status``, ``host_down``, ...) for fetchpipe."""
    refused: int = 0
    """Retries the retry budget refused (fetchpipe)."""
    hosts_down: list[str] = field(default_factory=list)
    """Hosts whose circuit breaker opened (fetchpipe)."""
    server_requests: int = 0
    """Requests the server received (set by :func:`measure_clients`)."""

    def count(self, kind: str, retries: int, error: str | None) -> None:
        """One request of ``kind``: landed when ``error`` is ``None``."""
        self.retries_of[kind] += retries
        if error is None:
            self.landed_of[kind] += 1
        else:
            self.failed_of[kind] += 1
            self.errors[kind, error] += 1

    @property
    def landed(self) -> int:
        return self.landed_of.total()

    @property
    def failed(self) -> int:
        return self.failed_of.total()

    @property
    def retries(self) -> int:
        return self.retries_of.total()

    @property
    def landed_by_kind(self) -> dict[str, int]:
        return {kind: self.landed_of[kind] for kind in self.kinds}

    def failed_by_error(self, *kinds: str) -> dict[str, int]:
        """Failed requests per error, the most frequent first, of ``kinds`` (none: all)."""
        counts: Counter[str] = Counter()
        for (kind, error), n in self.errors.items():
            if not kinds or kind in kinds:
                counts[error] += n
        return dict(counts.most_common())

    def to_json(self, **extra: object) -> dict[str, object]:
        """``name``, ``label`` and ``seconds``, then ``extra``."""
        return {"name": self.name, "label": self.label, "seconds": self.seconds, **extra}

    def totals_json(self, **extra: object) -> dict[str, object]:
        """:meth:`to_json` with the landed, failed, retries and server requests, then ``extra``."""
        return self.to_json(
            landed=self.landed,
            failed=self.failed,
            retries=self.retries,
            server_requests=self.server_requests,
            **extra,
        )


@dataclass(frozen=True, slots=True)
class Client:
    """A client of the fault scenarios: the seed's gather when ``options`` is ``None``, else
    fetchpipe as ``Fetcher(**options)``."""

    name: str
    label: str
    options: Mapping[str, Any] | None = None

    async def send(self, plan: Plan, kinds: Sequence[str] = ()) -> ClientRun:
        """Send every URL of ``plan`` once (fetchpipe retries); ``kinds`` orders the kinds
        (by default, as they first appear in the plan)."""
        order = tuple(dict.fromkeys([*kinds, *(kind for kind, _ in plan)]))
        result = ClientRun(self.name, self.label, order)
        if self.options is None:
            await _gather(plan, result)
        else:
            await _fetchpipe(plan, result, self.options)
        return result


GATHER = Client("gather", "gather (aiohttp, no retries)")
FETCHPIPE = Client("fetchpipe", "fetchpipe (defaults)", {})


async def _gather(plan: Plan, result: ClientRun) -> None:
    start = time.perf_counter()
    answers = await seed_gather([url for _, url in plan])
    result.seconds = time.perf_counter() - start
    for (kind, _), answer in zip(plan, answers, strict=True):
        failed = isinstance(answer, BaseException)
        result.count(kind, 0, type(answer).__name__ if failed else None)


async def _fetchpipe(plan: Plan, result: ClientRun, options: Mapping[str, Any]) -> None:
    kind_of = {url: kind for kind, url in plan}
    start = time.perf_counter()
    async with Fetcher(**options) as fetcher:
        async for r in fetcher.stream(url for _, url in plan):
            result.count(kind_of[r.url], r.retries, None if r.ok else str(r.error))
    result.seconds = time.perf_counter() - start
    result.refused = fetcher.retries_denied
    result.hosts_down = sorted(fetcher.hosts_down)


def all_requests(stats: Mapping[str, Any]) -> int:
    """The requests the whole server received, from its ``/__stats``."""
    return int(stats["requests"])


def measure_clients(
    server: RemoteFleet,
    clients: Iterable[Client],
    plan_for: Callable[[str], Plan],
    kinds: Sequence[str] = (),
    received: Callable[[Mapping[str, Any]], int] = all_requests,
) -> list[ClientRun]:
    """Each client in turn on ``plan_for(client.name)`` (its own keys), with the server's
    counters cleared before; ``received`` reads its request count from the server's stats."""
    runs = []
    for client in clients:
        plan = plan_for(client.name)
        server.reset()
        result = run(client.send(plan, kinds))
        result.server_requests = received(server.stats())
        runs.append(result)
    return runs
