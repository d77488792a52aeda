"""Cases a review found broken once: each fails on the code before its fix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe import (
    ErrorKind,
    Fetcher,
    HostLimits,
    HttpCache,
    Limits,
    Request,
    Result,
    RetryPolicy,
    Timeouts,
)
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, with_transport

HOST0 = "127.0.0.1"

pytestmark = both_transports


async def collect(requests: object, **options: object) -> list[Result]:
    async with Fetcher(**with_transport(options)) as fetcher:  # type: ignore[arg-type]
        return [r async for r in fetcher.stream(requests)]  # type: ignore[arg-type]


async def test_a_retry_on_an_idle_host_keeps_its_limits_and_pause(fleet: Fleet) -> None:
    async def requests() -> AsyncIterator[str]:
        yield fleet.url("/status/503,200?key=idle&retry_after=1")
        await asyncio.sleep(0.2)  # the host is idle when the 503 comes back
        for i in range(3):
            yield fleet.url(f"/delay?seconds=0.2&key=idle{i}")

    start = time.monotonic()
    results = await collect(requests(), limits=Limits(per_host=HostLimits(max_concurrency=1)))
    assert [r.ok for r in results] == [True] * 4
    arrivals = [t - start for t in fleet.stats.arrivals(HOST0)]
    assert len(arrivals) == 5
    assert all(t >= 0.95 for t in arrivals[1:])  # nothing went out during the pause
    assert fleet.stats.max_in_flight(HOST0) == 1


async def test_retry_after_pauses_the_host_even_when_the_request_gives_up(fleet: Fleet) -> None:
    requests = [fleet.url("/ratelimit?key=giveup&times=1&after=1")]
    requests += [fleet.url(f"/item/{i}") for i in range(3)]
    start = time.monotonic()
    results = await collect(
        requests,
        retry=RetryPolicy(attempts=1),
        limits=Limits(per_host=HostLimits(max_concurrency=1)),
    )
    assert sorted(str(r.error) for r in results) == ["None", "None", "None", "http_status"]
    arrivals = [t - start for t in fleet.stats.arrivals(HOST0)]
    assert len(arrivals) == 4
    assert all(t >= 0.95 for t in arrivals[1:])


async def test_an_expired_retry_fails_on_time_without_spending_a_rate_token(
    fleet: Fleet,
) -> None:
    limits = Limits(hosts={HOST0: HostLimits(max_per_second=0.5)})
    requests = [fleet.url("/status/503,200?key=late"), fleet.url("/item/1")]
    start = time.monotonic()
    async with Fetcher(limits=limits, timeouts=Timeouts(deadline=1.0)) as fetcher:
        done = {r.url: (r, time.monotonic() - start) async for r in fetcher.stream(requests)}
    late, late_at = done[requests[0]]
    assert late.error is ErrorKind.DEADLINE and late_at < 1.5
    _, item_at = done[requests[1]]
    assert item_at < 2.6  # the next token (at 2 s) went to a real request


async def test_identical_urls_with_different_headers_are_not_shared(
    fleet: Fleet, tmp_path: object
) -> None:
    url = fleet.url("/echo?key=vary-share")
    requests = [
        Request(url, headers={"Accept-Language": "de"}, key="de"),
        Request(url, headers={"Accept-Language": "fr"}, key="fr"),
        Request(url, expect="bytes", key="bytes"),
    ]
    cache = HttpCache(f"{tmp_path}/c.sqlite")
    results = {r.key: r for r in await collect(requests, cache=cache)}
    assert fleet.stats.requests(path="/echo") == 3
    assert isinstance(results["bytes"].body, bytes)
    assert results["de"].body["headers"]["Accept-Language"] == "de"
    assert results["fr"].body["headers"]["Accept-Language"] == "fr"


async def test_head_is_not_held_to_the_body_cap(fleet: Fleet) -> None:
    request = Request(fleet.url("/large?bytes=50000"), method="HEAD")
    (result,) = await collect([request], limits=Limits(max_body_size=1000))
    assert result.ok and result.status == 200 and result.body in (b"", None, "")


async def test_a_charset_that_cannot_decode_never_ends_the_run() -> None:
    async def odd(request: web.Request) -> web.Response:
        return web.Response(
            body=b"caf\xc3\xa9", status=404, headers={"Content-Type": "text/plain; charset=idna"}
        )

    app = web.Application()
    app.router.add_get("/odd", odd)
    async with TestServer(app, host="127.0.0.1") as server:
        urls = [str(server.make_url("/odd"))] * 3
        results = await collect(urls)
    assert len(results) == 3
    assert all(r.status == 404 and r.error is ErrorKind.HTTP_STATUS for r in results)
    assert results[0].body == "café"


async def test_a_reset_mid_body_is_reported_as_a_reset(fleet: Fleet) -> None:
    (result,) = await collect([fleet.url("/reset?key=rst&times=9")], retry=RetryPolicy(attempts=1))
    assert result.error is ErrorKind.RESET
