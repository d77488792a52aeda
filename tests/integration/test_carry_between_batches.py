"""A host's politeness goes on from one engine to the next: a Fetcher given the carry of the one
before, and the batches of a cluster fetch (a Dask LocalCluster of two worker processes); the
host's politeness figures over the engines add up to one run's (the 429 of one, the pause it
asked for in the next).

The server (aiohttp's test server on 127.0.0.1, on a loop in a thread) answers the request
``n == THROTTLED`` with a 429 and ``Retry-After: 2`` and notes when each request arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe import HostLimits, Lane, Limits, Request, RetryPolicy
from fetchpipe._host_rates import HostRateReport, one_after_another
from fetchpipe.distributed import DaskExecutor, FetchSettings, fetch_sharded
from fetchpipe.engine.fetcher import Fetcher, run

pytestmark = pytest.mark.timeout(120)

PAUSE = 2.0
BATCH = 10
THROTTLED = BATCH - 1  # the last request of the first batch
ONE_AT_A_TIME = Limits(per_host=HostLimits(max_concurrency=1))
NO_RETRIES = RetryPolicy(attempts=1)  # the 429 ends its batch at once; the pause goes on


class ThrottlingServer:
    """Answers ``/item?n=N``; ``n == THROTTLED`` once with 429 and Retry-After."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: TestServer | None = None

    async def _item(self, request: web.Request) -> web.Response:
        n = int(request.query["n"])
        self.arrivals.setdefault(n, time.time())
        if n == THROTTLED:
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": f"{PAUSE:g}"}
            )
        return web.json_response({"n": n})

    def __enter__(self) -> ThrottlingServer:
        self._thread.start()
        app = web.Application()
        app.router.add_get("/item", self._item)
        self._server = TestServer(app, host="127.0.0.1")
        asyncio.run_coroutine_threadsafe(self._server.start_server(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        asyncio.run_coroutine_threadsafe(self._server.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def urls(self, count: int) -> list[str]:
        assert self._server is not None
        return [str(self._server.make_url(f"/item?n={n}")) for n in range(count)]

    def quiet_after_throttle(self) -> float:
        """Seconds from the 429 to the next request that arrived after it."""
        throttled = self.arrivals[THROTTLED]
        later = [at for n, at in self.arrivals.items() if n > THROTTLED]
        assert later, "no request came after the 429"
        return min(later) - throttled


@pytest.fixture
def server() -> Iterator[ThrottlingServer]:
    with ThrottlingServer() as running:
        yield running


@pytest.mark.parametrize(
    ("lanes", "name"),
    [((), "127.0.0.1"), ((Lane("tokens[0]", headers={"X-Token": "t0"}),), "127.0.0.1 tokens[0]")],
    ids=["host", "credential-lane"],
)
def test_a_fetcher_given_the_carry_of_the_one_before_keeps_its_retry_after_pause(
    server: ThrottlingServer, lanes: tuple[Lane, ...], name: str
) -> None:
    requests = [Request(url, lanes=lanes) for url in server.urls(2 * BATCH)]

    async def two_engines() -> tuple[int, int, HostRateReport]:
        async with Fetcher(limits=ONE_AT_A_TIME, retry=NO_RETRIES, proxy=None) as first:
            done = [r async for r in first.stream(requests[:BATCH])]
        carry = first.carry_out
        assert set(carry) == {name} and carry[name].paused_until > time.time()
        async with Fetcher(
            limits=ONE_AT_A_TIME, retry=NO_RETRIES, proxy=None, carry=carry
        ) as second:
            more = [r async for r in second.stream(requests[BATCH:])]
        figures = one_after_another(first.rate_limits, second.rate_limits)
        return len(done), sum(r.ok for r in more), figures[name]

    done, ok, figures = run(two_engines())
    assert (done, ok) == (BATCH, BATCH)
    assert server.quiet_after_throttle() >= PAUSE - 0.05
    # the 429 was the first engine's, the pause it asked for held the second one back
    assert figures.throttled == 1
    assert PAUSE / 2 <= figures.paused <= PAUSE + 0.05


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    """Two worker processes, one thread each, on 127.0.0.1."""
    with DaskExecutor.local(2) as executor:
        yield executor


def test_a_retry_after_at_the_end_of_a_batch_holds_the_hosts_next_batch_on_the_cluster(
    cluster: DaskExecutor, server: ThrottlingServer, tmp_path: Path
) -> None:
    urls = server.urls(3 * BATCH)
    report = fetch_sharded(
        urls,
        tmp_path / "out.jsonl",
        cluster,
        FetchSettings(limits=ONE_AT_A_TIME, retry=NO_RETRIES),
        batch_size=BATCH,
    )
    assert report.batches == 3 and report.results == 3 * BATCH
    assert report.by_error == {"http_status": 1}  # the 429, not tried again
    assert len(server.arrivals) == 3 * BATCH
    assert server.quiet_after_throttle() >= PAUSE - 0.05
    # the host's figures over the three batches: the first one's 429, the next one's pause
    figures = report.rate_limits["127.0.0.1"]
    assert (figures.throttled, figures.unavailable) == (1, 0)
    assert PAUSE / 2 <= figures.paused <= PAUSE + 0.05
