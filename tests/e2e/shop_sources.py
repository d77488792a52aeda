"""Pipeline sources that several end-to-end tests start from: the simulated shop's products
(paged, merged) with their reviews (a child source), and a flaky API that answers two 503s
before a 200 (the next run, with the same ``tag``, gets 200 at once: the key's count goes on)."""

from __future__ import annotations

from typing import Any

from fetchpipe.sim import Fleet


def shop_and_flaky_sources(fleet: Fleet, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "products",
            "url": fleet.url("/shop/v1/page/products"),
            "params": {"per_page": 50},
            "records": "data.items",
            "primary_key": "id",
            "write": "merge",
            "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
        },
        {
            "name": "reviews",
            "url": fleet.url("/shop/v1/products/") + "{products.id}/reviews",
            "records": "reviews",
            "primary_key": ["product_id", "id"],
            "write": "merge",
            "include_parent": {"product_id": "id"},
        },
        {
            "name": "flaky",
            "url": fleet.url(f"/status/503,503,200?key=flaky-{tag}", host=1),
            "records": "",
        },
    ]
