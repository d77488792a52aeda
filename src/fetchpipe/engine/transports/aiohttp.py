"""The default transport, on aiohttp: one pooled ``ClientSession``.

It sends through :func:`~fetchpipe.engine.transports.redirects.exchange` (the redirect loop
both transports share, aiohttp's own following off) and reads bodies through
:func:`~fetchpipe.engine.decoding.capped_body` (aiohttp's own decompression off); aiohttp's
errors are translated here, at the edge, into ``TransportError`` with an ``ErrorKind``. A
guarded resolver keeps private addresses out when ``block_private`` is on. Each check costs
nothing unless its policy is on or its case (a 3xx, an encoded body) arrives.

aiohttp keeps only the connect timeout; the total and read timeouts are kept by
:mod:`fetchpipe.engine.watchdog` (one timer for all attempts instead of aiohttp's per-request
timers, a sixth of the CPU of a small request).

With a proxy (``TransportSettings.proxy``), each request (each redirect hop) is routed by the
policy: through the proxy (``CONNECT`` for HTTPS) or directly for the ``NO_PROXY`` hosts. The
client then connects only to the proxy, which resolves the target itself; so under
``block_private`` the proxy (a configured hop) is exempt from the guard, and the target is
checked before the request is handed to the proxy: an IP literal as it is, a name on the
addresses it resolves to here, every one of which must be allowed (a name that does not resolve
here is not sent). The proxy resolves the name again: a DNS answer that changes in between is
not seen, which only a rule in the proxy itself can catch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Unpack

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.resolver import DefaultResolver
from aiohttp.tracing import Trace
from yarl import URL

from fetchpipe._config import Timeouts
from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind, Request
from fetchpipe._redact import with_public_urls
from fetchpipe.engine.decoding import capped_body
from fetchpipe.engine.proxies import PROXY_REFUSED, ProxyUrl
from fetchpipe.engine.security import (
    BlockedAddressError,
    SecurityPolicy,
    address_refusal,
    blocked_message,
    guarded_resolve,
    host_refusal,
    verify_tls,
)
from fetchpipe.engine.tls import certificate_refused
from fetchpipe.engine.transports.base import (
    CancelCheck,
    RawResponse,
    TransportBase,
    TransportSettings,
    drain_redirect_body,
    has_body,
)
from fetchpipe.engine.transports.redirects import Hop, exchange
from fetchpipe.engine.watchdog import Watch, Watchdog


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """aiohttp keeps only the connect timeout (its timer runs only when a connection is made);
    the total and read timeouts are the watchdog's (see :mod:`fetchpipe.engine.watchdog`)."""
    # ceil_threshold: aiohttp rounds timeouts of 5 s and more up to whole seconds by default,
    # which lets a deadline run up to a second late.
    return aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, ceil_threshold=1e9)


