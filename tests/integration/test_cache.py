"""The HTTP cache against the simulated fleet, which counts what reaches the server."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from fetchpipe import (
    BreakerPolicy,
    ErrorKind,
    Fetcher,
    HttpCache,
    Limits,
    Request,
    Result,
    RetryPolicy,
    Source,
)
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, with_transport

SECRET_A = "tok-AAAA-1111"
SECRET_B = "tok-BBBB-2222"

pytestmark = both_transports


async def fetch(requests: list[Request | str], cache: HttpCache, **kw: object) -> list[Result]:
    async with Fetcher(cache=cache, **with_transport(kw)) as fetcher:  # type: ignore[arg-type]
        return [r async for r in fetcher.stream(requests)]


def hits(fleet: Fleet, key: str) -> int:
    return fleet.stats.requests(path="/cached", key=key)


@pytest.fixture
def cache(tmp_path: Path) -> HttpCache:
    return HttpCache(tmp_path / "cache.sqlite")


async def test_fresh_entry_is_served_without_a_request(fleet: Fleet, cache: HttpCache) -> None:
    url = fleet.url("/cached?key=fresh&cc=max-age%3D60")
    (first,) = await fetch([url], cache)
    (second,) = await fetch([url], cache)
    assert first.source is Source.NETWORK and second.source is Source.CACHE
    assert second.ok and second.status == 200 and second.body == first.body
    assert second.attempts == 0
    assert hits(fleet, "fresh") == 1


async def test_stale_entry_with_etag_is_revalidated_with_304(
    fleet: Fleet, cache: HttpCache
) -> None:
    url = fleet.url("/cached?key=etag&cc=max-age%3D0&etag=7")
    (first,) = await fetch([url], cache)
    (second,) = await fetch([url], cache)
    assert second.source is Source.REVALIDATED and second.status == 200
    assert second.body == first.body == {"n": 1, "key": "etag", "lang": None}
    assert hits(fleet, "etag") == 2  # the second was a conditional request answered 304


async def test_last_modified_is_revalidated_too(fleet: Fleet, cache: HttpCache) -> None:
    url = fleet.url("/cached?key=lm&cc=no-cache&last_modified=1")
    await fetch([url], cache)
    (second,) = await fetch([url], cache)
    assert second.source is Source.REVALIDATED
    assert hits(fleet, "lm") == 2


async def test_no_cache_always_revalidates(fleet: Fleet, cache: HttpCache) -> None:
    url = fleet.url("/cached?key=nc&cc=no-cache%2C%20max-age%3D600&etag=1")
    await fetch([url], cache)
    (second,) = await fetch([url], cache)
    assert second.source is Source.REVALIDATED
    assert hits(fleet, "nc") == 2


async def test_no_store_is_never_stored(fleet: Fleet, cache: HttpCache) -> None:
    url = fleet.url("/cached?key=ns&cc=no-store%2C%20max-age%3D600&etag=1")
    await fetch([url], cache)
    (second,) = await fetch([url], cache)
    assert second.source is Source.NETWORK and second.body["n"] == 2
    assert cache.stats().entries == 0


async def test_error_responses_are_not_stored(fleet: Fleet, cache: HttpCache) -> None:
    url = fleet.url("/status/404?key=e404")
    await fetch([url], cache)
    await fetch([url], cache)
    assert fleet.stats.requests(path="/status/404", key="e404") == 2
    assert cache.stats().entries == 0


async def test_vary_keeps_one_entry_per_variant(fleet: Fleet, cache: HttpCache) -> None:
    url = fleet.url("/cached?key=vary&cc=max-age%3D60&vary=Accept-Language")
    en = Request(url, headers={"Accept-Language": "en"})
    es = Request(url, headers={"Accept-Language": "es"})
    (a,) = await fetch([en], cache)
    (b,) = await fetch([es], cache)
    (c,) = await fetch([en], cache)
    (d,) = await fetch([es], cache)
    assert [a.source, b.source, c.source, d.source] == [
        Source.NETWORK,
        Source.NETWORK,
        Source.CACHE,
        Source.CACHE,
    ]
    assert (c.body["lang"], d.body["lang"]) == ("en", "es")
    assert hits(fleet, "vary") == 2


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip"])
async def test_an_encoded_response_is_stored_decoded_and_replayed(
    fleet: Fleet, cache: HttpCache, coding: str
) -> None:
    url = fleet.url(f"/encoded/{coding}?cc=max-age%3D60")
    (first,) = await fetch([url], cache)
    (second,) = await fetch([url], cache)
    expected = {
        "coding": coding,
        "accept_encoding": "gzip, deflate, br, zstd",
        "items": list(range(50)),
    }
    assert first.ok and first.source is Source.NETWORK and first.body == expected
    assert second.ok and second.source is Source.CACHE and second.body == expected
    assert fleet.stats.requests(path=f"/encoded/{coding}") == 1
    with sqlite3.connect(cache.path) as conn:
        (stored,) = conn.execute("SELECT body FROM entries").fetchone()
    assert json.loads(stored) == expected  # the decoded body: a replay does not decode again


async def test_two_credentials_two_entries_and_no_secret_in_the_file(
    fleet: Fleet, cache: HttpCache
) -> None:
    url = fleet.url("/cached?key=cred&cc=max-age%3D60")
    by_header = [
        Request(url, headers={"Authorization": f"Bearer {SECRET_A}"}),
        Request(url, headers={"Authorization": f"Bearer {SECRET_B}"}),
    ]
    by_param = [f"{url}&api_key={SECRET_A}", f"{url}&api_key={SECRET_B}"]
    for request in [*by_header, *by_param]:
        await fetch([request], cache)
    for request in [*by_header, *by_param]:
        (again,) = await fetch([request], cache)
        assert again.source is Source.CACHE
    assert hits(fleet, "cred") == 4
    assert cache.stats().entries == 4
    cache.close()
    raw = b"".join(p.read_bytes() for p in cache.path.parent.iterdir() if p.is_file())
    for secret in (SECRET_A, SECRET_B):
        assert secret.encode() not in raw
    assert b"REDACTED" in raw


async def test_ttl_for_apis_without_cache_headers(fleet: Fleet, tmp_path: Path) -> None:
    url = fleet.url("/cached?key=ttl")
    plain = HttpCache(tmp_path / "a.sqlite")
    await fetch([url], plain)
    (again,) = await fetch([url], plain)
    assert again.source is Source.NETWORK  # no headers, no TTL: nothing to reuse
    ttl = HttpCache(tmp_path / "b.sqlite", ttl_overrides={"127.0.0.*": 600})
    await fetch([url], ttl)
    (cached,) = await fetch([url], ttl)
    assert cached.source is Source.CACHE
    assert hits(fleet, "ttl") == 3


async def test_stale_if_error_serves_the_stale_entry(fleet: Fleet, cache: HttpCache) -> None:
    url = fleet.url("/cached?key=sie&cc=max-age%3D0&fail_from=2")
    (first,) = await fetch([url], cache)
    (second,) = await fetch([url], cache, retry=RetryPolicy(attempts=2))
    assert second.ok and second.source is Source.STALE
    assert second.body == first.body
    assert "503" in (second.error_message or "")
    assert hits(fleet, "sie") == 3  # the first, then two failed attempts


async def test_stale_if_error_has_a_bound(fleet: Fleet, tmp_path: Path) -> None:
    cache = HttpCache(tmp_path / "c.sqlite", stale_if_error=0)
    url = fleet.url("/cached?key=sie0&cc=max-age%3D0&fail_from=2")
    await fetch([url], cache)
    (second,) = await fetch([url], cache, retry=RetryPolicy(attempts=1))
    assert not second.ok and second.status == 503 and second.source is Source.NETWORK


async def test_a_down_host_is_answered_stale_from_the_cache(fleet: Fleet, cache: HttpCache) -> None:
    """The requests that an open circuit ends (not sent, or not retried) are answered from the
    cache when it holds a usable stale entry, as a failed refresh is."""
    urls = [fleet.url(f"/cached?key=down{i}&cc=max-age%3D0&fail_from=2") for i in range(40)]
    await fetch(urls, cache)
    results = await fetch(urls, cache, breaker=BreakerPolicy(threshold=5))
    assert [(r.ok, r.source) for r in results] == [(True, Source.STALE)] * 40
    down = [r for r in results if "is down" in (r.error_message or "")]
    assert down and all("served stale after the refresh failed" in r.error_message for r in down)
    assert sum(hits(fleet, f"down{i}") for i in range(40)) < 40 + 40 * 4  # not every attempt


async def test_offline_serves_only_from_the_cache(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    url_a = fleet.url("/cached?key=offa&cc=max-age%3D60")
    url_b = fleet.url("/cached?key=offb&cc=max-age%3D60")
    await fetch([url_a], HttpCache(path))
    before = fleet.stats.requests()
    results = {r.url: r for r in await fetch([url_a, url_b], HttpCache(path, offline=True))}
    assert fleet.stats.requests() == before  # nothing was sent
    assert results[url_a].source is Source.CACHE and results[url_a].ok
    missing = results[url_b]
    assert missing.error is ErrorKind.NOT_CACHED and "offline" in (missing.error_message or "")


async def test_identical_requests_in_flight_are_fetched_once(
    fleet: Fleet, cache: HttpCache
) -> None:
    url = fleet.url("/cached?key=coalesce&cc=max-age%3D60")
    slow = fleet.url("/delay?seconds=0.3&key=c")
    requests = [Request(url, key=i) for i in range(100)]
    # The shared URL is slow to answer, so all 100 are in flight at once.
    slow_shared = [Request(slow, key=i) for i in range(100)]
    results = await fetch([*requests, *slow_shared], cache, limits=Limits(max_concurrency=200))
    assert len(results) == 200 and all(r.ok for r in results)
    assert sorted(r.key for r in results if r.url == url) == list(range(100))  # type: ignore[type-var]
    assert hits(fleet, "coalesce") == 1
    assert fleet.stats.requests(path="/delay", key="c") == 1


async def test_a_thousand_urls_at_concurrency_200(fleet: Fleet, tmp_path: Path) -> None:
    cache = HttpCache(tmp_path / "k.sqlite")
    urls = [fleet.url(f"/cached?key=k{i}&cc=max-age%3D600", host=i % 3) for i in range(1000)]
    results = await fetch(urls, cache, limits=Limits(max_concurrency=200))
    assert [(r.ok, r.source) for r in results] == [(True, Source.NETWORK)] * 1000
    cache.close()
    with sqlite3.connect(cache.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM entries").fetchone() == (1000,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    sent = fleet.stats.requests()
    warm = await fetch(urls, HttpCache(cache.path), limits=Limits(max_concurrency=200))
    assert fleet.stats.requests() == sent  # all 1000 answered from the file, none sent
    assert [(r.ok, r.source) for r in warm] == [(True, Source.CACHE)] * 1000


async def test_a_corrupt_cache_file_is_set_aside(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = HttpCache(path)
    cache.open()  # as fetch --cache does, to print the note before the first request
    note = cache.note
    assert note is not None and note.startswith("the cache file was unreadable (")
    aside = note.partition("; it was set aside as ")[2]
    assert (tmp_path / aside).read_bytes() == b"this is not a database" * 100  # kept as it was
    url = fleet.url("/cached?key=corrupt&cc=max-age%3D60")
    (result,) = await fetch([url], cache)
    assert result.ok and result.source is Source.NETWORK
    assert any(p.name.startswith("bad.sqlite.corrupt-") for p in tmp_path.iterdir())
    (again,) = await fetch([url], HttpCache(path))
    assert again.source is Source.CACHE


async def test_size_cap_prunes_least_recently_used(fleet: Fleet, tmp_path: Path) -> None:
    cache = HttpCache(tmp_path / "cap.sqlite", max_size=2500)
    urls = [fleet.url(f"/large?bytes=1000&key=cap{i}") for i in range(5)]
    # /large sends no cache headers: give it a TTL so it is stored at all.
    cache.ttl = 600
    for url in urls:
        await fetch([url], cache)
        await asyncio.sleep(0.01)
    stats = cache.stats()
    assert stats.bytes <= 2500
    assert 1 <= stats.entries <= 2
    (last,) = await fetch([urls[-1]], cache)
    assert last.source is Source.CACHE  # the most recent survived
