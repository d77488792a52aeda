"""The engine against every toxic of the misbehaving server: what users rely on, counted there.

Backoff waits are zero here (testing mode, see tests/conftest.py) unless a test switches it off;
Retry-After waits are real, so those tests assert lower bounds on the server's arrival times
and only generous upper bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from fetchpipe import (
    ErrorKind,
    Fetcher,
    HostLimits,
    Limits,
    Request,
    Result,
    RetryEvent,
    RetryPolicy,
    Timeouts,
    set_testing,
)
from fetchpipe.sim.toxics import (
    Bandwidth,
    Burst,
    Close,
    Hang,
    Latency,
    MixEntry,
    ResetPeer,
    RetryAfter,
    Slicer,
    Toxic,
    ToxicServer,
    Truncate,
    good_body,
    latency_delay,
    toxic_mix,
    toxic_path,
)
from tests.integration.transports import both_transports, on_fast, with_transport

HOST0 = "127.0.0.1"

pytestmark = both_transports


@pytest.fixture
async def server() -> AsyncIterator[ToxicServer]:
    """Five misbehaving hosts (127.0.0.1-5); a hang lasts at most 5 s."""
    async with ToxicServer(hosts=5, max_hang=5.0) as running:
        yield running


async def collect(requests: object, **options: object) -> list[Result]:
    async with Fetcher(**with_transport(options)) as fetcher:  # type: ignore[arg-type]
        return [r async for r in fetcher.stream(requests)]  # type: ignore[arg-type]


async def fetch_one(
    server: ToxicServer, *toxics: Toxic, key: str, size: int | None = None, **options: object
) -> Result:
    """One request through ``toxics`` (selected by URL); the body as bytes."""
    request = Request(server.url(toxic_path(*toxics, key=key, size=size)), expect="bytes")
    results = await collect([request], **options)
    assert len(results) == 1
    return results[0]


def path_of(*toxics: Toxic) -> str:
    return toxic_path(*toxics).split("?")[0]


async def settled(server: ToxicServer) -> bool:
    """Whether the server ends up with no request in flight and no connection open (≤ 3 s)."""
    for _ in range(300):
        if server.stats.in_flight() == 0 and server.open_connections == 0:
            return True
        await asyncio.sleep(0.01)
    return False


# --- slow but sound: latency, bandwidth, 1-byte slices ------------------------------------------


async def test_latency_within_the_timeout_lands(server: ToxicServer) -> None:
    toxic = Latency(latency=0.2, jitter=0.05)
    result = await fetch_one(server, toxic, key="lat", timeouts=Timeouts(read=3))
    assert result.ok and result.attempts == 1 and result.body == good_body("lat")
    assert result.elapsed >= latency_delay(toxic, "lat", 1) - 0.01
    assert server.count(path_of(toxic), "lat") == 1


async def test_a_bandwidth_limited_large_body_arrives_whole(server: ToxicServer) -> None:
    toxic = Bandwidth(rate=1_000_000)
    result = await fetch_one(server, toxic, key="bw", size=300_000)
    assert result.ok and result.attempts == 1
    assert result.body == good_body("bw", 300_000)
    assert result.elapsed >= 0.25  # 300 kB at 1 MB/s, the first twentieth sent at once


async def test_one_byte_slices_keep_head_and_body_intact(server: ToxicServer) -> None:
    toxic = Slicer(slice_size=1, slice_delay=0.001)
    result = await fetch_one(server, toxic, key="sl", size=400)
    assert result.ok and result.status == 200 and result.attempts == 1
    assert result.headers["Content-Type"] == "application/json"
    assert result.body == good_body("sl", 400)
    assert result.elapsed >= 0.4  # well over 400 separate writes, a millisecond apart


# --- hangs, closes, resets, truncation -----------------------------------------------------------


@pytest.mark.parametrize("stage", ["before_headers", "after_headers"])
async def test_a_hang_past_the_read_timeout_times_out_each_attempt(
    server: ToxicServer, stage: str
) -> None:
    events: list[RetryEvent] = []
    toxic = Hang(hang=5, stage=stage)  # type: ignore[arg-type]
    start = time.monotonic()
    result = await fetch_one(
        server,
        toxic,
        key=stage,
        timeouts=Timeouts(read=0.2),
        retry=RetryPolicy(attempts=3),
        on_retry=events.append,
    )
    assert result.error is ErrorKind.TIMEOUT and result.attempts == 3 and result.status is None
    assert [e.error for e in events] == [ErrorKind.TIMEOUT, ErrorKind.TIMEOUT]
    assert server.count(path_of(toxic), stage) == 3
    assert 0.55 <= time.monotonic() - start < 4.5  # three read timeouts, never the 5 s hang
    assert await settled(server)  # the client closed each hung connection


async def test_a_hang_once_then_lands(server: ToxicServer) -> None:
    toxic = Hang(hang=5, times=1)
    result = await fetch_one(server, toxic, key="h1", timeouts=Timeouts(read=0.2))
    assert result.ok and result.attempts == 2 and result.body == good_body("h1")
    assert server.count(path_of(toxic), "h1") == 2


async def test_a_close_without_response_is_a_reset_and_is_retried(server: ToxicServer) -> None:
    if on_fast():
        pytest.skip("hyper (the fast transport) does not resend after a close without response")
    events: list[RetryEvent] = []
    # aiohttp itself retries a GET once when the connection closes before any response
    # (see the test below), so two closes make one failed attempt in the engine.
    result = await fetch_one(server, Close(times=2), key="c2", on_retry=events.append)
    assert result.ok and result.attempts == 2 and result.body == good_body("c2")
    assert [e.error for e in events] == [ErrorKind.RESET]
    always = await fetch_one(server, Close(), key="c", retry=RetryPolicy(attempts=2))
    assert always.error is ErrorKind.RESET and always.attempts == 2


async def test_a_close_without_any_response_is_sent_again_once_by_the_transport(
    server: ToxicServer,
) -> None:
    """aiohttp sends an idempotent request once more, on a new connection, when the server
    closes the connection without answering (RFC 9112 9.3.1): that is what a stale keep-alive
    connection looks like. The resend is not an engine attempt: no retry budget, no backoff.
    A second close in a row is a RESET attempt."""
    if on_fast():
        pytest.skip("hyper (the fast transport) does not resend after a close without response")
    once = await fetch_one(server, Close(times=1), key="x1", retry=RetryPolicy(attempts=1))
    assert once.ok and once.attempts == 1
    assert server.count(path_of(Close()), "x1") == 2
    twice = await fetch_one(server, Close(times=2), key="x2", retry=RetryPolicy(attempts=1))
    assert twice.error is ErrorKind.RESET and twice.attempts == 1
    assert server.count(path_of(Close()), "x2") == 2


async def test_a_reset_mid_body_is_retried_to_success(server: ToxicServer) -> None:
    events: list[RetryEvent] = []
    toxic = ResetPeer(reset_after=10, times=1)
    result = await fetch_one(server, toxic, key="r1", size=500, on_retry=events.append)
    assert result.ok and result.attempts == 2 and result.body == good_body("r1", 500)
    assert [e.error for e in events] == [ErrorKind.RESET]
    assert server.count(path_of(toxic), "r1") == 2


async def test_a_reset_every_time_fails_as_reset(server: ToxicServer) -> None:
    result = await fetch_one(server, ResetPeer(), key="r", retry=RetryPolicy(attempts=3))
    assert result.error is ErrorKind.RESET and result.attempts == 3
    assert server.count(path_of(ResetPeer()), "r") == 3


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_truncated_body_fails_as_truncated(server: ToxicServer, chunked: bool) -> None:
    toxic = Truncate(truncate_after=20, chunked=chunked)
    key = f"t{chunked}"
    result = await fetch_one(server, toxic, key=key, size=200, retry=RetryPolicy(attempts=3))
    assert result.error is ErrorKind.TRUNCATED and result.attempts == 3 and result.body is None
    assert server.count(path_of(toxic), key) == 3


async def test_a_truncated_body_once_is_retried_to_success(server: ToxicServer) -> None:
    toxic = Truncate(times=1)
    result = await fetch_one(server, toxic, key="t1", size=200)
    assert result.ok and result.attempts == 2 and result.body == good_body("t1", 200)


# --- 5xx bursts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("burst", [1, 2, 3])
async def test_a_5xx_burst_lands_after_as_many_retries(server: ToxicServer, burst: int) -> None:
    events: list[RetryEvent] = []
    toxic = Burst(times=burst)
    result = await fetch_one(server, toxic, key=f"b{burst}", on_retry=events.append)
    assert result.ok and result.attempts == burst + 1
    assert [e.status for e in events] == [500, 502, 503][:burst]
    assert server.count(path_of(toxic), f"b{burst}") == burst + 1


async def test_a_5xx_burst_longer_than_the_attempts_fails_with_the_last_status(
    server: ToxicServer,
) -> None:
    result = await fetch_one(server, Burst(times=4), key="b4")  # 4 attempts by default
    assert result.error is ErrorKind.HTTP_STATUS and result.status == 504
    assert result.attempts == 4


# --- 429 (and 503) with Retry-After in every form -------------------------------------------------


async def retry_after_run(
    server: ToxicServer, toxic: RetryAfter, key: str, **options: object
) -> tuple[Result, list[RetryEvent], list[float]]:
    """One request through ``toxic``; its retry events and the server's arrival times."""
    events: list[RetryEvent] = []
    result = await fetch_one(server, toxic, key=key, on_retry=events.append, **options)
    return result, events, server.stats.arrivals(HOST0)


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_delta_seconds_is_honoured(server: ToxicServer, status: int) -> None:
    toxic = RetryAfter(form="seconds", delay=1, status=status, times=1)
    result, events, arrivals = await retry_after_run(server, toxic, f"s{status}")
    assert result.ok and result.attempts == 2
    assert [(e.status, e.wait, e.pause_host) for e in events] == [(status, 1.0, True)]
    first, second = arrivals
    assert second - first >= 0.99


