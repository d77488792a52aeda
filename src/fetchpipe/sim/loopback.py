"""What the simulated servers share: ``hosts`` loopback addresses on one port, their URLs, the
``async with`` lifecycle, and closing a connection with a TCP reset.

Host index i (0-based) is address ``127.0.0.{i+1}``; every address listens on the same port, so
a client sees ``hosts`` different hosts (per-host limits, breakers) without any DNS.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import ClassVar, Self

MAX_HOSTS = 254
"""Hosts are 127.0.0.1 .. 127.0.0.254."""
BIND_ATTEMPTS = 5
"""Tries at a port free on every address when the port is the system's choice: the port picked
for the first address may be taken on another."""
BACKLOG = 1024


class LoopbackServer(abc.ABC):
    """A server on ``127.0.0.1`` .. ``127.0.0.{hosts}``, one port for all (0: any free one).

    A subclass binds in :meth:`start` (setting ``_port``) and stops in :meth:`close`.
    """

    kind: ClassVar[str]
    """What the server is called in errors: ``"fleet is not running"``."""

    def __init__(self, hosts: int, port: int) -> None:
        if not 1 <= hosts <= MAX_HOSTS:
            raise ValueError(f"hosts must be between 1 and {MAX_HOSTS}")
        if not 0 <= port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        self.hosts = hosts
        self._requested_port = port
        self._port: int | None = None

    # -- addresses --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the server is listening."""
        return self._port is not None

    @property
    def port(self) -> int:
        """The port shared by all addresses (only while running)."""
        if self._port is None:
            raise RuntimeError(f"{self.kind} is not running")
        return self._port

    @staticmethod
    def address(host: int) -> str:
        """IP address of host index ``host`` (0-based): ``127.0.0.{host+1}``."""
        if not 0 <= host < MAX_HOSTS:
            raise ValueError(f"host index must be between 0 and {MAX_HOSTS - 1}")
        return f"127.0.0.{host + 1}"

    @property
    def addresses(self) -> list[str]:
        """IP addresses of all hosts, in index order."""
        return [self.address(i) for i in range(self.hosts)]

    def base_url(self, host: int = 0) -> str:
        """``http://127.0.0.{host+1}:{port}``."""
        if not 0 <= host < self.hosts:
            raise ValueError(f"host index must be between 0 and {self.hosts - 1}")
        return f"http://{self.address(host)}:{self.port}"

    @property
    def base_urls(self) -> list[str]:
        """Base URL of every host."""
        return [self.base_url(i) for i in range(self.hosts)]

    def url(self, path: str = "/", host: int = 0) -> str:
        """Absolute URL of ``path`` (which may carry a query string) on host index ``host``."""
        return self.base_url(host) + (path if path.startswith("/") else "/" + path)

    # -- lifecycle --------------------------------------------------------------------------

    @abc.abstractmethod
    async def start(self) -> None:
        """Listen on every address."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening and end every connection."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def abort_with_reset(transport: asyncio.WriteTransport) -> None:
    """Close the connection with a TCP reset (RST) instead of a FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
