"""Request handlers of the simulated fleet: the seed APIs and the misbehaving endpoints."""

from __future__ import annotations

import asyncio
import gzip
import math
import time
import zlib
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import hdrs, web

from fetchpipe.engine.decoding import brotli_module, zstd_module
from fetchpipe.sim.loopback import abort_with_reset
from fetchpipe.sim.params import JSON
from fetchpipe.sim.params import BadParam as _BadParam
from fetchpipe.sim.params import float_param as _float
from fetchpipe.sim.params import int_param as _int
from fetchpipe.sim.params import json_response as _json
from fetchpipe.sim.rate_limits import RateLimits, add_rate_limit_routes
from fetchpipe.sim.shop import add_shop_routes
from fetchpipe.sim.shop_graphql import add_shop_graphql_routes
from fetchpipe.sim.shop_orders import add_order_routes
from fetchpipe.sim.shop_search import add_shop_search_routes
from fetchpipe.sim.shop_tokens import add_refresh_routes
from fetchpipe.sim.stats import FleetStats

__all__ = ["SimState", "build_app"]

_ITEMS_PER_API = 3
_LARGE_CHUNK = 64 * 1024


class SimState:
    """Shared state of one fleet: stats, per-(path, key) counters and the API latency table."""

    __slots__ = ("api_bodies", "counters", "latencies", "limited", "minute", "stats")

    def __init__(self, stats: FleetStats, minute: float, latencies: Sequence[float]) -> None:
        self.stats = stats
        self.minute = minute
        self.latencies = tuple(latencies)
        self.counters: dict[tuple[str, str], int] = {}
        self.api_bodies = [_api_body(n, lat) for n, lat in enumerate(self.latencies)]
        self.limited = RateLimits()
        """The state of the rate-limited endpoints (``/limited/...``)."""

    def next_count(self, request: web.Request) -> int:
        """1-based number of this request among those with the same path and `key` param."""
        k = (request.path, request.query.get("key", ""))
        n = self.counters.get(k, 0) + 1
        self.counters[k] = n
        return n

    def reset(self) -> None:
        """Clear the stats and the per-(path, key) counters."""
        self.stats.reset()
        self.counters.clear()
        self.limited.reset()


STATE = web.AppKey("fetchpipe_sim_state", SimState)


def _api_body(n: int, latency: float) -> bytes:
    items = [
        {"id": n * 1000 + j, "value": round(((n * 37 + j * 11) % 100) / 10, 1)}
        for j in range(_ITEMS_PER_API)
    ]
    return orjson.dumps({"api": n, "latency_minutes": latency, "items": items})


def _request_host(request: web.Request) -> str:
    host = request.headers.get(hdrs.HOST)
    if not host:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return str(sockname[0]) if sockname else ""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0]


