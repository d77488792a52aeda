"""A minimal local JSON server for benchmarks, run in its own process so it has its own core.

``python -m fetchpipe.bench.server`` prints the port it listens on (127.0.0.1 only) and serves
the same small JSON body on every path until stdin closes or it is terminated; ``/delay/{ms}``
answers the same body after waiting ``ms`` milliseconds. It uses aiohttp's low-level server (no
routing) so that the client, not the server, is what a benchmark measures.

``python -m fetchpipe.bench.server 0 HOSTS`` listens on 127.0.0.1 .. 127.0.0.HOSTS (one port)
and counts, per address, the requests in flight: ``GET /__stats`` answers the most addresses
busy at once and the most requests one address had in flight, ``POST /__reset`` clears them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from fetchpipe.bench.child import running_child, wait_for_stdin_eof
from fetchpipe.bench.report import raise_nofile_limit
from fetchpipe.engine.fetcher import run

BODY = b'{"id": 1, "name": "item", "price": 9.99, "tags": ["a", "b"], "ok": true}'
DELAY_PREFIX = "/delay/"
BACKLOG = 4096


def delay_url(base_url: str, milliseconds: int) -> str:
    """URL on the bench server that answers after ``milliseconds``."""
    return f"{base_url}{DELAY_PREFIX}{milliseconds}"


async def _handle(request: web.BaseRequest) -> web.Response:
    path = request.path
    if path.startswith(DELAY_PREFIX):
        try:
            milliseconds = int(path[len(DELAY_PREFIX) :])
        except ValueError:
            return web.Response(status=400, text="delay must be whole milliseconds")
        await asyncio.sleep(milliseconds / 1000)
    return web.Response(body=BODY, content_type="application/json")


class _Counting:
    """The handler of a server on several addresses: requests in flight per address."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        self.busy = self.max_busy = self.max_in_flight = 0

    async def handle(self, request: web.BaseRequest) -> web.Response:
        if request.path == "/__stats":
            stats = {"max_busy_hosts": self.max_busy, "max_host_in_flight": self.max_in_flight}
            return web.json_response(stats)
        if request.path == "/__reset":
            self.max_busy, self.max_in_flight = self.busy, max(self.in_flight.values(), default=0)
            return web.json_response({})
        transport = request.transport
        address = str(transport.get_extra_info("sockname")[0]) if transport else ""
        count = self.in_flight.get(address, 0) + 1
        self.in_flight[address] = count
        self.max_in_flight = max(self.max_in_flight, count)
        if count == 1:
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
        try:
            return await _handle(request)
        finally:
            self.in_flight[address] -= 1
            if not self.in_flight[address]:
                self.busy -= 1


async def _serve(port: int, hosts: int = 1) -> None:
    loop = asyncio.get_running_loop()
    handler = _handle if hosts == 1 else _Counting().handle
    server = await loop.create_server(
        web.Server(handler, access_log=None), "127.0.0.1", port, backlog=BACKLOG
    )
    port = server.sockets[0].getsockname()[1]
    others = [
        await loop.create_server(
            web.Server(handler, access_log=None), f"127.0.0.{i}", port, backlog=BACKLOG
        )
        for i in range(2, hosts + 1)
    ]
    print(port, flush=True)
    await wait_for_stdin_eof()
    for one in (server, *others):
        one.close()


def main() -> None:
    raise_nofile_limit()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    run(_serve(port, int(sys.argv[2]) if len(sys.argv) > 2 else 1))


@contextmanager
def running_server() -> Iterator[str]:
    """Start the server in a child process; yield its base URL; stop it on exit."""
    with running_servers(1) as base_urls:
        yield base_urls[0]


@contextmanager
def running_servers(hosts: int) -> Iterator[list[str]]:
    """Start the server on ``hosts`` loopback addresses (127.0.0.1 ..), one port, in a child
    process; yield the base URL of each; stop it on exit."""
    with running_child("fetchpipe.bench.server", "0", str(hosts)) as line:
        if not line.isdigit():
            raise RuntimeError(f"benchmark server did not start (said {line!r})")
        yield [f"http://127.0.0.{i}:{line}" for i in range(1, hosts + 1)]


if __name__ == "__main__":
    main()