class GuardedResolver(AbstractResolver):
    """The default resolver, minus the addresses ``block_private`` refuses.

    Filtering the resolved addresses (not the host name) defeats DNS tricks: a public-looking
    name that resolves to 127.0.0.1 or 169.254.169.254 is refused, and the connector only ever
    connects to an address returned here, redirects included. Mixed answers keep the allowed
    addresses. IP literals skip resolvers in aiohttp; the transport checks those itself.
    The hosts in ``exempt`` (the proxies) are resolved unguarded.
    """

    def __init__(
        self,
        policy: SecurityPolicy,
        inner: AbstractResolver | None = None,
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else DefaultResolver()
        self._exempt = exempt

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host in self._exempt:
            return await self._inner.resolve(host, port, family)

        async def lookup(name: str) -> list[ResolveResult]:
            return await self._inner.resolve(name, port, family)

        return await guarded_resolve(self._policy, host, lookup, _address)

    async def close(self) -> None:
        await self._inner.close()


def _address(result: ResolveResult) -> str:
    return result["host"]


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


class AiohttpTransport(TransportBase):
    """One pooled ``ClientSession``: keep-alive, DNS cache, no cookie jar; proxies only as
    ``proxy`` chooses them (aiohttp's own reading of the environment is off).

    Takes :class:`~fetchpipe.engine.transports.base.TransportSettings`; with ``block_private``
    its connections go only to the addresses the guarded resolver lets through.
    """

    def __init__(self, **settings: Unpack[TransportSettings]) -> None:
        super().__init__(**settings)
        timeouts = self._timeouts
        policy = self.security
        self._watchdog = Watchdog(read=timeouts.read)
        self._loop = asyncio.get_running_loop()
        self._guard = policy.block_private
        proxies = self.proxies.proxies if self.proxies is not None else ()
        self._per_host = policy.block_private or bool(policy.insecure_hosts) or bool(proxies)
        self._ssl: ssl.SSLContext | bool = (
            self.tls_material.context if self.tls_material is not None else True
        )
        self._proxy_hosts = frozenset(proxy.host for proxy in proxies)
        self._proxy_args = {proxy: _proxy_arguments(proxy) for proxy in proxies}
        self._proxy_route = self.proxies.remembered() if self.proxies is not None else None
        self._resolver = (
            GuardedResolver(policy, exempt=self._proxy_hosts) if policy.block_private else None
        )
        connector = _WatchedConnector(
            self._watchdog,
            limit=self._limits.max_concurrency,
            limit_per_host=0,
            ttl_dns_cache=300,
            resolver=self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=_client_timeout(timeouts),
            headers=self.default_headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            json_serialize=_json_dumps,
            trust_env=False,
            # Bodies are decoded by BoundedDecoder: it checks that a compressed stream ends
            # (aiohttp accepts a cut-off gzip body) and decodes stacked encodings within a cap.
            auto_decompress=False,
        )

    async def close(self) -> None:
        self._watchdog.close()
        await self._session.close()
        if self._resolver is not None:
            await self._resolver.close()

    async def send(
        self, request: Request, *, total_timeout: float | None, max_body_size: int
    ) -> RawResponse:
        total = self._timeouts.total if total_timeout is None else total_timeout
        with self._watchdog.watch(total) as watch:
            return await exchange(self, watch, request, max_body_size)

    # --- the wire of exchange() ---------------------------------------------------------------

    def open(
        self, context: Watch, message: Request | Hop, headers: Mapping[str, str] | None
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        url = message.url
        if not self._per_host:
            return self._request(message, url, headers, self._ssl)
        url, verify, proxy, check = self._route(url if isinstance(url, URL) else URL(url))
        proxy_url = proxy_headers = None
        if proxy is not None:
            proxy_url, credential = self._proxy_args[proxy]
            if credential is None:
                pass
            elif url.scheme == "https":  # sent with the CONNECT, which the proxy answers
                proxy_headers = {"Proxy-Authorization": credential}
            else:  # plain HTTP: the request itself goes to the proxy
                headers = {**(headers or {}), "Proxy-Authorization": credential}

        def request() -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
            return self._request(message, url, headers, verify, proxy_url, proxy_headers)

        return request() if check is None else self._checked(check, request)

    def _request(
        self,
        message: Request | Hop,
        url: URL | str,
        headers: Mapping[str, str] | None,
        tls: ssl.SSLContext | bool,
        proxy: URL | None = None,
        proxy_headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """The one ``session.request`` of a hop (redirects are exchange()'s to follow)."""
        return self._session.request(
            message.method,
            url,
            headers=headers,
            params=message.params,
            json=message.json,
            data=message.body,
            allow_redirects=False,
            ssl=tls,
            proxy=proxy,
            proxy_headers=proxy_headers,
        )

    def location(self, context: Watch, answer: aiohttp.ClientResponse) -> str | None:
        return answer.headers.get("Location")

    async def complete(
        self,
        context: Watch,
        answer: aiohttp.ClientResponse,
        method: str,
        url: str,
        max_body_size: int,
        cancel: CancelCheck,  # not needed: aiohttp raises a cancel where it comes
    ) -> RawResponse:
        context.progress()  # the head is here: the read timeout starts again
        first_byte = self._loop.time()
        headers = answer.headers
        status = answer.status
        body = b""
        if has_body(method, status):
            body = await self._read_body(answer, max_body_size, context)
        return RawResponse(status, headers, body, headers.get("Content-Type", ""), first_byte, url)

    async def discard(self, context: Watch, answer: aiohttp.ClientResponse) -> None:
        context.progress()  # the head is here

        async def read() -> None:
            while await answer.content.readany():
                context.progress()

        await drain_redirect_body(
            read, answer.content_length, self._drain_wait, (aiohttp.ClientError,)
        )

    def translate(self, exc: Exception) -> TransportError:
        return _translate(exc)

    # ------------------------------------------------------------------------------------------

    def _route(self, url: URL) -> tuple[URL, ssl.SSLContext | bool, ProxyUrl | None, str | None]:
        """Check an IP-literal host against the guard (aiohttp does not resolve literals, so
        the guarded resolver never sees them), choose TLS verification for the host and the
        proxy (None: directly). The last value is a host name the guard must check before the
        request is sent (None: the resolver's check is enough): one that goes to a proxy, or
        that is a proxy's own name (which the resolver lets through)."""
        host = url.raw_host
        literal = host is not None and (":" in host or host.replace(".", "").isdigit())
        if self._guard and literal and host is not None:
            reason = address_refusal(self.security, host)
            if reason is not None:
                raise TransportError(
                    ErrorKind.INVALID_REQUEST, blocked_message(host, [(host, reason)])
                )
        proxy = self._proxy_route(url.scheme, host or "", url.port) if self._proxy_route else None
        check = None
        if self._guard and not literal and (proxy is not None or host in self._proxy_hosts):
            check = host
        verify = self._ssl if verify_tls(self.security, host) else False
        return url, verify, proxy, check

    @contextlib.asynccontextmanager
    async def _checked(
        self, host: str, request: Callable[[], AbstractAsyncContextManager[aiohttp.ClientResponse]]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """``request()`` once ``host`` passed the guard on every address it resolves to here
        (a request the proxy resolves, whose connection the guarded resolver never sees)."""
        try:
            refusal = await host_refusal(self.security, host, every_address=True)
        except OSError as exc:
            raise TransportError(
                ErrorKind.CONNECT,
                f"{host} does not resolve here ({exc.strerror or type(exc).__name__}), and "
                "block_private checks its addresses before the proxy is asked for it. HINT: "
                "send it directly (NO_PROXY), or switch block_private off and let the proxy "
                "apply its own rules",
            ) from None
        if refusal is not None:
            raise TransportError(ErrorKind.INVALID_REQUEST, refusal)
        async with request() as answer:
            yield answer

    async def _read_body(
        self, resp: aiohttp.ClientResponse, max_body_size: int, watch: Watch
    ) -> bytes:
        """The body, chunk by chunk (each one restarts the read timeout), within the cap;
        encoded bodies through the bounded decoder."""
        encodings = resp.headers.getall("Content-Encoding", ())
        body = capped_body(
            encodings, resp.content_length, max_body_size, self.security.max_encodings
        )
        content = resp.content
        while chunk := await content.readany():
            watch.progress()
            body.feed(chunk)
            if content.at_eof():  # a small body comes whole: no second read to find the end
                break
        return body.finish()


def _proxy_arguments(proxy: ProxyUrl) -> tuple[URL, str | None]:
    """aiohttp's ``proxy`` for ``proxy`` (without its credentials), and the
    ``Proxy-Authorization`` value of its credentials, sent only to the proxy: with the
    ``CONNECT`` of an HTTPS request (``proxy_headers``), with a plain HTTP request itself (its
    headers: aiohttp sends ``proxy_headers`` with a ``CONNECT`` only). aiohttp's ``proxy_auth``
    is not used: deprecated since aiohttp 3.14."""
    return URL(proxy.address), proxy.authorization


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
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        reason = getattr(cause, "verify_message", None) or str(cause) or type(cause).__name__
        return certificate_refused(with_public_urls(str(reason)))
    text = with_public_urls(str(exc) or type(exc).__name__)
    kind: ErrorKind
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return _proxy_refusal(exc)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        text = f"cannot connect to the proxy: {text}"
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


def _proxy_refusal(exc: aiohttp.ClientHttpProxyError) -> TransportError:
    """The proxy answered the ``CONNECT`` of an HTTPS request with an error status: 407 and
    other refusals are not retried, a 5xx (the proxy could not reach the host) is retried as
    a failed connection."""
    status = exc.status
    proxy = with_public_urls(str(exc.request_info.real_url)) if exc.request_info else "the proxy"
    text = f"the proxy {proxy} refused the tunnel: HTTP {status} {exc.message}".rstrip()
    if status == 407:
        text += f": {PROXY_REFUSED}"
    return TransportError(ErrorKind.CONNECT if status >= 500 else ErrorKind.OTHER, text)
