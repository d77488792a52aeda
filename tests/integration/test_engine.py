"""The engine's rules against real local servers (the simulated fleet), counted server-side."""

from __future__ import annotations

import asyncio
import gc
import socket
import statistics
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from fetchpipe import (
    ErrorKind,
    Fetcher,
    FetchpipeError,
    HostLimits,
    InputError,
    Limits,
    Request,
    Result,
    RetryEvent,
    RetryPolicy,
    Timeouts,
    fetch_all,
    set_testing,
)
from fetchpipe.engine.gc_tuning import RUN_GEN0
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, with_transport

HOST0, HOST1 = "127.0.0.1", "127.0.0.2"

pytestmark = both_transports


async def collect(requests: object, **options: object) -> list[Result]:
    async with Fetcher(**with_transport(options)) as fetcher:  # type: ignore[arg-type]
        return [r async for r in fetcher.stream(requests)]  # type: ignore[arg-type]


def one(results: list[Result]) -> Result:
    assert len(results) == 1
    return results[0]


# --- retries ------------------------------------------------------------------------------------


async def test_retries_until_success_and_counts_attempts(fleet: Fleet) -> None:
    result = one(await collect([fleet.url("/status/503,502,200?key=a")]))
    assert result.ok and result.status == 200 and result.attempts == 3
    assert result.body == {"status": 200, "n": 3}
    assert fleet.stats.requests(path="/status/503,502,200", key="a") == 3


async def test_gives_up_after_the_policy_attempts(fleet: Fleet) -> None:
    result = one(await collect([fleet.url("/status/500?key=b")], retry=RetryPolicy(attempts=3)))
    assert not result.ok and result.status == 500 and result.attempts == 3
    assert result.error is ErrorKind.HTTP_STATUS
    assert result.error_message == "HTTP 500 (after 3 attempts)"
    assert fleet.stats.requests(path="/status/500", key="b") == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(fleet: Fleet, status: int) -> None:
    result = one(await collect([fleet.url(f"/status/{status}?key=c")]))
    assert result.status == status and result.attempts == 1 and not result.ok
    assert fleet.stats.requests(path=f"/status/{status}", key="c") == 1


async def test_backoff_waits_are_jittered_and_bounded(fleet: Fleet) -> None:
    set_testing(False)
    events: list[RetryEvent] = []
    policy = RetryPolicy(attempts=3, wait_initial=0.02, wait_max=0.04)
    urls = [fleet.url(f"/status/503,503,200?key=j{i}") for i in range(12)]
    results = await collect(urls, retry=policy, on_retry=events.append, breaker=None)
    assert all(r.ok and r.attempts == 3 for r in results)
    assert len(events) == 24
    firsts = [e.wait for e in events if e.attempt == 1]
    seconds = [e.wait for e in events if e.attempt == 2]
    assert len(firsts) == len(seconds) == 12
    assert all(0 <= w <= 0.02 for w in firsts)
    assert all(0 <= w <= 0.04 for w in seconds)
    assert len(set(firsts)) == len(firsts)  # no two clients retry in lock-step
    assert statistics.pstdev(firsts + seconds) > 0.003


async def test_retry_after_seconds_is_honoured(fleet: Fleet) -> None:
    events: list[RetryEvent] = []
    url = fleet.url("/ratelimit?key=s&times=1&after=1&form=seconds")
    result = one(await collect([url], on_retry=events.append))
    assert result.ok and result.attempts == 2
    assert events[0].wait == 1.0 and events[0].pause_host and events[0].status == 429
    first, second = fleet.stats.arrivals(HOST0)
    assert second - first >= 0.99


async def test_retry_after_http_date_is_honoured(fleet: Fleet) -> None:
    events: list[RetryEvent] = []
    url = fleet.url("/ratelimit?key=d&times=1&after=2&form=date")
    result = one(await collect([url], on_retry=events.append))
    assert result.ok and result.attempts == 2
    assert 1.0 <= events[0].wait <= 3.0 and events[0].pause_host
    first, second = fleet.stats.arrivals(HOST0)
    assert second - first >= 0.99


async def test_retry_after_on_503_is_honoured(fleet: Fleet) -> None:
    events: list[RetryEvent] = []
    url = fleet.url("/ratelimit?key=e&times=1&after=1&status=503")
    result = one(await collect([url], on_retry=events.append))
    assert result.ok and events[0].status == 503 and events[0].wait == 1.0


