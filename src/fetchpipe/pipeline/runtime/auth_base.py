"""What every authenticator shares: the :class:`Authenticator` interface and :class:`AuthError`.
:mod:`.auth` has the static credentials and ``authenticator_for``, :mod:`.oauth2` the tokens
fetched from a token endpoint; both set their header with the core's ``_models.with_headers``,
as a credential's lane does."""

from __future__ import annotations

from fetchpipe._exceptions import FetchpipeError
from fetchpipe._models import Request

__all__ = ["AUTHORIZATION", "DEFAULT_REFRESH_MARGIN", "AuthError", "Authenticator"]

DEFAULT_REFRESH_MARGIN = 30.0
"""Seconds before a token's expiry at which a new one is fetched (at most half its lifetime)."""

AUTHORIZATION = "Authorization"


class AuthError(FetchpipeError):
    """Credentials could not be obtained (an OAuth2 token request failed).

    Not a ``ConfigError``: that one means settings found wrong before any request is sent,
    while this happens at run time and may as well be an unreachable or failing token
    endpoint. The message never contains a secret or a token. ``status`` is the HTTP status
    of the token endpoint's answer, or None when there was none.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Authenticator:
    """Adds one kind of credential to requests. This base class adds nothing."""

    async def apply(self, request: Request, *, same_origin: bool = True) -> Request:
        """`request` with the credential added; `request` itself when not `same_origin`."""
        return request

    async def on_unauthorized(self, request: Request | None = None) -> bool:
        """Called after a 401 answer to `request`; True if retrying it once may succeed."""
        return False

    def warnings(self) -> list[str]:
        """What the run's report should say about this credential (no secret in them)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
