"""OAuth2 bearer tokens fetched from a token endpoint (RFC 6749): the client-credentials and
refresh-token grants, cached and renewed before they expire or after a 401.

These are the only authenticators that do I/O: the token requests go with the aiohttp session
they were given (through the run's proxy, when one is configured). Secrets stay ``SecretStr``
and never appear in a ``repr()`` or a message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from pydantic import SecretStr

from fetchpipe._models import Request, with_headers
from fetchpipe._redact import public_url, redact_text
from fetchpipe.engine.proxies import PROXY_REFUSED, ProxyPolicy
from fetchpipe.pipeline.runtime.auth_base import (
    AUTHORIZATION,
    DEFAULT_REFRESH_MARGIN,
    Authenticator,
    AuthError,
)

__all__ = [
    "OAuth2Authenticator",
    "OAuth2ClientCredentialsAuthenticator",
    "OAuth2RefreshTokenAuthenticator",
]


class OAuth2Authenticator(Authenticator):
    """A bearer token from a token endpoint (RFC 6749), cached: what the OAuth2 grants share.

    The token is fetched on first use with `session` (a POST of the grant's form fields,
    :meth:`_form`) and cached. A new one is fetched `refresh_margin` seconds before the cached
    one expires (at most half its lifetime before), and after :meth:`on_unauthorized`.
    Concurrent callers wait for one shared token request. A token without ``expires_in`` is
    kept until a 401.
    """

    grant = ""
    """The ``grant_type`` sent."""
    hint = "check client_id and client_secret"
    """What to check when the endpoint refuses the grant (HTTP 400 or 401)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: str,
        client_id: str,
        client_secret: SecretStr | None,
        scope: str | None = None,
        *,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        timeout: float = 30.0,
        proxies: ProxyPolicy | None = None,
    ) -> None:
        if not refresh_margin >= 0:
            raise ValueError(f"refresh_margin must be >= 0, not {refresh_margin!r}")
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.refresh_margin = refresh_margin
        self._session = session
        self._secret = client_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        proxy = proxies.proxy_for(token_url) if proxies is not None else None
        self._proxy = None if proxy is None else proxy.address
        # The proxy's credentials go with the CONNECT of an https token URL, else with the
        # request itself (which goes to the proxy): never inside the tunnel.
        self._proxy_headers: dict[str, str] = {}
        self._headers = {"Accept": "application/json"}
        if proxy is not None and proxy.authorization is not None:
            tunnelled = token_url.lower().startswith("https:")
            (self._proxy_headers if tunnelled else self._headers)["Proxy-Authorization"] = (
                proxy.authorization
            )
        self._token: SecretStr | None = None
        self._refresh_at = math.inf
        self._lock = asyncio.Lock()
        self.fetches = 0
        """Number of token requests sent."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={public_url(self.token_url)!r}, "
            f"client_id={self.client_id!r}, scope={self.scope!r})"
        )

    def _valid(self) -> SecretStr | None:
        if self._token is not None and time.monotonic() < self._refresh_at:
            return self._token
        return None

    async def token(self) -> SecretStr:
        """The cached access token, fetched first if there is none or it is about to expire."""
        token = self._valid()
        if token is not None:
            return token
        async with self._lock:
            token = self._valid()  # another caller may have fetched it while this one waited
            if token is None:
                token = await self._fetch()
            return token

    async def apply(self, request: Request, *, same_origin: bool = True) -> Request:
        if not same_origin:
            return request
        value = f"Bearer {(await self.token()).get_secret_value()}"
        return dataclasses.replace(
            request, headers=with_headers(request.headers, {AUTHORIZATION: value})
        )

    async def on_unauthorized(self, request: Request | None = None) -> bool:
        """Drop the cached token so that the next :meth:`apply` fetches a new one; True.

        With `request` (the one that got the 401), the token is dropped only if that request
        carried it: a token fetched since then is kept.
        """
        current = self._token
        if current is None:
            return True
        if request is not None:
            sent = next(
                (v for k, v in (request.headers or {}).items() if k.lower() == "authorization"),
                None,
            )
            if sent is not None and sent != f"Bearer {current.get_secret_value()}":
                return True
        self._token = None
        self._refresh_at = math.inf
        return True

    def _form(self) -> dict[str, str]:
        """The form fields of a token request: the grant's, the client's, the scope."""
        form = {"grant_type": self.grant, "client_id": self.client_id}
        if self._secret is not None:
            form["client_secret"] = self._secret.get_secret_value()
        if self.scope:
            form["scope"] = self.scope
        return form

    def _secrets(self) -> list[str]:
        """The secret values a message about a token request must not show."""
        return [self._secret.get_secret_value()] if self._secret is not None else []

    def _accepted(self, body: Mapping[str, Any]) -> None:
        """Called with a successful token response, once its access token is read."""

    async def _fetch(self) -> SecretStr:
        """POST the grant; cache and return the token or raise AuthError."""
        where = public_url(self.token_url)
        form = self._form()
        self.fetches += 1
        started = time.monotonic()
        try:
            async with self._session.post(
                self.token_url,
                data=form,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers or None,
            ) as resp:
                status = resp.status
                try:
                    body: Any = await resp.json(content_type=None)
                except ValueError:
                    body = None
        except aiohttp.ClientHttpProxyError as exc:  # the proxy refused the CONNECT
            refused = f": {PROXY_REFUSED}" if exc.status == 407 else ""
            raise AuthError(
                f"OAuth2 token request to {where} failed: the proxy answered HTTP {exc.status}"
                f"{refused}"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthError(
                f"OAuth2 token request to {where} failed: {type(exc).__name__}"
            ) from None
        if status != 200:
            detail = ""
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                error = redact_text(body["error"][:200], self._secrets())
                detail = f" ({error})"
            hint = f" HINT: {self.hint}" if status in (400, 401) else ""
            if status == 407:
                detail, hint = f": {PROXY_REFUSED}", ""
            raise AuthError(
                f"OAuth2 token request to {where} got HTTP {status}{detail}.{hint}",
                status=status,
            )
        if not isinstance(body, dict):
            raise AuthError(f"OAuth2 token response from {where} is not a JSON object")
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise AuthError(f"OAuth2 token response from {where} has no access_token")
        token_type = body.get("token_type", "bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise AuthError(
                f"OAuth2 token response from {where} has token_type {token_type!r}, "
                "only bearer tokens are supported"
            )
        refresh_at = math.inf
        expires_in = body.get("expires_in")
        if expires_in is not None:
            try:
                lifetime = float(expires_in)
            except (TypeError, ValueError):
                lifetime = math.nan
            if isinstance(expires_in, bool) or not 0 <= lifetime < math.inf:
                raise AuthError(
                    f"OAuth2 token response from {where} has an invalid expires_in {expires_in!r}"
                )
            refresh_at = started + lifetime - min(self.refresh_margin, lifetime / 2)
        self._accepted(body)
        token = SecretStr(access_token)
        self._token = token
        self._refresh_at = refresh_at
        return token


class OAuth2ClientCredentialsAuthenticator(OAuth2Authenticator):
    """A bearer token from ``token_url`` with the client-credentials grant (RFC 6749 4.4): form
    fields ``grant_type``, ``client_id``, ``client_secret`` and ``scope`` if set."""

    grant = "client_credentials"


class OAuth2RefreshTokenAuthenticator(OAuth2Authenticator):
    """A bearer token from ``token_url`` with the refresh-token grant (RFC 6749 6): form fields
    ``grant_type=refresh_token``, ``refresh_token``, ``client_id``, ``client_secret`` (a
    confidential client) and ``scope`` if set.

    When the answer holds a new ``refresh_token`` (rotation, RFC 6749 10.4), the next token
    request of the run sends that one. It is kept in memory only: a secret is never written,
    so the next run starts from the configured one again (:meth:`warnings` says so).
    """

    grant = "refresh_token"
    hint = (
        "check client_id, client_secret and refresh_token (a refresh token expires, or is "
        "revoked once the endpoint has rotated it: then obtain a new one)"
    )

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: str,
        client_id: str,
        client_secret: SecretStr | None,
        refresh_token: SecretStr,
        scope: str | None = None,
        *,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        timeout: float = 30.0,
        proxies: ProxyPolicy | None = None,
    ) -> None:
        super().__init__(
            session,
            token_url,
            client_id,
            client_secret,
            scope,
            refresh_margin=refresh_margin,
            timeout=timeout,
            proxies=proxies,
        )
        self._configured = refresh_token
        self._refresh = refresh_token
        self.rotations = 0
        """Times the token endpoint answered with a new refresh token."""

    def _form(self) -> dict[str, str]:
        return {**super()._form(), "refresh_token": self._refresh.get_secret_value()}

    def _secrets(self) -> list[str]:
        refresh = {self._configured.get_secret_value(), self._refresh.get_secret_value()}
        return [*super()._secrets(), *refresh]

    def _accepted(self, body: Mapping[str, Any]) -> None:
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh.get_secret_value():
            self._refresh = SecretStr(rotated)
            self.rotations += 1

    def warnings(self) -> list[str]:
        if not self.rotations:
            return []
        return [
            f"the token endpoint {public_url(self.token_url)} rotated the refresh token: the new "
            "one was used for the rest of this run but is not stored (a secret is never "
            "written), so the next run sends the configured refresh_token again. HINT: if the "
            "endpoint revokes a rotated refresh token, obtain a new one before the next run"
        ]
