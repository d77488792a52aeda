"""Just enough HTTP/1.1 over raw ``asyncio`` streams: reading a request, writing an answer in
pieces, hanging.

Written by hand rather than on aiohttp's server because the toxics damage the bytes themselves
(a head with no body, a body cut mid-chunk, a TCP reset after N bytes, one byte per write),
which a well-behaved server library does not let a handler do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from fetchpipe.sim.toxics.plan import Plan
from fetchpipe.sim.toxics.values import MAX_BODY, ToxicError

MAX_HEAD = 64 * 1024
_MAX_REQUEST_BODY = 1024 * 1024
MAX_REQUESTS_PER_CONNECTION = 100_000


class BadRequest(Exception):
    """A request the server cannot read; answered with ``status``, then the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Request:
    """What the server needs of a request: method, path, query and whether to keep alive."""

    method: str
    path: str
    query: dict[str, str]
    keep_alive: bool


def _parse_head(head: bytes) -> tuple[Request, int]:
    """The request and the length of its body, from the bytes up to the blank line."""
    request_line, *lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise BadRequest(501, "chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "malformed Content-Length") from None
    if not 0 <= length <= _MAX_REQUEST_BODY:
        raise BadRequest(413, f"request body over {_MAX_REQUEST_BODY} bytes")
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    split = urlsplit(target)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    return Request(method.upper(), split.path or "/", query, keep_alive), length


def size_param(query: Mapping[str, str]) -> int:
    """The ``size`` query parameter: the good body's length in bytes (0: unpadded)."""
    text = query.get("size", "0")
    try:
        size = int(text)
    except ValueError:
        raise ToxicError(f"size={text!r} is not valid") from None
    if not 0 <= size <= MAX_BODY:
        raise ToxicError(f"size must be between 0 and {MAX_BODY}, got {size}")
    return size


async def read_request(reader: asyncio.StreamReader, idle: float) -> Request | None:
    """The next request on the connection, or ``None`` when the client is done or ``idle``."""
    try:
        async with asyncio.timeout(idle):
            head = await reader.readuntil(b"\r\n\r\n")
            request, length = _parse_head(head)
            if length:
                await reader.readexactly(length)
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request head too large") from None
    return request


async def hang(reader: asyncio.StreamReader, seconds: float) -> None:
    """Wait ``seconds``, or less when the client closes its end (what it sends is dropped)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass


async def send(writer: asyncio.StreamWriter, data: bytes, plan: Plan) -> None:
    """Write ``data`` in the plan's pieces, pauses and rate (no pause after the last piece)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    for offset in range(0, len(data), plan.piece):
        piece = data[offset : offset + plan.piece]
        writer.write(piece)
        await writer.drain()
        sent += len(piece)
        if sent >= len(data):
            break
        wait = plan.piece_delay
        if plan.rate is not None:
            wait = max(wait, start + sent / plan.rate - loop.time())
        if wait > 0:
            await asyncio.sleep(wait)