@pytest.mark.parametrize("form", ["date", "date_rfc850", "date_asctime"])
async def test_retry_after_http_date_in_the_future_is_honoured(
    server: ToxicServer, form: str
) -> None:
    toxic = RetryAfter(form=form, delay=1, times=1)  # type: ignore[arg-type]
    result, events, arrivals = await retry_after_run(server, toxic, form)
    assert result.ok and result.attempts == 2
    [event] = events
    assert event.pause_host and 0.9 <= event.wait <= 2.1  # whole seconds, rounded up
    first, second = arrivals
    assert second - first >= 0.9


@pytest.mark.parametrize("form", ["past_date", "zero"])
async def test_retry_after_in_the_past_or_zero_retries_at_once(
    server: ToxicServer, form: str
) -> None:
    toxic = RetryAfter(form=form, times=1)  # type: ignore[arg-type]
    start = time.monotonic()
    result, events, _ = await retry_after_run(server, toxic, form)
    assert result.ok and result.attempts == 2
    assert [(e.wait, e.pause_host) for e in events] == [(0.0, True)]
    assert time.monotonic() - start < 1.0  # generous: no wait was asked for


@pytest.mark.parametrize(
    "toxic",
    [
        RetryAfter(form="garbage", times=1),
        RetryAfter(form="absent", times=1),
        RetryAfter(form="raw", value="1.5", times=1),
        RetryAfter(form="raw", value="-5", times=1),
        RetryAfter(form="raw", value="Mon, 32 Jan 2099 00:00:00 GMT", times=1),
        RetryAfter(form="raw", value="", times=1),
    ],
    ids=["garbage", "absent", "fraction", "negative", "bad-date", "empty"],
)
async def test_retry_after_garbage_or_absent_falls_back_to_backoff(
    server: ToxicServer, toxic: RetryAfter
) -> None:
    set_testing(False)  # real backoff, kept tiny by the policy
    policy = RetryPolicy(wait_initial=0.05, wait_max=0.05)
    result, events, _ = await retry_after_run(server, toxic, "g", retry=policy)
    assert result.ok and result.attempts == 2
    [event] = events
    assert not event.pause_host and 0.0 <= event.wait <= 0.05


