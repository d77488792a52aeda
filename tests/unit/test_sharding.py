"""The sharding rule and the task plan as pure values: no network, no cluster."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe import ConfigError, HostLimits, Limits, Request
from fetchpipe._quota import Quota
from fetchpipe.distributed.batch import interleaved
from fetchpipe.distributed.driver import batch_gap
from fetchpipe.distributed.sharding import (
    VIRTUAL_SHARDS,
    ShardSelector,
    count_hosts,
    host_speed,
    limits_for_task,
    plan_tasks,
    shard_of_url,
    virtual_shard,
)

hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True)
host_counts = st.dictionaries(hosts, st.integers(min_value=1, max_value=5_000), max_size=60)


def test_the_virtual_shard_is_blake2b_of_the_host_and_the_same_in_another_process() -> None:
    names = ["api.example.com", "127.0.0.1", "[::1]", "b\u00fccher.example"]
    here = [virtual_shard(name) for name in names]
    digest = [
        int.from_bytes(hashlib.blake2b(n.encode(), digest_size=8).digest(), "big") % 256
        for n in names
    ]
    assert here == digest
    # Python's own hash() is salted per process: the rule must not depend on it.
    code = (
        "from fetchpipe.distributed.sharding import virtual_shard;"
        f"print([virtual_shard(n) for n in {names!r}])"
    )
    for seed in ("1", "2"):
        other = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert other.stdout.strip() == str(here)


@given(hosts)
def test_the_shard_of_a_url_is_its_hosts_whatever_the_case_port_or_path(host: str) -> None:
    shard = virtual_shard(host)
    assert 0 <= shard < VIRTUAL_SHARDS
    assert virtual_shard(host.upper()) == shard
    assert shard_of_url(f"https://{host.upper()}:8443/a/b?c=d") == shard
    assert shard_of_url(f"http://user@{host}/") == shard
    assert shard_of_url("ftp://x/") is None


def test_hosts_spread_over_the_virtual_shards() -> None:
    shards = Counter(virtual_shard(f"api{i}.example.com") for i in range(25_600))
    assert len(shards) == VIRTUAL_SHARDS
    assert max(shards.values()) < 3 * 100  # 100 per shard on average


@given(st.lists(hosts, min_size=1, max_size=30), st.integers(min_value=1, max_value=256))
def test_n_shard_runs_cover_every_host_exactly_once(names: list[str], count: int) -> None:
    for host in names:
        holders = [k for k in range(count) if ShardSelector(k, count).holds_host(host)]
        assert len(holders) == 1
        assert ShardSelector(holders[0], count).holds(f"http://{host}/x")


@pytest.mark.parametrize("text", ["3", "a/b", "1/0", "4/4", "-1/4", "0/257", "", "1/2/3"])
def test_a_bad_shard_is_refused_with_a_hint(text: str) -> None:
    with pytest.raises(ConfigError, match="HINT: write --shard K/N"):
        ShardSelector.parse(text)


def test_a_shard_parses_and_prints() -> None:
    assert ShardSelector.parse(" 2/8 ") == ShardSelector(2, 8)
    assert str(ShardSelector(2, 8)) == "2/8"


@settings(max_examples=60, deadline=None)
@given(host_counts, st.integers(min_value=1, max_value=9))
def test_every_host_lands_in_exactly_one_task_unless_it_is_split(
    counts: dict[str, int], tasks: int
) -> None:
    plan = plan_tasks(counts, tasks, Limits(per_host=HostLimits(max_concurrency=4)))
    for host, n in counts.items():
        placed = {plan.task_of(host, i) for i in range(n)}
        assert all(0 <= task < tasks for task in placed)
        split = plan.splits.get(host)
        if split is None:
            assert placed == {plan.shard_tasks[virtual_shard(host)]}
            assert [t for t in range(tasks) if host in plan.hosts_of(t, [host])] == list(placed)
        else:
            # each part in a task of its own, every part given requests, at most 4 parts
            assert len(set(split.tasks)) == split.parts == len(placed)
            assert 2 <= split.parts <= min(tasks, 4)
            nth = Counter(plan.task_of(host, i) for i in range(n))
            assert max(nth.values()) - min(nth.values()) <= 1


@settings(max_examples=60, deadline=None)
@given(host_counts.filter(bool), st.integers(min_value=1, max_value=9), st.booleans())
def test_tasks_are_balanced(counts: dict[str, int], tasks: int, split: bool) -> None:
    limits = Limits(per_host=HostLimits(max_concurrency=4))
    plan = plan_tasks(counts, tasks, limits, split_heavy=split)
    costs = {host: n / host_speed(limits, host) for host, n in counts.items()}
    assert sum(plan.costs) == pytest.approx(sum(costs.values()))
    # the items the plan placed: each virtual shard's unsplit hosts, each part of a split host
    shards: Counter[int] = Counter()
    parts: list[float] = []
    for host, cost in costs.items():
        if host in plan.splits:
            parts += [cost / plan.splits[host].parts] * plan.splits[host].parts
        else:
            shards[virtual_shard(host)] += cost  # type: ignore[assignment]
    items = sorted([*shards.values(), *parts], reverse=True) + [0.0] * tasks
    # LPT is within 4/3 of the best grouping, which is at least each of these; the parts of a
    # split host go to different tasks, which LPT does not know of: within 2 then
    best_at_least = max(sum(items) / tasks, items[0], items[tasks - 1] + items[tasks])
    assert max(plan.costs) <= (2 if split else 4 / 3) * best_at_least + 1e-9


def test_a_heavy_host_is_split_with_its_limits_divided() -> None:
    counts = {"big.example": 9_000, **{f"h{i}.example": 100 for i in range(20)}}
    limits = Limits(
        max_concurrency=50,
        per_host=HostLimits(max_concurrency=6),
        hosts={"big.example": HostLimits(max_concurrency=6, max_per_second=30.0, burst=3)},
        max_body_size=1000,
        readahead=7,
    )
    plan = plan_tasks(counts, 3, limits)
    split = plan.splits["big.example"]
    assert split.parts == 3
    shares = [limits_for_task(limits, plan, task).for_host("big.example") for task in range(3)]
    assert {own.max_concurrency for own in shares} == {2}
    assert sum(own.max_per_second or 0 for own in shares) == pytest.approx(30.0)
    assert {own.burst for own in shares} == {1}
    # the other hosts keep theirs, and every other limit is the run's
    own = limits_for_task(limits, plan, 0)
    assert own.for_host("h1.example") == limits.per_host
    assert (own.max_concurrency, own.max_body_size, own.readahead) == (50, 1000, 7)
    assert not plan_tasks(counts, 3, limits, split_heavy=False).splits


def test_a_split_host_keeps_its_quota_whole_and_its_adaptive_setting() -> None:
    quota = Quota(300, "day")
    big = HostLimits(max_concurrency=4, max_per_second=8.0, adaptive=False, quota=quota)
    limits = Limits(per_host=HostLimits(max_concurrency=4), hosts={"big.example": big})
    plan = plan_tasks({"big.example": 9_000, "small.example": 10}, 2, limits)
    assert plan.splits["big.example"].parts == 2
    for task in range(2):
        own = limits_for_task(limits, plan, task).for_host("big.example")
        # one ledger counts the quota for every part; concurrency and rate are shared out
        assert (own.quota, own.adaptive) == (quota, False)
        assert (own.max_concurrency, own.max_per_second) == (2, 4.0)


def test_a_host_is_split_no_further_than_its_concurrency() -> None:
    plan = plan_tasks({"one.example": 10_000, "b.example": 1}, 8, Limits(per_host=HostLimits(2)))
    assert plan.splits["one.example"].parts == 2


def test_without_counts_shards_are_dealt_out_in_turn() -> None:
    plan = plan_tasks(None, 3)
    assert Counter(plan.shard_tasks) == {0: 86, 1: 85, 2: 85}
    assert not plan.splits and plan.costs == ()
    with pytest.raises(ConfigError):
        plan_tasks(None, 0)


def test_a_rate_limited_host_costs_more_per_request() -> None:
    limits = Limits(
        per_host=HostLimits(max_concurrency=10), hosts={"slow.example": HostLimits(1, 2.0)}
    )
    assert host_speed(limits, "slow.example") == 2.0
    assert host_speed(limits, "fast.example") == pytest.approx(100.0)


def test_count_hosts() -> None:
    urls = ["http://A.example/1", "http://a.example:81/2", "https://b.example/", "nope"]
    assert count_hosts(urls) == {"a.example": 2, "b.example": 1, "": 1}


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 99)), max_size=80))
def test_a_batch_is_fed_one_host_at_a_time_in_turn(pairs: list[tuple[str, int]]) -> None:
    requests = [Request(f"http://{host}.example/{n}", key=i) for i, (host, n) in enumerate(pairs)]
    fed = list(interleaved(requests))
    assert sorted(r.key for r in fed if r.key is not None) == list(range(len(requests)))
    for host in "abcde":
        own = [r.key for r in requests if r.url.startswith(f"http://{host}.")]
        assert [r.key for r in fed if r.url.startswith(f"http://{host}.")] == own
    # hosts take turns: two hosts that both have requests left were fed as often, give or take 1
    total = Counter(r.url.split(".")[0] for r in requests)
    fed_so_far: Counter[str] = Counter()
    for request in fed:
        fed_so_far[request.url.split(".")[0]] += 1
        open_hosts = [h for h in total if fed_so_far[h] < total[h]]
        assert all(abs(fed_so_far[a] - fed_so_far[b]) <= 1 for a in open_hosts for b in open_hosts)


def test_the_gap_between_batches_is_the_longest_burst_over_rate() -> None:
    assert batch_gap(Limits()) == 0.0
    limits = Limits(
        per_host=HostLimits(max_per_second=10.0),
        hosts={"a.example": HostLimits(max_per_second=2.0, burst=3)},
    )
    assert batch_gap(limits) == pytest.approx(1.5)
