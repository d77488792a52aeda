"""``on_status`` against the shop's customers: 404 and 410 skipped or failing, as configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fetchpipe.pipeline import Pipeline
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop_orders import customer_status, shop_orders

pytestmark = pytest.mark.fleet(hosts=1)

STATUSES = [customer_status(o["customer_id"]) for o in shop_orders()]


def pipeline(tmp_path: Path, fleet: Fleet, on_status: dict[Any, str] | None) -> Pipeline:
    customers: dict[str, Any] = {
        "name": "customers",
        "url": fleet.url("/shop/v1/customers/") + "{orders.customer_id}",
        "primary_key": "id",
        "write": "merge",
    }
    if on_status is not None:
        customers["on_status"] = on_status
    orders = {
        "name": "orders",
        "url": fleet.url("/shop/v1/orders"),
        "params": {"per_page": 100},
        "records": "orders",
        "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
    }
    return Pipeline.from_dict(
        {
            "name": "shop",
            "destination": f"duckdb:///{tmp_path / 'shop.duckdb'}",
            "sources": [orders, customers],
        }
    )


@pytest.mark.parametrize(
    ("on_status", "failing"),
    [(None, {404, 410}), ({"410": "skip"}, {404}), ({404: "skip", 410: "fail"}, {410})],
    ids=["none", "only-410", "410-fails"],
)
async def test_a_status_not_skipped_fails_the_source(
    fleet: Fleet, tmp_path: Path, on_status: dict[Any, str] | None, failing: set[int]
) -> None:
    """The source fails at the first status it does not skip."""
    report = await pipeline(tmp_path, fleet, on_status).arun()
    customers = report.source("customers")
    assert customers.status == "failed" and customers.rows == 0
    assert {s for s in (404, 410) if f"HTTP {s}" in (customers.reason or "")} <= failing
    assert any(f"HTTP {s}" in (customers.reason or "") for s in failing)
    assert report.source("orders").status == "ok"


async def test_skipped_requests_are_counted_and_the_rest_loads(
    fleet: Fleet, tmp_path: Path
) -> None:
    report = await pipeline(tmp_path, fleet, {404: "skip", "410": "skip"}).arun()
    assert report.ok, [(s.name, s.reason) for s in report.failed]
    customers = report.source("customers")
    assert customers.skipped == STATUSES.count(404) + STATUSES.count(410) > 0
    assert customers.pages == customers.records == STATUSES.count(200)
    assert report.as_dict()["sources"][1]["skipped"] == customers.skipped
    assert fleet.stats.requests(path="/shop/v1/orders") == 2  # 120 orders, 100 a page