async def test_retry_after_above_the_cap_fails_at_once_and_leaves_the_host_open(
    server: ToxicServer,
) -> None:
    toxic = RetryAfter(form="huge", times=5)
    requests = [server.url(toxic_path(toxic, key="huge")), server.url("/next?key=n")]
    start = time.monotonic()
    results = await collect(
        requests,
        retry=RetryPolicy(retry_after_max=60),
        limits=Limits(per_host=HostLimits(max_concurrency=1)),
    )
    by_path = {r.url.split("/")[3].split("?")[0]: r for r in results}
    huge, after = by_path["toxic"], by_path["next"]
    assert huge.error is ErrorKind.RATE_LIMITED and huge.attempts == 1 and huge.status == 429
    assert (huge.error_message or "").startswith("rate limited until ")
    assert after.ok and after.attempts == 1
    assert server.count(path_of(toxic), "huge") == 1
    assert time.monotonic() - start < 2.0  # generous: neither waited


@pytest.mark.parametrize(
    "value",
    ["99999999999999999999", "9" * 400, "²"],
    ids=["past-time_t", "past-float", "superscript-digit"],
)
async def test_any_retry_after_value_gives_a_result_not_a_crash(
    server: ToxicServer, value: str
) -> None:
    toxic = RetryAfter(form="raw", value=value, times=1)
    requests = [server.url(toxic_path(toxic, key="v")), server.url("/other?key=o", host=1)]
    results = await collect(requests)
    assert len(results) == 2
    assert all(r.ok or r.error is ErrorKind.RATE_LIMITED for r in results)