async def test_malformed_retry_after_falls_back_to_backoff(fleet: Fleet) -> None:
    events: list[RetryEvent] = []
    url = fleet.url("/ratelimit?key=m&times=2&form=malformed")
    start = time.monotonic()
    result = one(await collect([url], on_retry=events.append))
    assert result.ok and result.attempts == 3
    assert [e.pause_host for e in events] == [False, False]
    assert time.monotonic() - start < 0.9  # backoff (zero in testing mode), not a pause


async def test_retry_after_beyond_the_cap_fails_at_once(fleet: Fleet) -> None:
    url = fleet.url("/ratelimit?key=cap&times=5&after=3600")
    result = one(await collect([url], retry=RetryPolicy(retry_after_max=60)))
    assert result.error is ErrorKind.RATE_LIMITED and result.attempts == 1
    assert result.error_message is not None
    assert result.error_message.startswith("rate limited until ")
    assert fleet.stats.requests(path="/ratelimit", key="cap") == 1


async def test_429_pauses_the_whole_host_but_not_others(fleet: Fleet) -> None:
    limits = Limits(per_host=HostLimits(max_concurrency=1))
    requests = [fleet.url("/ratelimit?key=p&times=1&after=1", host=0)]
    requests += [fleet.url(f"/item/{i}", host=0) for i in range(4)]
    requests += [fleet.url(f"/item/{i}", host=1) for i in range(4)]
    results = await collect(requests, limits=limits)
    assert [r.ok for r in results] == [True] * 9
    arrivals = fleet.stats.arrivals(HOST0)
    assert len(arrivals) == 6
    first = arrivals[0]
    # Nothing else went to host 0 during the second it asked for.
    assert all(t - first >= 0.99 for t in arrivals[1:])
    other = fleet.stats.arrivals(HOST1)
    assert len(other) == 4 and all(t - first < 0.5 for t in other)


async def test_post_is_not_retried_unless_asked(fleet: Fleet) -> None:
    no = Request(fleet.url("/echo?key=x"), method="POST", json={"a": 1})
    assert one(await collect([no])).body["method"] == "POST"
    url = fleet.url("/status/503,200?key=post")
    result = one(await collect([Request(url, method="POST")]))
    assert result.status == 503 and result.attempts == 1
    result = one(await collect([Request(url, method="POST", retry=True)]))
    assert result.ok and result.attempts == 1  # the server's sequence moved on: 200 now
    url2 = fleet.url("/status/503,200?key=post2")
    result = one(await collect([Request(url2, method="POST", retry=True)]))
    assert result.ok and result.attempts == 2


# --- broken connections and bodies --------------------------------------------------------------


async def test_reset_mid_body_is_retried(fleet: Fleet) -> None:
    events: list[RetryEvent] = []
    result = one(await collect([fleet.url("/reset?key=r&times=2")], on_retry=events.append))
    assert result.ok and result.attempts == 3
    assert {e.error for e in events} <= {ErrorKind.RESET, ErrorKind.TRUNCATED}
    assert fleet.stats.requests(path="/reset", key="r") == 3


async def test_truncated_body_is_retried(fleet: Fleet) -> None:
    events: list[RetryEvent] = []
    result = one(await collect([fleet.url("/truncated?key=t&times=1")], on_retry=events.append))
    assert result.ok and result.attempts == 2
    assert events[0].error is ErrorKind.TRUNCATED
    assert fleet.stats.requests(path="/truncated", key="t") == 2


async def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        result = one(await collect([f"http://127.0.0.1:{port}/x"], retry=RetryPolicy(attempts=2)))
    assert result.error is ErrorKind.CONNECT and result.attempts == 2 and result.status is None


async def test_read_timeout_is_retried(fleet: Fleet) -> None:
    url = fleet.url("/delay?seconds=1&key=slow")
    result = one(await collect([url], timeouts=Timeouts(read=0.1), retry=RetryPolicy(attempts=2)))
    assert result.error is ErrorKind.TIMEOUT and result.attempts == 2
    assert fleet.stats.requests(path="/delay", key="slow") == 2


async def test_body_cap_with_content_length(fleet: Fleet) -> None:
    limits = Limits(max_body_size=10_000)
    result = one(await collect([fleet.url("/large?bytes=50000&key=cl")], limits=limits))
    assert result.error is ErrorKind.BODY_TOO_LARGE and result.attempts == 1
    assert "max_body_size" in (result.error_message or "")


async def test_body_cap_while_reading_a_chunked_body(fleet: Fleet) -> None:
    limits = Limits(max_body_size=10_000)
    urls = [fleet.url("/large?bytes=200000&chunked=1&key=ch"), fleet.url("/large?bytes=5000")]
    results = {r.url: r for r in await collect(urls, limits=limits)}
    assert results[urls[0]].error is ErrorKind.BODY_TOO_LARGE
    assert results[urls[1]].ok