@web.middleware
async def _stats_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count the request and keep it in flight until its response has been written."""
    if request.path.startswith("/__"):
        return await _guarded(request, handler)
    stats = request.app[STATE].stats
    host = _request_host(request)
    stats.request_started(host, request.path, request.query.get("key"))
    try:
        resp = await _guarded(request, handler)
        try:
            if not resp.prepared:
                await resp.prepare(request)
            await resp.write_eof()
        except ConnectionError:
            pass  # client went away or the handler dropped the connection on purpose
        return resp
    finally:
        stats.request_finished(host)


async def _guarded(request: web.Request, handler: Any) -> web.StreamResponse:
    """Run the handler, turning errors into JSON answers and disconnects into a dummy reply."""
    try:
        resp: web.StreamResponse = await handler(request)
    except _BadParam as exc:
        return _json({"error": str(exc)}, status=400)
    except web.HTTPException as exc:
        headers = {
            k: v
            for k, v in exc.headers.items()
            if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)
        }
        return _json({"error": exc.reason}, status=exc.status, headers=headers)
    except ConnectionError:
        return web.Response(status=499)  # never reaches the client
    return resp


# -- the seed APIs --------------------------------------------------------------------------


async def api(request: web.Request) -> web.Response:
    """`/api/{n}`: wait latency[n] * minute seconds, then a small JSON body."""
    state = request.app[STATE]
    n = int(request.match_info["n"])
    if n >= len(state.latencies):
        return _json({"error": f"no api {n}"}, status=404)
    delay = state.latencies[n] * state.minute
    if delay > 0:
        await asyncio.sleep(delay)
    return web.Response(body=state.api_bodies[n], content_type=JSON)


# -- well-behaved endpoints ------------------------------------------------------------------


async def json_ok(request: web.Request) -> web.Response:
    """`/json`: small JSON right away."""
    return _json({"id": 0, "ok": True})


async def item(request: web.Request) -> web.Response:
    """`/item/{i}`: `{"id": i}` right away."""
    return _json({"id": int(request.match_info["i"])})


async def delay(request: web.Request) -> web.Response:
    """`/delay?seconds=0.5`: wait, then small JSON."""
    seconds = _float(request, "seconds", 0.5)
    if seconds > 0:
        await asyncio.sleep(seconds)
    return _json({"delayed": seconds})


async def text(request: web.Request) -> web.Response:
    """`/text`: a line of text/plain."""
    return web.Response(text="hello from the fetchpipe sim\n", content_type="text/plain")


async def raw_bytes(request: web.Request) -> web.Response:
    """`/bytes`: 256 bytes of application/octet-stream."""
    return web.Response(body=bytes(range(256)), content_type="application/octet-stream")


def _compress(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data, mtime=0)
    if coding == "deflate":
        return zlib.compress(data)
    module = brotli_module() if coding == "br" else zstd_module() if coding == "zstd" else None
    if module is None:
        raise _BadParam("coding must be gzip, deflate, br or zstd (with its library installed)")
    if coding == "br":
        return bytes(module.compress(data, quality=5))  # as servers do on the fly
    return bytes(module.compress(data))


async def encoded(request: web.Request) -> web.Response:
    """`/encoded/{coding}?cc=max-age%3D60`: JSON in Content-Encoding `coding` (gzip, deflate,
    br or zstd) whatever the request accepts, like httpbin's /gzip, /deflate and /brotli; it
    names the coding and the Accept-Encoding that came. `cc` sets Cache-Control."""
    coding = request.match_info["coding"]
    accepted = request.headers.get(hdrs.ACCEPT_ENCODING)
    body = orjson.dumps({"coding": coding, "accept_encoding": accepted, "items": list(range(50))})
    headers = {hdrs.CONTENT_ENCODING: coding, hdrs.VARY: hdrs.ACCEPT_ENCODING}
    if "cc" in request.query:
        headers[hdrs.CACHE_CONTROL] = request.query["cc"]
    return web.Response(body=_compress(coding, body), headers=headers, content_type=JSON)


async def echo(request: web.Request) -> web.Response:
    """`/echo` (any method): the request's method, path, query, headers and body text."""
    query: dict[str, str | list[str]] = {}
    for k in request.query:
        values = request.query.getall(k)
        query[str(k)] = values[0] if len(values) == 1 else values
    body = await request.text()
    return _json(
        {
            "method": request.method,
            "path": request.path,
            "query": query,
            "headers": {str(k): v for k, v in request.headers.items()},
            "body": body,
        }
    )


async def large(request: web.Request) -> web.StreamResponse:
    """`/large?bytes=N&chunked=0|1`: `{"data": "xxx..."}` of about N bytes."""
    size = _int(request, "bytes", 1_000_000, 0, 1 << 30)
    chunked = _int(request, "chunked", 0, 0, 1) == 1
    head, tail = b'{"data": "', b'"}'
    fill = max(size - len(head) - len(tail), 0)
    if not chunked:
        return web.Response(body=head + b"x" * fill + tail, content_type=JSON)
    resp = web.StreamResponse()
    resp.content_type = JSON
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(head)
    block = b"x" * min(fill, _LARGE_CHUNK)
    remaining = fill
    while remaining > 0:
        piece = block if remaining >= len(block) else block[:remaining]
        await resp.write(piece)
        remaining -= len(piece)
    await resp.write(tail)
    return resp


