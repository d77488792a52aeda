"""A pipeline's API key under a name of its own is a credential to its HTTP cache too.

The cache knows the usual credential names (``api_key``, ``X-Api-Key``, ...); a source may send
its key under any name. Real runs against the simulated shop (which ignores the key) into a
real cache file: a second key is not answered from the first key's entries, and neither key is
written to the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fetchpipe.pipeline import Pipeline
from fetchpipe.sim import Fleet

KEY_A = "partner-key-A-7c1d0e"
KEY_B = "partner-key-B-91f4aa"


def shop(fleet: Fleet, tmp_path: Path, key: str) -> Pipeline:
    def source(name: str, path: str, auth: dict[str, Any]) -> dict[str, Any]:
        url = fleet.url(path)
        return {"name": name, "url": url, "records": "products", "primary_key": "id", "auth": auth}

    cache = {"enabled": True, "ttl": 600, "path": str(tmp_path / "cache" / "http.sqlite")}
    return Pipeline.from_dict(
        {
            "name": "shop",
            "destination": f"duckdb:///{tmp_path / 'shop.duckdb'}",
            "defaults": {"cache": cache},
            "sources": [
                source(
                    "by_query",
                    "/shop/v1/all/products",
                    {"type": "api_key", "name": "partner_key", "in": "query", "value": key},
                ),
                source(
                    "by_header",
                    "/shop/v1/all/products?fields=all",
                    {"type": "api_key", "name": "X-Partner-Token", "value": key},
                ),
            ],
        }
    )


async def test_a_key_under_its_own_name_gets_cache_entries_of_its_own(
    fleet: Fleet, tmp_path: Path
) -> None:
    first = await shop(fleet, tmp_path, KEY_A).arun()
    assert first.ok, [(s.name, s.reason) for s in first.failed]
    sent = fleet.stats.requests()
    assert sent == 2

    again = await shop(fleet, tmp_path, KEY_A).arun()
    assert again.ok and fleet.stats.requests() == sent  # the same key: from the cache

    other = await shop(fleet, tmp_path, KEY_B).arun()
    assert other.ok and fleet.stats.requests() == sent + 2  # another key: not from KEY_A's

    files = (tmp_path / "cache").iterdir()
    raw = b"".join(path.read_bytes() for path in files if path.is_file())
    assert b"partner_key=REDACTED" in raw
    for key in (KEY_A, KEY_B):
        assert key.encode() not in raw
