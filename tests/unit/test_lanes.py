"""The lanes of a host's credentials without a network: the picker, the names, a lane applied
to a request, and the scheduler handing out lanes within each one's limits."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe import HostLimits, Lane, Limits, Request
from fetchpipe._models import without_query_params
from fetchpipe.engine.lanes import group_name, lane_name, pick_lane
from fetchpipe.engine.scheduler import Scheduler

NOW = 100.0


@dataclass
class FakeLane:
    active: int = 0
    saturated: bool = False
    spent: bool = False
    at: float = 0.0

    def start_at(self) -> float:
        return self.at


def test_the_least_busy_lane_that_may_start_goes_first() -> None:
    lanes = [FakeLane(active=2), FakeLane(active=1), FakeLane(active=1, at=NOW + 5)]
    assert pick_lane(lanes, NOW) == (1, NOW)


def test_equal_lanes_take_turns() -> None:
    lanes = [FakeLane(), FakeLane(), FakeLane()]
    assert [pick_lane(lanes, NOW, turn=t)[0] for t in range(4)] == [0, 1, 2, 0]


def test_no_lane_may_start_says_when_one_may() -> None:
    lanes = [FakeLane(at=NOW + 3), FakeLane(saturated=True), FakeLane(at=NOW + 1)]
    assert pick_lane(lanes, NOW) == (None, NOW + 1)
    assert pick_lane([FakeLane(saturated=True)] * 2, NOW) == (None, math.inf)


def test_a_spent_lane_is_passed_over_unless_all_are() -> None:
    assert pick_lane([FakeLane(spent=True), FakeLane(active=3)], NOW) == (1, NOW)
    assert pick_lane([FakeLane(spent=True), FakeLane(spent=True, active=1)], NOW) == (0, NOW)


lane_strategy = st.builds(
    FakeLane,
    active=st.integers(0, 5),
    saturated=st.booleans(),
    spent=st.booleans(),
    at=st.sampled_from([0.0, NOW - 1, NOW, NOW + 0.0005, NOW + 1, NOW + 60]),
)


@given(st.lists(lane_strategy, min_size=1, max_size=6), st.integers(0, 10))
def test_never_a_resting_lane_while_another_may_start(lanes: list[FakeLane], turn: int) -> None:
    slack = 0.001
    every_spent = all(lane.spent for lane in lanes)

    def may_start(lane: FakeLane) -> bool:
        return not lane.saturated and lane.at <= NOW + slack and (not lane.spent or every_spent)

    index, when = pick_lane(lanes, NOW, slack=slack, turn=turn)
    startable = [lane for lane in lanes if may_start(lane)]
    if startable:
        assert index is not None and may_start(lanes[index])
        assert when == NOW
        assert lanes[index].active == min(lane.active for lane in startable)
    else:
        assert index is None
        free = [
            lane.at
            for lane in lanes
            if not lane.saturated and (not lane.spent or every_spent) and lane.at > NOW + slack
        ]
        assert when == (min(free) if free else math.inf)


@given(
    labels=st.integers(1, 4),
    concurrency=st.integers(1, 4),
    burst=st.integers(1, 3),
    waiting=st.integers(0, 30),
)
@settings(max_examples=60, deadline=None)
def test_the_scheduler_keeps_each_lane_within_its_own_limits(
    labels: int, concurrency: int, burst: int, waiting: int
) -> None:
    """At one instant, with no attempt ending: each lane starts at most its concurrency and
    its burst, the requests are spread over every lane that may take one, and none is left
    waiting while a lane could start it."""

    async def run() -> dict[str, int]:
        host = HostLimits(max_concurrency=concurrency, max_per_second=1.0, burst=burst)
        scheduler: Scheduler[int] = Scheduler(Limits(hosts={"api.test": host}))
        names = tuple(f"tokens[{i}]" for i in range(labels))
        for item in range(waiting):
            scheduler.add("api.test", item, lanes=names)
        started: dict[str, int] = {}
        while (taken := scheduler.take()) is not None:
            lane, _ = taken
            assert lane.group is not None and lane.host == "api.test"
            started[lane.name] = started.get(lane.name, 0) + 1
        return started

    started = asyncio.run(run())
    each = min(concurrency, burst)
    assert all(count <= each for count in started.values())
    assert sum(started.values()) == min(waiting, labels * each)


def test_names_show_the_host_and_labels_only() -> None:
    assert lane_name("api.test", "tokens[1]") == "api.test tokens[1]"
    assert group_name("api.test", ["tokens[0]", "tokens[1]"]) == "api.test [tokens[0] | tokens[1]]"


def test_a_lane_adds_its_credential_and_its_repr_shows_no_secret() -> None:
    lane = Lane("values[0]", headers={"X-API-Key": "k-secret"}, params={"api_key": "p-secret"})
    request = Request(
        "http://api.test/x", headers={"x-api-key": "old", "Accept": "a"}, params={"q": 1}
    )
    sent = lane.applied(request)
    assert sent.headers == {"Accept": "a", "X-API-Key": "k-secret"}
    assert sent.params == {"q": 1, "api_key": "p-secret"}
    laned = Request("http://api.test/x", lanes=(lane,))
    for text in (repr(lane), repr(laned)):
        assert "secret" not in text
    assert "values[0]" in repr(laned)


def test_a_lane_s_param_replaces_the_one_a_next_page_link_carries() -> None:
    """A link the server built from the previous request keeps the key that went with it: the
    lane's own replaces it, the rest of the URL stays as it was."""
    lane = Lane("values[1]", params={"api_key": "key-two"})
    link = Request("http://api.test/x?api_key=key-one&page=2&q=a%20b#top", params={"n": 1})
    sent = lane.applied(link)
    assert sent.url == "http://api.test/x?page=2&q=a%20b#top"
    assert sent.params == {"n": 1, "api_key": "key-two"}
    assert Lane("h", headers={"A": "1"}).applied(link).url == link.url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h/x?api_key=K&page=2&api_key=K", "http://h/x?page=2"),
        ("http://h/x?api%5Fkey=K&page=2", "http://h/x?page=2"),  # the name the server reads
        ("http://h/x?api_key=K", "http://h/x"),
        ("http://h/x?api_key=K#frag?api_key=F", "http://h/x#frag?api_key=F"),
        ("http://h/x#api_key=K", "http://h/x#api_key=K"),
        ("http://h/x?API_KEY=K&my_api_key=2&api_key", "http://h/x?API_KEY=K&my_api_key=2"),
        ("http://h/x?a=%41&&b", "http://h/x?a=%41&&b"),  # nothing named: the same string
    ],
)
def test_without_query_params_takes_out_the_named_pairs_only(url: str, expected: str) -> None:
    assert without_query_params(url, {"api_key"}) == expected


