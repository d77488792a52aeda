"""Politeness under failure, against real local servers: the retry budget and the breaker."""

from __future__ import annotations

import asyncio
import itertools
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe import (
    ErrorKind,
    Fetcher,
    FetchpipeError,
    Limits,
    Request,
    Result,
    RetryEvent,
    RetryPolicy,
    set_testing,
)
from fetchpipe._config import HostLimits
from fetchpipe.engine.breaker import BreakerPolicy
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, current, only_on

pytestmark = both_transports

DOWN, UP = 300, 300


def interleaved(fleet: Fleet) -> list[str]:
    """300 requests to a host that always answers 503, between 300 to two healthy hosts."""
    down = (fleet.url(f"/status/503?key=d{i}", host=0) for i in range(DOWN))
    up = (fleet.url(f"/item/{i}", host=1 + i % 2) for i in range(UP))
    return [u for pair in zip(down, up, strict=True) for u in pair]


async def run_all(
    urls: list[str], policy: RetryPolicy, breaker: BreakerPolicy | None
) -> tuple[list[Result], Fetcher]:
    async with Fetcher(transport=current(), retry=policy, breaker=breaker) as fetcher:
        return [r async for r in fetcher.stream(urls)], fetcher


async def test_retries_to_a_down_api_stay_within_the_budget(fleet: Fleet) -> None:
    """The retry budget alone (no circuit breaker): a host that never answers gets as many
    retries as its budget, each failing, and then none."""
    policy = RetryPolicy(attempts=4, budget=20, budget_refill=0.1)
    results, fetcher = await run_all(interleaved(fleet), policy, None)
    assert len(results) == DOWN + UP  # nothing lost
    healthy = [r for r in results if "/item/" in r.url]
    down = [r for r in results if "/status/" in r.url]
    assert (len(healthy), len(down)) == (UP, DOWN)
    assert all(r.ok for r in healthy)  # the other hosts finish normally
    assert not any(r.ok for r in down)
    received = fleet.stats.requests(host=fleet.addresses[0])
    retries = received - DOWN
    # The budget's 20 failed retries, then nothing: no request to this host ever succeeded.
    assert retries == 20
    assert retries <= 0.1 * DOWN
    assert fetcher.retries_denied == DOWN  # each request was finally refused a retry
    refused = [r for r in down if r.error_message and "retry budget" in r.error_message]
    assert len(refused) == fetcher.retries_denied
    assert "HINT" in (refused[0].error_message or "")


async def test_without_a_budget_retries_multiply_the_load(fleet: Fleet) -> None:
    await run_all(interleaved(fleet), RetryPolicy(attempts=4, budget=None), None)
    assert fleet.stats.requests(host=fleet.addresses[0]) == 4 * DOWN


