"""A small "shop" API on the simulated fleet: products under every pagination style, reviews
as a child endpoint, and mirrors of the product routes behind each kind of authentication.

Routes (``{p}`` is ``shop`` for no authentication, or one of ``shop-bearer``, ``shop-key``,
``shop-basic``, ``shop-oauth``):

- ``GET /{p}/v1/page/products?page=N&per_page=25``:
  ``{"data": {"items": [...]}, "meta": {"page": N, "total_pages": T}}``; empty after the end.
- ``GET /{p}/v1/offset/products?offset=0&limit=25``: ``{"items": [...], "total": N}``.
- ``GET /{p}/v1/cursor/products?cursor=C&limit=25``:
  ``{"data": {"items": [...]}, "meta": {"next_cursor": "..." | null}}``.
- ``GET /{p}/v1/link/products?page=N&per_page=25``: a JSON list; the next page is the absolute
  URL of the ``Link: <...>; rel="next"`` header.
- ``GET /{p}/v1/next/products?page=N&per_page=25``: ``{"results": [...], "next": URL | null}``.
- ``GET /{p}/v1/all/products``: ``{"products": [...], "count": N}`` in one response.
- ``GET /{p}/v1/products/{id}/reviews``: ``{"reviews": [...]}``.
- ``GET /{p}/v1/days?count=N``: ``{"days": [{"id": 1, "date": "2024-01-01"}, ...]}``.
- ``GET /{p}/v1/days/{id}/events?page=N&per_page=100&per_day=200``: ``{"events": [...]}``, a
  day's events by page number (empty after the end); deterministic, ids unique across days.
- ``POST /shop/oauth/token``: client-credentials grant; ``?expires_in=S`` sets the lifetime.
- ``POST /shop/__update?id=N&price=X``: new price, and an ``updated_at`` later than all others.

Every product listing accepts ``updated_since=ISO`` (products updated strictly after it).
Products are in id order. Wrong or missing credentials get 401 with a JSON body.

Every GET route also takes two fault parameters: ``delay_ms=D`` answers after D milliseconds,
and ``fail=F`` (0 to 1) answers 503 to the first request of a fraction F of the distinct URLs
(chosen by a hash of the URL, so the same ones each time), and normally after that.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import hdrs, web

from fetchpipe.sim.params import BadParam as _BadParam
from fetchpipe.sim.params import int_param as _int
from fetchpipe.sim.params import json_response as _json

__all__ = [
    "SHOP_API_KEY",
    "SHOP_API_KEY_HEADER",
    "SHOP_API_KEY_PARAM",
    "SHOP_BASIC_PASSWORD",
    "SHOP_BASIC_USER",
    "SHOP_CLIENT_ID",
    "SHOP_CLIENT_SECRET",
    "SHOP_PRODUCT_COUNT",
    "SHOP_SECOND_API_KEY",
    "SHOP_SECOND_TOKEN",
    "SHOP_TOKEN",
    "SHOP_TOKEN_EXPIRES_IN",
    "ShopState",
    "add_shop_route",
    "add_shop_routes",
    "shop_day_events",
    "shop_products",
    "shop_reviews",
]

SHOP_PRODUCT_COUNT = 250
SHOP_TOKEN = "shop-token"
"""Static bearer token of ``/shop-bearer/v1/``."""
SHOP_API_KEY = "sim-api-key-42"
"""API key of ``/shop-key/v1/``, in the ``X-API-Key`` header or the ``api_key`` parameter.

