"""A minimal local JSON server for benchmarks, run in its own process so it has its own core.

``python -m fetchpipe.bench.server`` prints the port it listens on (127.0.0.1 only) and serves
the same small JSON body on every path until stdin closes or it is terminated. It uses aiohttp's
low-level server (no routing) so that the client, not the server, is what a benchmark measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator

from aiohttp import web

BODY = b'{"id": 1, "name": "item", "price": 9.99, "tags": ["a", "b"], "ok": true}'


async def _handle(request: web.BaseRequest) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        web.Server(_handle, access_log=None), "127.0.0.1", port, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    print(bound, flush=True)
    # Stop when the parent closes our stdin (or dies).
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    server.close()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    try:
        import uvloop

        uvloop.run(_serve(port))
    except ImportError:  # pragma: no cover
        asyncio.run(_serve(port))


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Start the server in a child process; yield its base URL; stop it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fetchpipe.bench.server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"benchmark server did not start (said {line!r})")
        yield f"http://127.0.0.1:{line}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    main()
