"""The simulated API fleet, exercised over real loopback sockets."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from yarl import URL

from fetchpipe.sim import SEED_LATENCIES_MINUTES, Fleet, FleetStats

MINUTE = 0.02
pytestmark = pytest.mark.fleet(minute=MINUTE)


@pytest.fixture(autouse=True)
def no_server_noise(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Resets, truncations and clients going away must not log warnings or tracebacks."""
    caplog.set_level(logging.DEBUG)
    yield
    noisy = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.split(".")[0] in ("aiohttp", "asyncio")
    ]
    assert not noisy, [r.getMessage() for r in noisy]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with session.get(url) as resp:
        return resp.status, await resp.json()


# -- the 50 seed APIs --------------------------------------------------------------------------


async def test_fifty_apis_are_fifty_hosts(session: aiohttp.ClientSession) -> None:
    async with Fleet(minute=MINUTE, hosts=50) as fleet:
        urls = fleet.api_urls
        assert len(urls) == 50
        assert len({URL(u).host for u in urls}) == 50
        assert all(u.startswith("http://127.0.0.") for u in urls)

        async def timed(url: str) -> tuple[float, object]:
            t0 = time.monotonic()
            async with session.get(url) as resp:
                assert resp.status == 200
                assert resp.content_type == "application/json"
                body = await resp.json()
            return time.monotonic() - t0, body

        t0 = time.monotonic()
        results = await asyncio.gather(*(timed(u) for u in urls))
        elapsed = time.monotonic() - t0

        slowest = max(SEED_LATENCIES_MINUTES) * MINUTE
        assert slowest <= elapsed < sum(SEED_LATENCIES_MINUTES) * MINUTE / 2
        for n, (took, body) in enumerate(results):
            assert isinstance(body, dict)
            assert body["api"] == n
            assert len(body["items"]) >= 2
            assert took >= SEED_LATENCIES_MINUTES[n] * MINUTE * 0.95

        assert set(fleet.stats.hosts()) == {f"127.0.0.{n + 1}" for n in range(50)}
        for n in range(50):
            host = f"127.0.0.{n + 1}"
            assert fleet.stats.requests(host=host) == 1
            assert fleet.stats.requests(host=host, path=f"/api/{n}") == 1
        assert fleet.stats.requests() == 50
        assert fleet.stats.max_in_flight() == 50


