"""The shop's orders and customers: times written in each customer's own UTC offset, and
customers that are gone.

Routes (``{p}`` as in :mod:`fetchpipe.sim.shop`: ``shop`` or an authenticated mirror):

- ``GET /{p}/v1/orders?updated_since=ISO&page=N&per_page=25``: ``{"orders": [...], "meta":
  {"page": N, "total_pages": T}}``, in id order; ``updated_since`` keeps the orders updated
  strictly after it, compared as instants. Each ``updated_at`` is written in its customer's UTC
  offset (``Z``, ``+02:00``, ``-08:00``, ...), so that the latest order is not the greatest text:
  the latest is written at ``-08:00`` and the one before it at ``+09:00``. Each order has a list
  of ``items`` (``sku``, ``quantity``, ``price``): 0 to 4 of them (:func:`order_items`).
- ``GET /{p}/v1/customers/{id}``: a customer; 410 for a deleted one (every 10th id), 404 for an
  id that never existed (some orders refer to ids past :data:`SHOP_CUSTOMER_COUNT`).
- ``POST /shop/__order?id=N&total=X&minutes=M[&items=K]``: a new total (and, with ``items``,
  the order's first K items: fewer drops the last ones), and ``updated_at`` set to the latest
  one plus M minutes (M < 0: an update that arrives late, earlier than the latest).
- ``GET /shop/__orders/since``: ``{"updated_since": [...]}``, every value of the parameter the
  order listing received, in order.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from fetchpipe.sim.params import int_param as _int
from fetchpipe.sim.params import json_response as _json
from fetchpipe.sim.shop import _PREFIX, _error, _parse_time, _shop_route, _since

__all__ = [
    "SHOP_CUSTOMER_COUNT",
    "SHOP_ORDER_COUNT",
    "OrdersState",
    "add_order_routes",
    "customer_status",
    "order_items",
    "shop_customers",
    "shop_orders",
]

SHOP_ORDER_COUNT = 120
SHOP_CUSTOMER_COUNT = 40
"""Customers 1..40 exist, but every 10th was deleted (410); orders also refer to 41..44 (404)."""

_START = datetime(2025, 1, 1, tzinfo=UTC)
_STEP = timedelta(minutes=37)
_OFFSETS = ("Z", "+02:00", "-05:00", "+05:30", "+09:00", "-08:00", "+01:00")
_COUNTRIES = ("GB", "GR", "US", "IN", "JP", "CA", "FR")
_PER_PAGE = 25


def written(instant: datetime, offset: str) -> str:
    """``instant`` as ISO 8601 text in ``offset`` (``Z`` or ``+HH:MM``), to the second."""
    if offset == "Z":
        return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = -1 if offset[0] == "-" else 1
    hours, minutes = offset[1:].split(":")
    zone = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    return instant.astimezone(zone).isoformat(timespec="seconds")


def customer_status(customer_id: int) -> int:
    """What ``GET /customers/{id}`` answers: 200, 410 (deleted) or 404 (never existed)."""
    if not 1 <= customer_id <= SHOP_CUSTOMER_COUNT:
        return 404
    return 410 if customer_id % 10 == 0 else 200


def shop_customers() -> dict[int, dict[str, Any]]:
    """Every customer that ever existed, by id (the deleted ones included)."""
    out = {}
    for cid in range(1, SHOP_CUSTOMER_COUNT + 1):
        kind = cid % len(_OFFSETS)
        out[cid] = {
            "id": cid,
            "name": f"Customer {cid}",
            "country": _COUNTRIES[kind],
            "utc_offset": _OFFSETS[kind],
        }
    return out


def _offset_of(customer_id: int) -> str:
    return _OFFSETS[customer_id % len(_OFFSETS)]


def order_items(order_id: int, count: int | None = None) -> list[dict[str, Any]]:
    """The items of order ``order_id``: its first ``count`` (by default its own number, 0 to 4:
    every fifth order has none), each with a ``sku``, a ``quantity`` and a ``price``."""
    if count is None:
        count = order_id * 3 % 5
    return [
        {
            "sku": f"SKU-{(order_id * 13 + k * 7) % 60 + 1:03d}",
            "quantity": 1 + (order_id + k) % 3,
            "price": round(2.5 + (order_id * 31 + k * 17) % 400 / 4, 2),
        }
        for k in range(count)
    ]


def shop_orders() -> list[dict[str, Any]]:
    """The initial orders, in id order: ``updated_at`` 37 minutes apart in shuffled order, in
    the customer's offset; the latest order's customer is at ``-08:00``, the next at ``+09:00``."""
    rng = random.Random(2025)
    steps = list(range(SHOP_ORDER_COUNT))
    rng.shuffle(steps)
    customers = [rng.randint(1, SHOP_CUSTOMER_COUNT + 4) for _ in steps]
    latest, second = steps.index(SHOP_ORDER_COUNT - 1), steps.index(SHOP_ORDER_COUNT - 2)
    customers[latest] = next(c for c in range(1, 10) if _offset_of(c) == "-08:00")
    customers[second] = next(c for c in range(1, 10) if _offset_of(c) == "+09:00")
    return [
        {
            "id": i + 1,
            "customer_id": customers[i],
            "total": round(rng.uniform(5, 900), 2),
            "updated_at": written(_START + step * _STEP, _offset_of(customers[i])),
            "items": order_items(i + 1),
        }
        for i, step in enumerate(steps)
    ]


class OrdersState:
    """The orders of one fleet."""

    __slots__ = ("orders", "since")

    def __init__(self) -> None:
        self.orders = shop_orders()
        self.since: list[str] = []
        """The ``updated_since`` values received, in order."""

    def updated_since(self, since: datetime | None) -> list[dict[str, Any]]:
        """Orders updated strictly after the instant ``since`` (all if None), in id order."""
        if since is None:
            return self.orders
        return [o for o in self.orders if _parse_time(o["updated_at"]) > since]


ORDERS = web.AppKey("fetchpipe_sim_shop_orders", OrdersState)


async def orders(request: web.Request) -> web.StreamResponse:
    """Orders by page number, with the number of pages in ``meta.total_pages``."""
    state = request.app[ORDERS]
    if "updated_since" in request.query:
        state.since.append(request.query["updated_since"])
    found = state.updated_since(_since(request))
    page = _int(request, "page", 1, 1)
    per_page = _int(request, "per_page", _PER_PAGE, 1, 100)
    total_pages = math.ceil(len(found) / per_page)
    items = found[(page - 1) * per_page : page * per_page]
    return _json({"orders": items, "meta": {"page": page, "total_pages": total_pages}})


async def customer(request: web.Request) -> web.StreamResponse:
    """One customer; 410 once deleted, 404 if it never existed."""
    cid = int(request.match_info["id"])
    status = customer_status(cid)
    if status == 404:
        return _error(404, f"no customer {cid}")
    if status == 410:
        return _error(410, f"customer {cid} was deleted")
    return _json(shop_customers()[cid])


async def update_order(request: web.Request) -> web.Response:
    """``POST /shop/__order?id=N&total=X&minutes=M``: set the total; ``updated_at`` becomes
    the latest plus M minutes (default 1), in the customer's offset."""
    state = request.app[ORDERS]
    try:
        oid = int(request.query["id"])
        total = float(request.query["total"])
        minutes = float(request.query.get("minutes", "1"))
        items = int(request.query["items"]) if "items" in request.query else None
    except (KeyError, ValueError):
        return _error(
            400, "id (integer) and total (number) are required; minutes a number, items an integer"
        )
    if items is not None and not 0 <= items <= 100:
        return _error(400, "items must be from 0 to 100")
    if not (math.isfinite(total) and math.isfinite(minutes)):
        return _error(400, "total and minutes must be finite")
    order = next((o for o in state.orders if o["id"] == oid), None)
    if order is None:
        return _error(404, f"no order {oid}")
    latest = max(_parse_time(o["updated_at"]) for o in state.orders)
    order["total"] = total
    if items is not None:
        order["items"] = order_items(oid, items)
    order["updated_at"] = written(
        latest + timedelta(minutes=minutes), _offset_of(order["customer_id"])
    )
    return _json(order)


async def since_received(request: web.Request) -> web.Response:
    """``GET /shop/__orders/since``: the ``updated_since`` values the listing received."""
    return _json({"updated_since": request.app[ORDERS].since})


def add_order_routes(app: web.Application) -> None:
    """Give ``app`` its own orders and register the order and customer routes on it."""
    app[ORDERS] = OrdersState()
    r = app.router
    r.add_get(f"/{_PREFIX}/v1/orders", _shop_route(orders))
    r.add_get(rf"/{_PREFIX}/v1/customers/{{id:\d+}}", _shop_route(customer))
    r.add_post("/shop/__order", update_order)
    r.add_get("/shop/__orders/since", since_received)
