"""Authentication of a source's requests: one small object per ``auth`` type.

The runtime builds one authenticator per source and uses it around each request::

    auth = authenticator_for(source.auth, session=session)
    request = await auth.apply(request, same_origin=request_is_on_the_source_origin)
    response = send(request)
    if response.status == 401 and await auth.on_unauthorized(request):
        request = await auth.apply(original_request, same_origin=...)   # retry once
        response = send(request)

:meth:`Authenticator.apply` returns a new request with the credential added, or the request
itself when ``same_origin`` is false: credentials are never sent to another origin.
Only the OAuth2 authenticators (client credentials, refresh token: :mod:`.oauth2`) do I/O:
they fetch a token from ``token_url`` with the session they were given (through the run's
proxy, when one is configured), cache it, and fetch a new one shortly before it expires or
after a 401. Secrets stay ``SecretStr`` inside these objects and never appear in their
``repr()`` or in error messages.
"""

from __future__ import annotations

import base64
import dataclasses

import aiohttp
from pydantic import SecretStr

from fetchpipe._models import Request
from fetchpipe.engine.proxies import ProxyPolicy
from fetchpipe.pipeline.runtime.auth_base import (
    AUTHORIZATION,
    DEFAULT_REFRESH_MARGIN,
    Authenticator,
    AuthError,
    with_header,
)
from fetchpipe.pipeline.runtime.oauth2 import (
    OAuth2Authenticator,
    OAuth2ClientCredentialsAuthenticator,
    OAuth2RefreshTokenAuthenticator,
)
from fetchpipe.pipeline.spec.auth import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)

__all__ = [
    "DEFAULT_REFRESH_MARGIN",
    "ApiKeyAuthenticator",
    "AuthError",
    "Authenticator",
    "BasicAuthenticator",
    "BearerAuthenticator",
    "OAuth2Authenticator",
    "OAuth2ClientCredentialsAuthenticator",
    "OAuth2RefreshTokenAuthenticator",
    "authenticator_for",
]

AuthConfig = BearerAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials | OAuth2RefreshToken


class BearerAuthenticator(Authenticator):
    """``Authorization: Bearer TOKEN`` with a static token."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    async def apply(self, request: Request, *, same_origin: bool = True) -> Request:
        if not same_origin:
            return request
        value = f"Bearer {self._token.get_secret_value()}"
        return dataclasses.replace(
            request, headers=with_header(request.headers, AUTHORIZATION, value)
        )


class ApiKeyAuthenticator(Authenticator):
    """An API key in the header or the query parameter called `name`."""

    def __init__(self, name: str, value: SecretStr, in_: str = "header") -> None:
        if in_ not in ("header", "query"):
            raise ValueError(f"API key location must be 'header' or 'query', not {in_!r}")
        self.name = name
        self.in_ = in_
        self._value = value

    async def apply(self, request: Request, *, same_origin: bool = True) -> Request:
        if not same_origin:
            return request
        value = self._value.get_secret_value()
        if self.in_ == "header":
            return dataclasses.replace(
                request, headers=with_header(request.headers, self.name, value)
            )
        params: dict[str, str | int | float] = dict(request.params or {})
        params[self.name] = value
        return dataclasses.replace(request, params=params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, in_={self.in_!r})"


class BasicAuthenticator(Authenticator):
    """``Authorization: Basic base64(username:password)``, UTF-8 encoded."""

    def __init__(self, username: str, password: SecretStr) -> None:
        self.username = username
        self._password = password

    async def apply(self, request: Request, *, same_origin: bool = True) -> Request:
        if not same_origin:
            return request
        pair = f"{self.username}:{self._password.get_secret_value()}".encode()
        value = "Basic " + base64.b64encode(pair).decode("ascii")
        return dataclasses.replace(
            request, headers=with_header(request.headers, AUTHORIZATION, value)
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(username={self.username!r})"


def authenticator_for(
    config: AuthConfig | None,
    *,
    session: aiohttp.ClientSession | None = None,
    refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    shared: dict[OAuth2RefreshToken, Authenticator] | None = None,
    proxies: ProxyPolicy | None = None,
) -> Authenticator:
    """The authenticator for a source's ``auth`` block (one that adds nothing for None).

    `session` is required for the OAuth2 types: the token requests use it, through the proxy
    `proxies` chooses for the token URL. With `shared`, one ``oauth2_refresh_token``
    authenticator serves every source with the same block: a refresh token the endpoint
    rotates is then the one all of them send next.
    """
    if config is None:
        return Authenticator()
    if isinstance(config, BearerAuth):
        return BearerAuthenticator(config.token)
    if isinstance(config, ApiKeyAuth):
        return ApiKeyAuthenticator(config.name, config.value, config.in_)
    if isinstance(config, BasicAuth):
        return BasicAuthenticator(config.username, config.password)
    if session is None:
        raise ValueError(f"{config.type} needs an aiohttp session")
    if isinstance(config, OAuth2ClientCredentials):
        return OAuth2ClientCredentialsAuthenticator(
            session,
            config.token_url,
            config.client_id,
            config.client_secret,
            config.scope,
            refresh_margin=refresh_margin,
            proxies=proxies,
        )
    if isinstance(config, OAuth2RefreshToken):
        if shared is not None and config in shared:
            return shared[config]
        made = OAuth2RefreshTokenAuthenticator(
            session,
            config.token_url,
            config.client_id,
            config.client_secret,
            config.refresh_token,
            config.scope,
            refresh_margin=refresh_margin,
            proxies=proxies,
        )
        if shared is not None:
            shared[config] = made
        return made
    raise TypeError(f"unknown auth config {type(config).__name__}")
