"""What the engine sees of a transport, and what both transports share.

:class:`Transport` is the protocol (send one request, get a :class:`RawResponse`);
:class:`TransportBase` keeps the settings both transports start from (the security policy,
the client's default headers apart from the credential ones); :class:`CancelCheck` raises a
cancel that an HTTP library lost; the functions say which responses have a body and how a
redirect's small body is read so that its connection can be reused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, Required, TypedDict

from fetchpipe._config import Limits, Timeouts
from fetchpipe._models import Request
from fetchpipe.engine.proxies import ProxyPolicy
from fetchpipe.engine.security import DEFAULT_POLICY, SecurityPolicy
from fetchpipe.engine.tls import TlsMaterial, TlsPolicy, load_tls
from fetchpipe.engine.transports.default_headers import split_default_headers

DRAIN_WAIT = 1.0  # seconds a redirect's small body may take to arrive before it is dropped
REDIRECT_DRAIN_LIMIT = 65536  # a redirect's body up to this size is read, to keep the connection


@dataclass(slots=True)
class RawResponse:
    """One complete response. ``url`` is the final URL, after redirects (resolve relative
    links against it); ``""`` when whoever built the response did not say."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    content_type: str
    first_byte: float
    url: str = ""


class Transport(Protocol):
    """Sends one request. Raises ``TransportError`` for anything but a complete response."""

    async def send(
        self, request: Request, *, total_timeout: float | None, max_body_size: int
    ) -> RawResponse: ...

    async def close(self) -> None: ...


class TransportSettings(TypedDict, total=False):
    """The keyword arguments every transport takes (one may take more of its own)."""

    limits: Required[Limits]
    timeouts: Required[Timeouts]
    headers: Mapping[str, str] | None
    security: SecurityPolicy | None
    proxy: ProxyPolicy | None
    tls: TlsPolicy | None


class TransportBase:
    """The settings both transports start from (see :class:`TransportSettings`).

    ``security`` (default: ``SecurityPolicy()``) sets redirects, the private-address guard,
    TLS exceptions, stacked encodings and which headers and params are credentials.
    Credential headers among ``headers`` are kept apart from the client's defaults
    (``default_headers``, in ``credential_headers``): they are sent with every request but,
    unlike the others, not to another origin after a redirect. ``security`` and
    ``credential_headers`` are plain attributes, not properties: every request reads them.

    ``proxy`` (default: none) chooses a proxy per request (``proxies``: None when it sends
    everything directly); ``tls`` adds CAs and a client certificate, its files read here
    (``tls_material``; a ConfigError for one that cannot be used).
    """

    def __init__(
        self,
        *,
        limits: Limits,
        timeouts: Timeouts,
        headers: Mapping[str, str] | None = None,
        security: SecurityPolicy | None = None,
        proxy: ProxyPolicy | None = None,
        tls: TlsPolicy | None = None,
    ) -> None:
        policy = security if security is not None else DEFAULT_POLICY
        self.security = policy
        self.proxies = proxy if proxy is not None and proxy.active else None
        self.tls_material: TlsMaterial | None = (
            load_tls(tls) if tls is not None and tls.active else None
        )
        self._limits = limits
        self._timeouts = timeouts
        self._drain_wait = drain_wait(timeouts)
        self.default_headers, self.credential_headers = split_default_headers(policy, headers or {})

    @property
    def insecure_hosts(self) -> frozenset[str]:
        """Hosts whose TLS certificates are not verified, for the caller to warn about."""
        return self.security.insecure_hosts


class CancelCheck:
    """Whether the current task was asked to cancel since the check was made, for a send to
    raise a cancel that its HTTP library lost.

    An awaitable of pyreqwest can end normally, or with an error of its own, although a
    ``CancelledError`` was thrown into it: pyo3 hands the cancel to the Rust future and polls it
    once more, and the future finishes anyway when the response head or a body chunk is already
    in (its ``tokio::select!`` between the request and the cancel may pick either; a buffered
    chunk is returned without looking). The task then goes on with its cancel spent: an engine
    worker takes the next request, and stopping the run waits for that worker forever. What
    still shows the cancel is the task's count of cancels asked and not taken back
    (``Task.cancelling()``); a send compares it with the count when it started, as
    ``asyncio.timeout`` does, so that a cancel asked before (the caller's own) or taken back
    inside (a timeout's) is left alone.
    """

    __slots__ = ("_asked", "_task")

    def __init__(self) -> None:
        task = asyncio.current_task()
        self._task = task
        self._asked = 0 if task is None else task.cancelling()

    def raise_if_asked(self) -> None:
        """Raise ``CancelledError`` if the task was asked to cancel since the check was made."""
        task = self._task
        if task is not None and task.cancelling() > self._asked:
            raise asyncio.CancelledError


def drain_wait(timeouts: Timeouts) -> float:
    """How long a redirect's body is waited for: under the read timeout, so that giving up on
    it is not a timeout of the request."""
    return min(DRAIN_WAIT, timeouts.read / 2) if timeouts.read else DRAIN_WAIT


def has_body(method: str, status: int) -> bool:
    """Whether a response body follows: not for HEAD, 1xx, 204 or 304, whatever
    Content-Length says."""
    if status < 200 or status in (204, 304):
        return False
    return method == "GET" or method.upper() != "HEAD"  # GET, the common case: no upper()


async def drain_redirect_body(
    read: Callable[[], Awaitable[object]],
    length: int | None,
    wait: float,
    errors: tuple[type[BaseException], ...],
) -> None:
    """Read a small redirect body (``length`` at most ``REDIRECT_DRAIN_LIMIT``) so that the
    connection can be reused; a large or unannounced one is left unread, and leaving the
    response then drops the connection. A body that does not come within ``wait`` seconds is
    given up on the same way. The redirect is known already: ``errors`` of ``read`` only mean
    that the connection is closed."""
    if length is not None and length <= REDIRECT_DRAIN_LIMIT:
        with contextlib.suppress(TimeoutError, *errors):
            async with asyncio.timeout(wait):
                await read()
