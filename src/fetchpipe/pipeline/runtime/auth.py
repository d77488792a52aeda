"""Authentication of a source's requests: one small object per ``auth`` type.

The runtime builds one authenticator per source and uses it around each request::

    auth = authenticator_for(source.auth, session=session)
    request = await auth.apply(request, same_origin=request_is_on_the_source_origin)
    response = send(request)
    if response.status == 401 and await auth.on_unauthorized(request):
        request = await auth.apply(original_request, same_origin=...)   # retry once
        response = send(request)

:meth:`Authenticator.apply` returns a new request with the credential added, or the request
itself when ``same_origin`` is false: credentials are never sent to another origin (an API key
in the query that a next-page link to another origin copied from the request is taken out).
Only the OAuth2 authenticators (client credentials, refresh token: :mod:`.oauth2`) do I/O:
they fetch a token from ``token_url`` with the session they were given (through the run's
proxy, when one is configured), cache it, and fetch a new one shortly before it expires or
after a 401. Secrets stay ``SecretStr`` inside these objects and never appear in their
``repr()`` or in error messages.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Collection

import aiohttp
from pydantic import SecretStr

from fetchpipe._models import Lane, Request, with_headers, without_query_params
from fetchpipe.engine.proxies import ProxyPolicy
from fetchpipe.pipeline.runtime.auth_base import (
    AUTHORIZATION,
    DEFAULT_REFRESH_MARGIN,
    Authenticator,
    AuthError,
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
    "LaneLabels",
    "LanesAuthenticator",
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
            request, headers=with_headers(request.headers, {AUTHORIZATION: value})
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
        value = self._value.get_secret_value()
        if not same_origin:
            return (
                _without_keys(request, (self.name,), (value,)) if self.in_ == "query" else request
            )
        if self.in_ == "header":
            return dataclasses.replace(
                request, headers=with_headers(request.headers, {self.name: value})
            )
        params: dict[str, str | int | float] = dict(request.params or {})
        params[self.name] = value
        url = without_query_params(request.url, (self.name,))  # a next-page link may hold it
        return dataclasses.replace(request, url=url, params=params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, in_={self.in_!r})"


class LanesAuthenticator(Authenticator):
    """Several static credentials: the request carries them all as lanes (``Request.lanes``)
    and the engine adds one when it sends it, on a lane whose limits let it start then.

    Each lane's label (``tokens[1]``) is all that shows in logs, reports and the quota file.
    """

    def __init__(self, lanes: tuple[Lane, ...]) -> None:
        self.lanes = lanes
        self._params = frozenset(name for lane in lanes for name in lane.params or ())
        self._values = frozenset(str(v) for lane in lanes for v in (lane.params or {}).values())

    async def apply(self, request: Request, *, same_origin: bool = True) -> Request:
        """``request`` with the lanes, without the lanes' query parameters in its URL (a
        next-page link may hold the key its page went with; the lane it goes on adds its own),
        so that what is recorded of it shows the same as for the first page. To another
        origin: without the lanes, and without a lane's key that the link copied."""
        if not self._params:
            return dataclasses.replace(request, lanes=self.lanes) if same_origin else request
        if not same_origin:
            return _without_keys(request, self._params, self._values)
        url = without_query_params(request.url, self._params)
        return dataclasses.replace(request, url=url, lanes=self.lanes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lanes=[{', '.join(lane.label for lane in self.lanes)}])"


def _without_keys(request: Request, names: Collection[str], values: Collection[str]) -> Request:
    """``request`` to another origin, without the query pairs that hold one of our keys (a
    link the server built from our request may have copied it): ``request`` itself when it
    has none. A key of the link's own (another value) stays."""
    url = without_query_params(request.url, names, values)
    return request if url == request.url else dataclasses.replace(request, url=url)


class LaneLabels:
    """The labels of a pipeline's credentials: ``tokens[i]`` (``values[i]``) by their place in
    their list, the same for a credential wherever it is given (its limits and quota are one),
    the source's name in front when that label already names another credential."""

    def __init__(self) -> None:
        self._by_secret: dict[str, str] = {}
        self._taken: set[str] = set()

    def label(self, secret: str, key: str, index: int, source: str) -> str:
        found = self._by_secret.get(secret)
        if found is None:
            found = f"{key}[{index}]"
            if found in self._taken:
                found = f"{source}.{found}"
            self._by_secret[secret] = found
            self._taken.add(found)
        return found


def _lanes(config: BearerAuth | ApiKeyAuth, labels: LaneLabels, source: str) -> tuple[Lane, ...]:
    lanes = []
    key = "tokens" if isinstance(config, BearerAuth) else "values"
    for index, secret in enumerate(config.credentials()):
        value = secret.get_secret_value()
        label = labels.label(value, key, index, source)
        if isinstance(config, BearerAuth):
            lanes.append(Lane(label, headers={AUTHORIZATION: f"Bearer {value}"}))
        elif config.in_ == "header":
            lanes.append(Lane(label, headers={config.name: value}))
        else:
            lanes.append(Lane(label, params={config.name: value}))
    return tuple(lanes)


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
            request, headers=with_headers(request.headers, {AUTHORIZATION: value})
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
    labels: LaneLabels | None = None,
    source: str = "",
) -> Authenticator:
    """The authenticator for a source's ``auth`` block (one that adds nothing for None).

    `session` is required for the OAuth2 types: the token requests use it, through the proxy
    `proxies` chooses for the token URL. Several ``tokens`` (``values``) make lanes, labelled
    by `labels` (one for the pipeline: a credential has one label in all its sources; `source`
    names the source when a label must tell two apart). With `shared`, one ``oauth2_refresh_token``
    authenticator serves every source with the same block: a refresh token the endpoint
    rotates is then the one all of them send next.
    """
    if config is None:
        return Authenticator()
    if isinstance(config, BearerAuth | ApiKeyAuth) and len(config.credentials()) > 1:
        return LanesAuthenticator(_lanes(config, labels or LaneLabels(), source))
    if isinstance(config, BearerAuth):
        return BearerAuthenticator(config.credentials()[0])
    if isinstance(config, ApiKeyAuth):
        return ApiKeyAuthenticator(config.name, config.credentials()[0], config.in_)
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
