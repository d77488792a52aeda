"""The cache benchmark's code path on a tiny size (speed is never asserted)."""

from __future__ import annotations

from fetchpipe.bench import cache


async def test_warm_read_comes_from_the_cache_with_no_server_request() -> None:
    reads = await cache.measure(20, 5)
    ours = reads[0]
    assert ours.client == "fetchpipe"
    assert ours.from_cache == 20 and ours.server_requests == 0
    assert ours.seconds is not None and ours.seconds > 0
    report = cache.to_json(reads)
    assert report["scenario"] == "cache"
    assert report["reads"][0]["client"] == "fetchpipe"
    other = reads[1]
    assert other.client == "aiohttp-client-cache"
    if other.seconds is None:
        assert other.note == "not installed"
    else:
        assert other.server_requests == 0
