"""Unit tests use no network: a socket of theirs that binds or connects to an IP address fails
the test. A test that starts a server or a fleet, or sends a request, belongs in
tests/integration (or tests/e2e when it runs the command line)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _refusing(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def refuse(sock: socket.socket, address: Any, *args: Any) -> Any:
        if sock.family in _IP_FAMILIES:
            raise AssertionError(
                f"a unit test called socket.{name}({address!r}). HINT: tests that use the "
                "network live in tests/integration"
            )
        return original(sock, address, *args)

    return refuse


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, _refusing(name, getattr(socket.socket, name)))
