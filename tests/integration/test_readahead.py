"""Reading ahead of the buffer: an input sorted by host keeps every host busy, within bounds.

Against the simulated fleet: the server counts how many hosts had a request in flight at the
same moment (``FleetStats.max_busy_hosts``). With a buffer that holds two hosts' worth of a
sorted input, a run that reads no further than the buffer never has more than four hosts busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fetchpipe import Fetcher, HostLimits, Limits, Request
from fetchpipe.sim import Fleet

HOSTS = 10
PER_HOST = 30


def _sorted_urls(fleet: Fleet, per_host: int, path: str = "/delay?seconds=0.05") -> list[str]:
    sep = "&" if "?" in path else "?"
    return [
        f"{fleet.base_url(h)}{path}{sep}n={i}" for h in range(fleet.hosts) for i in range(per_host)
    ]


SECRET = "Bearer " + "s3cr3t-" * 300


def _secret_requests(fleet: Fleet, per_host: int) -> list[Request]:
    """Requests with a 2 KB credential each: a few thousand of them fill SQLite's page cache,
    so its temporary file is written."""
    return [
        Request(f"{url}", headers={"Authorization": SECRET})
        for url in _sorted_urls(fleet, per_host, "/delay?seconds=0.01")
    ]


def _spill_files() -> list[str]:
    """The temporary SQLite files this process has open (Linux: they are unlinked at once)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "etilqs_" in target:
            found.append(target)
    return found


@pytest.mark.fleet(hosts=HOSTS)
async def test_a_sorted_input_keeps_every_host_busy_at_once(fleet: Fleet) -> None:
    # buffer 20 + 20 workers: 40 requests, a host and a third of the sorted input
    limits = Limits(max_concurrency=20, buffer_size=20, per_host=HostLimits(max_concurrency=2))
    urls = _sorted_urls(fleet, PER_HOST)
    seen: Counter[str] = Counter()
    async with Fetcher(limits=limits) as fetcher:
        async for result in fetcher.stream(iter(urls)):
            assert result.ok, result.error_message
            seen[result.url] += 1
    assert seen == Counter(urls)
    assert fleet.stats.max_busy_hosts() >= HOSTS - 1
    assert max(fleet.stats.max_in_flight(a) for a in fleet.addresses) <= 2


@pytest.mark.fleet(hosts=HOSTS)
async def test_without_readahead_a_sorted_input_keeps_few_hosts_busy(fleet: Fleet) -> None:
    limits = Limits(
        max_concurrency=20,
        buffer_size=20,
        per_host=HostLimits(max_concurrency=2),
        readahead=0,
    )
    urls = _sorted_urls(fleet, PER_HOST, "/delay?seconds=0.01")
    async with Fetcher(limits=limits) as fetcher:
        results = [r async for r in fetcher.stream(iter(urls))]
    assert all(r.ok for r in results) and len(results) == len(urls)
    assert fleet.stats.max_busy_hosts() <= 4  # the 40 requests held span four hosts at most
    assert fetcher.spilled == 0


@pytest.mark.fleet(hosts=5)
async def test_beyond_memory_the_readahead_spills_and_every_request_comes_once(
    fleet: Fleet,
) -> None:
    limits = Limits(max_concurrency=10, buffer_size=10, per_host=HostLimits(max_concurrency=1))
    # 6,000 requests: more than the read-ahead keeps in memory
    urls = _sorted_urls(fleet, 1200, "/delay?seconds=0.001")
    order: dict[str, list[int]] = {}
    seen: Counter[str] = Counter()
    async with Fetcher(limits=limits) as fetcher:
        async for result in fetcher.stream(iter(urls)):
            assert result.ok, result.error_message
            seen[result.url] += 1
            host, n = result.url.split("/delay?seconds=0.001&n=")
            order.setdefault(host, []).append(int(n))
    assert seen == Counter(urls)
    assert fetcher.spilled > 0  # the memory bound held: the rest went to the file
    assert fleet.stats.max_busy_hosts() == 5
    # one request at a time per host: each host's requests were sent in input order
    assert all(ns == sorted(ns) for ns in order.values())
    assert not _spill_files()