Unlike the route's name: a secret is masked wherever it shows, so a key equal to a part of a
URL would hide that part in plans and reports."""
SHOP_SECOND_TOKEN = "shop-token-2"
SHOP_SECOND_API_KEY = "sim-api-key-43"
"""A second bearer token and API key the shop accepts as well: for a source with several
credentials (``tokens:``, ``values:``)."""
SHOP_API_KEY_HEADER = "X-API-Key"
SHOP_API_KEY_PARAM = "api_key"
SHOP_BASIC_USER = "shop"
SHOP_BASIC_PASSWORD = "shop-pass"
SHOP_CLIENT_ID = "shop-client"
SHOP_CLIENT_SECRET = "shop-secret"
SHOP_TOKEN_EXPIRES_IN = 3600
"""Default lifetime in seconds of tokens from ``POST /shop/oauth/token``."""

_DEFAULT_PER_PAGE = 25
_MAX_PER_PAGE = 100
_YEAR_START = datetime(2024, 1, 1, tzinfo=UTC)
_YEAR_SECONDS = 366 * 24 * 3600
_TAGS = ("new", "sale", "eco", "bundle", "gift", "outdoor", "kitchen", "kids")
_NOUNS = ("Lamp", "Chair", "Mug", "Kettle", "Backpack", "Notebook", "Tent", "Blanket")
_ADJECTIVES = ("Red", "Compact", "Classic", "Travel", "Deluxe", "Bamboo", "Steel", "Cozy")
_PREFIX = r"{prefix:shop(?:-bearer|-key|-basic|-oauth)?}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shop_products() -> list[dict[str, Any]]:
    """The initial products: ids 1..250, ``updated_at`` spread over 2024 in shuffled order."""
    rng = random.Random(2024)
    offsets = sorted(rng.sample(range(_YEAR_SECONDS), SHOP_PRODUCT_COUNT))
    rng.shuffle(offsets)
    products = []
    for i in range(1, SHOP_PRODUCT_COUNT + 1):
        tags = sorted(rng.sample(_TAGS, rng.randint(0, 3)))
        products.append(
            {
                "id": i,
                "name": f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {i}",
                "price": round(rng.uniform(2, 300), 2),
                "updated_at": _iso(_YEAR_START + timedelta(seconds=offsets[i - 1])),
                "tags": tags,
                "dims": {
                    "w": rng.randint(1, 100),
                    "h": rng.randint(1, 100),
                    "d": rng.randint(1, 100),
                },
                "in_stock": rng.random() < 0.8,
            }
        )
    return products


def shop_reviews() -> dict[int, list[dict[str, Any]]]:
    """The reviews of each product id: 0 to 3 each, review ids 1.. in product order."""
    rng = random.Random(4202)
    ids = itertools.count(1)
    out: dict[int, list[dict[str, Any]]] = {}
    for pid in range(1, SHOP_PRODUCT_COUNT + 1):
        out[pid] = [
            {
                "id": next(ids),
                "product_id": pid,
                "stars": rng.randint(1, 5),
                "title": f"Review of product {pid}",
            }
            for _ in range(rng.randint(0, 3))
        ]
    return out


class ShopState:
    """The shop's data and issued OAuth tokens, owned by one fleet."""

    __slots__ = ("failed", "products", "reviews", "tokens")

    def __init__(self) -> None:
        self.products = shop_products()
        self.reviews = shop_reviews()
        self.tokens: dict[str, float] = {}
        """Access token -> ``time.monotonic()`` deadline."""
        self.failed: set[str] = set()
        """URLs that already got their injected 503 (see ``fail=``)."""

    def updated_since(self, since: datetime | None) -> list[dict[str, Any]]:
        """Products updated strictly after `since` (all if None), in id order."""
        if since is None:
            return self.products
        return [p for p in self.products if _parse_time(p["updated_at"]) > since]


SHOP = web.AppKey("fetchpipe_sim_shop", ShopState)


# -- helpers -----------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"error": message}, status=status, headers=headers)


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _since(request: web.Request) -> datetime | None:
    raw = request.query.get("updated_since")
    if raw is None or raw == "":
        return None
    try:
        return _parse_time(raw.replace(" ", "+"))  # an unencoded "+" arrives as a space
    except ValueError:
        raise _BadParam("updated_since must be an ISO 8601 timestamp") from None


def _next_url(request: web.Request, page: int) -> str:
    """Absolute URL of `page` of this listing, keeping the other parameters but no API key."""
    query = {k: v for k, v in request.query.items() if k not in ("page", SHOP_API_KEY_PARAM)}
    query["page"] = str(page)
    return str(request.url.with_query(query))


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"after:{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "after":
            raise ValueError(kind)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _BadParam("invalid cursor") from None


def _page_slice(request: web.Request) -> tuple[list[dict[str, Any]], int, int, int]:
    """(filtered products, page, per_page, total_pages) of a ``page``-numbered listing."""
    products = request.app[SHOP].updated_since(_since(request))
    page = _int(request, "page", 1, 1)
    per_page = _int(request, "per_page", _DEFAULT_PER_PAGE, 1, _MAX_PER_PAGE)
    total_pages = math.ceil(len(products) / per_page)
    return products[(page - 1) * per_page : page * per_page], page, per_page, total_pages


# -- authentication ----------------------------------------------------------------------------


