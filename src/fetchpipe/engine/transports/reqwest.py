"""A second transport on pyreqwest (Rust reqwest/hyper), behind the same protocol.

``ReqwestTransport`` sends one request and returns a :class:`RawResponse`, like
:class:`~fetchpipe.engine.transports.aiohttp.AiohttpTransport`, through the same loop
(:func:`~fetchpipe.engine.transports.redirects.exchange`): control characters are refused
before sending, redirects are followed by its rules (reqwest's own redirect following is off),
bodies are read in chunks under the cap and decoded by
:func:`~fetchpipe.engine.decoding.capped_body`, and credential headers are kept out of the
client defaults so a redirect can drop them.

Decoding: the pyreqwest wheel has reqwest's gzip, deflate, br and zstd decoders compiled in, on
by default (advertised as ``zstd,gzip,deflate,br``). They are switched off here, so that one
decoder serves both transports: the same ``Accept-Encoding`` (``default_headers``: what
``BoundedDecoder`` decodes), the same cap on the decoded size, the same limits (stacked
encodings, concatenated members, the zstd window) and the same error kinds and messages for a
cut-off or corrupt stream.

What pyreqwest cannot do is refused at construction with a ``ConfigError``, never done
differently: it has no resolver hook (only static ``resolve(domain, ip)`` entries for a whole
client), so ``block_private`` cannot check the addresses a host name resolves to.

TLS verification is chosen per host as with aiohttp: pyreqwest sets it per client, so hosts in
``insecure_hosts`` go through a second client built with ``danger_accept_invalid_certs``. The
CAs of ``tls.ca_bundle`` are added to the platform's roots, and the client certificate is the
client's identity (both clients).

Proxies: reqwest's own reading of the environment is off; a ``ProxyBuilder.custom`` callback
asks :class:`~fetchpipe.engine.proxies.ProxyPolicy` for each request's route (remembered per
scheme, host and port), so that both transports apply the same ``NO_PROXY`` rules; the proxy's
credentials ride in the URL handed to reqwest, which sends them as ``Proxy-Authorization``.

A cancel can end a pyreqwest call normally (when the response or a chunk is already in): the
shared loop and the body loop here raise it all the same (see
:class:`~fetchpipe.engine.transports.base.CancelCheck`).

pyreqwest is optional (``pip install 'fetchpipe[fast]'``) and imported when the transport is
built.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Unpack

import orjson
from yarl import URL

from fetchpipe._config import Limits, Timeouts
from fetchpipe._exceptions import ConfigError, TransportError
from fetchpipe._models import ErrorKind, Request
from fetchpipe._redact import with_public_urls
from fetchpipe.engine.decoding import capped_body
from fetchpipe.engine.proxies import PROXY_REFUSED, ProxyPolicy
from fetchpipe.engine.security import verify_tls
from fetchpipe.engine.tls import TlsMaterial, certificate_refused
from fetchpipe.engine.transports.base import (
    CancelCheck,
    RawResponse,
    TransportBase,
    TransportSettings,
    drain_redirect_body,
    has_body,
)
from fetchpipe.engine.transports.redirects import Hop, exchange, time_left
from fetchpipe.engine.transports.reqwest_headers import LazyHeaders, all_values, header, not_ascii

if TYPE_CHECKING:
    from pyreqwest.client import Client
    from pyreqwest.http import Url
    from pyreqwest.request import RequestBuilder, StreamRequest
    from pyreqwest.response import Response

INSTALL_HINT = "pip install 'fetchpipe[fast]'"
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_OCTETS = "application/octet-stream"
_SETTLE = 0.05  # seconds the interpreter waits at exit after the last close()
_closed_at = 0.0


def _settle_before_exit() -> None:
    """pyreqwest tears connections down on its runtime thread after ``close()`` returns; if the
    interpreter is finalizing meanwhile (a CLI run ending), CPython aborts with
    "PyGILState_Release: thread state ... must be current" (seen with pyreqwest 0.15.1 after a
    cut-off body). So the exit waits until ``_SETTLE`` has passed since the last close, instead
    of every close waiting that long (a tenth of a short benchmark run)."""
    global _closed_at
    if not _closed_at:
        atexit.register(_wait_for_teardown)
    _closed_at = time.monotonic()


def _wait_for_teardown() -> None:
    left = _SETTLE - (time.monotonic() - _closed_at)
    if left > 0:
        time.sleep(left)


def _pyreqwest() -> Any:
    """The ``pyreqwest.client`` module, or a ConfigError saying how to install it."""
    try:
        return importlib.import_module("pyreqwest.client")
    except ImportError:
        raise ConfigError(
            "the fast transport needs pyreqwest, which is not installed. "
            f"HINT: {INSTALL_HINT}, or use the default aiohttp transport."
        ) from None


Clock = tuple[asyncio.AbstractEventLoop, float, float | None]
"""What a send keeps: its loop, the loop time it started at, and its own total timeout (None:
the client's)."""


class ReqwestTransport(TransportBase):
    """One pooled pyreqwest ``Client``: keep-alive, no cookie store; proxies only as ``proxy``
    chooses them.

    Same arguments and rules as ``AiohttpTransport``, and HTTP/2 with HTTPS servers that offer
    it (ALPN; ``http2=False`` keeps to HTTP/1.1; plain ``http://`` is always HTTP/1.1).
    ``timeouts.connect``, ``timeouts.read`` and ``timeouts.total`` are client settings
    (reqwest's read timeout runs between reads, the wait for the response head included); a
    request's own total timeout overrides the client's, and across a redirect chain each hop
    gets what is left of it.
    """

    def __init__(self, *, http2: bool = True, **settings: Unpack[TransportSettings]) -> None:
        security = settings.get("security")
        if security is not None and security.block_private:
            raise ConfigError(
                "the fast (pyreqwest) transport cannot enforce block_private: pyreqwest offers "
                "no hook to check the addresses a host name resolves to, so private addresses "
                "could not be refused. HINT: use the default aiohttp transport with "
                "block_private, or switch block_private off for this run."
            )
        client_module = _pyreqwest()
        super().__init__(**settings)
        limits, timeouts, defaults = self._limits, self._timeouts, self.default_headers
        network = (self.proxies, self.tls_material)
        self._client: Client = _build(
            client_module, limits, timeouts, defaults, http2, True, *network
        )
        # pyreqwest sets TLS verification per client: insecure hosts get a client of their own.
        self._insecure: Client | None = (
            _build(client_module, limits, timeouts, defaults, http2, False, *network)
            if self.security.insecure_hosts
            else None
        )

    async def close(self) -> None:
        await self._client.close()
        if self._insecure is not None:
            await self._insecure.close()
        _settle_before_exit()

    def send(
        self, request: Request, *, total_timeout: float | None, max_body_size: int
    ) -> Coroutine[Any, Any, RawResponse]:
        # Not async: the coroutine of exchange() is the send's, one coroutine less a request.
        loop = asyncio.get_running_loop()
        return exchange(self, (loop, loop.time(), total_timeout), request, max_body_size)

    # --- the wire of exchange() ---------------------------------------------------------------

    def open(
        self, context: Clock, message: Request | Hop, headers: Mapping[str, str] | None
    ) -> StreamRequest:
        method, url = message.method, message.url
        target = url if isinstance(url, str) else str(url)
        if headers or message.json is not None or message.body is not None or self._insecure:
            builder = self._builder(method, target, headers, message.json, message.body)
        else:  # the common case, a plain GET: nothing to add to the client's defaults
            builder = self._client.request(method.upper(), target)
        if message.params:
            builder = builder.query(_query(message.params))
        loop, start, total = context
        if isinstance(message, Hop):  # a redirect: what is left of the total timeout
            if total is None:
                total = self._timeouts.total
            left = time_left(start, loop.time(), total)
            if left is not None:
                builder = builder.timeout(timedelta(seconds=left))
        elif total is not None and total != self._timeouts.total:  # else the client's applies
            builder = builder.timeout(timedelta(seconds=total))
        return builder.build_streamed()

    def location(self, context: Clock, answer: Response) -> str | None:
        return header(answer, "location")

    async def complete(
        self,
        context: Clock,
        answer: Response,
        method: str,
        url: str,
        max_body_size: int,
        cancel: CancelCheck,
    ) -> RawResponse:
        first_byte = context[0].time()
        status = answer.status
        header_map = answer.headers
        try:
            length = _content_length(header_map.get("content-length"))
            encoded = header_map.get("content-encoding") is not None
            content_type = header_map.get("content-type") or ""
        except ValueError:  # pyreqwest: "failed to convert header to a str"
            raise not_ascii(header_map) from None
        if not has_body(method, status):
            body = b""
        elif length is not None and length <= max_body_size and not encoded:
            body = (await answer.bytes()).to_bytes()
        else:
            body = await self._read_body(answer, length, max_body_size, cancel)
        return RawResponse(status, LazyHeaders(header_map), body, content_type, first_byte, url)

    async def discard(self, context: Clock, answer: Response) -> None:
        # Within the wait (under the read timeout, whose error pyreqwest would raise again as
        # the answer is released), and any error only drops the connection.
        length = header(answer, "content-length")
        size = int(length) if length is not None and length.isdigit() else None
        await drain_redirect_body(answer.bytes, size, self._drain_wait, (Exception,))

    def translate(self, exc: Exception) -> TransportError:
        return _translate(exc)

    # ------------------------------------------------------------------------------------------

    def _builder(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        json: Any,
        body: bytes | str | None,
    ) -> RequestBuilder:
        """A request builder on the right client (TLS verified or not), headers and body set
        as aiohttp sets them (JSON with orjson, a content type unless one is given)."""
        client = self._client
        if self._insecure is not None and not verify_tls(self.security, URL(url).raw_host):
            client = self._insecure
        builder = client.request(method.upper(), url)  # as aiohttp: 'get' is GET
        if headers:
            builder = builder.headers(headers)
        if json is not None or body is not None:
            if json is not None and body is not None:
                raise TransportError(
                    ErrorKind.INVALID_REQUEST,
                    "a request cannot have both json and body; set one of them.",
                )
            has_type = bool(headers) and any(k.lower() == "content-type" for k in headers or ())
            if json is not None:
                data, kind = orjson.dumps(json), _JSON
            elif isinstance(body, str):
                data, kind = body.encode(), _TEXT
            else:
                data, kind = bytes(body or b""), _OCTETS
            if not has_type:
                builder = builder.header("Content-Type", kind)
            builder = builder.body_bytes(data)
        return builder

    async def _read_body(
        self, resp: Response, length: int | None, max_body_size: int, cancel: CancelCheck
    ) -> bytes:
        """The slow path: a body without Content-Length, over the cap, or encoded; given up on
        at the next chunk when the task was asked to cancel (a chunk already buffered comes
        back although the cancel was thrown into ``read_chunk``)."""
        encodings = all_values(resp, "content-encoding")
        body = capped_body(encodings, length, max_body_size, self.security.max_encodings)
        reader = resp.body_reader
        while (chunk := await reader.read_chunk()) is not None:
            cancel.raise_if_asked()
            body.feed(chunk.to_bytes())
        return body.finish()


def _build(
    client_module: Any,
    limits: Limits,
    timeouts: Timeouts,
    defaults: Mapping[str, str],
    http2: bool,
    verify: bool,
    proxies: ProxyPolicy | None = None,
    tls: TlsMaterial | None = None,
) -> Client:
    builder = (
        client_module.ClientBuilder()
        .follow_redirects(False)  # next_hop decides
        .gzip(False)  # BoundedDecoder decodes, within the cap
        .deflate(False)
        .brotli(False)
        .zstd(False)
        .no_proxy()  # reqwest's reading of the environment off: the policy's proxies only
        .referer(False)
        .default_cookie_store(False)
        .max_connections(limits.max_concurrency)
        .default_headers(dict(defaults))
        .http2(http2)
    )
    if timeouts.connect is not None:
        builder = builder.connect_timeout(timedelta(seconds=timeouts.connect))
    if timeouts.read is not None:
        builder = builder.read_timeout(timedelta(seconds=timeouts.read))
    if timeouts.total is not None:  # a request's own total, when it has one, overrides it
        builder = builder.timeout(timedelta(seconds=timeouts.total))
    if not verify:
        builder = builder.danger_accept_invalid_certs(True)
    if proxies is not None:
        proxy_module = importlib.import_module("pyreqwest.proxy")
        builder = builder.proxy(proxy_module.ProxyBuilder.custom(_router(proxies)))
    if tls is not None:
        for authority in tls.authorities:  # one by one: reqwest reads one certificate a call
            builder = builder.add_root_certificate_pem(authority)
        if tls.identity is not None:
            builder = builder.identity_pem(tls.identity)
    try:
        client: Client = builder.build()
    except Exception as exc:  # pyreqwest's BuilderError: a certificate rustls refuses
        raise ConfigError(
            f"the fast transport cannot use these TLS settings ({_translate(exc).message}). "
            "HINT: check the CA bundle and client certificate, or use the aiohttp transport"
        ) from None
    return client


def _router(proxies: ProxyPolicy) -> Callable[[Url], str | None]:
    """reqwest's proxy callback: the URL (credentials included) of the proxy a request goes
    through, or None to send it directly."""
    route = proxies.remembered()

    def proxy_url(url: Url) -> str | None:
        proxy = route(url.scheme, url.host_str or "", url.port_or_known_default)
        return None if proxy is None else proxy.url

    return proxy_url


def _query(params: Mapping[str, str | int | float]) -> dict[str, str]:
    """Query values as yarl writes them (``str``), not as serde would format numbers."""
    return {
        str(name): value if isinstance(value, str) else str(value) for name, value in params.items()
    }


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


# --- errors -------------------------------------------------------------------------------------

_RESET_WORDS = ("reset by peer", "broken pipe", "connection closed before message completed")
_CONNECT_WORDS = ("client error (connect)", "tcp connect error", "dns error")
_CERTIFICATE = re.compile(r"(?i)invalid peer certificate: ([^|]+?)\s*(?:\||$)")
"""rustls' words for a server certificate it cannot verify, and why (``UnknownIssuer``)."""


def _causes(exc: BaseException) -> list[str]:
    details = getattr(exc, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    return [str(c.get("message", "")) for c in causes or () if isinstance(c, dict)]


def _translate(exc: Exception) -> TransportError:
    """Map a pyreqwest error to fetchpipe's kinds.

    pyreqwest's classes say the phase (timeout, connect, read, body decode) and the cause chain
    says why: a reset after the request went out comes as a ``ConnectError`` whose causes say
    ``SendRequest`` and ``reset by peer``, a body cut short as a ``BodyDecodeError`` ending in
    ``end of file before message length reached``.
    """
    from pyreqwest import exceptions as errors  # lazy: pyreqwest is optional (see the top)

    causes = _causes(exc)
    chain = " | ".join(causes).lower()
    # The first cause repeats the phase ("error sending request for url (...)"); the rest say
    # why, some of them twice.
    parts = [str(getattr(exc, "message", "") or exc or type(exc).__name__)]
    parts += [cause for cause in dict.fromkeys(causes[1:]) if cause not in parts]
    text = with_public_urls(": ".join(parts))
    kind: ErrorKind
    if isinstance(exc, errors.RequestTimeoutError | TimeoutError):
        # reqwest reports a read timeout while waiting for the response head as a connect
        # timeout, so the class does not say which timeout it was.
        return TransportError(ErrorKind.TIMEOUT, f"timed out ({type(exc).__name__}: {text})")
    if "proxy authorization required" in chain:  # the proxy answered the CONNECT with 407
        return TransportError(
            ErrorKind.OTHER,
            f"the proxy refused the tunnel: HTTP 407 ({text}): {PROXY_REFUSED}",
        )
    certificate = _CERTIFICATE.search(" | ".join(causes))
    if certificate is not None:  # rustls: "invalid peer certificate: UnknownIssuer"
        return certificate_refused(with_public_urls(certificate[1]))
    if isinstance(exc, errors.ConnectError):
        if any(word in chain for word in _CONNECT_WORDS):
            kind = ErrorKind.CONNECT
        elif any(word in chain for word in _RESET_WORDS) or "(sendrequest)" in chain:
            kind = ErrorKind.RESET
        else:
            kind = ErrorKind.CONNECT
    elif isinstance(exc, errors.ReadError | errors.WriteError | errors.NetworkError):
        kind = ErrorKind.TRUNCATED
        if any(word in chain for word in _RESET_WORDS):
            kind = ErrorKind.RESET
    elif isinstance(exc, errors.BodyDecodeError):
        kind = ErrorKind.RESET if any(w in chain for w in _RESET_WORDS) else ErrorKind.TRUNCATED
    elif isinstance(exc, errors.BuilderError | ValueError | TypeError):
        kind = ErrorKind.INVALID_REQUEST
    else:
        kind = ErrorKind.OTHER
    return TransportError(kind, text)
