"""JSONPath in pipelines, end to end: records and pagination paths written as queries load
every record, from the simulated shop and from a server shaped like a Relay connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe.pipeline import Pipeline
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_PRODUCT_COUNT, shop_products

pytestmark = pytest.mark.fleet(hosts=1)

NODES = 130  # over 5 pages of 30: the last one short
PAGE = 30


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _pipeline(tmp_path: Path, source: dict[str, Any]) -> Pipeline:
    return Pipeline.from_dict(
        {
            "name": "jp",
            "destination": f"duckdb:///{tmp_path / 'jp.duckdb'}",
            "sources": [{"primary_key": "id", "write": "merge", **source}],
        }
    )


@pytest.mark.parametrize(
    ("listing", "params", "records", "paginate"),
    [
        (
            "cursor",
            {"limit": 40},
            "$.data.items[*]",
            {"type": "cursor", "cursor_path": "$.meta.next_cursor"},
        ),
        (
            "next",
            {"per_page": 40},
            "$.results[?@.id > 0]",
            {"type": "next_url", "next_url_path": "$['next']"},
        ),
        (
            "page",
            {"per_page": 40},
            "$.data.items",
            {"type": "page", "total_pages_path": "$.meta.total_pages"},
        ),
        ("offset", {}, "$.items[*]", {"type": "offset", "limit": 30, "total_path": "$..total"}),
    ],
)
async def test_queries_load_every_shop_product(
    fleet: Fleet,
    tmp_path: Path,
    listing: str,
    params: dict[str, Any],
    records: str,
    paginate: dict[str, Any],
) -> None:
    source = {
        "name": "products",
        "url": fleet.url(f"/shop/v1/{listing}/products"),
        "params": params,
        "records": records,
        "paginate": paginate,
    }
    report = await _pipeline(tmp_path, source).arun()
    assert report.ok, [(s.name, s.reason) for s in report.failed]
    assert report.source("products").rows == SHOP_PRODUCT_COUNT
    expected = {(p["id"], p["name"]) for p in shop_products()}
    assert set(_rows(tmp_path / "jp.duckdb", "SELECT id, name FROM products")) == expected


@pytest.fixture
async def relay_api() -> AsyncIterator[tuple[TestServer, list[str | None]]]:
    """Products as a Relay connection (edges of nodes, pageInfo with the end cursor), paged
    with ``?after=``; HAL-style ``links`` with a ``next`` link too. Records the cursors sent."""
    sent: list[str | None] = []

    async def products(request: web.Request) -> web.Response:
        after = request.query.get("after")
        sent.append(after)
        start = int(after.removeprefix("c")) if after else 0
        nodes = [
            {"id": i, "name": f"node {i}"} for i in range(start + 1, min(start + PAGE, NODES) + 1)
        ]
        end = nodes[-1]["id"] if nodes else start
        more = end < NODES
        links = [{"rel": "self", "href": str(request.rel_url)}]
        if more:
            links.append({"rel": "next", "href": f"/products?after=c{end}"})
        body = {
            "data": {
                "products": {
                    "edges": [{"cursor": f"c{n['id']}", "node": n} for n in nodes],
                    "pageInfo": {"endCursor": f"c{end}" if more else None, "hasNextPage": more},
                }
            },
            "links": links,
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/products", products)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server, sent


async def test_a_relay_connection_loads_every_node(
    relay_api: tuple[TestServer, list[str | None]], tmp_path: Path
) -> None:
    server, sent = relay_api
    source = {
        "name": "products",
        "url": str(server.make_url("/products")),
        "records": "$.data.products.edges[*].node",
        "paginate": {
            "type": "cursor",
            "cursor_path": "$.data.products.pageInfo.endCursor",
            "param": "after",
        },
    }
    report = await _pipeline(tmp_path, source).arun()
    assert report.ok, [(s.name, s.reason) for s in report.failed]
    assert sent == [None, "c30", "c60", "c90", "c120"]
    db = tmp_path / "jp.duckdb"
    assert _rows(db, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM products") == [
        (NODES, NODES, 1, NODES)
    ]
    assert _rows(db, "SELECT name FROM products WHERE id = 77") == [("node 77",)]


async def test_a_next_link_found_by_a_filter(
    relay_api: tuple[TestServer, list[str | None]], tmp_path: Path
) -> None:
    server, sent = relay_api
    source = {
        "name": "products",
        "url": str(server.make_url("/products")),
        "records": "$.data.products.edges[*].node",
        "paginate": {"type": "next_url", "next_url_path": "$.links[?@.rel == 'next'].href"},
    }
    report = await _pipeline(tmp_path, source).arun()
    assert report.ok, [(s.name, s.reason) for s in report.failed]
    assert report.source("products").rows == NODES
    assert len(sent) == 5


async def test_a_cursor_query_matching_several_values_fails_the_source(
    relay_api: tuple[TestServer, list[str | None]], tmp_path: Path
) -> None:
    server, sent = relay_api
    source = {
        "name": "products",
        "url": str(server.make_url("/products")),
        "records": "$.data.products.edges[*].node",
        "paginate": {"type": "cursor", "cursor_path": "$..cursor", "param": "after"},
    }
    report = await _pipeline(tmp_path, source).arun()
    failed = report.source("products")
    assert failed.status == "failed" and failed.rows == 0
    assert failed.reason is not None
    assert "cursor_path '$..cursor' matched 30 values where one is needed" in failed.reason
    assert sent == [None]