def _unauthorized(message: str, challenge: str) -> web.Response:
    return _error(401, message, {hdrs.WWW_AUTHENTICATE: challenge})


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _basic(request: web.Request) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header, or None."""
    scheme, _, encoded = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def _check_auth(request: web.Request) -> web.Response | None:
    """None if the request may see its route's prefix, else the 401 answer."""
    prefix = request.match_info.get("prefix", "shop")
    if prefix == "shop-bearer":
        if _bearer(request) not in (SHOP_TOKEN, SHOP_SECOND_TOKEN):
            return _unauthorized("invalid or missing bearer token", 'Bearer realm="shop"')
    elif prefix == "shop-key":
        keys = (request.headers.get(SHOP_API_KEY_HEADER), request.query.get(SHOP_API_KEY_PARAM))
        if SHOP_API_KEY not in keys and SHOP_SECOND_API_KEY not in keys:
            return _unauthorized("invalid or missing API key", 'ApiKey realm="shop"')
    elif prefix == "shop-basic":
        if _basic(request) != (SHOP_BASIC_USER, SHOP_BASIC_PASSWORD):
            return _unauthorized("invalid or missing credentials", 'Basic realm="shop"')
    elif prefix == "shop-oauth":
        token = _bearer(request)
        deadline = request.app[SHOP].tokens.get(token) if token is not None else None
        if deadline is None:
            return _unauthorized("unknown access token", 'Bearer realm="shop"')
        if time.monotonic() >= deadline:
            return _unauthorized(
                "access token expired", 'Bearer realm="shop", error="invalid_token"'
            )
    return None


def _shop_route(handler: Handler) -> Handler:
    """Check the prefix's credentials, then run `handler`; a bad parameter gets 400."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        denied = _check_auth(request)
        if denied is not None:
            return denied
        try:
            fault = await _fault(request)
            if fault is not None:
                return fault
            return await handler(request)
        except _BadParam as exc:
            return _error(400, str(exc))

    wrapped.__doc__ = handler.__doc__
    return wrapped


_FAULT_PARAMS = ("fail", "delay_ms")


async def _fault(request: web.Request) -> web.Response | None:
    """Apply ``delay_ms`` and ``fail``: the 503 answer when this request is one to fail."""
    delay = _int(request, "delay_ms", 0, 0, 60_000)
    if delay:
        await asyncio.sleep(delay / 1000)
    raw = request.query.get("fail")
    if raw is None:
        return None
    try:
        fraction = float(raw)
    except ValueError:
        raise _BadParam("fail must be a number between 0 and 1") from None
    if not 0 <= fraction <= 1:
        raise _BadParam("fail must be a number between 0 and 1")
    query = sorted((k, v) for k, v in request.query.items() if k not in _FAULT_PARAMS)
    url = f"{request.path}?{query}"
    digest = hashlib.sha256(url.encode()).digest()
    if int.from_bytes(digest[:4], "big") / 2**32 >= fraction:
        return None
    failed = request.app[SHOP].failed
    if url in failed:
        return None
    failed.add(url)
    return _error(503, "injected failure (fail=): try again")


# -- handlers ----------------------------------------------------------------------------------


def shop_day_events(day: int, per_day: int) -> list[dict[str, Any]]:
    """The events of day ``day`` (1-based): deterministic, ids unique across days."""
    rng = random.Random(day)
    date = _YEAR_START + timedelta(days=day - 1)
    return [
        {
            "id": day * 100_000 + i,
            "day_id": day,
            "at": _iso(date + timedelta(seconds=rng.randrange(86_400))),
            "kind": rng.choice(("view", "cart", "order", "refund")),
            "amount": round(rng.uniform(0, 500), 2),
            "meta": {"device": rng.choice(("web", "ios", "android")), "n": i},
        }
        for i in range(per_day)
    ]


async def days(request: web.Request) -> web.StreamResponse:
    """``count`` days from 2024-01-01."""
    count = _int(request, "count", 50, 0, 366)
    out = [
        {"id": d, "date": _iso(_YEAR_START + timedelta(days=d - 1))[:10]}
        for d in range(1, count + 1)
    ]
    return _json({"days": out})


async def day_events(request: web.Request) -> web.StreamResponse:
    """A day's events by page number; an empty list after the last page."""
    day = int(request.match_info["id"])
    page = _int(request, "page", 1, 1)
    per_page = _int(request, "per_page", 100, 1, 1000)
    per_day = _int(request, "per_day", 200, 0, 100_000)
    start = (page - 1) * per_page
    events = shop_day_events(day, per_day)[start : start + per_page] if start < per_day else []
    return _json({"events": events})


async def page_products(request: web.Request) -> web.StreamResponse:
    """Products by page number, with the number of pages in ``meta.total_pages``."""
    items, page, _, total_pages = _page_slice(request)
    return _json({"data": {"items": items}, "meta": {"page": page, "total_pages": total_pages}})


async def offset_products(request: web.Request) -> web.StreamResponse:
    """Products by offset and limit, with the number of matching products in ``total``."""
    products = request.app[SHOP].updated_since(_since(request))
    offset = _int(request, "offset", 0, 0)
    limit = _int(request, "limit", _DEFAULT_PER_PAGE, 1, _MAX_PER_PAGE)
    return _json({"items": products[offset : offset + limit], "total": len(products)})


