"""The transports' security rules against real local servers (127.0.0.0/8 only), on both.

"Nothing lost, nothing leaked": control characters are refused before sending, redirects
follow our rules, decoding is capped while it runs and a cut-off body is an error, the
private-address guard works on resolved addresses, and no message carries a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import gzip
import socket
import ssl
import sys
import time
import tracemalloc
import warnings
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import brotli
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from fetchpipe import ConfigError, ErrorKind, Fetcher, Request
from fetchpipe.engine.security import SecurityPolicy, host_refusal, system_addresses
from tests.integration.transports import (
    both_transports,
    failure,
    on_fast,
    only_on,
    opened,
    send,
    with_transport,
)

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

pytestmark = both_transports

MiB = 1024 * 1024
SECRET = "CANARY-0f1e2d3c"
PAYLOAD = b'{"items": [' + b", ".join(b"%d" % i for i in range(20000)) + b"]}"

Seen = list[dict[str, Any]]


# --- helpers ----------------------------------------------------------------------------------


def make_app(seen: Seen) -> web.Application:
    """``/echo`` says what arrived; ``/to`` redirects to ``?loc=`` with ``?status=``."""

    async def echo(request: web.Request) -> web.Response:
        record = {
            "path": request.path,
            "method": request.method,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode(),
            "port": _peer_port(request),
        }
        seen.append(record)
        return web.json_response(record)

    async def to(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "port": _peer_port(request)})
        headers = {"Location": request.query["loc"]}
        return web.Response(status=int(request.query.get("status", "302")), headers=headers)

    async def loop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        seen.append({"path": request.path})
        location = f"/loop/{n + 1}?api_key={SECRET}&n={n + 1}"
        return web.Response(status=302, headers={"Location": location}, text="moved")

    async def late_body(request: web.Request) -> web.StreamResponse:
        """A redirect whose small body comes after its headers (unread, it would close)."""
        n = int(request.match_info["n"])
        seen.append({"path": request.path, "port": _peer_port(request)})
        location = f"/late-body/{n - 1}" if n else "/echo"
        response = web.StreamResponse(status=302, headers={"Location": location})
        response.content_length = 5
        await response.prepare(request)
        await asyncio.sleep(0.05)
        await response.write(b"moved")
        return response

    async def slow_redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        await asyncio.sleep(0.3)
        return web.Response(status=302, headers={"Location": f"/slow/{n - 1}" if n else "/echo"})

    async def big_redirect(request: web.Request) -> web.StreamResponse:
        """A redirect whose 200 MB body nobody should read; counts what it could write."""
        response = web.StreamResponse(status=302, headers={"Location": "/echo"})
        response.content_length = 200 * MiB
        await response.prepare(request)
        written = 0
        try:  # aiohttp cancels the handler when the client goes away
            for _ in range(200 * MiB // 65536):
                await response.write(bytes(65536))
                written += 65536
        finally:
            seen.append({"path": request.path, "written": written})
        return response

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/to", to)
    app.router.add_get("/loop/{n}", loop)
    app.router.add_get("/slow/{n}", slow_redirect)
    app.router.add_get("/late-body/{n}", late_body)
    app.router.add_get("/big-redirect", big_redirect)
    return app


def _peer_port(request: web.Request) -> int | None:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return peer[1] if peer else None


def redirect(server: TestServer, location: str | URL, status: int = 302) -> URL:
    return server.make_url("/to").with_query(loc=str(location), status=str(status))


@pytest.fixture
async def near() -> AsyncIterator[tuple[TestServer, Seen]]:
    seen: Seen = []
    async with TestServer(make_app(seen), host="127.0.0.1") as server:
        yield server, seen


@pytest.fixture
async def far() -> AsyncIterator[tuple[TestServer, Seen]]:
    """A second origin: same address, another port."""
    seen: Seen = []
    async with TestServer(make_app(seen), host="127.0.0.1") as server:
        yield server, seen


# --- control characters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        Request("{base}/echo", headers={"X-Foo": "a\r\nX-Injected: 1"}),
        Request("{base}/echo", headers={"X-Foo\r\nX-Injected": "1"}),
        Request("{base}/echo", params={"q": "a\r\nb"}),
        Request("{base}/echo\r\nX-Injected: 1"),
        Request("{base}/e\x00cho"),
        Request("{base}/echo?q=a\nb"),
    ],
    ids=["header-value", "header-name", "param", "url-crlf", "url-nul", "query-lf"],
)
async def test_control_characters_are_refused_before_anything_is_sent(
    near: tuple[TestServer, Seen], request_: Request
) -> None:
    server, seen = near
    base = str(server.make_url("")).rstrip("/")
    async with opened() as transport:
        error = await failure(transport, Request(request_.url.format(base=base), **_rest(request_)))
        assert error.kind is ErrorKind.INVALID_REQUEST
        assert "control character" in error.message and "refused before sending" in error.message
        assert not any(c in error.message for c in "\r\n\x00")  # shown escaped, if at all
        if request_.headers and "X-Foo" in request_.headers:
            assert "X-Injected" not in error.message  # a header value is never shown
        assert seen == []
        # Without the check yarl would strip the CR LF from the URL and send another one.
        assert (await send(transport, server.make_url("/echo"))).status == 200


def _rest(request: Request) -> dict[str, Any]:
    return {"headers": request.headers, "params": request.params}


async def test_control_characters_in_default_headers_fail_at_construction() -> None:
    with pytest.raises(ConfigError, match="default header 'X-Team' value has a control"):
        async with opened(headers={"X-Team": "a\nb"}):
            pass


# --- redirects --------------------------------------------------------------------------------


async def test_a_redirect_chain_is_followed_and_the_final_url_returned(
    near: tuple[TestServer, Seen],
) -> None:
    server, seen = near
    final = server.make_url("/echo").with_query(page="2")
    middle = redirect(server, final, 301)
    async with opened() as transport:
        response = await send(transport, redirect(server, middle.relative(), 308))
        plain = await send(transport, server.make_url("/echo"))
    assert response.status == 200 and response.url == str(final)
    assert b'"page": "2"' in response.body
    assert [s["path"] for s in seen] == ["/to", "/to", "/echo", "/echo"]
    assert plain.url == str(server.make_url("/echo"))


async def test_a_small_redirect_body_is_read_so_the_connection_is_kept(
    near: tuple[TestServer, Seen],
) -> None:
    server, seen = near
    async with opened() as transport:
        response = await send(transport, server.make_url("/late-body/3"))
    assert response.status == 200
    ports = [s["port"] for s in seen]
    assert len(ports) == 5 and len(set(ports)) == 1  # one connection for the whole chain


async def test_a_redirect_body_is_released_unread(near: tuple[TestServer, Seen]) -> None:
    server, seen = near
    start = time.monotonic()
    async with opened() as transport:
        response = await send(transport, server.make_url("/big-redirect"), max_body_size=MiB)
    assert response.status == 200 and response.url == str(server.make_url("/echo"))
    assert time.monotonic() - start < 5
    for _ in range(100):  # the server notices the closed connection soon after
        if any(s["path"] == "/big-redirect" for s in seen):
            break
        await asyncio.sleep(0.05)
    written = next(s["written"] for s in seen if s["path"] == "/big-redirect")
    assert written < 200 * MiB  # not read to the end (nor held: the cap is 1 MiB)


async def test_too_many_redirects_fail_and_list_the_hops(near: tuple[TestServer, Seen]) -> None:
    server, seen = near
    async with opened(SecurityPolicy(max_redirects=3)) as transport:
        error = await failure(transport, server.make_url("/loop/0"))
    assert error.kind is ErrorKind.OTHER
    hops = " -> ".join(str(server.make_url(f"/loop/{n}")) for n in range(4))
    assert f"too many redirects: stopped after 3 (max_redirects): {hops}." in error.message
    assert SECRET not in error.message
    assert len(seen) == 4  # the first request and three redirects, then no more


async def test_max_redirects_zero_returns_the_redirect_itself(
    near: tuple[TestServer, Seen],
) -> None:
    server, seen = near
    async with opened(SecurityPolicy(max_redirects=0)) as transport:
        response = await send(transport, server.make_url("/loop/0"))
    assert response.status == 302 and response.body == b"moved"
    assert response.headers["Location"].startswith("/loop/1")
    assert len(seen) == 1


async def test_the_total_timeout_covers_the_whole_chain(near: tuple[TestServer, Seen]) -> None:
    server, _ = near
    start = time.monotonic()
    async with opened() as transport:
        error = await failure(transport, server.make_url("/slow/3"), total_timeout=0.8)
    assert error.kind is ErrorKind.TIMEOUT
    assert time.monotonic() - start < 1.5  # 4 hops of 0.3 s (1.2 s): each fits alone, not all


@pytest.mark.parametrize(
    ("status", "method", "after", "body"),
    [
        (303, "POST", "GET", ""),
        (301, "POST", "GET", ""),
        (302, "POST", "GET", ""),
        (307, "POST", "POST", '{"a":1}'),
        (308, "PUT", "PUT", '{"a":1}'),
    ],
)
async def test_redirect_method_rules(
    near: tuple[TestServer, Seen], status: int, method: str, after: str, body: str
) -> None:
    server, seen = near
    url = redirect(server, "/echo", status)
    async with opened() as transport:
        response = await send(transport, Request(str(url), method=method, json={"a": 1}))
    assert response.status == 200
    echoed = seen[-1]
    assert echoed["method"] == after and echoed["body"] == body
    assert ("content-type" in echoed["headers"]) is bool(body)


CREDENTIAL_HEADERS = {
    "Authorization": f"Bearer {SECRET}",
    "Proxy-Authorization": f"Basic {SECRET}",
    "Cookie": f"sid={SECRET}",
    "X-Api-Key": SECRET,
    "X-Trace": "kept",
}
POLICY = SecurityPolicy(
    credential_headers=frozenset({"x-api-key"}), credential_params=frozenset({"api_key"})
)


async def test_credentials_are_dropped_on_a_redirect_to_another_origin(
    near: tuple[TestServer, Seen], far: tuple[TestServer, Seen]
) -> None:
    server, _ = near
    other, far_seen = far
    target = other.make_url("/echo").with_query(api_key=SECRET, page="2")
    request = Request(
        str(redirect(server, target)), headers=CREDENTIAL_HEADERS, params={"api_key": SECRET}
    )
    async with opened(POLICY, headers={"Authorization": f"Bearer default-{SECRET}"}) as transport:
        response = await send(transport, request)
    assert response.status == 200
    arrived = far_seen[-1]
    assert SECRET not in str(arrived)
    assert arrived["query"] == {"page": "2"}
    assert arrived["headers"]["x-trace"] == "kept"
    for name in ("authorization", "proxy-authorization", "cookie", "x-api-key"):
        assert name not in arrived["headers"]


async def test_credentials_go_along_within_the_same_origin(
    near: tuple[TestServer, Seen],
) -> None:
    server, seen = near
    target = server.make_url("/echo").with_query(api_key=SECRET)
    request = Request(str(redirect(server, target)), headers={"X-Api-Key": SECRET})
    async with opened(POLICY, headers={"Authorization": f"Bearer {SECRET}"}) as transport:
        await send(transport, request)
    arrived = seen[-1]
    assert arrived["query"] == {"api_key": SECRET}
    assert arrived["headers"]["x-api-key"] == SECRET
    assert arrived["headers"]["authorization"] == f"Bearer {SECRET}"  # a default header


async def test_a_default_credential_header_still_goes_with_every_request(
    near: tuple[TestServer, Seen],
) -> None:
    server, seen = near
    defaults = {"authorization": "Bearer d", "X-Team": "t", "user-agent": "mine/1"}
    async with opened(headers=defaults) as transport:
        await send(transport, server.make_url("/echo"))
        await send(
            transport, Request(str(server.make_url("/echo")), headers={"Authorization": "o"})
        )
    first, second = seen[-2]["headers"], seen[-1]["headers"]
    assert first["authorization"] == "Bearer d" and first["x-team"] == "t"
    assert first["user-agent"] == "mine/1" and first["accept-encoding"] == "gzip, deflate, br, zstd"
    assert second["authorization"] == "o"  # the request's own header wins


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)"]
)
async def test_a_location_that_is_not_http_is_refused(
    near: tuple[TestServer, Seen], location: str
) -> None:
    server, seen = near
    async with opened() as transport:
        error = await failure(transport, redirect(server, location))
    assert error.kind is ErrorKind.INVALID_REQUEST
    assert "only http and https are followed" in error.message
    assert len(seen) == 1


async def test_the_fetcher_follows_redirects_and_drops_its_credentials_across_origins(
    near: tuple[TestServer, Seen], far: tuple[TestServer, Seen]
) -> None:
    server, _ = near
    other, far_seen = far
    options = with_transport({"headers": {"Authorization": f"Bearer {SECRET}"}})
    async with Fetcher(**options) as fetcher:  # type: ignore[arg-type]
        results = [
            r async for r in fetcher.stream([str(redirect(server, other.make_url("/echo")))])
        ]
    assert results[0].ok and results[0].body["path"] == "/echo"
    assert "authorization" not in far_seen[-1]["headers"]


# --- TLS (a self-signed certificate made by openssl, when it is installed) ---------------------


@pytest.fixture
async def tls(
    certificate: tuple[Path, Path],
) -> AsyncIterator[tuple[TestServer, Seen]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    seen: Seen = []
    server = TestServer(make_app(seen), host="127.0.0.1")
    await server.start_server(ssl=context)
    try:
        yield server, seen
    finally:
        await server.close()
        # The server's side of a TLS connection that pyreqwest (the fast transport) dropped
        # without a close_notify can outlive the server's shutdown; it is the test server's
        # socket, not the client's, so it is collected here without a warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


async def test_tls_is_verified_unless_the_host_is_listed_insecure(
    tls: tuple[TestServer, Seen],
) -> None:
    server, _ = tls
    url = server.make_url("/echo")
    assert url.scheme == "https"
    async with opened() as transport:
        error = await failure(transport, url)
        assert error.kind is ErrorKind.TLS and "certificate" in error.message.lower()
        assert transport.insecure_hosts == frozenset()
    insecure = SecurityPolicy(insecure_hosts=frozenset({"127.0.0.1"}))
    async with opened(insecure) as transport:
        assert (await send(transport, url)).status == 200
        assert transport.insecure_hosts == {"127.0.0.1"}
    other = SecurityPolicy(insecure_hosts=frozenset({"127.0.0.2"}))
    async with opened(other) as transport:
        assert (await failure(transport, url)).kind is ErrorKind.TLS


@pytest.mark.parametrize(
    ("headers", "params", "refused"),
    [
        ({"Authorization": f"Bearer {SECRET}"}, None, True),
        (None, {"api_key": SECRET}, True),
        ({"X-Trace": "t"}, {"page": "1"}, False),
    ],
)
async def test_a_downgrade_to_http_is_refused_when_credentials_were_sent(
    tls: tuple[TestServer, Seen],
    far: tuple[TestServer, Seen],
    headers: dict[str, str] | None,
    params: dict[str, str] | None,
    refused: bool,
) -> None:
    server, _ = tls
    plain, plain_seen = far
    url = redirect(server, plain.make_url("/echo"), 301)
    policy = SecurityPolicy(insecure_hosts=frozenset({"127.0.0.1"}), credential_params={"api_key"})
    async with opened(policy) as transport:
        request = Request(str(url), headers=headers, params=params)
        if refused:
            error = await failure(transport, request)
            assert error.kind is ErrorKind.INVALID_REQUEST and "to plain HTTP" in error.message
            assert SECRET not in repr(error) and plain_seen == []
        else:
            assert (await send(transport, request)).status == 200
            assert len(plain_seen) == 1


# --- private-address guard --------------------------------------------------------------------

GUARD = SecurityPolicy(block_private=True)
BLOCK_PRIVATE = "the fast transport refuses block_private at start-up (no resolver hook)"


def _localhost_is_loopback_v4() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(info[4][0] == "127.0.0.1" for info in infos)


async def test_the_guard_refuses_a_loopback_literal(near: tuple[TestServer, Seen]) -> None:
    only_on("aiohttp", BLOCK_PRIVATE)
    server, seen = near
    async with opened(GUARD) as transport:
        error = await failure(transport, server.make_url("/echo").with_query(api_key=SECRET))
    assert error.kind is ErrorKind.INVALID_REQUEST
    assert error.message.startswith("127.0.0.1 is a loopback address; refused (block_private).")
    assert "HINT: add it to allow_addresses" in error.message
    assert seen == []


@pytest.mark.skipif(not _localhost_is_loopback_v4(), reason="localhost is not 127.0.0.1 here")
async def test_the_guard_checks_resolved_addresses(near: tuple[TestServer, Seen]) -> None:
    only_on("aiohttp", BLOCK_PRIVATE)
    server, seen = near
    url = server.make_url("/echo").with_host("localhost")
    async with opened(GUARD) as transport:
        error = await failure(transport, url)
    assert error.kind is ErrorKind.INVALID_REQUEST
    assert error.message.startswith("localhost resolves to 127.0.0.1, a loopback address")
    assert seen == []
    allowed = SecurityPolicy(block_private=True, allow_addresses=("127.0.0.0/8",))
    async with opened(allowed) as transport:
        assert (await send(transport, url)).status == 200


async def test_allowed_addresses_pass_the_guard(near: tuple[TestServer, Seen]) -> None:
    only_on("aiohttp", BLOCK_PRIVATE)
    server, seen = near
    allowed = SecurityPolicy(block_private=True, allow_addresses=("127.0.0.1",))
    async with opened(allowed) as transport:
        assert (await send(transport, server.make_url("/echo"))).status == 200
    assert len(seen) == 1


async def test_the_guard_covers_redirects(near: tuple[TestServer, Seen]) -> None:
    only_on("aiohttp", BLOCK_PRIVATE)
    server, seen = near
    allowed = SecurityPolicy(block_private=True, allow_addresses=("127.0.0.1",))
    target = server.make_url("/echo").with_host("127.0.0.2")
    async with opened(allowed) as transport:
        error = await failure(transport, redirect(server, target))
    assert error.kind is ErrorKind.INVALID_REQUEST
    assert error.message.startswith("127.0.0.2 is a loopback address; refused (block_private)")
    assert [s["path"] for s in seen] == ["/to"]


@pytest.mark.skipif(not _localhost_is_loopback_v4(), reason="localhost is not 127.0.0.1 here")
async def test_a_host_is_checked_ahead_of_a_fetch_in_the_transport_s_words(
    near: tuple[TestServer, Seen],
) -> None:
    only_on("aiohttp", BLOCK_PRIVATE)
    server, seen = near
    assert "127.0.0.1" in await system_addresses("localhost")
    reason = await host_refusal(GUARD, "localhost")
    async with opened(GUARD) as transport:
        error = await failure(transport, server.make_url("/echo").with_host("localhost"))
    assert seen == []
    assert reason is not None
    # The system resolver may add ::1 where the transport's leaves it out (no IPv6 configured):
    # the same addresses are said in the same words.
    said = "localhost resolves to 127.0.0.1, a loopback address"
    assert reason.startswith(said) and error.message.startswith(said)
    assert reason.partition("; refused")[1:] == error.message.partition("; refused")[1:]
    allowed = SecurityPolicy(block_private=True, allow_addresses=("127.0.0.0/8", "::1"))
    assert await host_refusal(allowed, "localhost") is None


@pytest.mark.skipif(not _localhost_is_loopback_v4(), reason="localhost is not 127.0.0.1 here")
async def test_the_guard_checks_the_resolved_address_of_a_redirect() -> None:
    only_on("aiohttp", BLOCK_PRIVATE)
    seen: Seen = []
    async with TestServer(make_app(seen), host="127.0.0.2") as server:
        allowed = SecurityPolicy(block_private=True, allow_addresses=("127.0.0.2",))
        target = server.make_url("/echo").with_host("localhost")  # 127.0.0.1: not allowed
        async with opened(allowed) as transport:
            assert (await send(transport, server.make_url("/echo"))).status == 200
            error = await failure(transport, redirect(server, target))
    assert error.kind is ErrorKind.INVALID_REQUEST
    assert error.message.startswith("localhost resolves to 127.0.0.1, a loopback address")
    assert [s["path"] for s in seen] == ["/echo", "/to"]


# --- decoding ---------------------------------------------------------------------------------


@functools.cache
def _zero_deflate() -> tuple[bytes, int, int]:
    """Raw deflate of 1 GiB of zeros (about 1 MB), with its CRC-32 and Adler-32."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = bytes(MiB)
    parts, crc, adler = [], 0, 1
    for _ in range(1024):
        parts.append(compressor.compress(block))
        crc, adler = zlib.crc32(block, crc), zlib.adler32(block, adler)
    parts.append(compressor.flush())
    return b"".join(parts), crc, adler


