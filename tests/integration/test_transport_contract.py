"""The transport contract, on both transports, against real local servers (127.0.0.0/8 only).

Whichever transport runs, a request gets the same answer: timeouts (connect, read, total), the
body cap while reading, decoding, error kinds for broken connections, and the engine on top.
The security rules (redirects, credentials, TLS, the private-address guard, decompression
bombs) are in ``test_transport_security.py``, on both transports too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe import (
    ConfigError,
    ErrorKind,
    Fetcher,
    HostLimits,
    Limits,
    Request,
    RetryPolicy,
    Timeouts,
)
from fetchpipe.engine.security import SecurityPolicy
from tests.integration.transports import (
    both_transports,
    failure,
    on_fast,
    only_on,
    opened,
    send,
    with_transport,
)

pytestmark = both_transports

MiB = 1024 * 1024
SECRET = "CANARY-0f1e2d3c"
Seen = list[dict[str, Any]]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --- helpers ----------------------------------------------------------------------------------


def make_app(seen: Seen) -> web.Application:
    """``/echo`` says what arrived; ``/big`` sends 4 MiB; ``/drip`` sends slowly."""

    async def echo(request: web.Request) -> web.Response:
        record = {
            "path": request.path,
            "method": request.method,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode(),
        }
        seen.append(record)
        return web.json_response(record, headers={"X-Reply": "yes"})

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if "length" in request.query:
            response.content_length = 4 * MiB
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(64):
                await response.write(bytes(65536))
        return response

    async def drip(request: web.Request) -> web.StreamResponse:
        """A body in ten pieces, ``?gap=`` seconds apart; ``?stall=`` waits before the head."""
        await asyncio.sleep(float(request.query.get("stall", "0")))
        response = web.StreamResponse()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(10):
                await response.write(b"x" * 10)
                await asyncio.sleep(float(request.query.get("gap", "0")))
        return response

    async def slow_redirect(request: web.Request) -> web.StreamResponse:
        """A 302 whose 8-byte body comes a byte every ``?gap=`` s (``?stall=1``: never)."""
        response = web.StreamResponse(status=302, headers={"Location": "/echo"})
        response.content_length = 8
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            if "stall" in request.query:
                await asyncio.sleep(5)
            for _ in range(8):
                await response.write(b"x")
                await asyncio.sleep(float(request.query.get("gap", "0")))
        return response

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/slow-redirect", slow_redirect)
    app.router.add_get("/big", big)
    app.router.add_get("/drip", drip)
    return app


@pytest.fixture
async def near() -> AsyncIterator[tuple[TestServer, Seen]]:
    seen: Seen = []
    server = TestServer(make_app(seen), host="127.0.0.1")
    await server.start_server()
    try:
        yield server, seen
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A bare TCP server on 127.0.0.1 that answers with whatever ``handler`` writes."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# --- requests -----------------------------------------------------------------------------------


async def test_a_get_with_params_and_a_post_with_json(near: tuple[TestServer, Seen]) -> None:
    server, seen = near
    async with opened(headers={"X-Default": "d"}) as transport:
        request = Request(str(server.make_url("/echo?a=1")), params={"b": "two words", "n": 1.5})
        response = await send(transport, request)
        assert response.status == 200
        assert response.headers["x-reply"] == "yes" and response.headers["X-REPLY"] == "yes"
        assert response.content_type.startswith("application/json")
        assert response.url == request.url
        got = seen[-1]
        assert got["query"] == {"a": "1", "b": "two words", "n": "1.5"}
        assert got["headers"]["user-agent"] == "fetchpipe/0.1"
        assert got["headers"]["accept-encoding"] == "gzip, deflate, br, zstd"
        assert got["headers"]["x-default"] == "d"

        post = Request(str(server.make_url("/echo")), method="POST", json={"k": [1, 2]})
        response = await send(transport, post)
        assert response.status == 200
        assert seen[-1]["method"] == "POST" and seen[-1]["body"] == '{"k":[1,2]}'
        assert seen[-1]["headers"]["content-type"] == "application/json"

        text = Request(str(server.make_url("/echo")), method="PUT", body="héllo")
        await send(transport, text)
        assert seen[-1]["body"] == "héllo"
        assert seen[-1]["headers"]["content-type"] == "text/plain; charset=utf-8"

        head = await send(transport, Request(str(server.make_url("/echo")), method="HEAD"))
        assert head.status == 200 and head.body == b""


# --- timeouts -----------------------------------------------------------------------------------


async def test_a_read_timeout_before_the_head_and_mid_body(near: tuple[TestServer, Seen]) -> None:
    server, _ = near
    async with opened(timeouts=Timeouts(read=0.3, total=10)) as transport:
        start = time.monotonic()
        error = await failure(transport, str(server.make_url("/drip?stall=2")))
        assert error.kind is ErrorKind.TIMEOUT and time.monotonic() - start < 1.5
        start = time.monotonic()
        error = await failure(transport, str(server.make_url("/drip?gap=2")))
        assert error.kind is ErrorKind.TIMEOUT and time.monotonic() - start < 1.5
        # Gaps shorter than the read timeout are fine.
        response = await send(transport, str(server.make_url("/drip?gap=0.05")))
        assert response.body == b"x" * 100


async def test_a_slow_or_stalled_redirect_body_does_not_time_out_the_request(
    near: tuple[TestServer, Seen],
) -> None:
    server, _ = near
    # Each byte inside the read timeout; nothing at all. pyreqwest reads the start of a body
    # before it hands over a response, so on the fast transport a redirect whose announced
    # body never comes is a read timeout, as any such response.
    queries = ["gap=0.15"] if on_fast() else ["gap=0.15", "stall=1"]
    async with opened(timeouts=Timeouts(read=0.5, total=10)) as transport:
        for query in queries:
            response = await send(transport, str(server.make_url(f"/slow-redirect?{query}")))
            assert response.status == 200 and response.url.endswith("/echo")


async def test_the_total_timeout_bounds_a_slow_body(near: tuple[TestServer, Seen]) -> None:
    server, _ = near
    async with opened(timeouts=Timeouts(read=5, total=0.5)) as transport:
        start = time.monotonic()
        error = await failure(transport, str(server.make_url("/drip?gap=0.2")))
        assert error.kind is ErrorKind.TIMEOUT and 0.4 < time.monotonic() - start < 1.5
        # A per-request total timeout overrides the default one.
        start = time.monotonic()
        error = await failure(transport, str(server.make_url("/drip?gap=0.1")), total_timeout=0.3)
        assert error.kind is ErrorKind.TIMEOUT and time.monotonic() - start < 0.9
        response = await send(transport, str(server.make_url("/drip?gap=0.1")), total_timeout=5)
        assert len(response.body) == 100


@contextlib.contextmanager
def full_accept_queue() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A listener on 127.0.0.1 whose accept queue is full, and the sockets filling it: Linux
    drops new SYNs to it (the client sends one again about a second later)."""
    if sys.platform != "linux":
        pytest.skip("relies on Linux dropping SYNs to a full accept queue")
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):  # fill the queue (backlog 0 still queues one or two)
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield listener, fillers
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_connect_timeout() -> None:
    """A listener whose accept queue is full drops new SYNs: the connect hangs."""
    with full_accept_queue() as (listener, _):
        port = listener.getsockname()[1]
        await asyncio.sleep(0.1)
        async with opened(timeouts=Timeouts(connect=0.3, total=10)) as transport:
            start = time.monotonic()
            error = await failure(transport, f"http://127.0.0.1:{port}/")
            assert error.kind is ErrorKind.TIMEOUT and time.monotonic() - start < 2


