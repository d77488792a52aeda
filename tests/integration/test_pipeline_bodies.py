"""Sources that POST a json body, against the simulated shop's real endpoints: a GraphQL Relay
connection (graphql-core), a search that pages with a cursor in the body, a listing that pages
with a cursor header; GraphQL errors, retries of a POST, the cache, and an interrupted run
resumed at the right page.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.runtime.report import RunReport
from fetchpipe.pipeline.runtime.runner import PipelineRunner
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_PRODUCT_COUNT, SHOP_TOKEN, shop_products, shop_reviews
from tests.integration.transports import both_transports, on_transport

pytest.importorskip("graphql")  # the shop's GraphQL endpoint (the sim extra)

pytestmark = [both_transports, pytest.mark.fleet(hosts=1)]

RELAY_QUERY = (
    "query($after: String) { products(first: FIRST, after: $after) { "
    "nodes { id name price updatedAt } pageInfo { endCursor hasNextPage } } }"
)
PRODUCTS = {(p["id"], p["name"], p["price"]) for p in shop_products()}


def relay_source(
    fleet: Fleet, first: int = 50, url: str = "/shop/graphql", **extra: Any
) -> dict[str, Any]:
    """The shop's products through its GraphQL Relay connection, ``first`` per page."""
    return {
        "name": "products",
        "url": fleet.url(url),
        "method": "POST",
        "json": {"query": RELAY_QUERY.replace("FIRST", str(first)), "variables": {"after": None}},
        "records": "data.products.nodes",
        "write": "append",  # a product loaded twice would show
        "paginate": {
            "type": "cursor",
            "cursor_path": "data.products.pageInfo.endCursor",
            "param": "variables.after",
            "location": "body",
            "has_more_path": "data.products.pageInfo.hasNextPage",
        },
        **extra,
    }


def make(tmp_path: Path, *sources: dict[str, Any], **top: Any) -> Pipeline:
    top.setdefault("destination", f"duckdb:///{tmp_path / 'shop.duckdb'}")
    env = top.pop("env", None)
    config = on_transport({"name": "shop", "sources": list(sources), **top})
    return Pipeline.from_dict(config, env=env)


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def check_ok(report: RunReport) -> None:
    assert report.ok, [(s.name, s.reason) for s in report.failed]


def check_every_product_once(db: Path) -> None:
    assert query(db, "SELECT count(*), count(DISTINCT id) FROM products") == [
        (SHOP_PRODUCT_COUNT, SHOP_PRODUCT_COUNT)
    ]
    assert set(query(db, "SELECT id, name, price FROM products")) == PRODUCTS


# --- GraphQL ----------------------------------------------------------------------------------