async def test_fewer_hosts_share_the_apis(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    assert len(fleet.api_urls) == 50
    assert fleet.api_urls[4] == f"http://127.0.0.2:{fleet.port}/api/4"
    status, body = await get_json(session, fleet.api_urls[4])
    assert status == 200
    assert isinstance(body, dict)
    assert body["api"] == 4
    assert body["latency_minutes"] == SEED_LATENCIES_MINUTES[4]
    status, _ = await get_json(session, fleet.url("/api/50"))
    assert status == 404


def test_urls_and_addresses() -> None:
    fleet = Fleet(hosts=3)
    assert fleet.addresses == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    with pytest.raises(RuntimeError):
        _ = fleet.port
    with pytest.raises(ValueError, match="hosts"):
        Fleet(hosts=0)
    with pytest.raises(ValueError, match="hosts"):
        Fleet(hosts=255)


async def test_url_helper(fleet: Fleet) -> None:
    port = fleet.port
    assert fleet.url("/status/503,200?key=a", host=0) == (
        f"http://127.0.0.1:{port}/status/503,200?key=a"
    )
    assert fleet.url("json", host=2) == f"http://127.0.0.3:{port}/json"
    assert fleet.base_urls == [f"http://127.0.0.{i}:{port}" for i in (1, 2, 3)]
    with pytest.raises(ValueError, match="host index"):
        fleet.url("/json", host=3)


async def test_shared_port_conflict_is_reported(fleet: Fleet) -> None:
    other = Fleet(hosts=2, port=fleet.port)
    with pytest.raises(OSError, match=r"(?i)in use"):
        await other.start()
    assert not other.running


# -- fast endpoints ------------------------------------------------------------------------------


async def test_json_and_item(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    assert await get_json(session, fleet.url("/json")) == (200, {"id": 0, "ok": True})
    assert await get_json(session, fleet.url("/item/42", host=1)) == (200, {"id": 42})


async def test_text_and_bytes(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    async with session.get(fleet.url("/text")) as resp:
        assert resp.content_type == "text/plain"
        assert "hello" in await resp.text()
    async with session.get(fleet.url("/bytes")) as resp:
        assert resp.content_type == "application/octet-stream"
        assert await resp.read() == bytes(range(256))


async def test_echo(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    async with session.put(
        fleet.url("/echo?a=1&a=2&b=x"), data="payload", headers={"X-Test": "yes"}
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["method"] == "PUT"
    assert body["path"] == "/echo"
    assert body["query"] == {"a": ["1", "2"], "b": "x"}
    assert body["headers"]["X-Test"] == "yes"
    assert body["body"] == "payload"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
async def test_encoded(fleet: Fleet, session: aiohttp.ClientSession, coding: str) -> None:
    """Checked with aiohttp's own decoders (Brotli and backports.zstd are installed)."""
    headers = {"Accept-Encoding": "identity"}  # ignored, as httpbin's /brotli does
    async with session.get(fleet.url(f"/encoded/{coding}"), headers=headers) as resp:
        assert resp.headers["Content-Encoding"] == coding
        assert resp.headers["Vary"] == "Accept-Encoding"
        assert await resp.json() == {
            "coding": coding,
            "accept_encoding": "identity",
            "items": list(range(50)),
        }
    status, body = await get_json(session, fleet.url("/encoded/compress"))
    assert status == 400 and "coding must be gzip, deflate, br or zstd" in body["error"]  # type: ignore[index]


async def test_delay(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    status, body = await get_json(session, fleet.url("/delay?seconds=0.2"))
    assert status == 200
    assert body == {"delayed": 0.2}
    assert time.monotonic() - t0 >= 0.19


async def test_invalid_json(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    async with session.get(fleet.url("/invalid-json")) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        with pytest.raises(json.JSONDecodeError):
            await resp.json()


@pytest.mark.parametrize("chunked", [0, 1])
async def test_large(fleet: Fleet, session: aiohttp.ClientSession, chunked: int) -> None:
    async with session.get(fleet.url(f"/large?bytes=200000&chunked={chunked}")) as resp:
        assert resp.status == 200
        if chunked:
            assert "Content-Length" not in resp.headers
            assert resp.headers["Transfer-Encoding"] == "chunked"
        else:
            assert resp.headers["Content-Length"] == "200000"
        raw = await resp.read()
    assert len(raw) == 200000
    assert set(json.loads(raw)["data"]) == {"x"}


async def test_bad_parameters_get_400(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    for path in ("/status/abc", "/status/99", "/delay?seconds=x", "/ratelimit?form=nope"):
        status, body = await get_json(session, fleet.url(path))
        assert status == 400, path
        assert "error" in body  # type: ignore[operator]
    status, _ = await get_json(session, fleet.url("/no-such-path"))
    assert status == 404


# -- misbehaving endpoints -----------------------------------------------------------------------


async def test_status_sequence(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    url = fleet.url("/status/503,500,200?key=seq")
    seen = [await get_json(session, url) for _ in range(4)]
    assert seen == [
        (503, {"status": 503, "n": 1}),
        (500, {"status": 500, "n": 2}),
        (200, {"status": 200, "n": 3}),
        (200, {"status": 200, "n": 4}),
    ]
    # Another key has its own counter, on any host.
    other = fleet.url("/status/503,500,200?key=other", host=2)
    assert await get_json(session, other) == (503, {"status": 503, "n": 1})


async def test_status_retry_after(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    url = fleet.url("/status/429,200?key=ra&retry_after=3")
    async with session.get(url) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "3"
    async with session.get(url) as resp:
        assert resp.status == 200
        assert "Retry-After" not in resp.headers


async def test_ratelimit_seconds(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    url = fleet.url("/ratelimit?key=s&times=2&after=1")
    for n in (1, 2):
        async with session.get(url) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json())["n"] == n
    assert await get_json(session, url) == (200, {"ok": True, "n": 3})


async def test_ratelimit_fractional_seconds_and_503(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    async with session.get(fleet.url("/ratelimit?key=f&after=0.25&status=503")) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "0.25"


async def test_ratelimit_http_date(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    before = time.time()
    async with session.get(fleet.url("/ratelimit?key=d&after=2&form=date")) as resp:
        assert resp.status == 429
        value = resp.headers["Retry-After"]
    assert value.endswith(" GMT")
    when = email.utils.parsedate_to_datetime(value).timestamp()
    assert before + 2 <= when <= time.time() + 3
    assert (await get_json(session, fleet.url("/ratelimit?key=d&after=2&form=date")))[0] == 200


async def test_ratelimit_malformed(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    async with session.get(fleet.url("/ratelimit?key=m&form=malformed")) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "soon-ish"


async def test_reset_mid_body(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    url = fleet.url("/reset?key=r&times=2", host=1)
    for _ in range(2):
        async with session.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Length"] == "1000"
            with pytest.raises(aiohttp.ClientPayloadError, match=r"(?i)reset"):
                await resp.read()
    assert await get_json(session, url) == (200, {"ok": True, "n": 3})
    await asyncio.sleep(0.05)
    assert fleet.stats.in_flight() == 0
    assert fleet.stats.requests(path="/reset", key="r") == 3


async def test_truncated_body(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    url = fleet.url("/truncated?key=t")
    async with session.get(url) as resp:
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) == 1000
        with pytest.raises(aiohttp.ClientPayloadError, match=r"(?i)content.length"):
            await resp.read()
    assert await get_json(session, url) == (200, {"ok": True, "n": 2})


async def test_slow_body_streams(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    host = "127.0.0.1"
    t0 = time.monotonic()
    async with session.get(fleet.url("/slow-body?chunks=4&delay=0.1")) as resp:
        assert resp.status == 200
        headers_after = time.monotonic() - t0
        assert fleet.stats.in_flight(host) == 1  # still sending the body
        body = await resp.json()
    total = time.monotonic() - t0
    assert body["chunks"] == 4
    assert headers_after < 0.1
    assert total >= 0.29
    await asyncio.sleep(0.02)
    assert fleet.stats.in_flight(host) == 0


# -- stats ---------------------------------------------------------------------------------------


async def test_max_in_flight(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    url = fleet.url("/delay?seconds=0.2", host=2)
    results = await asyncio.gather(*(get_json(session, url) for _ in range(5)))
    assert all(status == 200 for status, _ in results)
    host = "127.0.0.3"
    assert fleet.stats.max_in_flight(host) == 5
    assert fleet.stats.in_flight(host) == 0
    assert fleet.stats.max_in_flight("127.0.0.1") == 0
    # Sequential requests never overlap.
    fleet.reset()
    for _ in range(3):
        await get_json(session, fleet.url("/delay?seconds=0.01", host=1))
    assert fleet.stats.max_in_flight("127.0.0.2") == 1
    assert fleet.stats.requests(host="127.0.0.2") == 3


async def test_arrivals_and_counts(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    for i in range(5):
        await get_json(session, fleet.url(f"/item/{i}?key=k{i % 2}", host=1))
    await get_json(session, fleet.url("/json"))
    arrivals = fleet.stats.arrivals("127.0.0.2")
    assert len(arrivals) == 5
    assert arrivals == sorted(arrivals)
    assert t0 <= arrivals[0] <= arrivals[-1] <= time.monotonic()
    stats = fleet.stats
    assert stats.requests() == 6
    assert stats.requests(host="127.0.0.2") == 5
    assert stats.requests(path="/item/0") == 1
    assert stats.requests(path="/item/2", key="k0") == 1
    assert stats.requests(key="k1") == 2
    assert stats.requests(host="127.0.0.1", key="k0") == 0
    assert stats.paths()["/json"] == 1
    assert stats.arrivals("127.0.0.9") == []


async def test_stats_endpoint_and_reset(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    await get_json(session, fleet.url("/status/500,200?key=x", host=1))
    await get_json(session, fleet.url("/json", host=1))
    status, snap = await get_json(session, fleet.url("/__stats"))
    assert status == 200
    assert isinstance(snap, dict)
    assert snap["requests"] == 2  # /__stats itself is not counted
    assert snap["hosts"]["127.0.0.2"]["requests"] == 2
    assert snap["hosts"]["127.0.0.2"]["max_in_flight"] == 1
    assert snap["paths"] == {"/status/500,200": 1, "/json": 1}
    assert {"path": "/status/500,200", "key": "x", "requests": 1} in snap["keys"]

    async with session.post(fleet.url("/__reset")) as resp:
        assert resp.status == 200
    assert fleet.stats.requests() == 0
    assert fleet.stats.hosts() == []
    # Counters restart too: the key sees the first code again.
    assert (await get_json(session, fleet.url("/status/500,200?key=x")))[0] == 500


def test_stats_object_alone() -> None:
    stats = FleetStats(max_arrivals=3)
    for _ in range(5):
        stats.request_started("h", "/p", "k")
    assert stats.in_flight("h") == 5
    assert stats.max_in_flight("h") == 5
    assert len(stats.arrivals("h")) == 3
    for _ in range(5):
        stats.request_finished("h")
    stats.request_finished("h")  # extra finish does not go negative
    assert stats.in_flight() == 0
    assert stats.requests(host="h", path="/p", key="k") == 5
    stats.reset()
    assert stats.requests() == 0
    assert stats.max_in_flight() == 0


async def test_client_disconnect_cancels_handler(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.05):
            await get_json(session, fleet.url("/delay?seconds=5"))
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.1):
            await get_json(session, fleet.url("/slow-body?chunks=3&delay=5"))
    await asyncio.sleep(0.05)
    # The handlers were cancelled when the client went away.
    assert fleet.stats.in_flight() == 0
    assert fleet.stats.max_in_flight() == 1


# -- running from synchronous code ---------------------------------------------------------------


def test_running_in_thread() -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with Fleet(minute=MINUTE, hosts=3).running_in_thread() as fleet:
        assert fleet.running
        with opener.open(fleet.api_urls[5], timeout=5) as resp:
            assert json.loads(resp.read())["api"] == 5
        with opener.open(fleet.url("/item/7", host=2), timeout=5) as resp:
            assert json.loads(resp.read()) == {"id": 7}
        assert fleet.stats.requests(host="127.0.0.3") == 2  # api 5 lives on host 5 % 3
        url = fleet.url("/json")
    assert not fleet.running
    with pytest.raises(OSError, match=r"(?i)refused"):  # nobody listens any more
        opener.open(url, timeout=5)


def test_running_in_thread_reports_bind_errors() -> None:
    with Fleet(hosts=1).running_in_thread() as first:
        clash = Fleet(hosts=1, port=first.port)
        with pytest.raises(OSError, match=r"(?i)in use"), clash.running_in_thread():
            pass


def test_serve_runs_until_interrupted() -> None:
    code = "from fetchpipe.sim import serve; serve(2, 0, 0.01)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.startswith("fetchpipe sim: 2 hosts on port ")
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(base + "/json", timeout=5) as resp:
            assert json.loads(resp.read()) == {"id": 0, "ok": True}
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "Traceback" not in err


async def test_a_published_limit_per_token_counts_each_token_apart(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    """``per=token``: each Authorization value has its own window (2 each here, so the third
    of a token is refused), while the counts stay per key; without it the tokens share one."""
    key = f"per-token-{time.time_ns()}"
    statuses = {}
    for per in ("token", "key"):
        url = fleet.url(f"/limited/published/1?limit=2&window=3600&key={key}-{per}&per={per}")
        for token in ("a", "b"):
            for n in range(3):
                headers = {"Authorization": f"Bearer {token}"}
                async with session.get(url, headers=headers) as resp:
                    statuses[per, token, n] = resp.status
    assert [statuses["token", t, n] for t in "ab" for n in range(3)] == [200, 200, 429] * 2
    assert [statuses["key", t, n] for t in "ab" for n in range(3)] == [200, 200] + [429] * 4
    assert fleet.limited_counts(f"{key}-token") == {"accepted": 4, "rejected": 2}
    status, _ = await get_json(session, fleet.url("/limited/published/1?per=ip"))
    assert status == 400
