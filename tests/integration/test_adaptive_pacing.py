"""Pacing by what hosts answer, against the fleet's rate-limited endpoints on 127.0.0.1.

Small windows and rates keep each test to a few seconds; the figures of the issue (200
requests at 10 per 2 s, 600 at 20 per second) are `fetchpipe bench politeness`'s.
"""

from __future__ import annotations

import itertools

import pytest

from fetchpipe import AdaptivePolicy, ErrorKind, Fetcher, Limits, Result, RetryPolicy, Timeouts
from fetchpipe._config import HostLimits
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, current

pytestmark = [both_transports, pytest.mark.timeout(60)]

_keys = itertools.count()


def key() -> str:
    """A key of its own per test (and transport): the server's windows and counts are per key."""
    return f"k{next(_keys)}"


async def fetch(urls: list[str], **options: object) -> tuple[list[Result], Fetcher]:
    async with Fetcher(transport=current(), **options) as fetcher:  # type: ignore[arg-type]
        return [r async for r in fetcher.stream(urls)], fetcher


@pytest.mark.parametrize(
    "form",
    ["headers=both", "headers=ietf", "headers=legacy&reset=epoch", "headers=legacy&reset=delta"],
)
async def test_a_published_limit_is_never_exceeded(fleet: Fleet, form: str) -> None:
    """20 requests, 100 at once allowed, to a host publishing 5 per 1 s: no 429, whatever
    form the headers take; the first request reads the limit before the others go."""
    k = key()
    urls = [fleet.url(f"/limited/published/{i}?limit=5&window=1&key={k}&{form}") for i in range(20)]
    results, fetcher = await fetch(urls, limits=Limits(max_concurrency=100))
    assert all(r.ok for r in results)
    assert fleet.limited_counts(k) == {"accepted": 20, "rejected": 0}
    report = fetcher.rate_limits[fleet.addresses[0]]
    assert report.throttled == 0
    assert report.published == ("5 per window" if "legacy" in form else "5 per 1 s")
    # 20 requests at 5 per window take at least three resets, each a pause of the host.
    assert report.paused > 1.0
    starts = sorted(r.timings.started for r in results)
    assert starts[-1] - starts[0] > 2.0  # the first and the fourth window


async def test_without_adaptive_the_same_run_is_answered_429(fleet: Fleet) -> None:
    """The same host without pacing: the burst runs into the quota (what the pacing saves)."""
    k = key()
    urls = [fleet.url(f"/limited/published/{i}?limit=5&window=1&key={k}") for i in range(20)]
    results, fetcher = await fetch(urls, limits=Limits(max_concurrency=100), adaptive=None)
    assert fleet.limited_counts(k)["rejected"] >= 10
    assert fetcher.rate_limits == {}  # nothing kept without a pace
    assert len(results) == 20


async def test_a_silent_limit_is_learned(fleet: Fleet) -> None:
    """120 requests, 30 at once, to a host that silently allows 40 per second: after the
    burst that finds the limit, almost none is refused and everything lands."""
    k = key()
    urls = [fleet.url(f"/limited/silent/{i}?rate=40&key={k}") for i in range(120)]
    results, fetcher = await fetch(urls, limits=Limits(max_concurrency=30))
    assert all(r.ok for r in results), [r.error_message for r in results if not r.ok][:3]
    counts = fleet.limited_counts(k)
    assert counts["accepted"] == 120
    report = fetcher.rate_limits[fleet.addresses[0]]
    assert report.learned and report.published is None
    assert report.throttled == counts["rejected"]
    # The first burst drains the bucket of 40 before the first 429 is back: that burst is
    # refused (gather's fate for all of them), then hardly anything, at a rate near 40.
    assert counts["rejected"] < 60
    assert report.per_second is not None and 15 < report.per_second <= 60
    late = [r for r in results if r.timings.started - results[0].timings.queued > 1.5]
    assert sum(r.retries for r in late) <= 2  # past the first seconds, (almost) no 429


