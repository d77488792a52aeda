"""The toxic server: listens on ``127.0.0.1`` .. ``127.0.0.{hosts}``, picks each request's
toxics (from its path and from :meth:`ToxicServer.set_toxics`), counts it, and carries out the
plan of :func:`~fetchpipe.sim.toxics.plan.plan_response` on the connection."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import orjson

from fetchpipe.sim.loopback import BACKLOG, BIND_ATTEMPTS, LoopbackServer, abort_with_reset
from fetchpipe.sim.stats import FleetStats
from fetchpipe.sim.toxics.paths import parse_toxics
from fetchpipe.sim.toxics.plan import Plan, plan_response
from fetchpipe.sim.toxics.values import MAX_HANG, Toxic, ToxicError
from fetchpipe.sim.toxics.wire import (
    MAX_HEAD,
    MAX_REQUESTS_PER_CONNECTION,
    BadRequest,
    Request,
    hang,
    read_request,
    send,
    size_param,
)


class ToxicServer(LoopbackServer):
    """The misbehaving server on ``127.0.0.1`` .. ``127.0.0.{hosts}`` (one port for all).

    Use ``async with ToxicServer(hosts=3) as server:`` on the running loop; the package's
    documentation (:mod:`fetchpipe.sim.toxics`) lists the toxics and how to select them.
    """

    kind = "toxic server"

    def __init__(
        self,
        hosts: int = 1,
        port: int = 0,
        *,
        max_hang: float = 30.0,
        max_response_seconds: float = 60.0,
        keepalive_timeout: float = 75.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        super().__init__(hosts, port)
        for name, value in (
            ("max_hang", max_hang),
            ("max_response_seconds", max_response_seconds),
            ("keepalive_timeout", keepalive_timeout),
            ("shutdown_timeout", shutdown_timeout),
        ):
            if not 0 < value <= MAX_HANG:
                raise ValueError(f"{name} must be between 0 and {MAX_HANG:g} seconds")
        self.max_hang = max_hang
        self.max_response_seconds = max_response_seconds
        self.keepalive_timeout = keepalive_timeout
        self.stats = FleetStats()
        self._shutdown_timeout = shutdown_timeout
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._toxics: dict[str | None, tuple[Toxic, ...]] = {}
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    # -- toxics and counters ----------------------------------------------------------------

    def set_toxics(self, *toxics: Toxic, key: str | None = None) -> None:
        """Apply ``toxics`` to requests with ``?key=key`` (``None``: every key without its own).

        No toxics removes that key's. Takes effect for the next request; thread-safe.
        """
        with self._lock:
            if toxics:
                self._toxics[key] = tuple(toxics)
            else:
                self._toxics.pop(key, None)

    def clear_toxics(self) -> None:
        """Remove every programmatic toxic (URL toxics are unaffected)."""
        with self._lock:
            self._toxics.clear()

    def count(self, path: str, key: str = "") -> int:
        """Requests received for ``path`` with ``?key=key`` (control paths aside)."""
        with self._lock:
            return self._counts.get((path, key), 0)

    def reset(self) -> None:
        """Forget the request counts and stats (the toxics set stay)."""
        with self._lock:
            self._counts.clear()
        self.stats.reset()

    @property
    def open_connections(self) -> int:
        """Client connections open now."""
        return len(self._connections)

    def _next_count(self, path: str, key: str) -> int:
        with self._lock:
            n = self._counts.get((path, key), 0) + 1
            self._counts[path, key] = n
            return n

    def _toxics_for(self, request: Request) -> tuple[Toxic, ...]:
        stack: tuple[Toxic, ...] = ()
        if request.path.startswith("/toxic/"):
            stack = parse_toxics(request.path.removeprefix("/toxic/"), request.query)
        key = request.query.get("key", "")
        with self._lock:
            chosen = self._toxics.get(key, self._toxics.get(None, ()))
        return stack + chosen

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every address."""
        if self._servers:
            raise RuntimeError("toxic server is already running")
        attempts = BIND_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(attempts):
            try:
                await self._bind()
                return
            except OSError:
                await self._close_servers()
                if attempt == attempts - 1:
                    raise

    async def _bind(self) -> None:
        port = self._requested_port
        for host in range(self.hosts):
            server = await asyncio.start_server(
                self._serve_connection,
                self.address(host),
                port,
                limit=MAX_HEAD,
                backlog=BACKLOG,
            )
            self._servers.append(server)
            port = int(server.sockets[0].getsockname()[1])
        self._port = port

    async def close(self) -> None:
        """Stop listening, end every connection (hangs included) and wait for them, bounded."""
        self._port = None
        for server in self._servers:
            server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._shutdown_timeout)
        await self._close_servers()

    async def _close_servers(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), self._shutdown_timeout)

    # -- serving ----------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer requests on one connection until it closes, idles or a toxic ends it."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        sockname = writer.get_extra_info("sockname")
        host = str(sockname[0]) if sockname else ""
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                try:
                    request = await read_request(reader, self.keepalive_timeout)
                except BadRequest as exc:
                    await self._reply(writer, exc.status, {"error": str(exc)}, keep_alive=False)
                    break
                if request is None or not await self._handle(request, host, reader, writer):
                    break
        except ConnectionError:
            writer.transport.abort()
        except asyncio.CancelledError:  # the server is stopping: end the connection at once
            writer.transport.abort()
            raise
        finally:
            if not writer.transport.is_closing():
                writer.close()
            self._connections.discard(task)

    async def _handle(
        self,
        request: Request,
        host: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request; ``True`` when the connection may serve another."""
        if request.path.startswith("/__"):
            return await self._control(request, writer)
        key = request.query.get("key")
        self.stats.request_started(host, request.path, key)
        try:
            try:
                toxics = self._toxics_for(request)
                size = size_param(request.query)
            except ToxicError as exc:
                await self._reply(writer, 400, {"error": str(exc)}, request.keep_alive)
                return request.keep_alive
            n = self._next_count(request.path, key or "")
            plan = plan_response(toxics, key=key or "", n=n, size=size, now=time.time())
            try:
                async with asyncio.timeout(self.max_response_seconds):
                    return await self._deliver(plan, reader, writer, request.keep_alive)
            except TimeoutError:
                writer.transport.abort()
                return False
        finally:
            self.stats.request_finished(host)

    async def _deliver(
        self,
        plan: Plan,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        """Carry out ``plan``; ``True`` when the connection may serve another request."""
        if plan.delay:
            await asyncio.sleep(plan.delay)
        ending = plan.ending
        hang_for = min(plan.hang, self.max_hang)
        if ending in ("close", "hang_before"):
            if ending == "hang_before":
                await hang(reader, hang_for)
            return False
        keep = keep_alive and ending == "complete"
        head = plan.head(keep)
        if ending == "hang_after":
            await send(writer, head, plan)
            await hang(reader, hang_for)
            return False
        body = plan.body if plan.cut is None else plan.body[: plan.cut]
        await send(writer, head + body, plan)
        if ending == "reset":
            await asyncio.sleep(plan.reset_delay)
            abort_with_reset(writer.transport)
            return False
        return keep

    async def _control(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """``GET /__stats`` and ``POST /__reset``; not counted in the stats."""
        if request.path == "/__stats" and request.method == "GET":
            await self._reply(writer, 200, self.stats.snapshot(), request.keep_alive)
        elif request.path == "/__reset" and request.method == "POST":
            self.reset()
            await self._reply(writer, 200, {"ok": True}, request.keep_alive)
        else:
            await self._reply(writer, 404, {"error": "no such control path"}, request.keep_alive)
        return request.keep_alive

    @staticmethod
    async def _reply(
        writer: asyncio.StreamWriter, status: int, payload: object, keep_alive: bool
    ) -> None:
        body = orjson.dumps(payload)
        headers = (("Content-Type", "application/json"), ("Content-Length", str(len(body))))
        writer.write(Plan(status, headers, body).head(keep_alive) + body)
        await writer.drain()