async def test_a_slow_connect_within_the_connect_timeout_is_not_a_read_timeout() -> None:
    """The accept queue is full, so the first SYN is dropped and sent again about a second
    later; the server accepts from 0.6 s. The read timeout (0.5 s) starts once connected."""
    only_on("aiohttp", "reqwest's read timeout runs from the start, the connect included")
    with full_accept_queue() as (listener, fillers):
        port = listener.getsockname()[1]

        async def serve() -> None:
            await asyncio.sleep(0.6)
            for filler in fillers:
                filler.close()
            listener.setblocking(False)
            loop = asyncio.get_running_loop()
            while True:
                peer, _ = await loop.sock_accept(listener)
                with contextlib.suppress(OSError):
                    if await loop.sock_recv(peer, 65536):
                        reply = (
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        )
                        await loop.sock_sendall(peer, reply)
                peer.close()

        server = asyncio.create_task(serve())
        try:
            timeouts = Timeouts(connect=10, read=0.5, total=10)
            async with opened(timeouts=timeouts) as transport:
                response = await send(transport, f"http://127.0.0.1:{port}/")
            assert response.status == 200 and response.body == b"ok"
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big?length=1", "/big"], ids=["content-length", "chunked"])
async def test_a_body_over_the_cap_is_refused(near: tuple[TestServer, Seen], path: str) -> None:
    server, _ = near
    async with opened() as transport:
        error = await failure(transport, str(server.make_url(path)), max_body_size=MiB)
        assert error.kind is ErrorKind.BODY_TOO_LARGE
        response = await send(transport, str(server.make_url(path)), max_body_size=8 * MiB)
        assert len(response.body) == 4 * MiB


