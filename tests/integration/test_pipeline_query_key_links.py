"""An API key in the query, and next-page links the server builds from the request's own query
(as GitHub's ``Link`` header does), so that each link already carries the key it was sent with.

The pipeline runs as a real ``fetchpipe run`` process against an aiohttp server on 127.0.0.1
that records every query it gets and refuses one that names the key twice (as some APIs do).
Each request must carry the key once, and the key must appear in nothing the run wrote or
printed: the destination and its request log, the state directory, the logs at DEBUG.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from fetchpipe.pipeline import Pipeline

pytestmark = pytest.mark.timeout(120)

KEYS = ("link-key-alpha-7f3a91", "link-key-bravo-2c8e44")
PAGES = 6


@dataclass
class KeyedApi:
    """``/items?page=N``: one record per page up to :data:`PAGES`, and a next-page link that
    keeps the request's whole query (the key included), in the ``Link`` header or in the body's
    ``next``. A request naming the key twice gets 400; every query is recorded as received."""

    name: str
    in_body: bool
    queries: list[list[tuple[str, str]]] = field(default_factory=list)

    async def items(self, request: web.Request) -> web.Response:
        pairs = list(request.query.items())
        self.queries.append(pairs)
        keys = request.query.getall(self.name, [])
        if len(keys) != 1 or keys[0] not in KEYS:
            return web.json_response({"error": f"{self.name} given {len(keys)} times"}, status=400)
        page = int(request.query.get("page", "1"))
        body: dict[str, Any] = {"items": [{"id": page, "keys_sent": len(keys)}]}
        headers = {}
        if page < PAGES:
            following = request.url.update_query(page=page + 1)  # the rest kept, the key too
            if self.in_body:
                body["next"] = str(following)
            else:
                headers["Link"] = f'<{following}>; rel="next", <{request.url}>; rel="self"'
        return web.json_response(body, headers=headers)


@asynccontextmanager
async def _serving(api: KeyedApi) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/items", api.items)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def _run(config: dict[str, Any], folder: Path) -> tuple[int, str, str]:
    """``fetchpipe run`` on ``config`` with the keys in its environment, logging at DEBUG as
    JSON; its exit code, stdout and stderr. Awaited, so that the server keeps answering."""
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "FETCHPIPE_TESTING": "1", "LINK_KEY_A": KEYS[0], "LINK_KEY_B": KEYS[1]}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "fetchpipe", "run", str(path)),
        *("--state-dir", str(folder / "state"), "--json", str(folder / "report.json")),
        *("--log-level", "debug", "--log-format", "json"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("in_body", [False, True], ids=["link_header", "next_url"])
@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("api_key", {"value": "${LINK_KEY_A}"}),
        ("api_key", {"values": ["${LINK_KEY_A}", "${LINK_KEY_B}"]}),
        ("partner_code", {"values": ["${LINK_KEY_A}", "${LINK_KEY_B}"]}),  # not a known name
    ],
    ids=["value", "values", "values-own-name"],
)
async def test_a_query_key_is_sent_once_per_page_and_stored_nowhere(
    tmp_path: Path, name: str, keys: dict[str, Any], in_body: bool
) -> None:
    api = KeyedApi(name, in_body)
    db = tmp_path / "links.duckdb"
    paginate = {"type": "next_url", "next_url_path": "next"} if in_body else {"type": "link_header"}
    async with _serving(api) as base:
        source = {
            "name": "items",
            "url": f"{base}/items",
            "params": {"per_page": 1},
            "auth": {"type": "api_key", "in": "query", "name": name, **keys},
            "records": "items",
            "primary_key": "id",
            "paginate": paginate,
        }
        config = {"name": "links", "destination": f"duckdb:///{db}", "sources": [source]}
        code, out, err = await _run(config, tmp_path)

    assert code == 0, err
    assert len(api.queries) == PAGES
    sent = [[value for key, value in pairs if key == name] for pairs in api.queries]
    assert all(len(values) == 1 and values[0] in KEYS for values in sent), sent
    assert [dict(pairs).get("page") for pairs in api.queries] == [None] + [
        str(n) for n in range(2, PAGES + 1)
    ]
    with duckdb.connect(str(db), read_only=True) as connection:
        rows = connection.execute("SELECT id, keys_sent FROM items ORDER BY id").fetchall()
        logged = connection.execute(
            "SELECT url FROM _fetchpipe_requests ORDER BY queued_at"
        ).fetchall()
    assert rows == [(page, 1) for page in range(1, PAGES + 1)]
    assert len(logged) == PAGES
    # Recorded as for the first page: the key once, masked (REDACTED as a credential's name,
    # *** as a secret value of the pipeline); none with several, whose lane adds it when sent.
    masked = ["REDACTED" if name == "api_key" else "***"] if "value" in keys else []
    assert [URL(url).query.getall(name, []) for (url,) in logged] == [masked] * PAGES, logged

    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"request_done", "source_ended"} <= {event["event"] for event in events}
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "pipeline.yaml"]
    assert {"links.duckdb", "report.json"} <= {p.name for p in written}
    leaks = [str(p) for p in written for key in KEYS if key.encode() in p.read_bytes()]
    leaks += [f"output: {key}" for key in KEYS if key in out or key in err]
    assert leaks == []


@pytest.mark.parametrize(
    "keys", [{"value": KEYS[0]}, {"values": list(KEYS)}], ids=["value", "values"]
)
async def test_a_link_to_another_origin_loses_the_key_it_copied(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    """``allow_cross_origin: true``: the next page on another origin is fetched without
    credentials, and so without the key its link copied from our request; a key of the link's
    own stays."""
    far_queries: list[list[tuple[str, str]]] = []

    async def far(request: web.Request) -> web.Response:
        far_queries.append(list(request.query.items()))
        return web.json_response({"items": [{"id": 2}]})

    far_app = web.Application()
    far_app.router.add_get("/items", far)
    async with TestServer(far_app, host="127.0.0.1") as far_server:

        async def near(request: web.Request) -> web.Response:
            elsewhere = far_server.make_url("/items").with_query(request.url.query)
            link = elsewhere.update_query(page=2).extend_query(api_key="their-own-key")
            headers = {"Link": f'<{link}>; rel="next"'}
            return web.json_response({"items": [{"id": 1}]}, headers=headers)

        near_app = web.Application()
        near_app.router.add_get("/items", near)
        async with TestServer(near_app, host="127.0.0.1") as near_server:
            source = {
                "name": "items",
                "url": str(near_server.make_url("/items")),
                "auth": {"type": "api_key", "in": "query", "name": "api_key", **keys},
                "records": "items",
                "paginate": {"type": "link_header"},
                "allow_cross_origin": True,
            }
            db = tmp_path / "far.duckdb"
            pipeline = Pipeline.from_dict(
                {
                    "name": "far",
                    "destination": f"duckdb:///{db}",
                    "defaults": {"security": {"allow_addresses": ["127.0.0.0/8"]}},
                    "sources": [source],
                }
            )
            report = await pipeline.arun(state_dir=tmp_path / "state")

    assert report.source("items").status == "ok", report.source("items").reason
    assert report.source("items").rows == 2
    assert far_queries == [[("page", "2"), ("api_key", "their-own-key")]]
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert not any(key.encode() in written for key in KEYS)
