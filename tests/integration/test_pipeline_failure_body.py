"""A page that fails with an error status says what the server said: a short, one-line, masked
excerpt of the response body in the source's failure reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe._redact import EXCERPT_LENGTH
from fetchpipe.pipeline import Pipeline
from tests.integration.transports import both_transports, on_transport

pytestmark = both_transports

API_KEY = "pipeline-key-5d0e9a"
ECHOED_TOKEN = "server-token-77b2c4"


@pytest.fixture
async def api() -> AsyncIterator[TestServer]:
    async def search(request: web.Request) -> web.Response:
        body = {
            "error": {"message": "unknown field 'colour'.\nHINT from the API: use color"},
            "request": {"api_key": request.query.get("api_key"), "access_token": ECHOED_TOKEN},
            "padding": "x" * 2000,
        }
        return web.json_response(body, status=400)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>\n<h1>Gone</h1>\n</html>\n", status=410)

    app = web.Application()
    app.router.add_get("/search", search)
    app.router.add_get("/page", page)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server


def _source(server: TestServer, name: str, path: str) -> dict[str, object]:
    return {
        "name": name,
        "url": str(server.make_url(path)),
        "auth": {"type": "api_key", "name": "api_key", "in": "query", "value": "${KEY}"},
    }


async def test_a_failed_page_quotes_the_body_short_on_one_line_and_masked(
    api: TestServer, tmp_path: Path
) -> None:
    config = {
        "name": "p",
        "destination": f"duckdb:///{tmp_path / 'p.duckdb'}",
        "sources": [_source(api, "search", "/search"), _source(api, "page", "/page")],
    }
    pipeline = Pipeline.from_dict(on_transport(config), env={"KEY": API_KEY})
    report = await pipeline.arun()
    search = report.source("search").reason or ""
    assert search.startswith(f"page 1 of {api.make_url('/search')}: HTTP 400; body: ")
    assert '{"error":{"message":"unknown field \'colour\'.\\nHINT from the API: use color"}' in (
        search
    )
    assert API_KEY not in search and ECHOED_TOKEN not in search
    assert '"api_key":"***"' in search and '"access_token":"***"' in search
    excerpt = search.partition("; body: ")[2]
    assert len(excerpt) == EXCERPT_LENGTH and excerpt.endswith("…")
    assert "\n" not in search
    page = report.source("page").reason or ""
    assert (
        page == f"page 1 of {api.make_url('/page')}: HTTP 410; body: <html> <h1>Gone</h1> </html>"
    )
