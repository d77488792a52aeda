"""A host's credentials (``Request.lanes``) share what belongs to the host: its circuit breaker
(a host that is down is down for every credential, and its waiting requests fail fast), and its
place in the read-ahead (a host whose requests wait for a credential is not taken for a starved
one, so the hosts behind it in the input still get their turn).

Against real local servers: an aiohttp test server that answers 500 to everything, and the
simulated fleet (two hosts on 127.0.0.1 and 127.0.0.2).
"""

from __future__ import annotations

from collections import Counter

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe import ErrorKind, Fetcher, HostLimits, Lane, Limits, Request, Result
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, current

pytestmark = [both_transports, pytest.mark.timeout(60)]

TOKENS = ("token-one-41d7", "token-two-8b3e")


def two_lanes() -> tuple[Lane, ...]:
    return tuple(
        Lane(f"tokens[{i}]", headers={"Authorization": f"Bearer {t}"}) for i, t in enumerate(TOKENS)
    )


async def dead_host_run(with_lanes: bool) -> tuple[list[Result], Counter[str], dict[str, int]]:
    """200 requests to a host answering 500 to everything, two at a time (per token), all
    else by default: the results, the arrivals per Authorization header, the hosts down."""
    arrivals: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.Response:
        arrivals[request.headers.get("Authorization", "")] += 1
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/{key}", handle)
    lanes = two_lanes() if with_lanes else None
    limits = Limits(hosts={"127.0.0.1": HostLimits(max_concurrency=2)})
    async with TestServer(app, host="127.0.0.1") as server:
        requests = [Request(str(server.make_url(f"/r{i}")), lanes=lanes) for i in range(200)]
        async with Fetcher(limits=limits, transport=current()) as fetcher:
            results = [r async for r in fetcher.stream(requests)]
            return results, arrivals, dict(fetcher.hosts_down)


def not_sent(results: list[Result]) -> int:
    return sum(1 for r in results if (r.error_message or "").startswith("not sent"))


async def test_a_dead_host_fails_fast_for_every_credential() -> None:
    """With two tokens as with none, the host's circuit opens after its first failures and
    the requests still waiting end at once as host_down, not sent; the server sees a few
    more requests at most (the second token's two in flight), and the host (not one of its
    tokens) is reported down once."""
    plain, plain_arrivals, plain_down = await dead_host_run(with_lanes=False)
    results, arrivals, down = await dead_host_run(with_lanes=True)
    assert len(results) == len(plain) == 200
    assert down == plain_down == {"127.0.0.1": 1}
    assert set(arrivals) == {f"Bearer {t}" for t in TOKENS}
    sent, plain_sent = sum(arrivals.values()), sum(plain_arrivals.values())
    assert sent <= plain_sent + 4, (sent, plain_sent)  # (200 and more, each token for itself)
    assert not_sent(results) >= not_sent(plain) - 4, (not_sent(results), not_sent(plain))
    assert Counter(r.error for r in results)[ErrorKind.HOST_DOWN] >= 150


@pytest.mark.fleet(hosts=2)
async def test_a_host_waiting_on_its_credentials_leaves_room_for_the_next_host(
    fleet: Fleet,
) -> None:
    """400 requests with two tokens to a host limited to 50 per second per token, then 100 to
    a second host, through a buffer of 50 and 20 workers: the first host's requests wait in
    the read-ahead, not in the buffer, so the second host's requests are sent at once instead
    of after most of the first's (as they are without tokens)."""
    slow, fast = fleet.base_url(0), fleet.base_url(1)
    requests = [Request(f"{slow}/delay?seconds=0&n={i}", lanes=two_lanes()) for i in range(400)]
    requests += [Request(f"{fast}/delay?seconds=0&n={i}") for i in range(100)]
    limits = Limits(
        max_concurrency=20,
        buffer_size=50,
        hosts={"127.0.0.1": HostLimits(max_per_second=50.0)},
    )
    order: list[str] = []
    async with Fetcher(limits=limits, transport=current()) as fetcher:
        async for result in fetcher.stream(iter(requests)):
            assert result.ok, result.error_message
            order.append(result.url)
    assert len(order) == 500
    last_fast = max(i for i, url in enumerate(order) if url.startswith(fast))
    slow_before = sum(1 for url in order[:last_fast] if url.startswith(slow))
    # At 100 per second over two tokens the slow host takes 4 s; the fast host's 100 take a
    # fraction of a second once in the buffer: few of the slow host's land before (3 or 4
    # without tokens; 90 to 124 when the host with tokens was taken for a starved one).
    assert slow_before < 40, slow_before