# -- misbehaving endpoints -------------------------------------------------------------------


async def status(request: web.Request) -> web.Response:
    """`/status/{codes}?key=k`: the nth request for the key gets the nth code (last repeats)."""
    try:
        codes = [int(c) for c in request.match_info["codes"].split(",") if c.strip()]
    except ValueError:
        raise _BadParam("codes must be comma-separated integers") from None
    if not codes or not all(200 <= c <= 599 for c in codes):
        raise _BadParam("codes must be between 200 and 599")
    n = request.app[STATE].next_count(request)
    code = codes[min(n, len(codes)) - 1]
    headers: dict[str, str] | None = None
    retry_after = request.query.get("retry_after")
    if retry_after is not None and not 200 <= code < 300:
        headers = {hdrs.RETRY_AFTER: retry_after}
    return _json({"status": code, "n": n}, status=code, headers=headers)


_LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


async def cached(request: web.Request) -> web.Response:
    """`/cached?key=k&cc=max-age%3D60&etag=1&last_modified=1&vary=Accept-Language&fail_from=N`.

    A response with the cache headers asked for. With `etag`, an `If-None-Match` that matches
    gets 304; with `last_modified`, so does an `If-Modified-Since`. From the `fail_from`-th
    request on (per key) the answer is 503. The body says which request number produced it.
    """
    n = request.app[STATE].next_count(request)
    fail_from = _int(request, "fail_from", 0)
    if fail_from and n >= fail_from:
        return _json({"status": 503, "n": n}, status=503)
    query = request.query
    headers: dict[str, str] = {hdrs.DATE: formatdate(usegmt=True)}
    if "cc" in query:
        headers[hdrs.CACHE_CONTROL] = query["cc"]
    if "vary" in query:
        headers[hdrs.VARY] = query["vary"]
    etag = f'"v{query["etag"]}"' if "etag" in query else None
    if etag is not None:
        headers[hdrs.ETAG] = etag
    if "last_modified" in query:
        headers[hdrs.LAST_MODIFIED] = _LAST_MODIFIED
    not_modified = (etag is not None and request.headers.get(hdrs.IF_NONE_MATCH) == etag) or (
        "last_modified" in query
        and request.headers.get(hdrs.IF_MODIFIED_SINCE) == _LAST_MODIFIED
        and hdrs.IF_NONE_MATCH not in request.headers
    )
    if not_modified:
        return web.Response(status=304, headers=headers)
    body = {
        "n": n,
        "key": query.get("key", ""),
        "lang": request.headers.get(hdrs.ACCEPT_LANGUAGE),
    }
    return _json(body, headers=headers)


def _format_seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


async def ratelimit(request: web.Request) -> web.Response:
    """`/ratelimit?key=k&times=1&after=1&form=seconds|date|malformed&status=429`."""
    times = _int(request, "times", 1)
    after = _float(request, "after", 1.0, 0.0, 86400.0)
    form = request.query.get("form", "seconds")
    code = _int(request, "status", 429, 400, 599)
    n = request.app[STATE].next_count(request)
    if n > times:
        return _json({"ok": True, "n": n})
    if form == "seconds":
        value = _format_seconds(after)
    elif form == "date":
        value = formatdate(math.ceil(time.time() + after), usegmt=True)
    elif form == "malformed":
        value = "soon-ish"
    else:
        raise _BadParam("form must be seconds, date or malformed")
    return _json(
        {"status": code, "n": n, "retry_after": value},
        status=code,
        headers={hdrs.RETRY_AFTER: value},
    )