# --- the server itself: selection, control paths, shutdown ---------------------------------------


async def test_programmatic_toxics_apply_by_key_on_any_path(server: ToxicServer) -> None:
    server.set_toxics(Burst(times=1), key="p")
    server.set_toxics(Latency(latency=0.3))  # every key without toxics of its own
    start = time.monotonic()
    results = await collect(
        [Request(server.url("/a?key=p"), key="p"), Request(server.url("/b?key=q"), key="q")]
    )
    by_key = {r.key: r for r in results}
    assert by_key["p"].ok and by_key["p"].attempts == 2 and by_key["p"].elapsed < 0.3
    assert by_key["q"].ok and by_key["q"].attempts == 1 and by_key["q"].elapsed >= 0.29
    assert time.monotonic() - start < 3.0
    server.clear_toxics()
    [plain] = await collect([server.url("/a?key=p")])
    assert plain.ok and plain.attempts == 1 and plain.body == {"ok": True, "key": "p"}
    assert (server.count("/a", "p"), server.count("/b", "q")) == (3, 1)


async def test_a_bad_toxic_url_is_a_400_that_says_why(server: ToxicServer) -> None:
    [result] = await collect([server.url("/toxic/slicer?slice_sise=1")])
    assert result.status == 400 and result.attempts == 1
    assert "unknown parameter(s) for slicer: slice_sise" in result.body["error"]


async def test_control_paths_read_and_clear_the_counters_without_being_counted(
    server: ToxicServer,
) -> None:
    await collect([server.url("/x?key=1"), server.url("/x?key=2", host=1)])
    async with Fetcher() as fetcher:
        [stats] = [r async for r in fetcher.stream([server.url("/__stats")])]
        assert stats.body["requests"] == 2 and set(stats.body["hosts"]) == {HOST0, "127.0.0.2"}
        reset = Request(server.url("/__reset"), method="POST")
        [cleared] = [r async for r in fetcher.stream([reset])]
    assert cleared.ok and server.stats.requests() == 0 and server.count("/x", "1") == 0