def test_a_graphql_relay_connection_loads_every_product_once(
    fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    report = make(tmp_path, relay_source(fleet_in_thread)).run()  # Pipeline.run, blocking
    check_ok(report)
    check_every_product_once(tmp_path / "shop.duckdb")
    # 5 pages of 50: the last says hasNextPage false (its endCursor is not null), so no 6th.
    assert fleet_in_thread.stats.requests(path="/shop/graphql") == 5
    assert report.source("products").pages == 5


async def test_graphql_behind_a_bearer_token(fleet: Fleet, tmp_path: Path) -> None:
    auth = {"type": "bearer", "token": SHOP_TOKEN}
    report = await make(
        tmp_path, relay_source(fleet, 100, "/shop-bearer/graphql", auth=auth)
    ).arun()
    check_ok(report)
    check_every_product_once(tmp_path / "shop.duckdb")


@pytest.mark.parametrize(
    ("query_text", "message"),
    [
        (
            "{ products(first: 500) { nodes { id } } }",
            "the GraphQL API answered with 1 error(s): products: first must be between 1 and "
            "100, not 500",
        ),
        (
            "{ products(first: 5) { nodes { id supplier } } }",
            "beside partial data: products.nodes.0.supplier: supplier is restricted",
        ),
        ("{ products(first: 5) { nodes { idd } } }", "Cannot query field 'idd' on type 'Product'"),
    ],
)
async def test_graphql_errors_fail_the_page_with_their_messages(
    fleet: Fleet, tmp_path: Path, query_text: str, message: str
) -> None:
    source = {**relay_source(fleet), "json": {"query": query_text}, "paginate": {"type": "none"}}
    report = await make(tmp_path, source).arun()
    failed = report.source("products")
    assert failed.status == "failed" and failed.rows == 0
    assert failed.reason is not None and message in failed.reason
    assert failed.reason.startswith(f"page 1 of {fleet.url('/shop/graphql')}: ")


async def test_graphql_error_messages_are_redacted(fleet: Fleet, tmp_path: Path) -> None:
    secret = "cursor-5ecret-value"  # the API echoes the cursor it cannot read
    source = relay_source(fleet)
    source["json"]["variables"] = {"after": "${FIRST_CURSOR}"}
    report = await make(tmp_path, source, env={"FIRST_CURSOR": secret}).arun()
    failed = report.source("products")
    assert failed.status == "failed" and failed.reason is not None
    assert "invalid cursor" in failed.reason and secret not in failed.reason


async def test_a_child_source_sends_its_parent_values_in_the_body_with_their_types(
    fleet: Fleet, tmp_path: Path
) -> None:
    parents = {
        "name": "products",
        "url": fleet.url("/shop/v1/page/products"),
        "params": {"per_page": 8},
        "records": "data.items",
        "paginate": {"type": "page", "max_pages": 1},
    }
    reviews = {
        "name": "reviews",
        "url": fleet.url("/shop/graphql"),
        "method": "POST",
        # $id is an Int!: "{products.id}" alone is sent as the number, not as text.
        "json": {
            "query": "query($id: Int!) { product(id: $id) { reviews { id stars title } } }",
            "variables": {"id": "{products.id}"},
        },
        "records": "data.product.reviews",
        "include_parent": {"product_id": "id"},
        "write": "append",
    }
    report = await make(tmp_path, parents, reviews).arun()
    check_ok(report)
    expected = {(pid, r["id"]) for pid, rs in shop_reviews().items() if pid <= 8 for r in rs}
    got = query(tmp_path / "shop.duckdb", "SELECT product_id, id FROM reviews")
    assert len(got) == len(expected) and set(got) == expected
    assert fleet.stats.requests(path="/shop/graphql") == 8


# --- cursors in the body and in a header ------------------------------------------------------


@pytest.mark.parametrize("has_more", [True, False])
async def test_a_post_search_pages_with_the_cursor_in_the_body(
    fleet: Fleet, tmp_path: Path, has_more: bool
) -> None:
    paginate: dict[str, Any] = {
        "type": "cursor",
        "cursor_path": "page.next",
        "param": "page.after",
        "location": "body",
    }
    if has_more:
        paginate["has_more_path"] = "page.has_more"
    source = {
        "name": "products",
        "url": fleet.url("/shop/v1/search/products"),
        "method": "POST",
        "json": {"filter": {"tag": "sale"}, "page": {"size": 10, "after": None}},
        "records": "hits",
        "write": "append",
        "paginate": paginate,
    }
    report = await make(tmp_path, source).arun()
    check_ok(report)
    expected = {p["id"] for p in shop_products() if "sale" in p["tags"]}
    got = query(tmp_path / "shop.duckdb", "SELECT id FROM products")
    assert len(got) == len(expected) and {r[0] for r in got} == expected
    pages = math.ceil(len(expected) / 10)
    # The API gives a cursor on its last page too: without has_more_path one more request is
    # sent, and finds nothing.
    sent = fleet.stats.requests(path="/shop/v1/search/products")
    assert sent == (pages if has_more else pages + 1)


async def test_a_listing_pages_with_a_cursor_header(fleet: Fleet, tmp_path: Path) -> None:
    source = {
        "name": "products",
        "url": fleet.url("/shop/v1/header/products"),
        "params": {"limit": 40},
        "records": "items",
        "write": "append",
        "paginate": {
            "type": "cursor",
            "cursor_path": "next_cursor",
            "param": "X-Cursor",
            "location": "header",
        },
    }
    report = await make(tmp_path, source).arun()
    check_ok(report)
    check_every_product_once(tmp_path / "shop.duckdb")
    assert report.source("products").pages == math.ceil(SHOP_PRODUCT_COUNT / 40)


# --- retries and the cache --------------------------------------------------------------------


@pytest.mark.parametrize("idempotent", [False, True])
async def test_a_post_is_retried_on_503_only_when_the_source_says_it_is_idempotent(
    fleet: Fleet, tmp_path: Path, idempotent: bool
) -> None:
    # fail=1: the first request to the URL gets 503 (the pages share the URL: only the first).
    source = relay_source(fleet, 100, "/shop/graphql?fail=1", idempotent=idempotent)
    top = {"defaults": {"retry": {"attempts": 3}}}
    report = await make(tmp_path, source, **top).arun()
    sent = fleet.stats.requests(path="/shop/graphql")
    if idempotent:
        check_ok(report)
        check_every_product_once(tmp_path / "shop.duckdb")
        assert sent == 3 + 1  # three pages, the first sent twice
    else:
        failed = report.source("products")
        assert failed.status == "failed" and failed.reason is not None
        assert "503" in failed.reason
        assert sent == 1  # not sent again: a POST may do something each time


async def test_the_cache_never_answers_nor_stores_a_post(fleet: Fleet, tmp_path: Path) -> None:
    cache = {"enabled": True, "ttl": 3600, "path": str(tmp_path / "cache.sqlite")}
    listing = {  # a GET beside it, which the cache does answer the second time
        "name": "listing",
        "url": fleet.url("/shop/v1/all/products"),
        "records": "products",
    }
    pipeline = make(tmp_path, relay_source(fleet, 100), listing, defaults={"cache": cache})
    for run in (1, 2):
        report = await pipeline.arun(full_refresh=True)
        check_ok(report)
        assert report.source("products").cached_pages == 0
        assert report.source("listing").cached_pages == run - 1
        assert fleet.stats.requests(path="/shop/graphql") == 3 * run
    assert fleet.stats.requests(path="/shop/v1/all/products") == 1
    http_cache = pipeline.http_cache()
    assert http_cache is not None
    try:
        assert http_cache.stats().entries == 1  # the GET's response only
    finally:
        http_cache.close()


# --- resuming ---------------------------------------------------------------------------------


async def test_an_interrupted_run_resumes_at_the_cursor_it_had_reached(
    fleet: Fleet, tmp_path: Path
) -> None:
    # 25 pages of 10 that follow one another; interrupted after some are committed.
    source = relay_source(fleet, 10, "/shop/graphql?delay_ms=5")
    pipeline = make(tmp_path, source)
    runner = PipelineRunner(pipeline, commit_every=0.01)
    task = asyncio.ensure_future(runner.run())
    for _ in range(2000):
        await asyncio.sleep(0.005)
        if (runner.report.sources and runner.report.sources[0].pages >= 8) or task.done():
            break
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    db = tmp_path / "shop.duckdb"
    committed = query(db, "SELECT count(*) FROM _fetchpipe_pages")[0][0]
    assert committed >= 1
    before = fleet.stats.requests(path="/shop/graphql")

    report = await pipeline.arun()
    check_ok(report)
    assert report.resumed
    check_every_product_once(db)
    sent = fleet.stats.requests(path="/shop/graphql") - before
    # Committed pages are not fetched again: the resumed run starts at the cursor of the
    # first page not committed, not at the first page.
    assert sent == 25 - committed