# --- broken connections ------------------------------------------------------------------------


async def test_refused_connection_is_connect() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        async with opened() as transport:
            error = await failure(transport, f"http://127.0.0.1:{port}/")
    assert error.kind is ErrorKind.CONNECT and "refused" in error.message.lower()


async def test_a_close_or_reset_without_response_is_reset() -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass  # closes after reading the request

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _abort(writer)

    for handler in (close, reset):
        async with raw_server(handler) as url, opened() as transport:
            assert (await failure(transport, url)).kind is ErrorKind.RESET


async def test_a_reset_mid_body_is_reset() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        await asyncio.sleep(0.05)
        _abort(writer)

    async with raw_server(handler) as url, opened() as transport:
        assert (await failure(transport, url)).kind is ErrorKind.RESET


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_cut_body_is_truncated(chunked: bool) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if chunked:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async with raw_server(handler) as url, opened() as transport:
        assert (await failure(transport, url)).kind is ErrorKind.TRUNCATED


def _answer(head: str) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\n{head}\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        await writer.drain()

    return handler


async def test_a_response_header_that_is_not_ascii() -> None:
    head = "X-Note: café\r\nX-Id: 7\r\nX-Mixed: ok\r\nX-Mixed: é"
    async with raw_server(_answer(head)) as url, opened() as transport:
        response = await send(transport, url)
    assert response.status == 200 and response.body == b"{}" and response.headers["x-id"] == "7"
    if on_fast():  # hyper hands over no value that is not ASCII text: it reads as absent
        assert "X-Note" not in response.headers and response.headers.get("x-note") is None
        assert response.headers.get("x-mixed") == "ok" and "x-mixed" in response.headers
        assert response.headers.getall("x-mixed") == ["ok"]  # type: ignore[attr-defined]
        assert {name.lower() for name, _ in response.headers.items()} == {
            "x-id",
            "x-mixed",
            "content-length",
        }
    else:
        assert response.headers["X-Note"].startswith("caf")


async def test_a_content_type_that_is_not_ascii() -> None:
    async with raw_server(_answer("Content-Type: text/plain; x=é")) as url, opened() as transport:
        if not on_fast():
            assert (await send(transport, url)).content_type.startswith("text/plain")
            return
        # The transport needs this one: the response fails, saying which header and why.
        error = await failure(transport, url)
    assert error.kind is ErrorKind.OTHER and "content-type header is not ASCII" in error.message
    assert "HINT: use the aiohttp transport" in error.message