def gzip_bomb() -> bytes:
    raw, crc, _ = _zero_deflate()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + raw + crc.to_bytes(4, "little") + (1 << 30).to_bytes(4, "little")


def deflate_bomb() -> bytes:
    raw, _, adler = _zero_deflate()
    return b"\x78\x9c" + raw + adler.to_bytes(4, "big")


# mtime=0: gzip writes the time into its header, and a body built twice must be the same.
def gzip_gzip_bomb() -> bytes:
    return gzip.compress(gzip_bomb(), 9, mtime=0)


def br(data: bytes) -> bytes:
    return brotli.compress(data, quality=5)  # as servers compress on the fly (11 is slow)


@functools.cache
def br_bomb() -> bytes:
    """256 MiB of zeros in br (about 400 bytes)."""
    compressor = brotli.Compressor(quality=5)
    block = bytes(MiB)
    return b"".join([*(compressor.process(block) for _ in range(256)), compressor.finish()])


@functools.cache
def zstd_bomb() -> bytes:
    """1 GiB of zeros in zstd (about 32 KB)."""
    compressor = zstd.ZstdCompressor()
    block = bytes(MiB)
    return b"".join([*(compressor.compress(block) for _ in range(1024)), compressor.flush()])


def encoded_app(bodies: dict[str, Callable[[], bytes]]) -> web.Application:
    """``/{name}?ce=...&cut=...&mode=...``: a body, its Content-Encoding, optionally cut off
    (``mode=whole``: the framing agrees; ``short``: Content-Length promises more;
    ``chunked``: a chunked body that ends early)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = bodies[request.match_info["name"]]()
        cut = float(request.query.get("cut", "1"))
        sent = body[: int(len(body) * cut)]
        headers = {"Content-Encoding": request.query.get("ce", "gzip")}
        mode = request.query.get("mode", "whole")
        if mode == "whole":
            return web.Response(body=sent, headers=headers)
        response = web.StreamResponse(headers=headers)
        if mode == "short":
            response.content_length = len(body)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(sent)
        if mode == "short":
            assert request.transport is not None
            request.transport.close()
        else:
            await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{name}", handler)
    return app


BODIES: dict[str, Callable[[], bytes]] = {
    "gzip": lambda: gzip.compress(PAYLOAD, mtime=0),
    "deflate": lambda: zlib.compress(PAYLOAD),
    "rawdeflate": lambda: zlib.compress(PAYLOAD, wbits=-zlib.MAX_WBITS),
    "gzipgzip": lambda: gzip.compress(gzip.compress(PAYLOAD, mtime=0), mtime=0),
    "gzip3": lambda: gzip.compress(
        gzip.compress(gzip.compress(PAYLOAD, mtime=0), mtime=0), mtime=0
    ),
    "members": lambda: b"".join(
        gzip.compress(part, mtime=0) for part in (PAYLOAD[:100], PAYLOAD[100:])
    ),
    "br": lambda: br(PAYLOAD),
    "zstd": lambda: zstd.compress(PAYLOAD),
    "zstdframes": lambda: zstd.compress(PAYLOAD[:100]) + zstd.compress(PAYLOAD[100:]),
    "brgzip": lambda: gzip.compress(br(PAYLOAD), mtime=0),
    "gzip-bomb": gzip_bomb,
    "deflate-bomb": deflate_bomb,
    "gzip-gzip-bomb": gzip_gzip_bomb,
    "br-bomb": br_bomb,
    "zstd-bomb": zstd_bomb,
    "junk": lambda: b"not brotli at all",
}


@pytest.fixture
async def encoded() -> AsyncIterator[TestServer]:
    async with TestServer(encoded_app(BODIES), host="127.0.0.1") as server:
        yield server


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Peak bytes allocated by Python inside the block (zlib output included)."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("name", "ce"),
    [
        ("gzip", "gzip"),
        ("gzip", "x-gzip"),
        ("deflate", "deflate"),
        ("rawdeflate", "deflate"),
        ("gzipgzip", "gzip, gzip"),  # aiohttp alone returns these still compressed
        ("gzip3", "gzip, gzip, gzip"),
        ("members", "gzip"),
        ("gzip", "identity, gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("zstdframes", "zstd"),
        ("brgzip", "br, gzip"),
    ],
)
async def test_encoded_bodies_are_decoded(encoded: TestServer, name: str, ce: str) -> None:
    policy = SecurityPolicy(max_encodings=3)
    async with opened(policy) as transport:
        response = await send(transport, encoded.make_url(f"/{name}").with_query(ce=ce))
    assert response.status == 200 and response.body == PAYLOAD


async def test_stacked_encodings_beyond_the_bound_are_refused(encoded: TestServer) -> None:
    async with opened() as transport:
        error = await failure(transport, encoded.make_url("/gzip3").with_query(ce="gzip,gzip,gzip"))
    assert error.kind is ErrorKind.OTHER
    assert "3 stacked content encodings (gzip, gzip, gzip), over max_encodings=2" in error.message


@pytest.mark.parametrize("ce", ["compress", "snappy"])
async def test_encodings_we_cannot_decode_are_refused(encoded: TestServer, ce: str) -> None:
    async with opened() as transport:
        error = await failure(transport, encoded.make_url("/junk").with_query(ce=ce))
    assert error.kind is ErrorKind.OTHER and f"encoded with '{ce}'" in error.message
    assert "(gzip, deflate, br, zstd only)" in error.message


@pytest.mark.parametrize("ce", ["gzip", "br", "zstd"])
async def test_a_corrupt_body_names_its_encoding(encoded: TestServer, ce: str) -> None:
    async with opened() as transport:
        error = await failure(transport, encoded.make_url("/junk").with_query(ce=ce))
    assert error.kind is ErrorKind.OTHER
    assert error.message.startswith(f"the response body is not valid {ce} data (")


async def test_every_advertised_encoding_is_decoded(
    near: tuple[TestServer, Seen], encoded: TestServer
) -> None:
    """Accept-Encoding names exactly what the transport decodes: each one, answered, lands."""
    server, seen = near
    async with opened() as transport:
        await send(transport, server.make_url("/echo"))
        advertised = [token.strip() for token in seen[-1]["headers"]["accept-encoding"].split(",")]
        assert sorted(advertised) == ["br", "deflate", "gzip", "zstd"]
        for coding in advertised:
            response = await send(transport, encoded.make_url(f"/{coding}").with_query(ce=coding))
            assert response.body == PAYLOAD, coding


@pytest.mark.parametrize(
    ("name", "ce"),
    [
        ("gzip-bomb", "gzip"),  # 1 GiB from about 1 MB
        ("deflate-bomb", "deflate"),  # 1 GiB from about 1 MB
        ("gzip-gzip-bomb", "gzip, gzip"),  # 1 GiB from about 2 KB
        ("br-bomb", "br"),  # 256 MiB from about 400 bytes
        ("zstd-bomb", "zstd"),  # 1 GiB from about 32 KB
    ],
)
async def test_a_decompression_bomb_is_too_large_with_bounded_memory(
    encoded: TestServer, name: str, ce: str
) -> None:
    body = BODIES[name]()  # built before measuring
    assert len(body) < 1100 * 1024
    url = encoded.make_url(f"/{name}").with_query(ce=ce)
    async with opened() as transport:
        with peak_memory() as peak:
            error = await failure(transport, url)  # the default cap: 64 MiB
    assert error.kind is ErrorKind.BODY_TOO_LARGE
    assert error.message.startswith("response body is over max_body_size (67108864 bytes; ")
    assert error.message.endswith(
        f"; Content-Encoding {ce}). HINT: raise Limits.max_body_size if this API really sends "
        "bodies this large."
    )
    assert peak[0] < 100 * 1000 * 1000


async def test_a_bomb_fails_its_request_and_the_rest_of_the_run_completes(
    encoded: TestServer,
) -> None:
    BODIES["gzip-gzip-bomb"]()  # built (and cached by the server's app) before measuring
    bomb = str(encoded.make_url("/gzip-gzip-bomb").with_query(ce="gzip, gzip"))
    others = [str(encoded.make_url("/gzip").with_query(ce="gzip", n=i)) for i in range(20)]
    with peak_memory() as peak:
        async with Fetcher(**with_transport({})) as fetcher:  # type: ignore[arg-type]
            results = {r.url: r async for r in fetcher.stream([*others[:10], bomb, *others[10:]])}
    assert results[bomb].error is ErrorKind.BODY_TOO_LARGE
    assert "over max_body_size" in (results[bomb].error_message or "")
    assert all(results[u].ok and results[u].body == PAYLOAD for u in others)
    assert peak[0] < 100 * 1000 * 1000


@pytest.mark.parametrize("name", ["gzip", "deflate", "gzipgzip", "br", "zstd"])
@pytest.mark.parametrize("mode", ["whole", "short", "chunked"])
async def test_a_cut_off_compressed_body_is_truncated(
    encoded: TestServer, name: str, mode: str
) -> None:
    ce = "gzip, gzip" if name == "gzipgzip" else name
    url = encoded.make_url(f"/{name}").with_query(ce=ce, cut="0.5", mode=mode)
    async with opened() as transport:
        error = await failure(transport, url)
    assert error.kind is ErrorKind.TRUNCATED
    if mode == "whole":  # the HTTP framing is complete: the compressed stream says it is cut
        assert f"the {ce.split(',')[0]} stream of the response body ends early" in error.message


# --- what aiohttp does on its own (the facts the transport is built on) -------------------------


async def test_aiohttp_bounds_each_decompression_step(encoded: TestServer) -> None:
    """aiohttp 3.14 decodes a gzip bomb in bounded steps (flow control between them)."""
    only_on("aiohttp", "a fact about aiohttp itself, the same on either run")
    BODIES["gzip-bomb"]()
    async with aiohttp.ClientSession() as session:
        with peak_memory() as peak:
            async with session.get(encoded.make_url("/gzip-bomb")) as response:
                size = 0
                async for chunk in response.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > 16 * MiB:
                        break
    assert size > 16 * MiB and peak[0] < 20 * MiB


async def test_aiohttp_accepts_a_cut_off_gzip_body_and_skips_stacked_encodings(
    encoded: TestServer,
) -> None:
    """Why the transport decodes bodies itself: aiohttp returns a cut-off gzip stream as a
    complete (shorter) body, and hands back stacked encodings undecoded."""
    only_on("aiohttp", "a fact about aiohttp itself, the same on either run")
    async with aiohttp.ClientSession() as session:
        async with session.get(encoded.make_url("/gzip").with_query(cut="0.5")) as response:
            body = await response.read()
        assert 0 < len(body) < len(PAYLOAD)
        url = encoded.make_url("/gzipgzip").with_query(ce="gzip, gzip")
        async with session.get(url) as response:
            assert await response.read() == BODIES["gzipgzip"]()


# --- no secret in any message -----------------------------------------------------------------


async def test_no_error_message_carries_a_secret(
    near: tuple[TestServer, Seen], encoded: TestServer
) -> None:
    server, _ = near
    auth = {"Authorization": f"Bearer {SECRET}"}
    policy = SecurityPolicy(credential_params=frozenset({"api_key"}), max_redirects=3)
    guard = SecurityPolicy(block_private=True, credential_params=frozenset({"api_key"}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: refused
        refused_url = f"http://127.0.0.1:{sock.getsockname()[1]}/x?api_key={SECRET}"
        cases: list[tuple[SecurityPolicy, Request]] = [
            (policy, Request(f"{server.make_url('/echo')}?api_key={SECRET}\r\n", headers=auth)),
            (policy, Request(str(server.make_url("/echo")), headers={"X": f"{SECRET}\n"})),
            (policy, Request(str(server.make_url("/echo")), params={"api_key": f"{SECRET}\r"})),
            (policy, Request(str(redirect(server, f"ftp://h/?api_key={SECRET}")), headers=auth)),
            (policy, Request(f"{server.make_url('/loop/0')}?api_key={SECRET}", headers=auth)),
            (
                policy,
                Request(
                    str(encoded.make_url("/gzip-gzip-bomb").with_query(ce="gzip, gzip")),
                    headers=auth,
                    params={"api_key": SECRET},
                ),
            ),
            (
                policy,
                Request(
                    str(encoded.make_url("/gzip3").with_query(ce="gzip,gzip,gzip", api_key=SECRET)),
                    headers=auth,
                ),
            ),
            (
                policy,
                Request(
                    str(encoded.make_url("/gzip").with_query(cut="0.5", api_key=SECRET)),
                    headers=auth,
                ),
            ),
            (policy, Request(refused_url, headers=auth)),
            (policy, Request(f"http://[::1/x?api_key={SECRET}", headers=auth)),
            (policy, Request(f"http://127.0.0.1:99999/x?api_key={SECRET}", headers=auth)),
        ]
        if not on_fast():  # BLOCK_PRIVATE
            cases.append(
                (guard, Request(f"{server.make_url('/echo')}?api_key={SECRET}", headers=auth))
            )
        errors = []
        for case_policy, request in cases:
            async with opened(case_policy) as transport:
                errors.append(await failure(transport, request, total_timeout=5))
    kinds = {error.kind for error in errors}
    assert {ErrorKind.INVALID_REQUEST, ErrorKind.OTHER, ErrorKind.BODY_TOO_LARGE} <= kinds
    assert {ErrorKind.TRUNCATED, ErrorKind.CONNECT} <= kinds
    for error in errors:
        assert SECRET not in error.message and SECRET not in str(error)
        assert SECRET not in repr(error) and SECRET not in repr(error.args)
