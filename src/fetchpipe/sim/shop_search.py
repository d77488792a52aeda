"""The shop's products behind a POST search and behind a cursor header: the shapes of APIs
that page with a cursor sent in the request body or in a header, not in the query.

Routes (``{p}`` is ``shop`` or an authenticated prefix, as in :mod:`fetchpipe.sim.shop`; the
fault parameters ``delay_ms`` and ``fail`` work in the query as there):

- ``POST /{p}/v1/search/products`` with a JSON body
  ``{"filter": {"tag": "sale", "in_stock": true}, "page": {"size": 25, "after": CURSOR}}``
  (every key optional): ``{"hits": [...], "page": {"next": CURSOR, "has_more": bool}}``.
  As in Stripe's lists, ``next`` is the cursor after the last hit even on the last page:
  ``has_more`` says whether another page follows (a further request gets no hits and a null
  ``next``).
- ``GET /{p}/v1/header/products?limit=25`` with the cursor in the ``X-Cursor`` request header:
  ``{"items": [...], "next_cursor": CURSOR | null}``.

Products are in id order; cursors are opaque. A malformed body or cursor gets 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from fetchpipe.sim.params import BadParam, int_param, json_response
from fetchpipe.sim.shop import SHOP, add_shop_route

__all__ = ["CURSOR_HEADER", "add_shop_search_routes", "search_products"]

CURSOR_HEADER = "X-Cursor"
"""The request header of ``/{p}/v1/header/products`` that carries the cursor."""

_DEFAULT_SIZE = 25
_MAX_SIZE = 100


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id>{last_id}".encode()).decode().rstrip("=")


def _after(cursor: object) -> int:
    """The product id a cursor points after (0 for none); BadParam for a malformed one."""
    if cursor is None or cursor == "":
        return 0
    if not isinstance(cursor, str):
        raise BadParam("the cursor must be a string")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(">")
        if kind != "id":
            raise ValueError(kind)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadParam("invalid cursor") from None


def search_products(
    products: list[dict[str, Any]], query: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], str | None, bool]:
    """The hits of one search page: ``(hits, next cursor, has more)`` (see the module)."""
    filters = query.get("filter") or {}
    page = query.get("page") or {}
    if not isinstance(filters, Mapping) or not isinstance(page, Mapping):
        raise BadParam("filter and page must be objects")
    size = page.get("size", _DEFAULT_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= _MAX_SIZE:
        raise BadParam(f"page.size must be an integer from 1 to {_MAX_SIZE}")
    tag, in_stock = filters.get("tag"), filters.get("in_stock")
    after = _after(page.get("after"))
    matching = [
        p
        for p in products
        if p["id"] > after
        and (tag is None or tag in p["tags"])
        and (in_stock is None or p["in_stock"] == in_stock)
    ]
    hits = matching[:size]
    next_cursor = _cursor(hits[-1]["id"]) if hits else None
    return hits, next_cursor, len(matching) > size


async def search(request: web.Request) -> web.StreamResponse:
    """``POST /{p}/v1/search/products``: a page of the products that match the body."""
    try:
        query = await request.json()
    except ValueError:
        raise BadParam("the body must be JSON") from None
    if not isinstance(query, Mapping):
        raise BadParam("the body must be a JSON object")
    hits, next_cursor, more = search_products(request.app[SHOP].products, query)
    return json_response({"hits": hits, "page": {"next": next_cursor, "has_more": more}})


async def header_products(request: web.Request) -> web.StreamResponse:
    """``GET /{p}/v1/header/products``: products after the cursor of the ``X-Cursor`` header."""
    limit = int_param(request, "limit", _DEFAULT_SIZE, 1, _MAX_SIZE)
    after = _after(request.headers.get(CURSOR_HEADER))
    products = [p for p in request.app[SHOP].products if p["id"] > after]
    items = products[:limit]
    next_cursor = _cursor(items[-1]["id"]) if len(products) > limit else None
    return json_response({"items": items, "next_cursor": next_cursor})


def add_shop_search_routes(app: web.Application) -> None:
    """Register the search and cursor-header routes on ``app`` (after the shop's own)."""
    add_shop_route(app, "POST", "/v1/search/products", search)
    add_shop_route(app, "GET", "/v1/header/products", header_products)