@pytest.mark.fleet(hosts=4)
async def test_requests_read_ahead_keep_their_method_headers_and_body(fleet: Fleet) -> None:
    limits = Limits(max_concurrency=8, buffer_size=8, per_host=HostLimits(max_concurrency=1))
    requests = [
        Request(
            f"{fleet.base_url(h)}/echo",
            method="POST",
            headers={"Authorization": f"Bearer secret-{h}", "X-N": str(i)},
            params={"n": i},
            json={"n": i, "host": h},
            key=f"{h}:{i}",
        )
        for h in range(fleet.hosts)
        for i in range(1100)  # 4,400: past the read-ahead's memory, into its file
    ]
    async with Fetcher(limits=limits) as fetcher:
        results = [r async for r in fetcher.stream(iter(requests))]
    assert len(results) == len(requests)
    for result in results:
        assert result.ok, result.error_message
        h, i = (int(part) for part in str(result.request.key).split(":"))
        echoed = result.body
        assert echoed["method"] == "POST"
        assert echoed["headers"]["Authorization"] == f"Bearer secret-{h}"
        assert echoed["headers"]["X-N"] == str(i)
        assert echoed["query"] == {"n": str(i)}
        assert json.loads(echoed["body"]) == {"n": i, "host": h}
    assert fetcher.spilled > 0


@pytest.mark.fleet(hosts=5)
async def test_an_async_input_is_read_ahead_too_and_lazily(fleet: Fleet) -> None:
    limits = Limits(
        max_concurrency=10,
        buffer_size=10,
        per_host=HostLimits(max_concurrency=2),
        readahead=40,
    )
    pulled = 0
    urls = _sorted_urls(fleet, 60, "/delay?seconds=0.01")

    async def produce() -> AsyncIterator[str]:
        nonlocal pulled
        for url in urls:
            pulled += 1
            yield url

    seen = most_ahead = 0
    async with Fetcher(limits=limits) as fetcher:
        async for result in fetcher.stream(produce()):
            assert result.ok
            seen += 1
            most_ahead = max(most_ahead, pulled - seen)
    assert seen == len(urls)
    # the buffer and workers (20) + the reserve (10) + the read-ahead (40) + the channel (10)
    assert most_ahead <= 20 + 10 + 40 + 10 + 1
    assert fleet.stats.max_busy_hosts() >= 3


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/fd")
@pytest.mark.fleet(hosts=4)
async def test_leaving_the_stream_early_deletes_the_spill_file(fleet: Fleet) -> None:
    limits = Limits(max_concurrency=4, buffer_size=4, per_host=HostLimits(max_concurrency=1))
    got = 0
    async with (
        Fetcher(limits=limits) as fetcher,
        contextlib.aclosing(fetcher.stream(iter(_secret_requests(fleet, 1500)))) as results,
    ):
        async for result in results:
            got += result.ok
            if got == 50:
                files = _spill_files()
                assert files  # 5,000 requests of 2 KB read ahead: SQLite wrote its file
                for name in files:  # open by this process, unlinked: /proc still reads it
                    fd = next(
                        f
                        for f in os.listdir("/proc/self/fd")
                        if os.path.exists(f"/proc/self/fd/{f}")
                        and os.readlink(f"/proc/self/fd/{f}") == name
                    )
                    content = Path(f"/proc/self/fd/{fd}").read_bytes()
                    assert len(content) > 1_000_000
                    assert b"s3cr3t" not in content
                    assert b"/delay" not in content
                break
    assert got == 50
    assert not _spill_files()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/fd")
@pytest.mark.fleet(hosts=4)
async def test_a_cancelled_run_deletes_the_spill_file(fleet: Fleet) -> None:
    limits = Limits(max_concurrency=4, buffer_size=4, per_host=HostLimits(max_concurrency=1))
    requests = _secret_requests(fleet, 1500)
    spilled = asyncio.Event()

    async def consume() -> None:
        async with Fetcher(limits=limits) as fetcher:
            async for _ in fetcher.stream(iter(requests)):
                if _spill_files():
                    spilled.set()

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(spilled.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _spill_files()


@pytest.mark.fleet(hosts=6)
async def test_a_shuffled_input_gives_the_same_results_as_a_sorted_one(fleet: Fleet) -> None:
    limits = Limits(max_concurrency=12, buffer_size=12, per_host=HostLimits(max_concurrency=2))
    urls = _sorted_urls(fleet, 100, "/item/0")
    shuffled = urls[:]
    random.Random(7).shuffle(shuffled)
    outcomes = []
    for order in (urls, shuffled):
        async with Fetcher(limits=limits) as fetcher:
            outcomes.append(
                sorted([(r.url, r.status, str(r.body)) async for r in fetcher.stream(iter(order))])
            )
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0]) == len(urls)
