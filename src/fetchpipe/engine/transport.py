"""The transport: sends one request and returns status, headers and a size-capped body.

Everything above it (limits, retries, Retry-After) only sees :class:`Transport`; aiohttp's
errors are translated here, at the edge, into ``TransportError`` with an ``ErrorKind``.

The rules of :mod:`fetchpipe.engine.security` are enforced here: control characters are
refused before sending, redirects are followed by our rules rather than aiohttp's, bodies are
decoded by a bounded decoder, and a guarded resolver keeps private addresses out. Each check
costs nothing unless its policy is on or its case (a 3xx, an encoded body) arrives.

aiohttp keeps only the connect timeout; the total and read timeouts are kept by
:mod:`fetchpipe.engine.watchdog` (one timer for all attempts instead of aiohttp's per-request
timers, a sixth of the CPU of a small request).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.resolver import DefaultResolver
from aiohttp.tracing import Trace
from yarl import URL

from fetchpipe._config import Limits, Timeouts
from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind, Request
from fetchpipe._redact import with_public_urls
from fetchpipe.engine.decoding import capped_body
from fetchpipe.engine.default_headers import split_default_headers, with_defaults
from fetchpipe.engine.security import (
    DEFAULT_POLICY,
    REDIRECT_DRAIN_LIMIT,
    REDIRECT_STATUSES,
    Hop,
    SecurityPolicy,
    address_refusal,
    blocked_message,
    check_request_text,
    first_hop,
    next_hop,
    too_many_redirects,
    verify_tls,
)
from fetchpipe.engine.watchdog import Watch, Watchdog

DRAIN_WAIT = 1.0  # seconds a redirect's small body may take to arrive before it is dropped


def drain_wait(timeouts: Timeouts) -> float:
    """How long a redirect's body is waited for: under the read timeout, so that giving up on
    it is not a timeout of the request."""
    return min(DRAIN_WAIT, timeouts.read / 2) if timeouts.read else DRAIN_WAIT


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


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """aiohttp keeps only the connect timeout (its timer runs only when a connection is made);
    the total and read timeouts are the watchdog's (see :mod:`fetchpipe.engine.watchdog`)."""
    # ceil_threshold: aiohttp rounds timeouts of 5 s and more up to whole seconds by default,
    # which lets a deadline run up to a second late.
    return aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, ceil_threshold=1e9)


class BlockedAddressError(OSError):
    """A host resolved only to addresses the policy refuses. aiohttp wraps it (as an OSError
    from the resolver) in ``ClientConnectorDNSError``; ``_translate`` unwraps it."""