async def _drop_first_times(request: web.Request, *, reset: bool) -> web.StreamResponse:
    """The first ``times`` requests of a key: announce a long body, send part of it, then reset
    (RST) or close (FIN) the connection. Later ones: 200."""
    times = _int(request, "times", 1)
    n = request.app[STATE].next_count(request)
    if n > times:
        return _json({"ok": True, "n": n})
    announced = _int(request, "length", 1000, 2, 1 << 24)
    sent = _int(request, "sent", 100, 1, announced - 1)
    pause = _float(request, "pause", 0.05 if reset else 0.0, 0.0, 60.0)
    body = (b'{"data": "' + b"x" * announced)[:sent]
    resp = web.StreamResponse()
    resp.content_type = JSON
    resp.content_length = announced
    await resp.prepare(request)
    await resp.write(body)
    if pause > 0:
        # Give the client time to read the head and part of the body before the drop.
        await asyncio.sleep(pause)
    transport = request.transport
    if transport is None or transport.is_closing():
        return resp
    if reset:
        abort_with_reset(transport)
    else:
        transport.close()
    return resp


async def reset(request: web.Request) -> web.StreamResponse:
    """`/reset?key=k&times=1`: the first `times` requests are reset mid-body, later ones 200."""
    return await _drop_first_times(request, reset=True)


async def truncated(request: web.Request) -> web.StreamResponse:
    """`/truncated?key=k&times=1`: the first `times` bodies are cut short by a clean close."""
    return await _drop_first_times(request, reset=False)


async def slow_body(request: web.Request) -> web.StreamResponse:
    """`/slow-body?chunks=5&delay=0.2`: 200 JSON streamed in pieces with pauses between."""
    chunks = _int(request, "chunks", 5, 1, 10_000)
    pause = _float(request, "delay", 0.2, 0.0, 60.0)
    body = orjson.dumps({"chunks": chunks, "delay": pause, "data": "y" * chunks})
    step = math.ceil(len(body) / chunks)
    pieces = [body[i * step : (i + 1) * step] for i in range(chunks)]
    resp = web.StreamResponse()
    resp.content_type = JSON
    resp.content_length = len(body)
    await resp.prepare(request)
    for i, piece in enumerate(pieces):
        if i and pause > 0:
            await asyncio.sleep(pause)
        if piece:
            await resp.write(piece)
    return resp


async def invalid_json(request: web.Request) -> web.Response:
    """`/invalid-json`: JSON content type, body that does not parse."""
    return web.Response(body=b'{"id": 1, "name": "broken', content_type=JSON)


# -- control ---------------------------------------------------------------------------------


async def get_stats(request: web.Request) -> web.Response:
    """`GET /__stats`: the fleet's stats snapshot."""
    return _json(request.app[STATE].stats.snapshot())


async def post_reset(request: web.Request) -> web.Response:
    """`POST /__reset`: clear stats and per-(path, key) counters."""
    request.app[STATE].reset()
    return _json({"ok": True})


def build_app(state: SimState) -> web.Application:
    """The aiohttp application serving every endpoint; the same app runs on every address."""
    app = web.Application(middlewares=[_stats_middleware])
    app[STATE] = state
    r = app.router
    r.add_get(r"/api/{n:\d+}", api)
    r.add_get("/json", json_ok)
    r.add_get(r"/item/{i:\d+}", item)
    r.add_route("*", "/status/{codes}", status)
    r.add_get("/ratelimit", ratelimit)
    r.add_get("/cached", cached)
    r.add_get("/reset", reset)
    r.add_get("/truncated", truncated)
    r.add_get("/slow-body", slow_body)
    r.add_get("/delay", delay)
    r.add_get("/invalid-json", invalid_json)
    r.add_get("/large", large)
    r.add_get("/text", text)
    r.add_get("/bytes", raw_bytes)
    r.add_get("/encoded/{coding}", encoded)
    r.add_route("*", "/echo", echo)
    r.add_get("/__stats", get_stats)
    r.add_post("/__reset", post_reset)
    add_shop_routes(app)
    add_order_routes(app)
    add_refresh_routes(app)
    add_shop_search_routes(app)
    add_shop_graphql_routes(app)
    add_rate_limit_routes(app, state.limited)
    return app