async def test_invalid_json_is_a_failed_result_not_a_crash(fleet: Fleet) -> None:
    urls = [fleet.url("/invalid-json"), fleet.url("/json")]
    results = {r.url: r for r in await collect(urls)}
    bad = results[urls[0]]
    assert bad.error is ErrorKind.INVALID_JSON and bad.status == 200 and bad.attempts == 1
    assert "not valid JSON" in (bad.error_message or "")
    assert results[urls[1]].ok


async def test_body_types(fleet: Fleet) -> None:
    urls = [fleet.url("/json"), fleet.url("/text"), fleet.url("/bytes")]
    results = {r.url: r for r in await collect(urls)}
    assert isinstance(results[urls[0]].body, dict)
    assert isinstance(results[urls[1]].body, str)
    assert isinstance(results[urls[2]].body, bytes)
    forced = one(await collect([Request(fleet.url("/json"), expect="bytes")]))
    assert isinstance(forced.body, bytes)


# --- deadline -----------------------------------------------------------------------------------


async def test_deadline_bounds_a_slow_attempt(fleet: Fleet) -> None:
    start = time.monotonic()
    result = one(
        await collect([fleet.url("/delay?seconds=3")], timeouts=Timeouts(total=10, deadline=0.3))
    )
    assert result.error is ErrorKind.DEADLINE
    assert time.monotonic() - start < 1.5


async def test_deadline_covers_waits_between_attempts(fleet: Fleet) -> None:
    url = fleet.url("/ratelimit?key=dl&times=3&after=2")
    start = time.monotonic()
    result = one(await collect([url], timeouts=Timeouts(deadline=1.0)))
    assert result.error is ErrorKind.DEADLINE and result.attempts == 1
    assert "deadline of 1 s" in (result.error_message or "")
    assert time.monotonic() - start < 0.9  # failed at once: waiting 2 s cannot fit in 1 s


# --- limits -------------------------------------------------------------------------------------


async def test_per_host_concurrency_is_never_exceeded(fleet: Fleet) -> None:
    limits = Limits(max_concurrency=50, per_host=HostLimits(max_concurrency=3))
    urls = [fleet.url("/delay?seconds=0.03", host=h) for h in (0, 1) for _ in range(30)]
    results = await collect(urls, limits=limits)
    assert [r.ok for r in results] == [True] * 60
    assert fleet.stats.max_in_flight(HOST0) == 3
    assert fleet.stats.max_in_flight(HOST1) == 3


async def test_global_concurrency_is_never_exceeded(fleet: Fleet) -> None:
    urls = [fleet.url("/delay?seconds=0.03", host=h % 3) for h in range(60)]
    await collect(urls, limits=Limits(max_concurrency=4))
    assert fleet.stats.max_in_flight() == 4


async def test_per_host_rate_is_within_five_percent(fleet: Fleet) -> None:
    limits = Limits(hosts={HOST0: HostLimits(max_per_second=20)})
    urls = [fleet.url(f"/item/{i}") for i in range(41)]
    results = await collect(urls, limits=limits)
    assert [r.ok for r in results] == [True] * 41
    arrivals = fleet.stats.arrivals(HOST0)
    assert len(arrivals) == 41
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert rate == pytest.approx(20, rel=0.05)


async def test_rate_burst_then_steady(fleet: Fleet) -> None:
    limits = Limits(hosts={"127.0.0.*": HostLimits(max_per_second=10, burst=5)})
    urls = [fleet.url(f"/item/{i}") for i in range(10)]
    await collect(urls, limits=limits)
    arrivals = fleet.stats.arrivals(HOST0)
    assert arrivals[4] - arrivals[0] < 0.05  # the burst goes at once
    assert arrivals[9] - arrivals[4] == pytest.approx(0.5, abs=0.06)  # then 10 per second


async def test_throttled_host_first_does_not_hold_back_a_fast_host(fleet: Fleet) -> None:
    limits = Limits(max_concurrency=4, hosts={HOST0: HostLimits(max_per_second=4)})
    slow = [fleet.url(f"/item/{i}", host=0) for i in range(8)]
    fast = [fleet.url(f"/item/{i}", host=1) for i in range(40)]
    start = time.monotonic()
    done: dict[str, list[float]] = {HOST0: [], HOST1: []}
    async with Fetcher(limits=limits) as fetcher:
        async for result in fetcher.stream(slow + fast):
            assert result.ok
            done[HOST0 if "127.0.0.1" in result.url else HOST1].append(time.monotonic() - start)
    assert max(done[HOST0]) > 1.5  # 8 requests at 4 per second
    assert max(done[HOST1]) < 0.75  # the fast host never waited behind them


