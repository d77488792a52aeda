"""The simulated shop API: pagination styles, incremental filter, reviews, auth and updates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

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
)

pytestmark = pytest.mark.fleet(hosts=1)

Walk = tuple[list[dict[str, Any]], int]
"""(records in order, number of requests)."""


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def get(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> Any:
    async with session.get(url, **kwargs) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def walk_page(s: aiohttp.ClientSession, url: str, params: dict[str, str]) -> Walk:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        body = await get(s, url, params={**params, "page": str(page), "per_page": "30"})
        if not body["data"]["items"]:
            assert page == body["meta"]["total_pages"] + 1
            return out, page
        out += body["data"]["items"]
        page += 1


async def walk_offset(s: aiohttp.ClientSession, url: str, params: dict[str, str]) -> Walk:
    out: list[dict[str, Any]] = []
    requests = 0
    while True:
        body = await get(s, url, params={**params, "offset": str(len(out)), "limit": "40"})
        requests += 1
        out += body["items"]
        if len(body["items"]) < 40:
            assert body["total"] == len(out)
            return out, requests


async def walk_cursor(s: aiohttp.ClientSession, url: str, params: dict[str, str]) -> Walk:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    requests = 0
    while True:
        query = params if cursor is None else {**params, "cursor": cursor}
        body = await get(s, url, params=query)
        requests += 1
        out += body["data"]["items"]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return out, requests
        assert str(cursor).isascii() and not str(cursor).isdigit()


async def walk_link(s: aiohttp.ClientSession, url: str, params: dict[str, str]) -> Walk:
    out: list[dict[str, Any]] = []
    next_url: str | None = url
    requests = 0
    while next_url is not None:
        async with s.get(next_url, params=params if requests == 0 else None) as resp:
            assert resp.status == 200
            out += await resp.json()
            link = resp.links.get("next")
            next_url = str(link["url"]) if link else None
            if next_url is not None:
                assert next_url.startswith("http://127.0.0.1:")
        requests += 1
    return out, requests


async def walk_next(s: aiohttp.ClientSession, url: str, params: dict[str, str]) -> Walk:
    out: list[dict[str, Any]] = []
    body = await get(s, url, params=params)
    requests = 1
    while True:
        out += body["results"]
        if body["next"] is None:
            return out, requests
        assert body["next"].startswith("http://127.0.0.1:")
        body = await get(s, body["next"])
        requests += 1


async def walk_all(s: aiohttp.ClientSession, url: str, params: dict[str, str]) -> Walk:
    body = await get(s, url, params=params)
    assert body["count"] == len(body["products"])
    return body["products"], 1


WALKS = {
    "page": walk_page,
    "offset": walk_offset,
    "cursor": walk_cursor,
    "link": walk_link,
    "next": walk_next,
    "all": walk_all,
}
PAGES = {"page": 10, "offset": 7, "cursor": 10, "link": 10, "next": 10, "all": 1}


@pytest.mark.parametrize("style", list(WALKS))
async def test_each_style_walks_every_product_once(
    fleet: Fleet, session: aiohttp.ClientSession, style: str
) -> None:
    path = f"/shop/v1/{style}/products"
    items, requests = await WALKS[style](session, fleet.url(path), {})
    assert [p["id"] for p in items] == list(range(1, SHOP_PRODUCT_COUNT + 1))
    assert items == shop_products()
    assert requests == PAGES[style]
    assert fleet.stats.requests(path=path) == requests


@pytest.mark.parametrize("style", list(WALKS))
async def test_updated_since_filters(
    fleet: Fleet, session: aiohttp.ClientSession, style: str
) -> None:
    since = "2024-10-01T00:00:00Z"
    expected = [p["id"] for p in shop_products() if p["updated_at"] > since]
    assert 0 < len(expected) < SHOP_PRODUCT_COUNT
    url = fleet.url(f"/shop/v1/{style}/products")
    items, _ = await WALKS[style](session, url, {"updated_since": since})
    assert [p["id"] for p in items] == expected
    # Offsets given as +00:00 mean the same; a timestamp past every product gives nothing.
    same, _ = await WALKS[style](session, url, {"updated_since": "2024-10-01T00:00:00+00:00"})
    assert same == items
    none, _ = await WALKS[style](session, url, {"updated_since": "2025-01-02T00:00:00Z"})
    assert none == []


async def test_product_shape_and_bad_params(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    products = shop_products()
    assert products == shop_products()  # deterministic
    times = sorted(p["updated_at"] for p in products)
    assert times[0].startswith("2024-") and times[-1].startswith("2024-")
    assert len(set(times)) == SHOP_PRODUCT_COUNT
    assert [p["updated_at"] for p in products] != times  # not in id order
    first = products[0]
    assert set(first) >= {"id", "name", "price", "updated_at", "tags", "dims"}
    assert isinstance(first["tags"], list) and set(first["dims"]) == {"w", "h", "d"}
    for query in ("updated_since=yesterday", "cursor=!!", "page=0", "per_page=1000"):
        style = "cursor" if query.startswith("cursor") else "page"
        async with session.get(fleet.url(f"/shop/v1/{style}/products?{query}")) as resp:
            assert resp.status == 400
            assert "error" in await resp.json()


async def test_reviews(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    counts = set()
    review_ids: list[int] = []
    for pid in range(1, 41):
        body = await get(session, fleet.url(f"/shop/v1/products/{pid}/reviews"))
        reviews = body["reviews"]
        counts.add(len(reviews))
        for r in reviews:
            assert r["product_id"] == pid
            assert 1 <= r["stars"] <= 5
            review_ids.append(r["id"])
    assert counts == {0, 1, 2, 3}
    assert len(set(review_ids)) == len(review_ids)
    async with session.get(fleet.url("/shop/v1/products/999/reviews")) as resp:
        assert resp.status == 404
    assert fleet.stats.requests(path="/shop/v1/products/1/reviews") == 1


async def assert_401(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> None:
    async with session.get(url, **kwargs) as resp:
        assert resp.status == 401
        assert resp.content_type == "application/json"
        assert "error" in await resp.json()


async def test_bearer_key_and_basic_auth(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    def url(prefix: str) -> str:
        return fleet.url(f"/{prefix}/v1/all/products")

    bearer = url("shop-bearer")
    assert (await get(session, bearer, headers={"Authorization": f"Bearer {SHOP_TOKEN}"}))[
        "count"
    ] == SHOP_PRODUCT_COUNT
    await assert_401(session, bearer)
    await assert_401(session, bearer, headers={"Authorization": "Bearer nope"})

    key = url("shop-key")
    await get(session, key, headers={"X-API-Key": SHOP_API_KEY})
    await get(session, key, params={"api_key": SHOP_API_KEY})
    await assert_401(session, key)
    await assert_401(session, key, headers={"X-API-Key": "nope"})
    await assert_401(session, key, params={"api_key": "nope"})

    basic = url("shop-basic")
    good = aiohttp.encode_basic_auth(SHOP_BASIC_USER, SHOP_BASIC_PASSWORD)
    await get(session, basic, headers={"Authorization": good})
    await assert_401(session, basic)
    wrong = aiohttp.encode_basic_auth(SHOP_BASIC_USER, "nope")
    await assert_401(session, basic, headers={"Authorization": wrong})
    await assert_401(session, basic, headers={"Authorization": "Basic !!"})

    # The guarded mirrors serve every route, children included; no auth on /shop/.
    reviews = fleet.url("/shop-bearer/v1/products/3/reviews")
    await get(session, reviews, headers={"Authorization": f"Bearer {SHOP_TOKEN}"})
    await assert_401(session, reviews)
    await get(session, url("shop"))
    assert fleet.stats.requests(path="/shop-key/v1/all/products") == 5

    # A next-page link of the key mirror does not repeat the key.
    first = await get(session, fleet.url("/shop-key/v1/next/products?api_key=" + SHOP_API_KEY))
    assert "api_key" not in first["next"]


async def token(session: aiohttp.ClientSession, fleet: Fleet, **extra: str) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_id": SHOP_CLIENT_ID,
        "client_secret": SHOP_CLIENT_SECRET,
    }
    query = {"expires_in": extra.pop("expires_in")} if "expires_in" in extra else None
    async with session.post(
        fleet.url("/shop/oauth/token"), data={**form, **extra}, params=query
    ) as resp:
        return resp.status, await resp.json()


async def test_oauth_client_credentials(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    url = fleet.url("/shop-oauth/v1/page/products")
    status, body = await token(session, fleet, scope="read")
    assert status == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read"
    await get(session, url, headers={"Authorization": f"Bearer {body['access_token']}"})
    await assert_401(session, url)
    await assert_401(session, url, headers={"Authorization": f"Bearer {SHOP_TOKEN}"})

    status, body = await token(session, fleet, client_secret="nope")
    assert status == 401
    status, body = await token(session, fleet, grant_type="password")
    assert status == 400
    # Client authentication by HTTP Basic instead of form fields.
    async with session.post(
        fleet.url("/shop/oauth/token"),
        data={"grant_type": "client_credentials"},
        headers={"Authorization": aiohttp.encode_basic_auth(SHOP_CLIENT_ID, SHOP_CLIENT_SECRET)},
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["access_token"]

    status, short = await token(session, fleet, expires_in="0.3")
    assert status == 200
    assert short["expires_in"] == 0.3
    headers = {"Authorization": f"Bearer {short['access_token']}"}
    await get(session, url, headers=headers)
    await asyncio.sleep(0.35)
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 401
        assert "expired" in (await resp.json())["error"]
    assert fleet.stats.requests(path="/shop/oauth/token") == 5


async def test_update_changes_price_and_time(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    before = await get(session, fleet.url("/shop/v1/all/products"))
    latest = max(p["updated_at"] for p in before["products"])
    async with session.post(fleet.url("/shop/__update?id=7&price=12.5")) as resp:
        assert resp.status == 200
        updated = await resp.json()
    assert updated["id"] == 7 and updated["price"] == 12.5
    assert updated["updated_at"] > latest

    changed = await get(
        session, fleet.url("/shop/v1/cursor/products"), params={"updated_since": latest}
    )
    assert changed["data"]["items"] == [updated]
    async with session.post(fleet.url("/shop/__update?id=8&price=1")) as resp:
        second = await resp.json()
    assert second["updated_at"] > updated["updated_at"]
    async with session.post(fleet.url("/shop/__update?id=999&price=1")) as resp:
        assert resp.status == 404
    async with session.post(fleet.url("/shop/__update?id=1")) as resp:
        assert resp.status == 400
    assert fleet.stats.requests(path="/shop/__update") == 4

    # Every fleet starts from the same data.
    async with Fleet(hosts=1, minute=0.01) as other:
        fresh = await get(session, other.url("/shop/v1/all/products"))
    assert fresh == before
