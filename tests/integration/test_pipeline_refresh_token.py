"""The OAuth2 refresh-token grant: against the shop's token endpoint (``/shop/oauth/refresh``)
and a local API whose first access token stops working after page 1.

A refresh token the endpoint rotates is sent next, within the run, by every source with that
``auth`` block; it is not stored, and the report warns of it. No secret reaches a message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import TypeAdapter

from fetchpipe._models import Request
from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.runtime.auth import (
    Authenticator,
    AuthError,
    OAuth2RefreshTokenAuthenticator,
    authenticator_for,
)
from fetchpipe.pipeline.runtime.report import RunReport, failure_lines
from fetchpipe.pipeline.spec.models import Auth
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_CLIENT_ID, SHOP_CLIENT_SECRET, SHOP_PRODUCT_COUNT
from fetchpipe.sim.shop_orders import SHOP_ORDER_COUNT
from fetchpipe.sim.shop_tokens import SHOP_REFRESH_TOKEN

pytestmark = pytest.mark.fleet(hosts=1)
_AUTH = TypeAdapter(Auth)


def refresh_auth(token_url: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "oauth2_refresh_token",
        "token_url": token_url,
        "client_id": SHOP_CLIENT_ID,
        "client_secret": SHOP_CLIENT_SECRET,
        "refresh_token": SHOP_REFRESH_TOKEN,
        **fields,
    }


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def authenticator(
    fleet: Fleet, session: aiohttp.ClientSession, query: str, **fields: Any
) -> OAuth2RefreshTokenAuthenticator:
    config = _AUTH.validate_python(refresh_auth(fleet.url("/shop/oauth/refresh" + query), **fields))
    made = authenticator_for(config, session=session)
    assert isinstance(made, OAuth2RefreshTokenAuthenticator)
    return made


async def received(fleet: Fleet, session: aiohttp.ClientSession) -> list[str]:
    async with session.get(fleet.url("/shop/oauth/__refreshed")) as response:
        return list((await response.json())["refresh_tokens"])


async def status_of(session: aiohttp.ClientSession, request: Request) -> int:
    async with session.get(request.url, headers=dict(request.headers or {})) as response:
        await response.read()
        return response.status


async def test_a_rotated_refresh_token_is_the_one_sent_next(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    auth = authenticator(fleet, session, "?rotate=strict")  # the one sent is revoked
    request = Request(fleet.url("/shop-oauth/v1/all/products"))
    assert await status_of(session, await auth.apply(request)) == 200
    assert await auth.on_unauthorized() is True  # a 401: the next apply refreshes
    assert await status_of(session, await auth.apply(request)) == 200
    assert await auth.on_unauthorized() is True
    assert await status_of(session, await auth.apply(request)) == 200
    sent = await received(fleet, session)
    assert len(sent) == 3 == auth.fetches and sent[0] == SHOP_REFRESH_TOKEN
    assert len(set(sent)) == 3  # each request sent the token the previous answer rotated to
    assert auth.rotations == 3
    text = repr(auth) + " ".join(auth.warnings())
    assert "rotated the refresh token" in text and "not stored" in text
    assert not any(secret in text for secret in [*sent, SHOP_CLIENT_SECRET])


async def test_an_expired_token_is_refreshed_before_it_is_used(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    auth = authenticator(fleet, session, "?rotate=no&expires_in=0")
    request = Request(fleet.url("/shop-oauth/v1/all/products"))
    first = await auth.apply(request)
    second = await auth.apply(request)  # expired at once: a new one
    assert first.headers != second.headers and auth.fetches == 2
    assert auth.rotations == 0 and auth.warnings() == []
    again = (await received(fleet, session))[1:]
    assert again and set(again) == {SHOP_REFRESH_TOKEN}  # as configured, revoked  # none rotated


async def test_a_refused_refresh_token_says_what_to_check_without_a_secret(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    auth = authenticator(fleet, session, "", refresh_token="revoked-refresh-token-77")
    with pytest.raises(AuthError) as caught:
        await auth.apply(Request(fleet.url("/shop-oauth/v1/all/products")))
    message = str(caught.value)
    assert caught.value.status == 400
    assert "got HTTP 400 (invalid_grant). HINT: check client_id, client_secret and " in message
    assert "refresh_token" in message and "obtain a new one" in message
    assert "revoked-refresh-token-77" not in message and SHOP_CLIENT_SECRET not in message


async def test_a_public_client_sends_no_secret(session: aiohttp.ClientSession) -> None:
    forms: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        forms.append({k: str(v) for k, v in (await request.post()).items()})
        return web.json_response({"access_token": "a", "token_type": "Bearer"})

    app = web.Application()
    app.router.add_post("/token", token)
    async with TestServer(app, host="127.0.0.1") as server:
        config = _AUTH.validate_python(
            {
                "type": "oauth2_refresh_token",
                "token_url": str(server.make_url("/token")),
                "client_id": "public-app",
                "refresh_token": "r-1",
                "scope": "read",
            }
        )
        auth = authenticator_for(config, session=session)
        applied = await auth.apply(Request("http://127.0.0.1/x"))
    assert (applied.headers or {})["Authorization"] == "Bearer a"
    assert forms == [
        {
            "grant_type": "refresh_token",
            "client_id": "public-app",
            "scope": "read",
            "refresh_token": "r-1",
        }
    ]


def test_sources_with_the_same_block_share_one_authenticator(
    session: aiohttp.ClientSession,
) -> None:
    one = _AUTH.validate_python(refresh_auth("https://auth.test/token"))
    same = _AUTH.validate_python(refresh_auth("https://auth.test/token"))
    other = _AUTH.validate_python(refresh_auth("https://auth.test/token", refresh_token="x"))
    shared: dict[Any, Authenticator] = {}
    a = authenticator_for(one, session=session, shared=shared)
    assert authenticator_for(same, session=session, shared=shared) is a
    assert authenticator_for(other, session=session, shared=shared) is not a
    assert authenticator_for(one, session=session) is not a  # without `shared`, one each


def secrets_shown(report: RunReport, secrets: list[str]) -> list[str]:
    text = json.dumps(report.as_dict(), default=str) + "\n".join(failure_lines(report))
    return [secret for secret in secrets if secret in text]


async def test_sources_share_a_rotating_refresh_token_and_the_report_warns(
    fleet: Fleet, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A refresh token revoked once used: the sources share one authenticator, so the second
    does not send the revoked one; the next run does, as the warning says."""
    auth = refresh_auth(fleet.url("/shop/oauth/refresh?rotate=strict"))
    sources = [
        {
            "name": "products",
            "url": fleet.url("/shop-oauth/v1/page/products"),
            "params": {"per_page": 100},
            "records": "data.items",
            "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
            "auth": auth,
        },
        {
            "name": "orders",
            "url": fleet.url("/shop-oauth/v1/orders"),
            "params": {"per_page": 100},
            "records": "orders",
            "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
            "auth": auth,
        },
    ]
    pipeline = Pipeline.from_dict(
        {"name": "shop", "destination": f"duckdb:///{tmp_path / 'shop.duckdb'}", "sources": sources}
    )
    report = await pipeline.arun()
    assert report.ok, [(s.name, s.reason) for s in report.failed]
    assert report.source("products").rows == SHOP_PRODUCT_COUNT
    assert report.source("orders").rows == SHOP_ORDER_COUNT
    sent = await received(fleet, session)
    assert sent == [SHOP_REFRESH_TOKEN]  # one token request for both sources
    assert report.warnings == [
        f"products, orders: the token endpoint {fleet.url('/shop/oauth/refresh')} rotated the "
        "refresh token: the new one was used for the rest of this "
        "run but is not stored (a secret is never written), so the next run sends the "
        "configured refresh_token again. HINT: if the endpoint revokes a rotated refresh "
        "token, obtain a new one before the next run"
    ]
    assert "warning: products, orders: the token endpoint" in "\n".join(failure_lines(report))
    assert secrets_shown(report, [SHOP_REFRESH_TOKEN, SHOP_CLIENT_SECRET]) == []

    second = await pipeline.arun()  # the configured token was revoked by the first run
    assert [(s.status, "invalid_grant" in (s.reason or "")) for s in second.sources] == [
        ("failed", True),
        ("failed", True),
    ]
    again = (await received(fleet, session))[1:]
    assert again and set(again) == {SHOP_REFRESH_TOKEN}  # as configured, revoked
    assert secrets_shown(second, [SHOP_REFRESH_TOKEN, SHOP_CLIENT_SECRET]) == []


