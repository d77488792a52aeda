"""A minimal local JSON server for benchmarks, run in its own process so it has its own core.

``python -m fetchpipe.bench.server`` prints the port it listens on (127.0.0.1 only) and serves
the same small JSON body on every path until stdin closes or it is terminated; ``/delay/{ms}``
answers the same body after waiting ``ms`` milliseconds. It uses aiohttp's low-level server (no
routing) so that the client, not the server, is what a benchmark measures.
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


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        web.Server(_handle, access_log=None), "127.0.0.1", port, backlog=BACKLOG
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await wait_for_stdin_eof()
    server.close()


def main() -> None:
    raise_nofile_limit()
    run(_serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))


@contextmanager
def running_server() -> Iterator[str]:
    """Start the server in a child process; yield its base URL; stop it on exit."""
    with running_child("fetchpipe.bench.server") as line:
        if not line.isdigit():
            raise RuntimeError(f"benchmark server did not start (said {line!r})")
        yield f"http://127.0.0.1:{line}"


if __name__ == "__main__":
    main()
