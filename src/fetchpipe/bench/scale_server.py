"""Many loopback hosts in one child process, counting the requests in flight at each.

``python -m fetchpipe.bench.scale_server HOSTS`` listens on one port on ``HOSTS`` addresses
(:func:`host_address`: 127.0.0.1, ..., 127.0.0.254, 127.0.1.1, ...; a client sees as many
hosts, without DNS) and prints the port. ``/delay/{ms}`` answers a small JSON body after ``ms``
milliseconds; ``GET /__max`` (on any address) answers ``{address: most requests in flight at
once}``; ``POST /__max`` answers the same and forgets them. It serves until its stdin closes.
Its own process: the clients measured share the machine with it, not its event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from fetchpipe.bench.child import running_child, wait_for_stdin_eof
from fetchpipe.bench.report import raise_nofile_limit
from fetchpipe.engine.fetcher import run

BODY = b'{"id": 1, "name": "item", "ok": true}'
MAX_HOSTS = 254 * 250
BACKLOG = 1024
_BIND_ATTEMPTS = 5


def host_address(index: int) -> str:
    """The address of host ``index`` (0-based): 254 per ``127.0.x.0/24``, from 127.0.0.1."""
    if not 0 <= index < MAX_HOSTS:
        raise ValueError(f"host index must be between 0 and {MAX_HOSTS - 1}")
    return f"127.0.{index // 254}.{index % 254 + 1}"


class _Counts:
    def __init__(self) -> None:
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}


def _app(counts: _Counts) -> web.Server:
    async def handle(request: web.BaseRequest) -> web.Response:
        path = request.path
        if path == "/__max":
            body = json.dumps(counts.most).encode()
            if request.method == "POST":
                counts.most.clear()
            return web.Response(body=body, content_type="application/json")
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        host = str(sockname[0]) if sockname else "?"
        counts.now[host] = now = counts.now.get(host, 0) + 1
        if now > counts.most.get(host, 0):
            counts.most[host] = now
        try:
            if path.startswith("/delay/"):
                await asyncio.sleep(int(path[len("/delay/") :]) / 1000)
            return web.Response(body=BODY, content_type="application/json")
        finally:
            counts.now[host] -= 1

    return web.Server(handle, access_log=None)


async def _serve(hosts: int) -> None:
    loop = asyncio.get_running_loop()
    counts = _Counts()
    handler = _app(counts)
    for _ in range(_BIND_ATTEMPTS):
        servers: list[asyncio.Server] = []
        try:
            first = await loop.create_server(handler, host_address(0), 0, backlog=BACKLOG)
            servers.append(first)
            port = first.sockets[0].getsockname()[1]
            for index in range(1, hosts):
                servers.append(
                    await loop.create_server(handler, host_address(index), port, backlog=BACKLOG)
                )
            break
        except OSError:
            for server in servers:
                server.close()
    else:  # pragma: no cover - every try met a taken port
        raise OSError("no port free on every address")
    print(port, flush=True)
    await wait_for_stdin_eof()
    for server in servers:
        server.close()


def main() -> None:
    raise_nofile_limit()
    run(_serve(int(sys.argv[1])))


def max_in_flight(port: int, *, reset: bool = False) -> dict[str, int]:
    """The most requests each address had in flight at once (and forget them if ``reset``)."""
    request = urllib.request.Request(
        f"http://{host_address(0)}:{port}/__max", method="POST" if reset else "GET"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    with opener.open(request, timeout=10) as answer:
        data: dict[str, int] = json.loads(answer.read())
    return data


@contextmanager
def running_scale_server(hosts: int) -> Iterator[int]:
    """Start the server for ``hosts`` hosts in a child process; yield its port."""
    with running_child("fetchpipe.bench.scale_server", str(hosts)) as line:
        if not line.isdigit():
            raise RuntimeError(f"the scale benchmark's server did not start (said {line!r})")
        yield int(line)


if __name__ == "__main__":
    main()