# --- streaming ----------------------------------------------------------------------------------


async def test_input_is_pulled_lazily_with_bounded_buffer(fleet: Fleet) -> None:
    pulled = 0
    limits = Limits(max_concurrency=10, buffer_size=50)

    def urls() -> Iterator[str]:
        nonlocal pulled
        for i in range(3000):
            pulled += 1
            yield fleet.url(f"/item/{i}", host=i % 3)

    seen = 0
    most_ahead = 0
    async with Fetcher(limits=limits) as fetcher:
        async for result in fetcher.stream(urls()):
            assert result.ok
            seen += 1
            most_ahead = max(most_ahead, pulled - seen)
            if seen % 500 == 0:
                await asyncio.sleep(0.05)  # a slow consumer: the engine must wait for it
    assert seen == 3000
    # held in the engine (buffer + workers) plus the bounded results channel
    assert most_ahead <= 50 + 10 + 10 + 1


async def test_async_iterable_input_and_keys(fleet: Fleet) -> None:
    async def requests() -> AsyncIterator[Request]:
        for i in range(20):
            yield Request(fleet.url(f"/item/{i}"), key=i)

    results = await collect(requests())
    assert sorted(r.key for r in results) == list(range(20))  # type: ignore[type-var]
    assert all(r.body == {"id": int(r.key)} for r in results)  # type: ignore[arg-type]


async def test_one_result_per_request_whatever_fails(fleet: Fleet) -> None:
    requests: list[object] = [
        fleet.url("/json"),
        "ftp://nope/",
        "not a url",
        42,
        fleet.url("/status/404"),
        fleet.url("/invalid-json"),
        fleet.url("/json", host=2),
    ]
    results = await collect(requests)
    assert len(results) == len(requests)
    kinds = sorted(str(r.error) for r in results)
    assert kinds == sorted(
        [
            "None",
            "None",
            "invalid_request",
            "invalid_request",
            "invalid_request",
            "http_status",
            "invalid_json",
        ]
    )


async def test_input_error_is_raised_after_results_in_flight(fleet: Fleet) -> None:
    def urls() -> Iterator[str]:
        yield fleet.url("/item/1")
        yield fleet.url("/item/2")
        raise RuntimeError("broken input")

    seen: list[Result] = []
    with pytest.raises(InputError, match="broken input"):
        async with Fetcher() as fetcher:
            async for result in fetcher.stream(urls()):
                seen.append(result)
    assert len(seen) == 2 and all(r.ok for r in seen)


async def test_timings_are_ordered(fleet: Fleet) -> None:
    result = one(await collect([fleet.url("/delay?seconds=0.05")]))
    t = result.timings
    assert t.queued <= t.started < t.first_byte <= t.done
    assert result.elapsed >= 0.05


async def test_fetch_all_works_inside_a_running_loop(fleet_in_thread: Fleet) -> None:
    # As in a notebook cell: a plain call while this test's loop is running (the server runs
    # on a loop of its own, as a remote API would).
    asyncio.get_running_loop()
    results = fetch_all([fleet_in_thread.url(f"/item/{i}") for i in range(5)])
    assert sorted(r.body["id"] for r in results) == [0, 1, 2, 3, 4]


def test_fetch_all_from_plain_code(fleet_in_thread: Fleet) -> None:
    results = fetch_all([fleet_in_thread.url("/json"), fleet_in_thread.url("/status/404")])
    assert sorted(r.status or 0 for r in results) == [200, 404]


async def test_a_raising_hook_stops_the_run_with_an_error_instead_of_hanging(fleet: Fleet) -> None:
    def hook(event: RetryEvent) -> None:
        raise ValueError("hook bug")

    with pytest.raises(FetchpipeError, match="hook bug"):
        await asyncio.wait_for(collect([fleet.url("/status/503,200?key=h")], on_retry=hook), 10)


async def test_a_run_collects_garbage_less_often_and_puts_the_setting_back(fleet: Fleet) -> None:
    before = gc.get_threshold()
    assert 0 < before[0] < RUN_GEN0  # Python's default (700)
    urls = [fleet.url(f"/echo?key=gc{i}") for i in range(3)]
    for tune, during in ((True, RUN_GEN0), (False, before[0])):
        options = with_transport({"tune_gc": tune})
        async with Fetcher(**options) as fetcher:  # type: ignore[arg-type]
            seen = [(r.ok, gc.get_threshold()[0]) async for r in fetcher.stream(urls)]
        assert seen == [(True, during)] * 3
        assert gc.get_threshold() == before
