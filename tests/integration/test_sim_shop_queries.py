"""The simulated shop's POST search, cursor-header listing and GraphQL endpoint, asked directly;
and the fleet without graphql-core (a clear answer from that route, the rest unchanged)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_PRODUCT_COUNT, SHOP_TOKEN, shop_products
from fetchpipe.sim.shop_search import CURSOR_HEADER

pytestmark = pytest.mark.fleet(hosts=1)

RELAY = (
    "query($after: String) { products(first: 40, after: $after) { "
    "edges { cursor node { id } } pageInfo { endCursor hasNextPage hasPreviousPage } "
    "totalCount } }"
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, status: int = 200, **kwargs: Any
) -> Any:
    async with session.post(url, json=body, **kwargs) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def test_the_relay_connection_walks_every_product_once(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    ids: list[int] = []
    after = None
    requests = 0
    for _ in range(20):  # bounded: 7 pages expected
        requests += 1
        body = await post(
            session, fleet.url("/shop/graphql"), {"query": RELAY, "variables": {"after": after}}
        )
        assert "errors" not in body
        products = body["data"]["products"]
        assert products["totalCount"] == SHOP_PRODUCT_COUNT
        assert products["pageInfo"]["hasPreviousPage"] is (after is not None)
        ids += [edge["node"]["id"] for edge in products["edges"]]
        after = products["pageInfo"]["endCursor"]
        assert after == products["edges"][-1]["cursor"]  # not null on the last page either
        if not products["pageInfo"]["hasNextPage"]:
            break
    assert requests == 7
    assert ids == [p["id"] for p in shop_products()]


async def test_graphql_answers_errors_as_graphql_does(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    url = fleet.url("/shop/graphql")
    body = await post(session, url, {"query": "{ products(first: 0) { nodes { id } } }"})
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == ["first must be between 1 and 100, not 0"]
    body = await post(session, url, {"query": "{ products(first: 2) { nodes { id supplier } } }"})
    assert body["data"]["products"]["nodes"] == [
        {"id": 1, "supplier": None},
        {"id": 2, "supplier": None},
    ]
    assert [e["path"] for e in body["errors"]] == [
        ["products", "nodes", 0, "supplier"],
        ["products", "nodes", 1, "supplier"],
    ]
    body = await post(session, url, {"query": "{ products { nodes { id } "})
    assert body["errors"][0]["message"].startswith("Syntax Error")
    body = await post(session, url, {"variables": {}}, status=400)
    assert body == {"errors": [{"message": "the body must be a JSON object with a query string"}]}
    query = "query($id: Int!) { product(id: $id) { id } }"
    body = await post(session, url, {"query": query, "variables": {"id": "3"}})
    assert body["data"] is None and "Int cannot represent" in body["errors"][0]["message"]
    body = await post(session, url, {"query": query, "variables": {"id": 3}})
    assert body == {"data": {"product": {"id": 3}}}


async def test_graphql_behind_each_prefix_checks_its_credentials(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    query = {"query": "{ products(first: 1) { nodes { id } } }"}
    url = fleet.url("/shop-bearer/graphql")
    await post(session, url, query, status=401)
    headers = {"Authorization": f"Bearer {SHOP_TOKEN}"}
    body = await post(session, url, query, headers=headers)
    assert body == {"data": {"products": {"nodes": [{"id": 1}]}}}


async def test_the_search_says_has_more_and_gives_a_cursor_on_its_last_page(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    url = fleet.url("/shop/v1/search/products")
    expected = [p["id"] for p in shop_products() if p["in_stock"] and "eco" in p["tags"]]
    ids: list[int] = []
    after = None
    for _ in range(len(expected) // 7 + 2):  # bounded
        query = {"filter": {"tag": "eco", "in_stock": True}, "page": {"size": 7, "after": after}}
        body = await post(session, url, query)
        ids += [hit["id"] for hit in body["hits"]]
        after = body["page"]["next"]
        assert after is not None
        if not body["page"]["has_more"]:
            break
    assert ids == expected
    last = await post(
        session, url, {"filter": {"tag": "eco", "in_stock": True}, "page": {"after": after}}
    )
    assert last == {"hits": [], "page": {"next": None, "has_more": False}}
    await post(session, url, {"page": {"size": 0}}, status=400)
    await post(session, url, {"page": {"after": "not-a-cursor"}}, status=400)


async def test_the_header_listing_reads_its_cursor_from_the_header(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    url = fleet.url("/shop/v1/header/products")
    ids: list[int] = []
    headers: dict[str, str] = {}
    requests = 0
    for _ in range(20):  # bounded: 5 pages expected
        requests += 1
        async with session.get(url, params={"limit": "50"}, headers=headers) as resp:
            body = await resp.json()
        ids += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        headers = {CURSOR_HEADER: body["next_cursor"]}
    assert requests == 5
    assert ids == [p["id"] for p in shop_products()]


def test_without_graphql_core_the_route_says_what_to_install_and_the_rest_runs() -> None:
    script = textwrap.dedent(
        """
        import json, sys, urllib.error, urllib.request
        sys.modules["graphql"] = None  # as if graphql-core were not installed
        from fetchpipe.sim import Fleet
        with Fleet(minute=0.01, hosts=1).running_in_thread() as fleet:
            with urllib.request.urlopen(fleet.url("/shop/v1/all/products")) as resp:
                products = json.loads(resp.read())["count"]
            request = urllib.request.Request(
                fleet.url("/shop/graphql"), data=b'{"query": "{ x }"}', method="POST"
            )
            try:
                urllib.request.urlopen(request)
            except urllib.error.HTTPError as exc:
                print(json.dumps([products, exc.code, json.loads(exc.read())]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    products, status, body = json.loads(done.stdout)
    assert products == SHOP_PRODUCT_COUNT and status == 501
    assert body["errors"][0]["message"] == (
        "the GraphQL endpoint needs graphql-core, which is not installed. "
        "HINT: pip install 'fetchpipe[sim]'"
    )


def test_the_fleet_does_not_import_graphql_until_asked() -> None:
    script = (
        "import sys\nfrom fetchpipe.sim import Fleet\n"
        "with Fleet(minute=0.01, hosts=1).running_in_thread():\n    pass\n"
        "print('graphql' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
