"""A cancelled request or run stops, on both transports, whenever the cancel comes.

A cancel that arrives as a response comes in is the case that once went wrong on the fast
transport (pyreqwest completed the request and the cancel was lost: the worker went on, and
stopping the run waited for it forever). The moments are random, so each test tries many of
them; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random

from fetchpipe import Fetcher, Limits, Request, Result
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, current, opened

pytestmark = both_transports

STOP_WITHIN = 5.0  # seconds a cancelled send or run may take to end (it takes milliseconds)


def mixed_urls(fleet: Fleet, rng: random.Random, count: int) -> list[str]:
    """Short waits, and bodies read in one piece or chunk by chunk."""
    urls = []
    for i in range(count):
        if i % 3 == 0:
            urls.append(fleet.url(f"/large?bytes={rng.randrange(1, 300_000)}&chunked={i % 2}"))
        else:
            urls.append(fleet.url(f"/delay?seconds={rng.random() * 0.01:.4f}&n={i}"))
    return urls


async def test_a_send_cancelled_in_flight_ends_cancelled(fleet: Fleet) -> None:
    rng = random.Random(29)
    urls = mixed_urls(fleet, rng, 200)
    cancelled = 0
    async with opened() as transport:
        for attempt, url in enumerate(urls):
            task = asyncio.ensure_future(
                transport.send(Request(url), total_timeout=None, max_body_size=1 << 20)
            )
            await asyncio.sleep(rng.random() * 0.008)
            asked = task.cancel()  # False: the response was complete before the cancel
            done, _ = await asyncio.wait({task}, timeout=STOP_WITHIN)
            assert done, f"attempt {attempt}: the send did not end after its cancel"
            if asked:
                cancelled += 1
                # Neither a response nor a TransportError: the cancel itself.
                assert task.cancelled(), f"attempt {attempt}: cancel lost, got {task!r}"
            else:
                assert task.result().status == 200
    assert cancelled >= len(urls) // 4  # the cancels came in flight, at different moments


async def test_a_run_cancelled_mid_flight_stops(fleet: Fleet) -> None:
    rng = random.Random(31)
    urls = mixed_urls(fleet, rng, 300)
    async with Fetcher(limits=Limits(max_concurrency=8), transport=current()) as fetcher:

        async def consume(got: list[Result]) -> None:
            async for result in fetcher.stream(urls):
                got.append(result)

        for run in range(30):
            got: list[Result] = []
            task = asyncio.ensure_future(consume(got))
            await asyncio.sleep(0.005 + rng.random() * 0.05)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=STOP_WITHIN)
            if not done:  # free the stuck workers before failing
                task.cancel()
                await asyncio.wait({task}, timeout=STOP_WITHIN)
            assert done, f"run {run}: cancelled after {len(got)} results, it did not stop"
            assert task.cancelled()
            assert len(got) < len(urls)  # it was cancelled mid-flight, not at the end
