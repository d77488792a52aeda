"""Pipelines run end to end against the simulated shop API into real DuckDB, JSONL and Parquet.

Every pagination style and every auth type, parent/child fan-out, each write mode on a re-run,
incremental loads, the cache's ``unchanged``, and a failing source that does not stop others.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.runtime.report import RunReport
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import (
    SHOP_API_KEY,
    SHOP_BASIC_PASSWORD,
    SHOP_BASIC_USER,
    SHOP_CLIENT_ID,
    SHOP_CLIENT_SECRET,
    SHOP_PRODUCT_COUNT,
    SHOP_TOKEN,
    shop_products,
    shop_reviews,
)
from tests.integration.transports import both_transports, on_transport

pytestmark = [both_transports, pytest.mark.fleet(hosts=2)]

REVIEW_COUNT = sum(len(r) for r in shop_reviews().values())
PAGINATIONS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    # name: (listing, records path, params, paginate)
    "page_total": (
        "page",
        "data.items",
        {"per_page": 40},
        {"type": "page", "total_pages_path": "meta.total_pages"},
    ),
    "page_until_empty": ("page", "data.items", {"per_page": 40}, {"type": "page"}),
    "offset_total": ("offset", "items", {}, {"type": "offset", "limit": 30, "total_path": "total"}),
    "offset_until_short": ("offset", "items", {}, {"type": "offset", "limit": 30}),
    "cursor": (
        "cursor",
        "data.items",
        {"limit": 40},
        {"type": "cursor", "cursor_path": "meta.next_cursor"},
    ),
    "link_header": ("link", "", {"per_page": 40}, {"type": "link_header"}),
    "next_url": (
        "next",
        "results",
        {"per_page": 40},
        {"type": "next_url", "next_url_path": "next"},
    ),
    "none": ("all", "products", {}, {"type": "none"}),
}
AUTHS: dict[str, tuple[str, dict[str, Any]]] = {
    "bearer": ("shop-bearer", {"type": "bearer", "token": SHOP_TOKEN}),
    "api_key_header": (
        "shop-key",
        {"type": "api_key", "name": "X-API-Key", "value": SHOP_API_KEY},
    ),
    "api_key_query": (
        "shop-key",
        {"type": "api_key", "name": "api_key", "in": "query", "value": SHOP_API_KEY},
    ),
    "basic": (
        "shop-basic",
        {"type": "basic", "username": SHOP_BASIC_USER, "password": SHOP_BASIC_PASSWORD},
    ),
    "oauth2": (
        "shop-oauth",
        {
            "type": "oauth2_client_credentials",
            "token_url": "TOKEN_URL",
            "client_id": SHOP_CLIENT_ID,
            "client_secret": SHOP_CLIENT_SECRET,
        },
    ),
}


def products_source(
    fleet: Fleet, pagination: str = "page_total", prefix: str = "shop", **extra: Any
) -> dict[str, Any]:
    listing, records, params, paginate = PAGINATIONS[pagination]
    return {
        "name": "products",
        "url": fleet.url(f"/{prefix}/v1/{listing}/products"),
        "params": params,
        "records": records,
        "primary_key": "id",
        "write": "merge",
        "paginate": paginate,
        **extra,
    }


def reviews_source(fleet: Fleet, host: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": "reviews",
        "url": fleet.url("/shop/v1/products/", host) + "{products.id}/reviews",
        "records": "reviews",
        "primary_key": ["product_id", "id"],
        "write": "merge",
        "include_parent": {"product_id": "id"},
        **extra,
    }


def make(tmp_path: Path, *sources: dict[str, Any], **top: Any) -> Pipeline:
    top.setdefault("destination", f"duckdb:///{tmp_path / 'shop.duckdb'}")
    return Pipeline.from_dict(on_transport({"name": "shop", "sources": list(sources), **top}))


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def check_ok(report: RunReport) -> None:
    assert report.ok, [(s.name, s.reason) for s in report.failed]


async def update_price(fleet: Fleet, product: int, price: float) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(fleet.url("/shop/__update"), params={"id": product, "price": price}) as r,
    ):
        assert r.status == 200, await r.text()


@pytest.mark.parametrize("pagination", list(PAGINATIONS))
async def test_every_pagination_type_loads_every_product_once(
    fleet: Fleet, tmp_path: Path, pagination: str
) -> None:
    report = await make(tmp_path, products_source(fleet, pagination)).arun()
    check_ok(report)
    products = report.source("products")
    assert products.records == products.rows == SHOP_PRODUCT_COUNT
    db = tmp_path / "shop.duckdb"
    expected = {(p["id"], p["name"], p["price"]) for p in shop_products()}
    assert set(query(db, "SELECT id, name, price FROM products")) == expected
    assert query(db, "SELECT count(DISTINCT _fetchpipe_run_id) FROM products") == [(1,)]


@pytest.mark.parametrize("auth", list(AUTHS))
async def test_every_auth_type_with_next_links(fleet: Fleet, tmp_path: Path, auth: str) -> None:
    prefix, config = AUTHS[auth]
    config = {**config}
    if config.get("token_url") == "TOKEN_URL":
        config["token_url"] = fleet.url("/shop/oauth/token")
    # Link pagination: the API's next links drop the key, so it is added to every page.
    source = products_source(fleet, "link_header", prefix, auth=config)
    report = await make(tmp_path, source).arun()
    check_ok(report)
    assert report.source("products").rows == SHOP_PRODUCT_COUNT
    assert report.source("products").pages == 7
    if auth == "oauth2":
        assert fleet.stats.requests(path="/shop/oauth/token") == 1


@pytest.mark.parametrize("auth", list(AUTHS))
async def test_wrong_credentials_fail_the_source_with_a_hint(
    fleet: Fleet, tmp_path: Path, auth: str
) -> None:
    prefix, config = AUTHS[auth]
    wrong = {
        k: ("wrong-secret" if k in ("token", "value", "password") else v) for k, v in config.items()
    }
    if wrong.get("token_url") == "TOKEN_URL":
        wrong["token_url"] = fleet.url("/shop/oauth/token")
        wrong["client_secret"] = "wrong-secret"
    source = products_source(fleet, "page_total", prefix, auth=wrong)
    report = await make(tmp_path, source).arun()
    failed = report.source("products")
    assert failed.status == "failed" and failed.rows == 0
    assert failed.reason is not None and "wrong-secret" not in failed.reason
    assert "401" in failed.reason
    assert query(tmp_path / "shop.duckdb", "SELECT count(*) FROM _fetchpipe_state") == [(0,)]


async def test_children_stream_while_the_parent_pages_arrive(fleet: Fleet, tmp_path: Path) -> None:
    parent = products_source(fleet, "page_until_empty")  # sequential pages, on host 0
    report = await make(tmp_path, parent, reviews_source(fleet, host=1)).arun()
    check_ok(report)
    reviews = report.source("reviews")
    assert reviews.pages == SHOP_PRODUCT_COUNT and reviews.rows == REVIEW_COUNT
    db = tmp_path / "shop.duckdb"
    expected = {(pid, r["id"]) for pid, rs in shop_reviews().items() for r in rs}
    assert set(query(db, "SELECT product_id, id FROM reviews")) == expected
    # The first review request arrived before the parent's last page was asked for.
    products_host, reviews_host = fleet.addresses[0], fleet.addresses[1]
    assert min(fleet.stats.arrivals(reviews_host)) < max(fleet.stats.arrivals(products_host))


async def test_merge_rerun_updates_rows_and_keeps_the_count(fleet: Fleet, tmp_path: Path) -> None:
    pipeline = make(tmp_path, products_source(fleet), reviews_source(fleet))
    check_ok(await pipeline.arun())
    await update_price(fleet, 7, 1.25)
    second = await pipeline.arun()
    check_ok(second)
    db = tmp_path / "shop.duckdb"
    assert query(db, "SELECT count(*), count(DISTINCT id) FROM products") == [
        (SHOP_PRODUCT_COUNT, SHOP_PRODUCT_COUNT)
    ]
    assert query(db, "SELECT count(*) FROM reviews") == [(REVIEW_COUNT,)]
    assert query(db, "SELECT price, _fetchpipe_run_id FROM products WHERE id = 7") == [
        (1.25, second.run_id)
    ]


async def test_incremental_second_run_sends_the_stored_cursor(fleet: Fleet, tmp_path: Path) -> None:
    incremental = {"cursor_field": "updated_at", "param": "updated_since", "initial": "2024-01-01"}
    source = products_source(fleet, "cursor", incremental=incremental)
    pipeline = make(tmp_path, source)
    first = await pipeline.arun()
    check_ok(first)
    latest = max(p["updated_at"] for p in shop_products())
    assert first.source("products").cursor == latest
    db = tmp_path / "shop.duckdb"
    assert query(db, "SELECT state->>'cursor' FROM _fetchpipe_state") == [(latest,)]

    await update_price(fleet, 42, 3.5)
    second = await pipeline.arun()
    check_ok(second)
    # Only the product updated after the stored cursor came back: the cursor was sent.
    assert second.source("products").records == 1
    assert second.source("products").cursor > latest
    assert query(db, "SELECT count(*) FROM products") == [(SHOP_PRODUCT_COUNT,)]
    assert query(db, "SELECT price FROM products WHERE id = 42") == [(3.5,)]

    third = await pipeline.arun(full_refresh=True)  # starts again from `initial`
    assert third.source("products").records == SHOP_PRODUCT_COUNT


async def test_replace_keeps_only_the_last_run(fleet: Fleet, tmp_path: Path) -> None:
    pipeline = make(tmp_path, products_source(fleet, "offset_total", write="replace"))
    check_ok(await pipeline.arun())
    second = await pipeline.arun()
    check_ok(second)
    assert query(
        tmp_path / "shop.duckdb", "SELECT _fetchpipe_run_id, count(*) FROM products GROUP BY 1"
    ) == [(second.run_id, SHOP_PRODUCT_COUNT)]


async def test_append_adds_every_run(fleet: Fleet, tmp_path: Path) -> None:
    pipeline = make(tmp_path, products_source(fleet, "none", write="append"))
    check_ok(await pipeline.arun())
    check_ok(await pipeline.arun())
    assert query(tmp_path / "shop.duckdb", "SELECT count(*), count(DISTINCT id) FROM products") == [
        (2 * SHOP_PRODUCT_COUNT, SHOP_PRODUCT_COUNT)
    ]


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
async def test_file_destinations_write_one_file_per_source_per_run(
    fleet: Fleet, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "out"
    incremental = {"cursor_field": "updated_at", "param": "updated_since"}
    pipeline = make(
        tmp_path,
        products_source(fleet, incremental=incremental),
        reviews_source(fleet, write="append"),
        destination=f"{kind}:///{out}",
    )
    first = await pipeline.arun()
    check_ok(first)
    await update_price(fleet, 3, 9.75)
    second = await pipeline.arun()
    check_ok(second)
    reader = "read_parquet" if kind == "parquet" else "read_json"
    products = sorted((out / "products").iterdir())
    reviews = sorted((out / "reviews").iterdir())
    # merge: one file holding every product; append: one file per run.
    assert [p.name for p in products] == [f"{second.run_id}.{kind}"]
    assert [p.name for p in reviews] == [f"{first.run_id}.{kind}", f"{second.run_id}.{kind}"]
    with duckdb.connect() as connection:
        rows = connection.execute(
            f"SELECT count(*), count(DISTINCT id), max(price) FILTER (id = 3) "
            f"FROM {reader}('{products[0]}')"
        ).fetchall()
        assert rows == [(SHOP_PRODUCT_COUNT, SHOP_PRODUCT_COUNT, 9.75)]
        second_reviews = connection.execute(
            f"SELECT count(*) FROM {reader}('{reviews[1]}') WHERE product_id = 3"
        ).fetchall()
        assert second_reviews == [(len(shop_reviews()[3]),)]
    state = query(out / "_fetchpipe.duckdb", "SELECT state->>'cursor' FROM _fetchpipe_state")
    assert state == [(second.source("products").cursor,)]


async def test_a_failing_source_does_not_stop_the_others(fleet: Fleet, tmp_path: Path) -> None:
    broken = {
        "name": "broken",
        "url": fleet.url("/status/500"),
        "incremental": {"cursor_field": "x", "param": "since", "initial": "a"},
    }
    pipeline = make(
        tmp_path,
        broken,
        products_source(fleet),
        reviews_source(fleet),
        defaults={"retry": {"attempts": 2, "wait_initial": 0.01}},
    )
    report = await pipeline.arun()
    assert not report.ok
    failed = report.source("broken")
    assert failed.status == "failed"
    assert (
        failed.reason is not None and "HTTP 500" in failed.reason and "2 attempts" in failed.reason
    )
    assert report.source("products").rows == SHOP_PRODUCT_COUNT
    assert report.source("reviews").rows == REVIEW_COUNT
    db = tmp_path / "shop.duckdb"
    tables = {row[0] for row in query(db, "SELECT table_name FROM information_schema.tables")}
    assert "broken" not in tables
    assert query(db, "SELECT count(*) FROM _fetchpipe_state WHERE source = 'broken'") == [(0,)]


async def test_a_parent_failure_fails_its_children(fleet: Fleet, tmp_path: Path) -> None:
    parent = products_source(fleet, "page_total", records="no.such.path")
    report = await make(tmp_path, parent, reviews_source(fleet)).arun()
    assert report.source("products").status == "failed"
    assert "'no' not found in the body" in (report.source("products").reason or "")
    assert report.source("reviews").status == "failed"
    assert report.source("reviews").reason == "parent source 'products' failed"


async def test_cached_pages_make_a_source_unchanged(fleet: Fleet, tmp_path: Path) -> None:
    cache = {"enabled": True, "ttl": 600, "path": str(tmp_path / "cache.sqlite")}
    pipeline = make(
        tmp_path, products_source(fleet), reviews_source(fleet), defaults={"cache": cache}
    )
    first = await pipeline.arun()
    check_ok(first)
    before = fleet.stats.requests()
    second = await pipeline.arun()
    check_ok(second)
    assert fleet.stats.requests() == before  # nothing was sent
    assert [s.status for s in second.sources] == ["unchanged", "unchanged"]
    assert second.source("reviews").cached_pages == SHOP_PRODUCT_COUNT
    db = tmp_path / "shop.duckdb"
    assert query(db, "SELECT DISTINCT _fetchpipe_run_id FROM products") == [(first.run_id,)]


async def test_select_a_child_fetches_its_parent_without_writing_it(
    fleet: Fleet, tmp_path: Path
) -> None:
    pipeline = make(tmp_path, products_source(fleet), reviews_source(fleet))
    report = await pipeline.arun(select=["reviews"])
    check_ok(report)
    assert [(s.name, s.status) for s in report.sources] == [
        ("products", "fetched"),
        ("reviews", "ok"),
    ]
    tables = {
        r[0]
        for r in query(tmp_path / "shop.duckdb", "SELECT table_name FROM information_schema.tables")
    }
    assert "reviews" in tables and "products" not in tables


# --- behaviours that need a server of their own --------------------------------------------------


@pytest.fixture
async def token_api() -> AsyncIterator[tuple[TestServer, list[str]]]:
    """An API whose first token stops working after page 1; records who sent what."""
    issued: list[str] = []
    seen: list[str] = []

    async def token(request: web.Request) -> web.Response:
        issued.append(f"token-{len(issued) + 1}")
        return web.json_response({"access_token": issued[-1], "token_type": "bearer"})

    async def items(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        sent = request.headers.get("Authorization", "")
        seen.append(f"{page}:{sent}")
        if sent != f"Bearer {issued[-1]}" or (page > 1 and sent == "Bearer token-1"):
            return web.json_response({"error": "expired"}, status=401)
        data = [{"id": page * 10 + i} for i in range(3)] if page <= 3 else []
        return web.json_response({"data": data})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/items", items)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server, seen


async def test_a_401_renews_the_oauth2_token_and_retries_once(
    token_api: tuple[TestServer, list[str]], tmp_path: Path
) -> None:
    server, seen = token_api
    source = {
        "name": "items",
        "url": str(server.make_url("/items")),
        "records": "data",
        "paginate": {"type": "page"},
        "auth": {
            "type": "oauth2_client_credentials",
            "token_url": str(server.make_url("/token")),
            "client_id": "c",
            "client_secret": "s",
        },
    }
    report = await make(tmp_path, source).arun()
    check_ok(report)
    assert report.source("items").rows == 9
    assert seen[:3] == ["1:Bearer token-1", "2:Bearer token-1", "2:Bearer token-2"]


@pytest.fixture
async def two_origins() -> AsyncIterator[tuple[TestServer, TestServer, list[str]]]:
    """Two servers (two origins); the first's page links to the second."""
    seen: list[str] = []

    async def other(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", "-"))
        return web.json_response({"results": [{"id": 2}], "next": None})

    other_app = web.Application()
    other_app.router.add_get("/more", other)
    async with TestServer(other_app, host="127.0.0.1") as far:

        async def first(request: web.Request) -> web.Response:
            return web.json_response({"results": [{"id": 1}], "next": str(far.make_url("/more"))})

        app = web.Application()
        app.router.add_get("/items", first)
        async with TestServer(app, host="127.0.0.1") as near:
            yield near, far, seen


@pytest.mark.parametrize(
    ("allow", "addresses", "outcome"),
    [
        (False, [], "another origin"),
        (True, [], "loopback address"),  # links found in responses: private addresses refused
        (True, ["127.0.0.0/8"], "followed"),
    ],
)
async def test_next_links_to_another_origin(
    two_origins: tuple[TestServer, TestServer, list[str]],
    tmp_path: Path,
    allow: bool,
    addresses: list[str],
    outcome: str,
) -> None:
    near, _, seen = two_origins
    source = {
        "name": "items",
        "url": str(near.make_url("/items")),
        "records": "results",
        "auth": {"type": "bearer", "token": "near-only-token"},
        "paginate": {"type": "next_url", "next_url_path": "next"},
        "allow_cross_origin": allow,
    }
    defaults = {"security": {"allow_addresses": addresses}}
    report = await make(tmp_path, source, defaults=defaults).arun()
    items = report.source("items")
    if outcome == "followed":
        check_ok(report)
        assert items.rows == 2 and seen == ["-"]  # followed, without the credential
    else:
        assert items.status == "failed" and seen == []
        assert items.reason is not None and outcome in items.reason


async def test_known_totals_fetch_the_remaining_pages_at_once_within_host_limits(
    tmp_path: Path,
) -> None:
    in_flight = [0, 0]  # now, most

    async def pages(request: web.Request) -> web.Response:
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        await asyncio.sleep(0.02)
        in_flight[0] -= 1
        page = int(request.query["page"])
        return web.json_response({"items": [{"id": page}], "pages": 30})

    app = web.Application()
    app.router.add_get("/items", pages)
    async with TestServer(app, host="127.0.0.1") as server:
        source = {
            "name": "items",
            "url": str(server.make_url("/items")),
            "records": "items",
            "paginate": {"type": "page", "total_pages_path": "pages"},
        }
        report = await make(tmp_path, source, hosts={"127.0.0.1": {"max_concurrency": 4}}).arun()
    check_ok(report)
    assert report.source("items").rows == 30
    assert in_flight[1] == 4  # pages 2..30 went out together, four at a time


async def test_a_failed_child_keeps_its_parents_incremental_state(
    fleet: Fleet, tmp_path: Path
) -> None:
    incremental = {"cursor_field": "updated_at", "param": "updated_since"}
    parent = products_source(fleet, incremental=incremental)
    broken_child = {
        "name": "extras",
        "url": fleet.url("/status/500?product=") + "{products.id}",
        "records": "",
    }
    pipeline = make(tmp_path, parent, broken_child, defaults={"retry": {"attempts": 1}})
    report = await pipeline.arun()
    products = report.source("products")
    assert report.source("extras").status == "failed"
    assert products.status == "ok" and products.rows == SHOP_PRODUCT_COUNT
    assert products.cursor is None and "not advanced" in (products.reason or "")
    db = tmp_path / "shop.duckdb"
    assert query(db, "SELECT count(*) FROM _fetchpipe_state") == [(0,)]
    again = await pipeline.arun()  # every product again: their children are fetched again
    assert again.source("products").records == SHOP_PRODUCT_COUNT


async def test_a_pipeline_on_the_fast_transport(fleet: Fleet, tmp_path: Path) -> None:
    pytest.importorskip("pyreqwest")
    prefix, auth = AUTHS["bearer"]
    source = products_source(fleet, "link_header", prefix, auth=auth)
    report = await make(
        tmp_path, source, reviews_source(fleet), defaults={"transport": "fast"}
    ).arun()
    check_ok(report)
    assert report.source("products").rows == SHOP_PRODUCT_COUNT
    assert report.source("reviews").rows == REVIEW_COUNT


async def test_run_works_inside_a_running_loop(fleet_in_thread: Fleet, tmp_path: Path) -> None:
    # As in a notebook cell: the blocking run() while this test's loop is running (the API runs
    # on a loop of its own, in a thread, as a remote API would).
    asyncio.get_running_loop()
    source = {
        "name": "products",
        "url": fleet_in_thread.url("/shop/v1/page/products"),
        "params": {"per_page": 40},
        "records": "data.items",
        "primary_key": "id",
        "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
    }
    report = make(tmp_path, source).run()
    check_ok(report)
    assert report.source("products").rows == SHOP_PRODUCT_COUNT
    assert query(tmp_path / "shop.duckdb", "SELECT count(*) FROM products") == [
        (SHOP_PRODUCT_COUNT,)
    ]


LOOKS_TYPED = [
    # Strings DuckDB's reader types by their text: DATE (month-day-year "1-1-0" fails the load,
    # "1-1-1" became year 1; "Infinity"), TIME, TIMESTAMP WITH TIME ZONE, UUID (lower-cased).
    {"id": "1-1-0", "day": "Infinity", "at": "10:00", "ts": "2024-01-01T10:00:00+02:00"},
    {"id": "1-1-1", "day": "2024-01-01", "at": "23:59:59", "ts": "2024-01-02 08:00:00Z"},
    {"id": "12-31-99", "day": "0001-01-01", "at": "00:00", "ts": "2024-01-03T00:00:00Z"},
]
REFS = ["550E8400-E29B-41D4-A716-446655440000", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"]


@pytest.fixture
async def typed_looking_api() -> AsyncIterator[TestServer]:
    """Records whose string fields look like dates, times and UUIDs; a ``count`` field."""

    async def items(request: web.Request) -> web.Response:
        records = [
            {**record, "ref": REFS[i % 2], "count": i} for i, record in enumerate(LOOKS_TYPED)
        ]
        return web.json_response({"items": records})

    app = web.Application()
    app.router.add_get("/items", items)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server


@pytest.mark.parametrize("kind", ["duckdb", "jsonl", "parquet"])
async def test_strings_that_look_like_dates_land_as_sent(
    typed_looking_api: TestServer, tmp_path: Path, kind: str
) -> None:
    source = {
        "name": "items",
        "url": str(typed_looking_api.make_url("/items")),
        "records": "items",
        "primary_key": "id",
        "write": "merge",
    }
    out = tmp_path / ("shop.duckdb" if kind == "duckdb" else "out")
    pipeline = make(tmp_path, source, destination=f"{kind}:///{out}")
    check_ok(await pipeline.arun())
    second = await pipeline.arun()  # a merge into files reads the first run's file back
    check_ok(second)
    assert second.source("items").rows == len(LOOKS_TYPED)
    fields = ("id", "day", "at", "ts", "ref", "count")
    selected = ", ".join(f'"{name}"' for name in fields)
    if kind == "duckdb":
        got = query(out, f"SELECT {selected} FROM items ORDER BY count")
        types = query(out, "SELECT typeof(id), typeof(ts), typeof(ref), typeof(count) FROM items")
        assert set(types) == {("VARCHAR", "VARCHAR", "VARCHAR", "BIGINT")}
    else:
        [written] = (out / "items").iterdir()
        if kind == "jsonl":
            lines = [json.loads(line) for line in written.read_text().splitlines()]
            got = sorted((tuple(line[f] for f in fields) for line in lines), key=lambda r: r[-1])
        else:
            sql = f"SELECT {selected} FROM read_parquet('{written}') ORDER BY count"
            with duckdb.connect() as connection:
                got = connection.execute(sql).fetchall()
    expected = [
        (*(record[f] for f in fields[:4]), REFS[i % 2], i) for i, record in enumerate(LOOKS_TYPED)
    ]
    assert got == expected
