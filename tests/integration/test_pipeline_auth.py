"""Authenticators of pipeline sources against the simulated shop API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import TypeAdapter

from fetchpipe._exceptions import FetchpipeError
from fetchpipe._models import Request
from fetchpipe.pipeline.runtime.auth import (
    ApiKeyAuthenticator,
    Authenticator,
    AuthError,
    BasicAuthenticator,
    BearerAuthenticator,
    OAuth2ClientCredentialsAuthenticator,
    authenticator_for,
)
from fetchpipe.pipeline.spec.models import Auth
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import (
    SHOP_API_KEY,
    SHOP_API_KEY_HEADER,
    SHOP_API_KEY_PARAM,
    SHOP_BASIC_PASSWORD,
    SHOP_BASIC_USER,
    SHOP_CLIENT_ID,
    SHOP_CLIENT_SECRET,
    SHOP_TOKEN,
)

TOKEN_PATH = "/shop/oauth/token"
_AUTH = TypeAdapter(Auth)
pytestmark = pytest.mark.fleet(hosts=1)


def auth(**fields: Any) -> Any:
    return _AUTH.validate_python(fields)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def send(session: aiohttp.ClientSession, request: Request) -> int:
    async with session.request(
        request.method,
        request.url,
        headers=dict(request.headers or {}),
        params=dict(request.params or {}),
    ) as resp:
        await resp.read()
        return resp.status


def oauth(
    fleet: Fleet,
    session: aiohttp.ClientSession,
    query: str = "",
    margin: float = 30.0,
    **fields: Any,
) -> Any:
    config = auth(
        type="oauth2_client_credentials",
        token_url=fleet.url(TOKEN_PATH + query),
        client_id=SHOP_CLIENT_ID,
        client_secret=SHOP_CLIENT_SECRET,
        **fields,
    )
    return authenticator_for(config, session=session, refresh_margin=margin)


SECRET_CASES = [
    ({"type": "bearer", "token": SHOP_TOKEN}, "shop-bearer", SHOP_TOKEN),
    (
        {"type": "api_key", "name": SHOP_API_KEY_HEADER, "value": SHOP_API_KEY, "in": "header"},
        "shop-key",
        SHOP_API_KEY,
    ),
    (
        {"type": "api_key", "name": SHOP_API_KEY_PARAM, "value": SHOP_API_KEY, "in": "query"},
        "shop-key",
        SHOP_API_KEY,
    ),
    (
        {"type": "basic", "username": SHOP_BASIC_USER, "password": SHOP_BASIC_PASSWORD},
        "shop-basic",
        SHOP_BASIC_PASSWORD,
    ),
]
IDS = ["bearer", "key-header", "key-query", "basic"]


@pytest.mark.parametrize(("fields", "prefix", "secret"), SECRET_CASES, ids=IDS)
async def test_static_credentials(
    fleet: Fleet, session: aiohttp.ClientSession, fields: dict[str, str], prefix: str, secret: str
) -> None:
    url = fleet.url(f"/{prefix}/v1/all/products")
    authenticator = authenticator_for(auth(**fields))
    original = Request(url, headers={"Accept": "application/json"}, params={"x": "1"})

    applied = await authenticator.apply(original)
    assert applied is not original
    assert original.headers == {"Accept": "application/json"}  # the input is untouched
    assert original.params == {"x": "1"}
    assert applied.headers is not None and applied.headers["Accept"] == "application/json"
    assert applied.params is not None and applied.params["x"] == "1"
    assert await send(session, applied) == 200
    assert await send(session, original) == 401

    wrong = authenticator_for(auth(**{**fields, _secret_field(fields): "wrong"}))
    assert await send(session, await wrong.apply(original)) == 401
    assert await authenticator.on_unauthorized() is False

    assert secret not in repr(authenticator)
    assert secret not in str(vars(authenticator))


def _secret_field(fields: dict[str, str]) -> str:
    return {"bearer": "token", "api_key": "value", "basic": "password"}[fields["type"]]


@pytest.mark.parametrize(("fields", "prefix", "secret"), SECRET_CASES, ids=IDS)
async def test_no_credentials_to_another_origin(
    fleet: Fleet, session: aiohttp.ClientSession, fields: dict[str, str], prefix: str, secret: str
) -> None:
    request = Request(fleet.url(f"/{prefix}/v1/all/products"))
    authenticator = authenticator_for(auth(**fields))
    assert await authenticator.apply(request, same_origin=False) is request
    assert await send(session, request) == 401


async def test_apply_replaces_existing_credential_header() -> None:
    authenticator = BearerAuthenticator(auth(type="bearer", token="new").token)
    applied = await authenticator.apply(
        Request("http://127.0.0.1/", headers={"authorization": "x"})
    )
    assert applied.headers == {"Authorization": "Bearer new"}


async def test_a_query_key_replaces_the_one_a_next_page_link_carries() -> None:
    link = Request("http://127.0.0.1/x?api_key=old&page=2", params={"n": 1})
    one = authenticator_for(auth(type="api_key", name="api_key", value="new", **{"in": "query"}))
    applied = await one.apply(link)
    assert (applied.url, applied.params) == (
        "http://127.0.0.1/x?page=2",
        {"n": 1, "api_key": "new"},
    )
    several = authenticator_for(
        auth(type="api_key", name="api_key", values=["new", "other"], **{"in": "query"})
    )
    laned = await several.apply(link)
    assert (laned.url, laned.params) == ("http://127.0.0.1/x?page=2", {"n": 1})
    assert laned.lanes is not None and len(laned.lanes) == 2
    assert await one.apply(link, same_origin=False) is link  # the link's own key stays there
    copied = Request("http://127.0.0.2/x?api_key=new&api_key=theirs&page=2")
    for authenticator in (one, several):  # our key, copied into a link to another origin: out
        elsewhere = await authenticator.apply(copied, same_origin=False)
        assert (elsewhere.url, elsewhere.params, elsewhere.lanes) == (
            "http://127.0.0.2/x?api_key=theirs&page=2",
            None,
            None,
        )


async def test_basic_encodes_utf8() -> None:
    authenticator = authenticator_for(auth(type="basic", username="jörg", password="pä:ss"))
    assert isinstance(authenticator, BasicAuthenticator)
    applied = await authenticator.apply(Request("http://127.0.0.1/"))
    assert applied.headers == {"Authorization": "Basic asO2cmc6cMOkOnNz"}
    assert repr(authenticator) == "BasicAuthenticator(username='jörg')"


async def test_no_auth_adds_nothing() -> None:
    authenticator = authenticator_for(None)
    request = Request("http://127.0.0.1/")
    assert await authenticator.apply(request) is request
    assert await authenticator.on_unauthorized() is False


async def test_oauth2_one_token_for_concurrent_callers(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    authenticator = oauth(fleet, session, scope="read")
    url = fleet.url("/shop-oauth/v1/all/products")
    applied = await asyncio.gather(*(authenticator.apply(Request(url)) for _ in range(20)))
    assert fleet.stats.requests(path=TOKEN_PATH) == 1
    assert len({tuple((r.headers or {}).items()) for r in applied}) == 1
    assert {await send(session, r) for r in applied} == {200}
    assert await send(session, Request(url)) == 401

    await authenticator.apply(Request(url))
    assert fleet.stats.requests(path=TOKEN_PATH) == 1

    cross = Request(fleet.url("/shop-oauth/v1/all/products"))
    assert await authenticator.apply(cross, same_origin=False) is cross


async def test_oauth2_refreshes_before_expiry(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    authenticator = oauth(fleet, session, query="?expires_in=1", margin=0)
    url = fleet.url("/shop-oauth/v1/all/products")
    first = await authenticator.apply(Request(url))
    await authenticator.apply(Request(url))  # still fresh: the same token
    assert fleet.stats.requests(path=TOKEN_PATH) == 1
    assert await send(session, first) == 200

    await asyncio.sleep(1.05)
    assert await send(session, first) == 401  # the server says it expired
    second = await authenticator.apply(Request(url))
    assert fleet.stats.requests(path=TOKEN_PATH) == 2
    assert second.headers != first.headers
    assert await send(session, second) == 200


async def test_oauth2_refreshes_within_margin(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    # A 2 s token is refreshed after half its lifetime: the 30 s margin is capped at half.
    authenticator = oauth(fleet, session, query="?expires_in=2")
    url = fleet.url("/shop-oauth/v1/all/products")
    first = await authenticator.apply(Request(url))
    await asyncio.sleep(0.2)
    assert (await authenticator.apply(Request(url))).headers == first.headers
    assert fleet.stats.requests(path=TOKEN_PATH) == 1
    await asyncio.sleep(1.0)
    second = await authenticator.apply(Request(url))
    assert fleet.stats.requests(path=TOKEN_PATH) == 2
    assert second.headers != first.headers
    assert await send(session, first) == 200  # refreshed before the old one expired
    assert await send(session, second) == 200


def test_oauth2_margin_must_not_be_negative(session: aiohttp.ClientSession) -> None:
    config = auth(
        type="oauth2_client_credentials",
        token_url="https://auth.example/token",
        client_id="id",
        client_secret="s",
    )
    with pytest.raises(ValueError, match="refresh_margin"):
        authenticator_for(config, session=session, refresh_margin=-1)


async def test_oauth2_refreshes_after_unauthorized(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    authenticator = oauth(fleet, session)
    url = fleet.url("/shop-oauth/v1/all/products")
    first = await authenticator.apply(Request(url))
    assert await authenticator.on_unauthorized(first) is True
    second = await authenticator.apply(Request(url))
    assert fleet.stats.requests(path=TOKEN_PATH) == 2
    assert second.headers != first.headers
    assert await send(session, second) == 200

    # A late 401 for a request with the old token keeps the new one.
    assert await authenticator.on_unauthorized(first) is True
    assert (await authenticator.apply(Request(url))).headers == second.headers
    assert fleet.stats.requests(path=TOKEN_PATH) == 2

    # Without the request, the token is always dropped.
    assert await authenticator.on_unauthorized() is True
    await authenticator.apply(Request(url))
    assert fleet.stats.requests(path=TOKEN_PATH) == 3


async def test_oauth2_wrong_secret(fleet: Fleet, session: aiohttp.ClientSession) -> None:
    secret = "very-secret-value"
    authenticator = authenticator_for(
        auth(
            type="oauth2_client_credentials",
            token_url=fleet.url(TOKEN_PATH),
            client_id=SHOP_CLIENT_ID,
            client_secret=secret,
        ),
        session=session,
    )
    url = fleet.url("/shop-oauth/v1/all/products")
    with pytest.raises(AuthError) as info:
        await authenticator.apply(Request(url))
    assert isinstance(info.value, FetchpipeError)
    assert info.value.status == 401
    assert "401" in str(info.value)
    assert secret not in str(info.value)
    assert secret not in repr(authenticator)
    assert secret not in str(vars(authenticator))
    assert fleet.stats.requests(path=TOKEN_PATH) == 1


async def test_oauth2_unreachable_endpoint(session: aiohttp.ClientSession) -> None:
    async with Fleet(hosts=1, minute=0.01) as fleet:
        token_url = fleet.url(TOKEN_PATH)
    authenticator = authenticator_for(
        auth(
            type="oauth2_client_credentials",
            token_url=token_url,
            client_id=SHOP_CLIENT_ID,
            client_secret=SHOP_CLIENT_SECRET,
        ),
        session=session,
    )
    with pytest.raises(AuthError, match="failed") as info:
        await authenticator.apply(Request("http://127.0.0.1/"))
    assert info.value.status is None
    assert SHOP_CLIENT_SECRET not in str(info.value)


async def test_oauth2_token_and_secret_not_in_repr(
    fleet: Fleet, session: aiohttp.ClientSession
) -> None:
    authenticator = oauth(fleet, session, scope="read")
    applied = await authenticator.apply(Request(fleet.url("/shop-oauth/v1/all/products")))
    token = (applied.headers or {})["Authorization"].removeprefix("Bearer ")
    text = repr(authenticator) + str(vars(authenticator))
    assert token not in text
    assert SHOP_CLIENT_SECRET not in text
    assert "scope='read'" in repr(authenticator)


def test_oauth2_needs_a_session() -> None:
    config = auth(
        type="oauth2_client_credentials",
        token_url="https://auth.example/token",
        client_id="id",
        client_secret="s",
    )
    with pytest.raises(ValueError, match="session"):
        authenticator_for(config)


def test_all_share_the_interface() -> None:
    for cls in (
        BearerAuthenticator,
        ApiKeyAuthenticator,
        BasicAuthenticator,
        OAuth2ClientCredentialsAuthenticator,
    ):
        assert issubclass(cls, Authenticator)
