"""A source's ``auth`` block: one model per ``type``, :data:`Auth` their union.

Secrets (tokens, passwords, API-key values, client secrets, refresh tokens) are ``SecretStr``:
they print as ``**********``, and the pipeline masks their values in every message
(:meth:`~fetchpipe.pipeline.spec.config.PipelineSpec.auth_secrets`).
:mod:`fetchpipe.pipeline.runtime.auth` makes an authenticator of each.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr

from fetchpipe.pipeline.spec.base import FrozenModel, HttpUrl, Text


class BearerAuth(FrozenModel):
    """``Authorization: Bearer TOKEN``."""

    type: Literal["bearer"]
    token: SecretStr


class ApiKeyAuth(FrozenModel):
    """An API key in a header or a query parameter called ``name``."""

    type: Literal["api_key"]
    name: Text
    value: SecretStr
    in_: Literal["header", "query"] = Field(default="header", alias="in")


class BasicAuth(FrozenModel):
    """HTTP Basic authentication."""

    type: Literal["basic"]
    username: str
    password: SecretStr


class OAuth2ClientCredentials(FrozenModel):
    """A bearer token fetched from ``token_url`` with the client-credentials grant."""

    type: Literal["oauth2_client_credentials"]
    token_url: HttpUrl
    client_id: Text
    client_secret: SecretStr
    scope: str | None = None


class OAuth2RefreshToken(FrozenModel):
    """A bearer token fetched from ``token_url`` with the refresh-token grant (a refresh token
    obtained once, e.g. by the API's consent flow). A new refresh token in the answer
    (rotation) is used for the rest of the run but not stored."""

    type: Literal["oauth2_refresh_token"]
    token_url: HttpUrl
    client_id: Text
    client_secret: SecretStr | None = Field(
        default=None, description="Omitted for a public client (one without a secret)."
    )
    refresh_token: SecretStr
    scope: str | None = None


OAuth2 = OAuth2ClientCredentials | OAuth2RefreshToken
"""The auth types whose token is fetched from a token endpoint."""

Auth = Annotated[
    BearerAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials | OAuth2RefreshToken,
    Field(discriminator="type"),
]
