"""The transport: sends one request and returns status, headers and a size-capped body.

Everything above it (limits, retries, Retry-After) only sees :class:`Transport`; aiohttp's
errors are translated here, at the edge, into ``TransportError`` with an ``ErrorKind``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from fetchpipe._config import Limits, Timeouts
from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind, Request

USER_AGENT = "fetchpipe/0.1"


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    content_type: str
    first_byte: float


class Transport(Protocol):
    """Sends one request. Raises ``TransportError`` for anything but a complete response."""

    async def send(
        self, request: Request, *, total_timeout: float | None, max_body_size: int
    ) -> RawResponse: ...

    async def close(self) -> None: ...


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _client_timeout(timeouts: Timeouts, total: float | None) -> aiohttp.ClientTimeout:
    # ceil_threshold: aiohttp rounds timeouts of 5 s and more up to whole seconds by default,
    # which lets a deadline run up to a second late.
    return aiohttp.ClientTimeout(
        total=total,
        sock_connect=timeouts.connect,
        sock_read=timeouts.read,
        ceil_threshold=1e9,
    )


class AiohttpTransport:
    """One pooled ``ClientSession``: keep-alive, DNS cache, no cookie jar, no proxies from env."""

    def __init__(
        self,
        *,
        limits: Limits,
        timeouts: Timeouts,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._timeouts = timeouts
        self._default_timeout = _client_timeout(timeouts, timeouts.total)
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(
            limit=limits.max_concurrency, limit_per_host=0, ttl_dns_cache=300
        )
        merged = {"User-Agent": USER_AGENT}
        merged.update(headers or {})
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._default_timeout,
            headers=merged,
            cookie_jar=aiohttp.DummyCookieJar(),
            json_serialize=_json_dumps,
            trust_env=False,
        )

    async def close(self) -> None:
        await self._session.close()

    async def send(
        self, request: Request, *, total_timeout: float | None, max_body_size: int
    ) -> RawResponse:
        timeout = (
            self._default_timeout
            if total_timeout is None or total_timeout == self._timeouts.total
            else _client_timeout(self._timeouts, total_timeout)
        )
        try:
            async with self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                params=request.params,
                json=request.json,
                data=request.body,
                timeout=timeout,
            ) as resp:
                first_byte = self._loop.time()
                headers = resp.headers
                length = resp.content_length
                encoded = "Content-Encoding" in headers
                status = resp.status
                if request.method == "HEAD" or status in (204, 304) or status < 200:
                    body = b""  # no body follows, whatever Content-Length says
                elif length is not None and not encoded and length <= max_body_size:
                    body = await resp.read()
                elif length is not None and not encoded:
                    raise _too_large(max_body_size, f"Content-Length is {length}")
                else:
                    body = await _read_capped(resp.content, max_body_size)
                return RawResponse(
                    status, headers, body, headers.get("Content-Type", ""), first_byte
                )
        except TransportError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc


async def _read_capped(content: aiohttp.StreamReader, max_body_size: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(65536):
        size += len(chunk)
        if size > max_body_size:
            raise _too_large(max_body_size, f"read {size} bytes so far")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_body_size: int, detail: str) -> TransportError:
    return TransportError(
        ErrorKind.BODY_TOO_LARGE,
        f"response body is over max_body_size ({max_body_size} bytes; {detail}). "
        "HINT: raise Limits.max_body_size if this API really sends bodies this large.",
    )


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
    """Map an aiohttp or socket error to fetchpipe's kinds (order matters: subclasses first)."""
    text = str(exc) or type(exc).__name__
    kind: ErrorKind
    if isinstance(exc, aiohttp.ClientConnectorError):
        kind = ErrorKind.CONNECT
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
    elif isinstance(exc, aiohttp.InvalidURL | ValueError | TypeError):
        kind = ErrorKind.INVALID_REQUEST
    else:
        kind = ErrorKind.OTHER
    return TransportError(kind, text)