def test_without_query_params_of_given_values_leaves_the_others() -> None:
    url = "http://h/x?api_key=K%2B1&api_key=theirs&page=2"
    assert without_query_params(url, {"api_key"}, {"K+1"}) == "http://h/x?api_key=theirs&page=2"
    assert without_query_params(url, {"api_key"}, {"other"}) == url


_pairs = st.lists(
    st.tuples(
        st.sampled_from(["api_key", "page", "q", "api%5Fkey", "x+y"]), st.text("ab%2=", max_size=4)
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(pairs=_pairs, fragment=st.sampled_from(["", "#top", "#api_key=1"]))
def test_without_query_params_keeps_every_other_pair_in_its_order(
    pairs: list[tuple[str, str]], fragment: str
) -> None:
    query = "&".join(f"{name}={value}" for name, value in pairs)
    url = f"http://h/p?{query}{fragment}"
    kept = "&".join(f"{n}={v}" for n, v in pairs if n not in ("api_key", "api%5Fkey"))
    expected = f"http://h/p{'?' + kept if kept else ''}{fragment}"
    if len(kept) == len(query):  # nothing taken out: the URL exactly as it was
        expected = url
    once = without_query_params(url, {"api_key"})
    assert once == expected
    assert without_query_params(once, {"api_key"}) == once