async def test_retries_of_a_throttled_host_are_not_left_behind_its_first_attempts(
    fleet: Fleet,
) -> None:
    """200 requests, 30 at once, to a host that silently allows 40 per second: the first
    burst's 429s are retried when their backoff is due, not after the host's whole queue of
    first attempts (which the first-request gate once put ahead of them: each retried request
    then took the run's whole length)."""
    k = key()
    urls = [fleet.url(f"/limited/silent/{i}?rate=40&key={k}") for i in range(200)]
    results, _ = await fetch(urls, limits=Limits(max_concurrency=30))
    assert all(r.ok for r in results)
    retried = [i for i, r in enumerate(results) if r.retries]
    assert len(retried) >= 5  # the first burst ran into the limit
    # In the order of the results: the retried ones among the first half, not at the end.
    assert sorted(retried)[len(retried) // 2] < len(results) // 2, retried


async def test_a_learned_rate_stays_under_the_configured_ceiling(fleet: Fleet) -> None:
    """adaptive=True on a host with max_per_second: the rate learned never exceeds it."""
    k = key()
    urls = [fleet.url(f"/limited/silent/{i}?rate=5&burst=5&key={k}") for i in range(25)]
    host = fleet.addresses[0]
    limits = Limits(
        max_concurrency=20,
        hosts={host: HostLimits(max_per_second=8, adaptive=True)},
    )
    results, fetcher = await fetch(urls, limits=limits)
    assert all(r.ok for r in results)
    report = fetcher.rate_limits[host]
    assert report.learned
    assert report.per_second is not None and report.per_second <= 8


async def test_a_host_with_a_configured_rate_learns_nothing_by_default(fleet: Fleet) -> None:
    """max_per_second without adaptive: the given rate holds, 429s or not (Retry-After and
    published limits are still read)."""
    k = key()
    urls = [fleet.url(f"/limited/silent/{i}?rate=5&burst=5&key={k}") for i in range(12)]
    host = fleet.addresses[0]
    limits = Limits(max_concurrency=20, hosts={host: HostLimits(max_per_second=10)})
    _, fetcher = await fetch(urls, limits=limits)
    report = fetcher.rate_limits[host]
    assert report.throttled > 0
    assert not report.learned and report.per_second is None


async def test_retry_after_on_another_status_pauses_the_host(fleet: Fleet) -> None:
    """A 403 with Retry-After (as secondary limits answer) is not retried, but the host's
    next request waits for it."""
    first = fleet.url(f"/ratelimit?key={key()}&status=403&after=1")
    second = fleet.url("/item/1")
    results, fetcher = await fetch([first, second], limits=Limits(max_concurrency=10))
    by_url = {r.url: r for r in results}
    assert by_url[first].status == 403 and by_url[second].ok
    assert by_url[second].timings.started - by_url[first].timings.done >= 0.9
    assert fetcher.rate_limits[fleet.addresses[0]].paused >= 0.9


async def test_a_hosts_first_request_goes_alone(fleet: Fleet) -> None:
    """The first request of a host is answered before the others go (its headers may
    publish a limit); afterwards they go together."""
    urls = [fleet.url(f"/delay?seconds=0.2&key={key()}") for _ in range(6)]
    results, _ = await fetch(urls, limits=Limits(max_concurrency=10))
    ordered = sorted(results, key=lambda r: r.timings.started)
    assert all(r.timings.started >= ordered[0].timings.done for r in ordered[1:])
    assert fleet.stats.max_in_flight(host=fleet.addresses[0]) == 5


# --- the first request alone: as short as it can be --------------------------------------------


def done_order(results: list[Result]) -> list[str]:
    """The URLs' paths by the time their request finished."""
    ordered = sorted(results, key=lambda r: r.timings.done)
    return [r.url.split("/", 3)[3] for r in ordered]


async def test_the_first_request_gate_ends_when_the_first_attempt_times_out(fleet: Fleet) -> None:
    """The first request times out (0.3 s) while the gate would hold the others for 5 s: they
    go as soon as it ends, not when ``first_wait`` passes."""
    slow = fleet.url("/delay?seconds=3")
    fast = [fleet.url(f"/item/{i}") for i in range(4)]
    results, _ = await fetch(
        [slow, *fast],
        adaptive=AdaptivePolicy(first_wait=5.0),
        timeouts=Timeouts(total=0.3),
        retry=RetryPolicy(attempts=1),
    )
    assert [r.error for r in results] == [ErrorKind.TIMEOUT] + [None] * 4
    first_end = results[0].timings.done
    assert all(r.timings.started >= first_end - 0.05 for r in results[1:])  # held until then
    assert max(r.timings.done for r in results) - first_end < 2.0  # not until first_wait


async def test_a_host_seen_by_the_fetcher_is_not_gated_again(fleet: Fleet) -> None:
    """A second stream() of the same Fetcher (the host's state made anew) sends a slow request
    and fast ones at once: the fast ones do not wait for the slow one's answer."""
    async with Fetcher(transport=current(), adaptive=AdaptivePolicy(first_wait=5.0)) as fetcher:
        first = [r async for r in fetcher.stream([fleet.url("/item/0")])]
        assert first[0].ok and fleet.addresses[0] in fetcher.hosts_seen
        urls = [fleet.url("/delay?seconds=1.5"), *(fleet.url(f"/item/{i}") for i in range(1, 4))]
        results = [r async for r in fetcher.stream(urls)]
    assert all(r.ok for r in results)
    assert done_order(results)[-1] == "delay?seconds=1.5"


async def test_a_new_fetcher_gates_the_host_and_few_in_flight_are_not_gated(
    fleet: Fleet,
) -> None:
    """The same requests on a new Fetcher wait for the slow first one (the gate); on a host
    allowed only two in flight, nothing waits (no burst worth holding back)."""
    urls = [fleet.url("/delay?seconds=1.0"), *(fleet.url(f"/item/{i}") for i in range(3))]
    gated, _ = await fetch(urls, adaptive=AdaptivePolicy(first_wait=5.0))
    assert done_order(gated)[0] == "delay?seconds=1.0"
    two = Limits(hosts={fleet.addresses[0]: HostLimits(max_concurrency=2)})
    ungated, _ = await fetch(urls, adaptive=AdaptivePolicy(first_wait=5.0), limits=two)
    assert done_order(ungated)[-1] == "delay?seconds=1.0"