async def cursor_products(request: web.Request) -> web.StreamResponse:
    """Products after an opaque cursor; ``meta.next_cursor`` is null on the last page."""
    products = request.app[SHOP].updated_since(_since(request))
    limit = _int(request, "limit", _DEFAULT_PER_PAGE, 1, _MAX_PER_PAGE)
    cursor = request.query.get("cursor")
    if cursor:
        after = _decode_cursor(cursor)
        products = [p for p in products if p["id"] > after]
    items = products[:limit]
    next_cursor = _encode_cursor(items[-1]["id"]) if len(products) > limit else None
    return _json({"data": {"items": items}, "meta": {"next_cursor": next_cursor}})


async def link_products(request: web.Request) -> web.StreamResponse:
    """A page of products as a JSON list; the next page is in the ``Link`` header."""
    items, page, _, total_pages = _page_slice(request)
    headers: dict[str, str] | None = None
    if page < total_pages:
        headers = {hdrs.LINK: f'<{_next_url(request, page + 1)}>; rel="next"'}
    return _json(items, headers=headers)


async def next_products(request: web.Request) -> web.StreamResponse:
    """A page of products under ``results``; ``next`` is the next page's absolute URL or null."""
    items, page, _, total_pages = _page_slice(request)
    nxt = _next_url(request, page + 1) if page < total_pages else None
    return _json({"results": items, "next": nxt})


async def all_products(request: web.Request) -> web.StreamResponse:
    """Every matching product in one response."""
    products = request.app[SHOP].updated_since(_since(request))
    return _json({"products": products, "count": len(products)})


async def product_reviews(request: web.Request) -> web.StreamResponse:
    """The reviews of one product; 404 for an unknown product."""
    pid = int(request.match_info["id"])
    reviews = request.app[SHOP].reviews.get(pid)
    if reviews is None:
        return _error(404, f"no product {pid}")
    return _json({"reviews": reviews})


async def oauth_token(request: web.Request) -> web.Response:
    """``POST /shop/oauth/token``: an access token for the client-credentials grant.

    The client authenticates with ``client_id``/``client_secret`` form fields or HTTP Basic.
    """
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return _error(400, "unsupported_grant_type")
    basic = _basic(request)
    client = basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
    if client != (SHOP_CLIENT_ID, SHOP_CLIENT_SECRET):
        return _unauthorized("invalid_client", 'Basic realm="shop"')
    try:
        expires_in = float(request.query.get("expires_in", SHOP_TOKEN_EXPIRES_IN))
    except ValueError:
        return _error(400, "expires_in must be a number")
    if not 0 <= expires_in <= 86400:
        return _error(400, "expires_in must be between 0 and 86400")
    token = "shop-oauth-" + secrets.token_urlsafe(16)
    request.app[SHOP].tokens[token] = time.monotonic() + expires_in
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(expires_in) if expires_in == int(expires_in) else expires_in,
    }
    scope = form.get("scope")
    if isinstance(scope, str) and scope:
        body["scope"] = scope
    return _json(body, headers={hdrs.CACHE_CONTROL: "no-store"})


async def update_product(request: web.Request) -> web.Response:
    """``POST /shop/__update?id=N&price=X``: set the price, move ``updated_at`` past all others."""
    state = request.app[SHOP]
    try:
        pid = int(request.query["id"])
        price = float(request.query["price"])
    except (KeyError, ValueError):
        return _error(400, "id (integer) and price (number) are required")
    if not math.isfinite(price):
        return _error(400, "price must be finite")
    product = next((p for p in state.products if p["id"] == pid), None)
    if product is None:
        return _error(404, f"no product {pid}")
    latest = max(_parse_time(p["updated_at"]) for p in state.products)
    product["price"] = price
    product["updated_at"] = _iso(latest + timedelta(minutes=1))
    return _json(product)


def add_shop_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Serve ``handler`` at ``/{p}{path}`` for every prefix, behind its credentials and the
    fault parameters (the shop's routes of :mod:`.shop_search` and :mod:`.shop_graphql`)."""
    app.router.add_route(method, f"/{_PREFIX}{path}", _shop_route(handler))


def add_shop_routes(app: web.Application) -> None:
    """Give `app` its own shop data and register the shop routes on it."""
    app[SHOP] = ShopState()
    r = app.router
    for style, handler in (
        ("page", page_products),
        ("offset", offset_products),
        ("cursor", cursor_products),
        ("link", link_products),
        ("next", next_products),
        ("all", all_products),
    ):
        r.add_get(f"/{_PREFIX}/v1/{style}/products", _shop_route(handler))
    r.add_get(rf"/{_PREFIX}/v1/products/{{id:\d+}}/reviews", _shop_route(product_reviews))
    r.add_get(f"/{_PREFIX}/v1/days", _shop_route(days))
    r.add_get(rf"/{_PREFIX}/v1/days/{{id:\d+}}/events", _shop_route(day_events))
    r.add_post("/shop/oauth/token", oauth_token)
    r.add_post("/shop/__update", update_product)
