"""A source's ``auth`` block: one model per ``type``, :data:`Auth` their union.

Secrets (tokens, passwords, API-key values, client secrets, refresh tokens) are ``SecretStr``:
they print as ``**********``, and the pipeline masks their values in every message
(:meth:`~fetchpipe.pipeline.spec.config.PipelineSpec.auth_secrets`).
:mod:`fetchpipe.pipeline.runtime.auth` makes an authenticator of each.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, SecretStr, model_validator

from fetchpipe.pipeline.spec.base import FrozenModel, HttpUrl, Text
from fetchpipe.pipeline.spec.errors import Problem, Problems

Credentials = Annotated[list[SecretStr], Field(min_length=1, max_length=64)]
"""Several credentials of one kind: each a lane of the source's host (see ``credentials``)."""


def _exactly_one(one: str, many: str) -> ConfigDict:
    """The JSON Schema's way of saying that one of the two keys is given, not both."""
    return ConfigDict(json_schema_extra={"oneOf": [{"required": [one]}, {"required": [many]}]})


def _one_of(single: SecretStr | None, several: list[SecretStr] | None, one: str, many: str) -> None:
    """Exactly one of the keys ``one`` (a credential) and ``many`` (a list of them)."""
    if (single is None) == (several is None):
        what = f"has both {one} and {many}" if single is not None else f"needs {one} or {many}"
        hint = (
            f"HINT: give exactly one: {one}: for one credential, {many}: [...] for several "
            "(each paced by the host's limits)"
        )
        raise Problems([Problem((), f"{what}. {hint}")])


class BearerAuth(FrozenModel):
    """``Authorization: Bearer TOKEN``, or one of several ``tokens`` (each token a lane of the
    host, with the host's limits and quota of its own)."""

    model_config = FrozenModel.model_config | _exactly_one("token", "tokens")

    type: Literal["bearer"]
    token: SecretStr | None = None
    tokens: Credentials | None = Field(
        default=None, description="Several tokens: each with the host's limits and quota."
    )

    @model_validator(mode="after")
    def _check(self) -> BearerAuth:
        _one_of(self.token, self.tokens, "token", "tokens")
        return self

    def credentials(self) -> list[SecretStr]:
        """The token, or the tokens, in their order."""
        return list(self.tokens) if self.tokens is not None else [_given(self.token)]


class ApiKeyAuth(FrozenModel):
    """An API key in a header or a query parameter called ``name``, or one of several
    ``values`` (each a lane of the host, as bearer's ``tokens``)."""

    model_config = FrozenModel.model_config | _exactly_one("value", "values")

    type: Literal["api_key"]
    name: Text
    value: SecretStr | None = None
    values: Credentials | None = Field(
        default=None, description="Several keys: each with the host's limits and quota."
    )
    in_: Literal["header", "query"] = Field(default="header", alias="in")

    @model_validator(mode="after")
    def _check(self) -> ApiKeyAuth:
        _one_of(self.value, self.values, "value", "values")
        return self

    def credentials(self) -> list[SecretStr]:
        """The value, or the values, in their order."""
        return list(self.values) if self.values is not None else [_given(self.value)]


def _given(secret: SecretStr | None) -> SecretStr:
    assert secret is not None  # the model's check: one of the two is given
    return secret


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