@dataclass
class Flaky:
    """A server that answers 503 until `up_at` (loop time), then 200; records each arrival."""

    up_at: float = 0.0
    in_flight: int = 0
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    """(loop time, requests in flight including this one)."""

    async def handle(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        self.arrivals.append((loop.time(), self.in_flight))
        try:
            await asyncio.sleep(0.02)
            if loop.time() < self.up_at:
                return web.Response(status=503)
            return web.json_response({"ok": True})
        finally:
            self.in_flight -= 1


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Flaky, TestServer]]:
    state = Flaky()
    app = web.Application()
    app.router.add_get("/{key}", state.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield state, server


async def test_waiting_the_breaker_rests_a_failing_host_then_probes_it_alone(
    flaky: tuple[Flaky, TestServer],
) -> None:
    """``on_open="wait"``: the requests of a host whose circuit opened wait for it."""
    set_testing(False)  # real waits: the cool-down is what is measured
    state, server = flaky
    loop = asyncio.get_running_loop()
    state.up_at = loop.time() + 0.15
    cooldown = 0.4
    limits = Limits(per_host=HostLimits(max_concurrency=4))
    policy = RetryPolicy(attempts=5, wait_initial=0.01, wait_max=0.02, budget=None)
    breaker = BreakerPolicy(threshold=3, cooldown=cooldown, on_open="wait")
    urls = [str(server.make_url(f"/k{i}")) for i in range(20)]
    async with Fetcher(
        transport=current(), limits=limits, retry=policy, breaker=breaker
    ) as fetcher:
        results = [r async for r in fetcher.stream(urls)]
    assert [r.ok for r in results] == [True] * 20
    assert fetcher.hosts_down == {"127.0.0.1": 1}
    times = [t for t, _ in state.arrivals]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    rest = max(gaps)
    assert rest >= cooldown - 0.05  # nothing was sent while the circuit was open
    probe = gaps.index(rest) + 1
    assert state.arrivals[probe][1] == 1  # the probe went alone...
    after = [n for t, n in state.arrivals[probe + 1 :] if t > times[probe] + 0.02]
    assert max(after) > 1  # ...and once it succeeded, the others followed together


async def test_the_breaker_counts_requests_not_the_retries_of_a_few(fleet: Fleet) -> None:
    """Three requests that fail twice each (six failed attempts, nothing between them) do not
    open a circuit of threshold 5: the host answers them on the third try. Five different
    requests failing in a row do (and with ``on_open="wait"`` they still land)."""
    policy = RetryPolicy(attempts=3, budget=None)
    breaker = BreakerPolicy(threshold=5, on_open="wait")
    few = [fleet.url(f"/status/503,503,200?key=few{i}") for i in range(3)]
    async with Fetcher(transport=current(), retry=policy, breaker=breaker) as fetcher:
        results = [r async for r in fetcher.stream(few)]
    assert [(r.ok, r.attempts) for r in results] == [(True, 3)] * 3
    assert fetcher.hosts_down == {}
    many = [fleet.url(f"/status/503,200?key=many{i}") for i in range(5)]
    async with Fetcher(transport=current(), retry=policy, breaker=breaker) as fetcher:
        results = [r async for r in fetcher.stream(many)]
    assert [r.ok for r in results] == [True] * 5
    assert fetcher.hosts_down == {fleet.addresses[0]: 1}


async def test_a_stale_keep_alive_connection_is_retried_once_without_an_attempt() -> None:
    """The server answers the first request of a connection and drops the connection on the
    second, as one whose keep-alive timeout raced the client's reuse. The request is sent
    again on a new connection without counting as an attempt (so no retry budget)."""
    only_on("aiohttp", "hyper does not resend after a close without response")
    served = [0, 0]  # responses, connections dropped

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for number in itertools.count():
                head = await reader.readuntil(b"\r\n\r\n")
                if not head or number == 1:
                    served[1] += 1
                    return  # the second request on this connection: close without answering
                body = b'{"ok": true}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Connection: keep-alive\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
                served[0] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    urls = [f"http://127.0.0.1:{port}/item/{i}" for i in range(6)]
    limits = Limits(max_concurrency=1)
    try:
        async with Fetcher(
            transport=current(), limits=limits, retry=RetryPolicy(attempts=1)
        ) as fetcher:
            results = [r async for r in fetcher.stream(urls)]
    finally:
        server.close()
        await server.wait_closed()
    assert [r.ok for r in results] == [True] * 6  # no attempt was left to retry with
    assert all(r.attempts == 1 for r in results)
    assert served == [6, 5]  # every reuse found a dead connection and was sent again
    assert fetcher.retries_denied == 0


async def test_a_host_fed_one_request_at_a_time_keeps_its_budget_and_breaker(
    fleet: Fleet,
) -> None:
    """Sequential pages reach a host one at a time: its state must not be forgotten (with its
    breaker and budget) each time it goes idle between two of them."""
    done = asyncio.Event()

    def one_at_a_time(run: str) -> AsyncIterator[str]:
        async def requests() -> AsyncIterator[str]:
            for i in range(30):
                done.clear()
                yield fleet.url(f"/status/503?key={run}{i}")
                await done.wait()

        return requests()

    policy = RetryPolicy(attempts=3, budget=5)
    async with Fetcher(transport=current(), retry=policy, breaker=None) as fetcher:
        async for _ in fetcher.stream(one_at_a_time("budget")):
            done.set()
    received = fleet.stats.requests(host=fleet.addresses[0])
    assert received == 30 + 5  # the budget's five failed retries, then none
    assert fetcher.retries_denied == 28  # all but the two that used up their 3 attempts

    # The breaker opens after the fifth request; then (no cool-down in testing mode) each
    # request is a probe that fails, sent once and not retried.
    policy = RetryPolicy(attempts=3, budget=None)
    async with Fetcher(
        transport=current(), retry=policy, breaker=BreakerPolicy(threshold=5)
    ) as fetcher:
        results = []
        async for result in fetcher.stream(one_at_a_time("breaker")):
            results.append(result)
            done.set()
    received = fleet.stats.requests(host=fleet.addresses[0]) - received
    assert received == 4 * 3 + 1 + 25
    assert fetcher.hosts_down == {fleet.addresses[0]: 26}
    assert [r.error for r in results] == [ErrorKind.HTTP_STATUS] * 4 + [ErrorKind.HOST_DOWN] * 26


async def test_a_crash_traceback_carries_no_secret(fleet: Fleet) -> None:
    """A hook that raises stops the run (a crash); its full traceback, chained exceptions and
    the objects they show included, holds no credential."""
    canary = "canary-traceback-5e2d"

    def hook(event: RetryEvent) -> None:
        raise RuntimeError(f"hook failed on {event!r} for {request!r}")

    request = Request(
        fleet.url("/status/503?key=crash"),
        headers={"Authorization": f"Bearer {canary}"},
        params={"api_key": canary},
    )
    with pytest.raises(FetchpipeError) as caught:
        async with Fetcher(transport=current(), on_retry=hook) as fetcher:
            [r async for r in fetcher.stream([request])]
    text = "".join(traceback.format_exception(caught.value))
    assert "the fetch stopped early" in text and "RuntimeError: hook failed" in text
    assert canary not in text
