"""The shop's refresh-token grant: access tokens for the ``shop-oauth`` routes from a refresh
token, which the endpoint rotates.

- ``POST /shop/oauth/refresh``: form fields ``grant_type=refresh_token``, ``refresh_token``,
  ``client_id`` and ``client_secret`` (or HTTP Basic). The answer holds an access token that
  the ``/shop-oauth/v1/...`` routes accept, its ``expires_in`` (``?expires_in=S``, default
  :data:`~fetchpipe.sim.shop.SHOP_TOKEN_EXPIRES_IN`) and a new ``refresh_token``.
  ``?rotate=`` says what happens to the refresh token sent: ``grace`` (the default) keeps it
  valid, ``strict`` revokes it (the next request must send the new one), ``no`` issues none.
  An unknown or revoked refresh token gets 400 ``invalid_grant``.
- ``GET /shop/oauth/__refreshed``: ``{"refresh_tokens": [...]}``, the refresh tokens received,
  in order (for tests: which one a client sent).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import hdrs, web

from fetchpipe.sim.params import json_response as _json
from fetchpipe.sim.shop import (
    SHOP,
    SHOP_CLIENT_ID,
    SHOP_CLIENT_SECRET,
    SHOP_TOKEN_EXPIRES_IN,
    _basic,
    _error,
    _unauthorized,
)

__all__ = ["SHOP_REFRESH_TOKEN", "RefreshTokens", "add_refresh_routes"]

SHOP_REFRESH_TOKEN = "shop-refresh"
"""The refresh token the shop issued first (valid until a ``rotate=strict`` grant uses it)."""


class RefreshTokens:
    """The refresh tokens of one fleet: those valid, and those received."""

    __slots__ = ("received", "valid")

    def __init__(self) -> None:
        self.valid = {SHOP_REFRESH_TOKEN}
        self.received: list[str] = []


REFRESH = web.AppKey("fetchpipe_sim_shop_refresh", RefreshTokens)


async def refresh_grant(request: web.Request) -> web.Response:
    """``POST /shop/oauth/refresh``: an access token for a valid refresh token."""
    form = await request.post()
    if form.get("grant_type") != "refresh_token":
        return _error(400, "unsupported_grant_type")
    basic = _basic(request)
    client = basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
    if client != (SHOP_CLIENT_ID, SHOP_CLIENT_SECRET):
        return _unauthorized("invalid_client", 'Basic realm="shop"')
    tokens = request.app[REFRESH]
    sent = form.get("refresh_token")
    if isinstance(sent, str):
        tokens.received.append(sent)
    if sent not in tokens.valid:
        return _error(400, "invalid_grant")
    rotate = request.query.get("rotate", "grace")
    try:
        expires_in = float(request.query.get("expires_in", SHOP_TOKEN_EXPIRES_IN))
    except ValueError:
        return _error(400, "expires_in must be a number")
    if rotate not in ("grace", "strict", "no") or not 0 <= expires_in <= 86400:
        return _error(400, "rotate is grace, strict or no; expires_in 0 to 86400")
    token = "shop-oauth-" + secrets.token_urlsafe(16)
    request.app[SHOP].tokens[token] = time.monotonic() + expires_in
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(expires_in) if expires_in == int(expires_in) else expires_in,
    }
    if rotate != "no":
        body["refresh_token"] = "shop-refresh-" + secrets.token_urlsafe(16)
        tokens.valid.add(body["refresh_token"])
        if rotate == "strict":
            tokens.valid.discard(str(sent))
    return _json(body, headers={hdrs.CACHE_CONTROL: "no-store"})


async def refreshed(request: web.Request) -> web.Response:
    """``GET /shop/oauth/__refreshed``: the refresh tokens received, in order."""
    return _json({"refresh_tokens": request.app[REFRESH].received})


def add_refresh_routes(app: web.Application) -> None:
    """Give ``app`` its refresh tokens and the refresh-token grant's routes (after the shop's
    routes: the access tokens go to the shop's)."""
    app[REFRESH] = RefreshTokens()
    app.router.add_post("/shop/oauth/refresh", refresh_grant)
    app.router.add_get("/shop/oauth/__refreshed", refreshed)