async def test_an_invalid_url_is_an_invalid_request() -> None:
    async with opened() as transport:
        for url in ("not a url", "ftp://127.0.0.1/file"):
            assert (await failure(transport, url)).kind is ErrorKind.INVALID_REQUEST


# --- settings pyreqwest cannot honour, and a missing pyreqwest --------------------------------


async def test_block_private_is_refused_at_construction() -> None:
    only_on("fast", "the aiohttp transport applies block_private")
    from fetchpipe.engine.transports.reqwest import ReqwestTransport

    with pytest.raises(ConfigError, match="block_private"):
        ReqwestTransport(
            limits=Limits(), timeouts=Timeouts(), security=SecurityPolicy(block_private=True)
        )


async def test_without_pyreqwest_construction_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    only_on("fast", "aiohttp is a dependency, always installed")
    from fetchpipe.engine.transports.reqwest import ReqwestTransport

    monkeypatch.setitem(sys.modules, "pyreqwest.client", None)
    with pytest.raises(ConfigError, match=r"fetchpipe\[fast\]"):
        ReqwestTransport(limits=Limits(), timeouts=Timeouts())


# --- the engine on top -------------------------------------------------------------------------


async def test_the_engine_runs_a_thousand_requests_over_it(near: tuple[TestServer, Seen]) -> None:
    server, seen = near
    limits = Limits(max_concurrency=50, per_host=HostLimits(max_concurrency=50))
    requests = [Request(str(server.make_url("/echo")), params={"i": i}, key=i) for i in range(1000)]
    options = with_transport({"limits": limits, "retry": RetryPolicy()})
    async with Fetcher(**options) as fetcher:  # type: ignore[arg-type]
        results = [r async for r in fetcher.stream(requests)]
    assert len(results) == 1000 and all(r.ok and r.status == 200 for r in results)
    assert sorted(r.body["query"]["i"] for r in results) == sorted(str(i) for i in range(1000))
    assert all(r.key == int(r.body["query"]["i"]) for r in results)
    assert all(r.headers["Content-Type"].startswith("application/json") for r in results)
    assert len(seen) == 1000


# --- HTTP/2 (hypercorn: TLS with ALPN, h2 and http/1.1) -----------------------------------------


async def _versions_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that answers with the HTTP version it was asked in."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b'{"http_version": "%s"}' % scope["http_version"].encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def h2_server(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    serving = pytest.importorskip("hypercorn.asyncio")
    from hypercorn.config import Config

    with socket.socket() as probe:  # a free port on loopback for hypercorn to bind
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = (str(path) for path in certificate)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serving.serve(_versions_app, config, shutdown_trigger=stop.wait))
    try:
        for _ in range(100):  # until it listens
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.02)
        yield f"https://127.0.0.1:{port}/version"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_http2_when_the_server_offers_it(certificate: tuple[Path, Path]) -> None:
    insecure = SecurityPolicy(insecure_hosts=frozenset({"127.0.0.1"}))
    async with h2_server(certificate) as url, opened(insecure) as transport:
        responses = [await send(transport, url) for _ in range(3)]
    versions = {json.loads(response.body)["http_version"] for response in responses}
    # aiohttp speaks HTTP/1.1 only; pyreqwest takes HTTP/2 when the server offers it.
    assert versions == ({"2"} if on_fast() else {"1.1"})


async def test_http2_can_be_declined_on_the_fast_transport(certificate: tuple[Path, Path]) -> None:
    only_on("fast", "aiohttp has no HTTP/2 to decline")
    insecure = SecurityPolicy(insecure_hosts=frozenset({"127.0.0.1"}))
    async with h2_server(certificate) as url, opened(insecure, http2=False) as transport:
        response = await send(transport, url)
    assert json.loads(response.body)["http_version"] == "1.1"