class GuardedResolver(AbstractResolver):
    """The default resolver, minus the addresses ``block_private`` refuses.

    Filtering the resolved addresses (not the host name) defeats DNS tricks: a public-looking
    name that resolves to 127.0.0.1 or 169.254.169.254 is refused, and the connector only ever
    connects to an address returned here, redirects included. Mixed answers keep the allowed
    addresses. IP literals skip resolvers in aiohttp; the transport checks those itself.
    """

    def __init__(self, policy: SecurityPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: list[tuple[str, str]] = []
        for result in results:
            reason = address_refusal(self._policy, result["host"])
            if reason is None:
                allowed.append(result)
            else:
                refused.append((result["host"], reason))
        if refused and not allowed:
            raise BlockedAddressError(blocked_message(host, refused))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class _WatchedConnector(aiohttp.TCPConnector):
    """Tells the attempt's watch while a connection is being got (from the pool, or made:
    DNS, TCP, TLS, under aiohttp's connect timeout), so the read timeout starts after it."""

    def __init__(self, watchdog: Watchdog, **options: Any) -> None:
        super().__init__(**options)
        self._watchdog = watchdog

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> Connection:
        watch = self._watchdog.current()
        if watch is None:
            return await super().connect(req, traces, timeout)
        watch.connecting()
        try:
            return await super().connect(req, traces, timeout)
        finally:
            watch.progress()


class AiohttpTransport:
    """One pooled ``ClientSession``: keep-alive, DNS cache, no cookie jar, no proxies from env.

    ``security`` (default: ``SecurityPolicy()``) sets redirects, the private-address guard,
    TLS exceptions, stacked encodings and which headers and params are credentials.
    Credential headers among ``headers`` are sent with every request but, unlike the others,
    not to another origin after a redirect.
    """

    def __init__(
        self,
        *,
        limits: Limits,
        timeouts: Timeouts,
        headers: Mapping[str, str] | None = None,
        security: SecurityPolicy | None = None,
    ) -> None:
        policy = security if security is not None else DEFAULT_POLICY
        self._security = policy
        self._timeouts = timeouts
        self._timeout = _client_timeout(timeouts)
        self._watchdog = Watchdog(read=timeouts.read)
        self._drain_wait = drain_wait(timeouts)
        self._loop = asyncio.get_running_loop()
        self._guard = policy.block_private
        self._per_host = policy.block_private or bool(policy.insecure_hosts)
        self._follow = policy.max_redirects > 0
        defaults, self._credential_headers = split_default_headers(policy, headers or {})
        self._resolver = GuardedResolver(policy) if policy.block_private else None
        connector = _WatchedConnector(
            self._watchdog,
            limit=limits.max_concurrency,
            limit_per_host=0,
            ttl_dns_cache=300,
            resolver=self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers=defaults,
            cookie_jar=aiohttp.DummyCookieJar(),
            json_serialize=_json_dumps,
            trust_env=False,
            # Bodies are decoded by BoundedDecoder: it checks that a compressed stream ends
            # (aiohttp accepts a cut-off gzip body) and decodes stacked encodings within a cap.
            auto_decompress=False,
        )

    @property
    def security(self) -> SecurityPolicy:
        return self._security

    @property
    def insecure_hosts(self) -> frozenset[str]:
        """Hosts whose TLS certificates are not verified, for the caller to warn about."""
        return self._security.insecure_hosts

    async def close(self) -> None:
        self._watchdog.close()
        await self._session.close()
        if self._resolver is not None:
            await self._resolver.close()

    async def send(
        self, request: Request, *, total_timeout: float | None, max_body_size: int
    ) -> RawResponse:
        url = request.url
        headers = request.headers
        if headers or request.params or not url.isprintable():  # cheap on the hot path
            check_request_text(url, headers, request.params)
        if self._credential_headers:
            headers = with_defaults(self._credential_headers, headers)
        target: str | URL = url
        ssl = True
        total = self._timeouts.total if total_timeout is None else total_timeout
        try:
            with self._watchdog.watch(total) as watch:
                if self._per_host:
                    target, ssl = self._route(URL(url))
                async with self._session.request(
                    request.method,
                    target,
                    headers=headers,
                    params=request.params,
                    json=request.json,
                    data=request.body,
                    allow_redirects=False,
                    ssl=ssl,
                ) as resp:
                    watch.progress()
                    status = resp.status
                    location = resp.headers.get("Location") if status in REDIRECT_STATUSES else None
                    if location is None or not self._follow:
                        return await self._complete(resp, request.method, url, max_body_size, watch)
                    first = first_hop(self._security, request, headers)
                    hop = next_hop(self._security, first, status, location)
                    await _discard(resp, watch, self._drain_wait)
                return await self._redirected(first, hop, max_body_size, watch)
        except TransportError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    def _route(self, url: URL) -> tuple[URL, bool]:
        """Check an IP-literal host against the guard (aiohttp does not resolve literals, so
        the guarded resolver never sees them) and choose TLS verification for the host."""
        host = url.raw_host
        if self._guard and host is not None and (":" in host or host.replace(".", "").isdigit()):
            reason = address_refusal(self._security, host)
            if reason is not None:
                raise TransportError(
                    ErrorKind.INVALID_REQUEST, blocked_message(host, [(host, reason)])
                )
        return url, verify_tls(self._security, host)

    async def _redirected(
        self, first: Hop, hop: Hop, max_body_size: int, watch: Watch
    ) -> RawResponse:
        """Follow a redirect chain from ``hop``: at most ``max_redirects`` hops, within the
        attempt's total timeout, each hop's body released before the next one is sent."""
        policy = self._security
        chain = [first.url, hop.url]
        for followed in range(1, policy.max_redirects + 1):
            target, ssl = self._route(hop.url)
            async with self._session.request(
                hop.method,
                target,
                headers=hop.headers,
                json=hop.json,
                data=hop.body,
                allow_redirects=False,
                ssl=ssl,
            ) as resp:
                watch.progress()
                status = resp.status
                location = resp.headers.get("Location") if status in REDIRECT_STATUSES else None
                if location is None:
                    return await self._complete(
                        resp, hop.method, str(hop.url), max_body_size, watch
                    )
                if followed == policy.max_redirects:
                    break
                hop = next_hop(policy, hop, status, location)
                await _discard(resp, watch, self._drain_wait)
            chain.append(hop.url)
        raise too_many_redirects(policy, chain)

    async def _complete(
        self,
        resp: aiohttp.ClientResponse,
        method: str,
        url: str,
        max_body_size: int,
        watch: Watch,
    ) -> RawResponse:
        """Read the final response: no body for HEAD/1xx/204/304, otherwise a capped one."""
        first_byte = self._loop.time()
        headers = resp.headers
        status = resp.status
        if method == "HEAD" or status in (204, 304) or status < 200:
            body = b""  # no body follows, whatever Content-Length says
        else:
            body = await self._read_body(resp, max_body_size, watch)
        return RawResponse(status, headers, body, headers.get("Content-Type", ""), first_byte, url)

    async def _read_body(
        self, resp: aiohttp.ClientResponse, max_body_size: int, watch: Watch
    ) -> bytes:
        """The body, chunk by chunk (each one restarts the read timeout), within the cap;
        encoded bodies through the bounded decoder."""
        encodings = resp.headers.getall("Content-Encoding", ())
        body = capped_body(
            encodings, resp.content_length, max_body_size, self._security.max_encodings
        )
        content = resp.content
        while chunk := await content.readany():
            watch.progress()
            body.feed(chunk)
            if content.at_eof():  # a small body comes whole: no second read to find the end
                break
        return body.finish()


async def _discard(resp: aiohttp.ClientResponse, watch: Watch, wait: float) -> None:
    """Read a small redirect body so the connection can be reused; a large or unannounced
    one is left unread, and releasing the response then closes the connection. A body that
    does not come within ``wait`` seconds is given up on the same way."""
    length = resp.content_length
    if length is not None and length <= REDIRECT_DRAIN_LIMIT:
        # The redirect is known already: a failed read only means the connection is closed.
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            async with asyncio.timeout(wait):
                while await resp.content.readany():
                    watch.progress()


def _reset_cause(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return True
        cause = cause.__cause__ or cause.__context__
        if cause is exc:
            break
    return False


def _translate(exc: Exception) -> TransportError:
    """Map an aiohttp or socket error to fetchpipe's kinds (order matters: subclasses first).

    aiohttp's messages quote URLs whole; queries and user info are cut out of them here.
    """
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, BlockedAddressError
    ):
        return TransportError(ErrorKind.INVALID_REQUEST, str(exc.os_error))
    text = with_public_urls(str(exc) or type(exc).__name__)
    kind: ErrorKind
    if isinstance(exc, aiohttp.ClientConnectorError):
        kind = ErrorKind.CONNECT
        errno = exc.os_error.errno
        if errno and os.strerror(errno).lower() not in text.lower():  # uvloop leaves it out
            text = f"{text}: {os.strerror(errno)}"
    elif isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        kind = ErrorKind.TIMEOUT
        text = f"timed out ({type(exc).__name__})"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        kind = ErrorKind.RESET
    elif isinstance(exc, aiohttp.ClientPayloadError):
        # aiohttp keeps a reset only in the message text of the payload error.
        reset = _reset_cause(exc) or "ConnectionResetError" in text or "reset by peer" in text
        kind = ErrorKind.RESET if reset else ErrorKind.TRUNCATED
    elif isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        kind = ErrorKind.RESET if _reset_cause(exc) else ErrorKind.CONNECT
    elif isinstance(exc, aiohttp.NonHttpUrlClientError):
        kind = ErrorKind.INVALID_REQUEST
        text = f"{text} is not an http(s) URL"
    elif isinstance(exc, aiohttp.InvalidURL | ValueError | TypeError):
        kind = ErrorKind.INVALID_REQUEST
    else:
        kind = ErrorKind.OTHER
    return TransportError(kind, text)


def fast_transport_problem(security: SecurityPolicy | None) -> str | None:
    """Why the fast (pyreqwest) transport cannot run with these settings, or None: checked
    before anything is sent."""
    if importlib.util.find_spec("pyreqwest") is None:
        return "the fast transport needs pyreqwest. HINT: pip install 'fetchpipe[fast]'"
    if security is not None and security.block_private:
        return (
            "the fast transport cannot apply block_private (pyreqwest has no hook to check the "
            "addresses a host resolves to). HINT: use the aiohttp transport with block_private"
        )
    return None
