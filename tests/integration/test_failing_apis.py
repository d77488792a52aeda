"""A dead API and a flaky API, against real local servers: the run ends, and what a retry can
save is saved."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe import BreakerPolicy, ErrorKind, Fetcher, RetryPolicy, set_testing
from fetchpipe.bench.failing_apis import DEAD, HEALTHY, dead_plan, flaky_plan
from fetchpipe.sim import Fleet
from fetchpipe.sim.toxics import ToxicServer
from tests.integration.transports import both_transports, current

pytestmark = both_transports


async def test_a_dead_api_fails_fast_and_the_healthy_requests_land(fleet: Fleet) -> None:
    """1,000 requests to a host answering 500 to everything beside 100 to healthy hosts, all
    defaults: the dead host's circuit opens after 20 failed requests and its other requests
    end at once as host_down; the healthy ones all land."""
    plan = dead_plan(fleet.base_urls, 1000, 100, "dead")
    kind_of = dict((url, kind) for kind, url in plan)
    async with Fetcher(transport=current()) as fetcher:
        results = [r async for r in fetcher.stream(url for _, url in plan)]
    assert len(results) == 1100
    healthy = [r for r in results if kind_of[r.url] == HEALTHY]
    dead = [r for r in results if kind_of[r.url] == DEAD]
    assert len(healthy) == 100 and all(r.ok for r in healthy)
    assert Counter(r.error for r in dead) == {ErrorKind.HOST_DOWN: 1000}
    received = fleet.stats.requests(host=fleet.addresses[0])
    assert received == sum(r.attempts for r in dead)  # every attempt is in a result
    assert received <= 200  # the first requests in flight, not the thousand
    assert sum(r.retries for r in dead) <= 300
    assert fetcher.hosts_down == {fleet.addresses[0]: 1}
    assert fetcher.failed_fast == 1000
    never_sent = [r for r in dead if r.attempts == 0]
    assert len(never_sent) >= 800
    message = never_sent[0].error_message or ""
    assert message.startswith(f"not sent: {fleet.addresses[0]} is down: failing since ")
    assert "20 requests in a row failed" in message
    assert "--on-host-down wait" in message and "on_open" in message
    not_retried = next(r for r in dead if r.attempts == 1)
    assert not_retried.status == 500
    assert (not_retried.error_message or "").startswith("HTTP 500 (not retried: ")


async def test_a_flaky_api_lands_every_request_whose_fault_clears() -> None:
    """160 requests to one host, 40% failing once or twice (503s, 429 with Retry-After, a
    reset mid-body, a truncated body), all defaults: everything lands, the budget refuses
    nothing and the breaker does not take the host for down."""
    async with ToxicServer(hosts=1) as server:
        plan = flaky_plan(server.base_url(0), 160, "flaky")
        async with Fetcher(transport=current()) as fetcher:
            results = [r async for r in fetcher.stream(url for _, url in plan)]
        received = server.stats.requests()
    assert [r.error_message for r in results if not r.ok] == []
    assert len(results) == 160
    faulty = Counter(kind.label for kind, _ in plan if kind.toxic is not None)
    assert sum(faulty.values()) == 64 and set(faulty.values()) == {8}
    retries = sum(r.retries for r in results)
    assert retries == 32 * 1 + 32 * 2  # each fault cleared on the attempt after its last
    assert received == 160 + retries
    assert fetcher.retries_denied == 0
    assert fetcher.hosts_down == {}


async def test_a_host_that_recovers_gets_requests_again() -> None:
    """Failing fast does not give up on the host: after the cool-down, the next request is a
    probe, sent alone; once it succeeds the others flow together."""
    set_testing(False)  # real waits: the cool-down is what is measured
    loop = asyncio.get_running_loop()
    up_at = loop.time() + 3600.0
    arrivals: list[tuple[str, int]] = []
    in_flight = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal in_flight
        in_flight += 1
        arrivals.append((request.path, in_flight))
        try:
            await asyncio.sleep(0.02)
            if loop.time() < up_at:
                return web.Response(status=503)
            return web.json_response({"ok": True})
        finally:
            in_flight -= 1

    app = web.Application()
    app.router.add_get("/{key}", handle)
    cooldown = 0.3
    async with TestServer(app, host="127.0.0.1") as server:

        async def requests() -> AsyncIterator[str]:
            nonlocal up_at
            for i in range(30):
                yield str(server.make_url(f"/down{i}"))
            await asyncio.sleep(0.1)  # the first 30 failed meanwhile
            up_at = loop.time()  # the host recovers
            await asyncio.sleep(cooldown)
            for i in range(20):
                yield str(server.make_url(f"/up{i}"))

        policy = RetryPolicy(wait_initial=0.2, wait_max=0.2)
        breaker = BreakerPolicy(threshold=5, cooldown=cooldown)
        async with Fetcher(transport=current(), retry=policy, breaker=breaker) as fetcher:
            results = [r async for r in fetcher.stream(requests())]
    first = [r for r in results if "/down" in r.url]
    later = [r for r in results if "/up" in r.url]
    assert not any(r.ok for r in first)
    assert Counter(r.error for r in first)[ErrorKind.HOST_DOWN] >= 20
    assert len(later) == 20 and all(r.ok for r in later)
    assert fetcher.hosts_down == {"127.0.0.1": 1}
    up = [(path, n) for path, n in arrivals if path.startswith("/up")]
    assert up[0][1] == 1  # the probe went alone...
    assert max(n for _, n in up[1:]) > 1  # ...and then the others together
