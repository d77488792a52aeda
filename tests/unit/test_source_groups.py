"""A pipeline's sources in shard groups (``run --shard K/N``), and the shard destinations'
names: pure values, no network."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe.distributed.sharding import (
    ShardSelector,
    SourceLink,
    source_groups,
    sources_in_shard,
    virtual_shard,
)
from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.pipeline.spec.destination import DestinationUrl
from fetchpipe.pipeline.spec.shards import for_shard, shard_sources, shard_target, table_shards

HOSTS = ["api.example.com", "API.example.com:8443", "b.example.org", "127.0.0.2", "[::1]"]


@st.composite
def pipelines(draw: st.DrawFn) -> list[SourceLink]:
    """Sources over a few hosts, each maybe the child of an earlier one."""
    count = draw(st.integers(min_value=1, max_value=14))
    links: list[SourceLink] = []
    for n in range(count):
        host = draw(st.sampled_from([*HOSTS, f"h{n}.example"]))
        parent = draw(st.none() | st.sampled_from([link.name for link in links] or [None]))
        path = f"/{{{parent}.id}}/x" if parent else "/items"
        links.append(SourceLink(f"s{n}", f"https://{host}{path}", parent))
    return links


def membership(links: list[SourceLink]) -> dict[str, frozenset[str]]:
    """Source -> the sources of its group."""
    return {name: frozenset(g.sources) for g in source_groups(links) for name in g.sources}


@settings(max_examples=200, deadline=None)
@given(pipelines())
def test_every_source_is_in_one_group_with_its_parent_and_its_hosts_other_sources(
    links: list[SourceLink],
) -> None:
    groups = source_groups(links)
    names = [name for group in groups for name in group.sources]
    assert sorted(names) == sorted(link.name for link in links)  # each exactly once
    group_of = membership(links)
    for link in links:
        if link.parent is not None:
            assert link.parent in group_of[link.name]
        for other in links:  # the same host as the engine keys it: case and port left out
            if other.host == link.host:
                assert other.name in group_of[link.name]
    for group in groups:
        assert list(group.hosts) == sorted(
            {link.host for link in links if link.name in group.sources}
        )
        assert group.virtual_shard == virtual_shard(group.hosts[0])


@settings(max_examples=200, deadline=None)
@given(pipelines(), st.integers(min_value=1, max_value=12))
def test_n_shards_cover_every_source_once_and_every_host_in_one_shard(
    links: list[SourceLink], count: int
) -> None:
    shards = [sources_in_shard(links, ShardSelector(k, count)) for k in range(count)]
    assert sorted(n for names in shards for n in names) == sorted(link.name for link in links)
    host_shards = {}
    for index, names in enumerate(shards):
        for link in links:
            if link.name in names:
                assert host_shards.setdefault(link.host, index) == index
        in_order = [link.name for link in links if link.name in names]
        assert names == in_order


@settings(max_examples=100, deadline=None)
@given(pipelines(), st.integers(min_value=1, max_value=12), st.randoms(use_true_random=False))
def test_the_answer_does_not_depend_on_the_order_of_the_sources(
    links: list[SourceLink], count: int, rng: random.Random
) -> None:
    shuffled = list(links)
    rng.shuffle(shuffled)
    assert membership(shuffled) == membership(links)
    for k in range(count):
        selector = ShardSelector(k, count)
        assert set(sources_in_shard(shuffled, selector)) == set(sources_in_shard(links, selector))


def test_the_same_shards_in_another_process_whatever_its_hash_seed() -> None:
    links = [
        SourceLink("products", "https://shop.example/products"),
        SourceLink("reviews", "https://reviews.example/{products.id}", "products"),
        SourceLink("orders", "https://orders.example/orders"),
        SourceLink("users", "https://Users.example:8443/users"),
        SourceLink("events", "https://users.example/events"),
    ]
    here = [sources_in_shard(links, ShardSelector(k, 3)) for k in range(3)]
    code = (
        "from fetchpipe.distributed.sharding import ShardSelector, SourceLink, sources_in_shard;"
        f"links = [SourceLink(*a) for a in {[(x.name, x.url, x.parent) for x in links]!r}];"
        "print([sources_in_shard(links, ShardSelector(k, 3)) for k in range(3)])"
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
    assert sorted(n for names in here for n in names) == sorted(x.name for x in links)
    groups = source_groups(links)
    assert [g.sources for g in groups] == [
        ("products", "reviews"),
        ("orders",),
        ("users", "events"),
    ]


@pytest.mark.parametrize(
    ("kind", "path", "expected"),
    [
        ("duckdb", "shop.duckdb", "shop.shard-1-of-3.duckdb"),
        ("duckdb", "/data/runs/shop.duckdb", "/data/runs/shop.shard-1-of-3.duckdb"),
        ("duckdb", "shop", "shop.shard-1-of-3"),
        ("jsonl", "out/shop", "out/shop.shard-1-of-3"),
        ("parquet", "out/shop.v2/", "out/shop.v2.shard-1-of-3"),
    ],
)
def test_a_shard_writes_beside_the_pipelines_destination(
    kind: str, path: str, expected: str
) -> None:
    target = shard_target(DestinationUrl(kind, path), ShardSelector(1, 3))  # type: ignore[arg-type]
    assert target == DestinationUrl(kind, expected)  # type: ignore[arg-type]


def test_a_shards_pipeline_keeps_its_secrets_and_its_tables_go_with_their_source() -> None:
    spec = PipelineSpec.from_dict(
        {
            "name": "shop",
            "sources": [
                {
                    "name": "orders",
                    "url": "https://orders.example/orders",
                    "headers": {"Authorization": "Bearer ${TOKEN}"},
                    "primary_key": "id",
                    "unnest": [{"field": "items", "table": "order_items"}],
                },
                {"name": "users", "url": "https://users.example/users"},
            ],
        },
        env={"TOKEN": "s3cret-token"},
    )
    shard = for_shard(spec, ShardSelector(0, 2))
    assert str(shard.target) == "duckdb:///shop.shard-0-of-2.duckdb"
    assert (
        shard.redact("Bearer s3cret-token")
        == spec.redact("Bearer s3cret-token")
        != ("Bearer s3cret-token")
    )
    assert [s.name for s in shard.sources] == ["orders", "users"]
    for count in (1, 2, 5):
        owners = table_shards(spec, count)
        assert owners["order_items"] == owners["orders"] == virtual_shard("orders.example") % count
        assert owners["users"] == virtual_shard("users.example") % count


def test_the_readme_example_runs_products_and_reviews_in_one_shard_and_orders_in_the_other() -> (
    None
):
    example = Path(__file__).parents[2] / "examples" / "two_hosts.yaml"
    spec = PipelineSpec.from_file(example)
    assert shard_sources(spec, ShardSelector(0, 2)) == ["products", "reviews"]
    assert shard_sources(spec, ShardSelector(1, 2)) == ["orders", "customers"]
    assert list(table_shards(spec, 2).items()) == [  # shard by shard, then in file order
        ("products", 0),
        ("reviews", 0),
        ("orders", 1),
        ("order_items", 1),
        ("customers", 1),
    ]
    for count in (1, 3, 4):
        owners = table_shards(spec, count)
        for index in range(count):
            held = shard_sources(spec, ShardSelector(index, count))
            assert held == [s.name for s in spec.sources if owners[s.name] == index]
    assert str(for_shard(spec, ShardSelector(1, 2)).target) == (
        "duckdb:///two_hosts.shard-1-of-2.duckdb"
    )
