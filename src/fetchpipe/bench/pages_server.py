"""A paginated products API for ``fetchpipe bench pipeline``, run in its own process.

``python -m fetchpipe.bench.pages_server PAGES RECORDS DELAY_MS`` prints the port it listens on
(127.0.0.1 only) and serves until stdin closes. ``GET /products?page=N`` answers
``{"data": [RECORDS records], "page": N, "total_pages": PAGES}`` after ``DELAY_MS``
milliseconds; a page past the last answers an empty ``data`` list. The records look like a
shop's products (a unique ``id``, a name, a float price, an ISO timestamp, a list of tags, a
nested object) and are generated deterministically, page by page. Every body is rendered once at
start, so a request costs the server a dictionary look-up: the clients are what is measured.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web

from fetchpipe.bench.child import running_child, wait_for_stdin_eof
from fetchpipe.bench.report import raise_nofile_limit
from fetchpipe.engine.fetcher import run

PATH = "/products"
BACKLOG = 4096
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_TAGS = ("new", "sale", "eco", "bestseller", "limited", "bundle", "refurbished", "imported")
_COLOURS = ("black", "white", "red", "blue", "green", "grey")
_COUNTRIES = ("DE", "FR", "NL", "PL", "IT", "ES", "SE", "CZ")


def product(rng: random.Random, product_id: int) -> dict[str, Any]:
    """One product record; the same ``rng`` state and id give the same record."""
    updated = _EPOCH + datetime.timedelta(seconds=rng.randrange(365 * 24 * 3600))
    return {
        "id": product_id,
        "sku": f"SKU-{product_id:08d}",
        "name": f"Product {product_id} {rng.choice(_COLOURS)}",
        "price": round(rng.uniform(1, 500), 2),
        "in_stock": rng.random() < 0.8,
        "updated_at": updated.isoformat().replace("+00:00", "Z"),
        "tags": rng.sample(_TAGS, rng.randint(0, 3)),
        "supplier": {
            "id": rng.randint(1, 500),
            "country": rng.choice(_COUNTRIES),
            "rating": round(rng.uniform(1, 5), 1),
        },
    }


def page_records(page: int, records: int) -> list[dict[str, Any]]:
    """The records of ``page`` (from 1): ids ``(page - 1) * records + 1`` onwards.

    Each page has its own seeded generator, so a page's records do not depend on the others.
    """
    rng = random.Random(page)
    first = (page - 1) * records + 1
    return [product(rng, first + offset) for offset in range(records)]


def page_body(page: int, pages: int, records: int) -> bytes:
    """The JSON body of ``page``: empty ``data`` past the last page."""
    data = page_records(page, records) if page <= pages else []
    return orjson.dumps({"data": data, "page": page, "total_pages": pages})


class PagesApp:
    """The request handler over the pre-rendered page bodies."""

    def __init__(self, pages: int, records: int, delay_ms: int) -> None:
        self.pages = pages
        self.records = records
        self.delay = delay_ms / 1000
        self.bodies = {page: page_body(page, pages, records) for page in range(1, pages + 1)}

    def body(self, page: int) -> bytes:
        cached = self.bodies.get(page)
        return cached if cached is not None else page_body(page, self.pages, self.records)

    async def handle(self, request: web.BaseRequest) -> web.Response:
        if request.path != PATH:
            return web.Response(status=404, text=f"only {PATH} is served")
        text = request.query.get("page", "1")
        if not text.isdigit() or int(text) < 1:
            return web.Response(status=400, text="page must be a whole number from 1")
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        return web.Response(body=self.body(int(text)), content_type="application/json")


async def _serve(pages: int, records: int, delay_ms: int) -> None:
    app = PagesApp(pages, records, delay_ms)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        web.Server(app.handle, access_log=None), "127.0.0.1", 0, backlog=BACKLOG
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await wait_for_stdin_eof()
    server.close()


def main(argv: list[str]) -> None:
    pages, records, delay_ms = (int(arg) for arg in argv[:3])
    raise_nofile_limit()
    run(_serve(pages, records, delay_ms))


@contextmanager
def running_pages_server(pages: int, records: int, delay_ms: int) -> Iterator[str]:
    """Start the server in a child process; yield its base URL; stop it on exit."""
    with running_child(
        "fetchpipe.bench.pages_server", str(pages), str(records), str(delay_ms)
    ) as line:
        if not line.isdigit():
            raise RuntimeError(f"pages server did not start (said {line!r})")
        yield f"http://127.0.0.1:{line}"


if __name__ == "__main__":
    main(sys.argv[1:])