async def test_stopping_the_server_ends_a_hang_at_once() -> None:
    async with ToxicServer(max_hang=30.0) as running:  # closing twice is harmless
        url = running.url(toxic_path(Hang(hang=30, stage="before_headers"), key="stop"))
        fetch = asyncio.ensure_future(collect([url], retry=RetryPolicy(attempts=1)))
        for _ in range(200):  # until the request hangs on the server (at most 2 s)
            if running.stats.in_flight():
                break
            await asyncio.sleep(0.01)
        assert running.stats.in_flight() == 1
        start = time.monotonic()
        await running.close()
        [result] = await asyncio.wait_for(fetch, 5)
        assert time.monotonic() - start < 2.0
    # RESET, or CONNECT when aiohttp's own resend (see above) finds the port closed
    assert result.error in (ErrorKind.RESET, ErrorKind.CONNECT)
    assert running.open_connections == 0 and running.stats.in_flight() == 0


# --- everything at once: nothing lost, nothing leaked ---------------------------------------------

READ_TIMEOUT = 0.5
PER_HOST = 4
MIX = toxic_mix(hang=2.0, delay=1.0)


def mixed_plan(server: ToxicServer, count: int) -> list[tuple[MixEntry | None, Request]]:
    """``count`` requests over every host; 3 in each 10 go through the next entry of ``MIX``."""
    plan: list[tuple[MixEntry | None, Request]] = []
    faults = 0
    for i in range(count):
        host = i % server.hosts
        entry = None
        if (i // server.hosts) % 10 in (0, 3, 6):  # 3 in each 10 on every host
            entry = MIX[faults % len(MIX)]
            faults += 1
        path = f"/item?key=m{i}" if entry is None else entry.path(f"m{i}")
        plan.append((entry, Request(server.url(path, host), key=i, expect="bytes")))
    return plan


async def test_every_toxic_at_once_loses_nothing_and_leaks_nothing(server: ToxicServer) -> None:
    plan = mixed_plan(server, 300)
    kinds = Counter(entry.label if entry else "good" for entry, _ in plan)
    assert kinds["good"] == 210 and len(kinds) == len(MIX) + 1
    async with Fetcher(
        limits=Limits(max_concurrency=20, per_host=HostLimits(max_concurrency=PER_HOST)),
        timeouts=Timeouts(read=READ_TIMEOUT),
    ) as fetcher:
        results = [r async for r in fetcher.stream(request for _, request in plan)]
    assert await settled(server)  # every connection closed, nothing in flight

    assert len(results) == len(plan)
    assert sorted(r.key for r in results if isinstance(r.key, int)) == list(range(len(plan)))
    unlandable = [entry for entry, _ in plan if entry is not None and not entry.landable]
    failed = [(plan[r.key][0], r.error) for r in results if not r.ok]  # type: ignore[index]
    assert len(failed) == len(unlandable) == 4  # 90 faults, 20 kinds in turn
    assert all(e is not None and not e.landable and k is ErrorKind.RATE_LIMITED for e, k in failed)
    for result in results:
        entry, request = plan[result.key]  # type: ignore[index]
        if entry is not None and not entry.landable:
            continue
        label = entry.label if entry else "good"
        assert result.ok, (label, result.error, result.error_message)
        assert result.body is not None and result.body.startswith(b'{"ok":true,"key":"m')
        path = "/" + request.url.split("/", 3)[3].split("?")[0]
        received = server.count(path, f"m{result.key}")
        # aiohttp's own retry after a close adds requests the engine does not see (see above)
        assert received == result.attempts or (label == "close" and received > result.attempts)
    for address in server.addresses:
        assert 1 < server.stats.max_in_flight(address) <= PER_HOST, address
    assert server.stats.requests() >= sum(r.attempts for r in results)