@pytest.fixture
async def expiring_api() -> AsyncIterator[tuple[TestServer, list[str], list[str]]]:
    """An API whose first access token stops working after page 1; its token endpoint rotates
    the refresh token (strictly). Records the refresh tokens received and who sent what."""
    refresh = ["refresh-0"]
    issued: list[str] = []
    grants: list[str] = []
    seen: list[str] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        grants.append(str(form.get("refresh_token")))
        if form.get("refresh_token") != refresh[-1] or form.get("client_secret") != "s3cret":
            return web.json_response({"error": "invalid_grant"}, status=400)
        issued.append(f"access-{len(issued) + 1}")
        refresh.append(f"refresh-{len(refresh)}")
        body = {"access_token": issued[-1], "token_type": "bearer", "refresh_token": refresh[-1]}
        return web.json_response(body)

    async def items(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        sent = request.headers.get("Authorization", "")
        seen.append(f"{page}:{sent}")
        if sent != f"Bearer {issued[-1]}" or (page > 1 and sent == "Bearer access-1"):
            return web.json_response({"error": "expired"}, status=401)
        data = [{"id": page * 10 + i} for i in range(3)] if page <= 3 else []
        return web.json_response({"data": data})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/items", items)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server, grants, seen


async def test_a_401_refreshes_once_with_the_rotated_token(
    expiring_api: tuple[TestServer, list[str], list[str]], tmp_path: Path
) -> None:
    server, grants, seen = expiring_api
    source = {
        "name": "items",
        "url": str(server.make_url("/items")),
        "records": "data",
        "paginate": {"type": "page"},
        "auth": {
            "type": "oauth2_refresh_token",
            "token_url": str(server.make_url("/token")),
            "client_id": "app",
            "client_secret": "s3cret",
            "refresh_token": "refresh-0",
        },
    }
    destination = f"duckdb:///{tmp_path / 'items.duckdb'}"
    pipeline = Pipeline.from_dict(
        {"name": "items", "destination": destination, "sources": [source]}
    )
    report = await pipeline.arun()
    assert report.ok, [(s.name, s.reason) for s in report.failed]
    assert report.source("items").rows == 9
    assert seen[:3] == ["1:Bearer access-1", "2:Bearer access-1", "2:Bearer access-2"]
    assert grants == ["refresh-0", "refresh-1"]  # the second sent the token the first rotated to
    assert secrets_shown(report, ["s3cret", "refresh-0", "refresh-1", "refresh-2"]) == []
