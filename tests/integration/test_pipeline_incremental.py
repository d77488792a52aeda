"""Typed incremental cursors against the shop's orders, whose times carry their customers' UTC
offsets: the right cursor after a run, the right value sent the next time (with a lookback
window: the greatest instant minus the window, in UTC), and late updates merged, not doubled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import pytest

from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.runtime.report import RunReport
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop_orders import SHOP_ORDER_COUNT, shop_orders

pytestmark = pytest.mark.fleet(hosts=1)

INITIAL = "2025-01-01T01:00:00+02:00"  # 2024-12-31T23:00Z: before every order


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


ORDERS = shop_orders()
LATEST = max(ORDERS, key=lambda o: instant(o["updated_at"]))
"""The order updated last, written at -08:00."""


def pipeline(tmp_path: Path, fleet: Fleet, **incremental: Any) -> Pipeline:
    source = {
        "name": "orders",
        "url": fleet.url("/shop/v1/orders"),
        "params": {"per_page": 50},
        "records": "orders",
        "primary_key": "id",
        "write": "merge",
        "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
        "incremental": {
            "cursor_field": "updated_at",
            "param": "updated_since",
            "initial": INITIAL,
            **incremental,
        },
    }
    destination = f"duckdb:///{tmp_path / 'orders.duckdb'}"
    return Pipeline.from_dict({"name": "orders", "destination": destination, "sources": [source]})


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def check_ok(report: RunReport) -> None:
    assert report.ok, [(s.name, s.reason) for s in report.failed]


async def post(fleet: Fleet, path: str, **params: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(fleet.url(path), params=params) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def since_received(fleet: Fleet) -> list[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(fleet.url("/shop/__orders/since")) as response,
    ):
        body = await response.json()
        return list(body["updated_since"])


def test_the_latest_order_is_not_the_greatest_text() -> None:
    """What makes the shop's orders a test of typed cursors."""
    assert max(o["updated_at"] for o in ORDERS) != LATEST["updated_at"]
    assert LATEST["updated_at"].endswith("-08:00")
    assert len({o["updated_at"][19:] for o in ORDERS}) >= 5  # Z and four offsets, at least


async def test_the_cursor_is_the_latest_instant_and_a_lookback_sends_it_minus_the_window(
    fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "orders.duckdb"
    run = pipeline(tmp_path, fleet, lookback="2h")
    first = await run.arun()
    check_ok(first)
    sent_first = await since_received(fleet)
    assert sent_first == [INITIAL] * first.source("orders").pages  # initial, as written
    orders = first.source("orders")
    assert orders.records == orders.rows == SHOP_ORDER_COUNT
    assert orders.cursor == LATEST["updated_at"]  # as written, though not the greatest text
    assert query(db, "SELECT state->>'cursor' FROM _fetchpipe_state") == [(LATEST["updated_at"],)]

    # An order updated 30 minutes before the latest one arrives after the first run: a cursor
    # sent as it was stored would never fetch it again.
    late = next(
        o
        for o in ORDERS
        if instant(LATEST["updated_at"]) - instant(o["updated_at"]) > timedelta(hours=3)
    )
    updated = await post(fleet, "/shop/__order", id=late["id"], total=1.25, minutes=-30)
    assert instant(updated["updated_at"]) == instant(LATEST["updated_at"]) - timedelta(minutes=30)

    second = await run.arun()
    check_ok(second)
    window_start = instant(LATEST["updated_at"]) - timedelta(hours=2)
    sent = (await since_received(fleet))[len(sent_first) :]
    assert sent == [window_start.strftime("%Y-%m-%dT%H:%M:%SZ")] * second.source("orders").pages
    again = {o["id"] for o in ORDERS if instant(o["updated_at"]) > window_start} | {late["id"]}
    assert second.source("orders").records == len(again) > 1  # seen again, and the late one
    assert second.source("orders").cursor == LATEST["updated_at"]  # the late one is earlier
    assert query(db, "SELECT count(*), count(DISTINCT id) FROM orders") == [
        (SHOP_ORDER_COUNT, SHOP_ORDER_COUNT)
    ]
    assert query(db, f"SELECT total FROM orders WHERE id = {late['id']}") == [(1.25,)]


async def test_without_a_lookback_the_stored_cursor_is_sent_as_written(
    fleet: Fleet, tmp_path: Path
) -> None:
    run = pipeline(tmp_path, fleet)
    check_ok(await run.arun())
    late = ORDERS[0] if ORDERS[0] is not LATEST else ORDERS[1]
    await post(fleet, "/shop/__order", id=late["id"], total=2.5, minutes=-30)
    newer = next(o for o in ORDERS if o is not late and o is not LATEST)
    await post(fleet, "/shop/__order", id=newer["id"], total=3.5, minutes=5)
    second = await run.arun()
    check_ok(second)
    assert (await since_received(fleet))[-1] == LATEST["updated_at"]
    assert second.source("orders").records == 1  # the newer update only: the late one is missed
    cursor = second.source("orders").cursor
    assert instant(cursor) == instant(LATEST["updated_at"]) + timedelta(minutes=5)
    db = tmp_path / "orders.duckdb"
    assert query(db, f"SELECT total FROM orders WHERE id = {late['id']}") == [(late["total"],)]


async def test_a_format_sends_the_value_in_that_pattern(fleet: Fleet, tmp_path: Path) -> None:
    run = pipeline(tmp_path, fleet, lookback="1d", format="%Y-%m-%d %H:%M:%S")
    check_ok(await run.arun())
    first = await since_received(fleet)
    assert set(first) == {"2024-12-31 23:00:00"}  # initial, in the format, in UTC
    check_ok(await run.arun())
    second = (await since_received(fleet))[len(first) :]
    day_before = instant(LATEST["updated_at"]) - timedelta(days=1)
    assert second and set(second) == {day_before.strftime("%Y-%m-%d %H:%M:%S")}
