"""Limits and per-host meters as pure values."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe import ConfigError, HostLimits, Limits, Timeouts
from fetchpipe.engine.limits import LATENESS_CREDIT, TIMER_SLACK, HostOf, HostState, host_of


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://Example.COM/a", "example.com"),
        ("https://user:pw@api.example.com:8443/x?y#z", "api.example.com"),
        ("http://127.0.0.7:8080", "127.0.0.7"),
        ("http://[::1]:8080/p", "[::1]"),
        ("https://h?q=http://other/", "h"),
        ("ftp://example.com/", None),
        ("example.com/a", None),
        ("http:///nohost", None),
        ("", None),
    ],
)
def test_host_of(url: str, host: str | None) -> None:
    assert host_of(url) == host


def test_the_remembering_host_of_agrees_with_host_of_in_any_order() -> None:
    urls = [
        "http://a.test/x",
        "http://a.test/y?z",
        "http://a.test.evil/x",
        "http://user@a.test/x",
        "http://a.test:81/x",
        "https://h?q=http://other/",
        "https://h?q=http://other/again",
        "https://h/x",
        "http://A.test/x",
        "ftp://a.test/x",
        "http:///nohost/x",
        "http://a.test",
        "http://a.test/x",
    ]
    lookup = HostOf()
    for url in urls + urls[::-1] + urls:
        assert lookup(url) == host_of(url), url


def test_host_patterns_exact_beats_pattern_and_longer_pattern_wins() -> None:
    a, b, c, d = (HostLimits(max_concurrency=n) for n in (1, 2, 3, 4))
    limits = Limits(
        per_host=d, hosts={"*.example.com": a, "*.eu.example.com": b, "API.example.com": c}
    )
    assert limits.for_host("x.example.com") is a
    assert limits.for_host("x.eu.example.com") is b
    assert limits.for_host("api.example.com") is c
    assert limits.for_host("example.org") is d
    assert limits.for_host("example.com") is d  # "*.x" needs a label before the dot


@pytest.mark.parametrize(
    "make",
    [
        lambda: HostLimits(max_concurrency=0),
        lambda: HostLimits(max_per_second=0),
        lambda: HostLimits(max_per_second=float("inf")),
        lambda: HostLimits(burst=0),
        lambda: Limits(max_concurrency=0),
        lambda: Limits(max_body_size=0),
        lambda: Limits(hosts={"http://x.com": HostLimits()}),
        lambda: Timeouts(total=0),
        lambda: Timeouts(deadline=-1),
    ],
)
def test_bad_limits_raise_config_error(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_gcra_allows_burst_then_spaces_at_the_rate() -> None:
    host: HostState[int] = HostState("h", HostLimits(max_per_second=10, burst=3))
    now = 100.0
    starts = []
    for _ in range(6):
        now = max(now, host.start_at())
        starts.append(round(now, 6))
        host.note_start(now)
    assert starts == [100.0, 100.0, 100.0, 100.1, 100.2, 100.3]


def test_gcra_refills_after_idle() -> None:
    host: HostState[int] = HostState("h", HostLimits(max_per_second=2, burst=2))
    host.note_start(0.0)
    host.note_start(0.0)
    assert host.start_at() == pytest.approx(0.5)
    assert host.start_at() <= 10.0  # long idle: a full burst is back
    host.note_start(10.0)
    host.note_start(10.0)
    assert host.start_at() == pytest.approx(10.5)


def test_pause_and_concurrency_and_forgettable() -> None:
    host: HostState[int] = HostState("h", HostLimits(max_concurrency=2))
    host.pause(50.0)
    assert host.start_at() == 50.0
    host.pause(40.0)  # a shorter pause never shortens a longer one
    assert host.start_at() == 50.0
    assert not host.forgettable(45.0)
    host.note_start(60.0)
    host.note_start(60.0)
    assert host.saturated
    host.active = 0
    assert host.forgettable(60.0)


def test_gcra_keeps_its_schedule_when_a_start_is_a_little_late() -> None:
    host: HostState[int] = HostState("h", HostLimits(max_per_second=10))
    host.note_start(0.0)
    host.note_start(0.104)  # 4 ms late: the next slot stays at 0.2, the rate holds
    assert host.start_at() == pytest.approx(0.2)
    host.note_start(0.5)  # 300 ms late: that is idleness, not lateness; start afresh
    assert host.start_at() == pytest.approx(0.6)


def test_request_of_is_request_with_defaults() -> None:
    from fetchpipe import Request

    fast = Request.of("http://h/x")
    assert fast == Request("http://h/x")
    assert fast.method == "GET" and fast.expect == "auto" and fast.retryable_method
    assert hash(fast) == hash(Request("http://h/x"))
    with pytest.raises(AttributeError):
        fast.url = "http://other/"  # type: ignore[misc]


# --- properties of the rate (GCRA) --------------------------------------------------------------

_RATES = st.floats(min_value=0.5, max_value=1000.0)
_BURSTS = st.integers(min_value=1, max_value=20)


def _starts(
    limits: HostLimits, asks: list[float], early: list[float], late: list[float]
) -> list[float]:
    """When requests asked for at ``asks`` start on one host: each as soon as the meter allows,
    by a timer that fires up to ``early[i]`` early (the scheduler's TIMER_SLACK) and then runs
    ``late[i]`` late; the clock never goes back."""
    host: HostState[int] = HostState("h", limits)
    now = 0.0
    starts = []
    for ask, e, lateness in zip(asks, early, late, strict=True):
        now = max(now, ask, host.start_at() - e) + lateness
        host.note_start(now)
        starts.append(now)
    return starts


@st.composite
def _schedules(draw: st.DrawFn) -> tuple[HostLimits, list[float], list[float], list[float]]:
    """A host's limits and a run's requests: asked for in bursts and lulls, started by timers
    that fire up to TIMER_SLACK early, or on time, a little late or very late."""
    rate = draw(_RATES)
    limits = HostLimits(max_per_second=rate, burst=draw(_BURSTS))
    interval = 1 / rate
    n = draw(st.integers(min_value=1, max_value=40))
    gaps = draw(st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n))
    asks = list(itertools.accumulate(g * interval for g in gaps))
    early = draw(st.lists(st.floats(0.0, TIMER_SLACK), min_size=n, max_size=n))
    late = draw(
        st.lists(
            st.one_of(st.just(0.0), st.floats(0.0, 2 * LATENESS_CREDIT), st.floats(0.0, 1.0)),
            min_size=n,
            max_size=n,
        )
    )
    return limits, asks, early, late


@settings(max_examples=150, deadline=None)
@given(schedule=_schedules())
def test_no_window_holds_more_starts_than_the_burst_and_the_rate_allow(
    schedule: tuple[HostLimits, list[float], list[float], list[float]],
) -> None:
    """In any window of T seconds at most burst + rate * T requests start, T stretched by the
    timer slack and the lateness credit (a start may come that much before its slot)."""
    limits, asks, early, late = schedule
    starts = _starts(limits, asks, early, late)
    rate, burst = limits.max_per_second, limits.burst
    assert rate is not None
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            window = starts[j] - first + TIMER_SLACK + LATENESS_CREDIT
            assert j - i + 1 <= burst + rate * window + 1e-6, (i, j, starts)


@settings(max_examples=200, deadline=None)
@given(rate=_RATES, burst=_BURSTS, n=st.integers(min_value=1, max_value=200))
def test_requests_asked_for_at_once_start_as_a_burst_then_one_per_interval(
    rate: float, burst: int, n: int
) -> None:
    starts = _starts(HostLimits(max_per_second=rate, burst=burst), [0.0] * n, [0.0] * n, [0.0] * n)
    expected = [max(0, k - burst + 1) / rate for k in range(n)]
    assert starts == pytest.approx(expected, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(rate=_RATES, lateness=st.lists(st.floats(0.0, 0.9), min_size=1, max_size=200))
def test_starts_a_little_late_keep_the_schedule_so_the_rate_does_not_sag(
    rate: float, lateness: list[float]
) -> None:
    """Each start late by at most 90% of LATENESS_CREDIT and of the interval (clear of the
    float rounding at the credit's edge): start k still comes at k intervals plus its own
    lateness, not plus every lateness before it."""
    interval = 1 / rate
    late = [f * min(LATENESS_CREDIT, interval) for f in lateness]
    n = len(late)
    starts = _starts(HostLimits(max_per_second=rate), [0.0] * n, [0.0] * n, late)
    assert starts == pytest.approx([k * interval + late[k] for k in range(n)], abs=1e-9)
