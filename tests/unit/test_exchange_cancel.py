"""A cancelled send ends cancelled, whatever the HTTP library under it does with the cancel.

pyreqwest's awaitables may end normally after a ``CancelledError`` was thrown into them (when
the response is in as the cancel comes, or a body chunk is already buffered), so the task's
cancel is lost unless the loop both transports send through (``exchange``) notices it. These
wires lose the cancel the same way, on purpose; no network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from fetchpipe import ErrorKind, Request, TransportError
from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.transports.base import CancelCheck, RawResponse
from fetchpipe.engine.transports.redirects import Hop, exchange

URL = "http://api.example/items"


class Answer:
    def __init__(self, status: int) -> None:
        self.status = status


async def lose_a_cancel(seconds: float = 10.0) -> bool:
    """Wait; a cancel that comes meanwhile is swallowed, as pyreqwest does when the response is
    ready at that moment. True if one came."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        return True
    return False


class LosingWire:
    """A wire whose library loses a cancel while ``lose_in`` runs: in ``open`` (the request is
    answered as the cancel comes), ``complete`` (the body is read) or ``discard`` (a redirect's
    body). ``then_raise``: after losing it, the library raises an error of its own."""

    security = SecurityPolicy()
    credential_headers: Mapping[str, str] = {}

    def __init__(self, lose_in: str, *, then_raise: bool = False, redirects: int = 0) -> None:
        self.lose_in = lose_in
        self.then_raise = then_raise
        self.redirects = redirects
        self.sent: list[str] = []
        self.waiting = asyncio.Event()

    async def _maybe_lose(self, where: str) -> None:
        if self.lose_in == where:
            self.waiting.set()
            if await lose_a_cancel() and self.then_raise:
                raise RuntimeError("the library's own error, raised as the request is dropped")

    @contextlib.asynccontextmanager
    async def open(
        self, context: None, message: Request | Hop, headers: Mapping[str, str] | None
    ) -> AsyncIterator[Answer]:
        self.sent.append(str(message.url))
        await self._maybe_lose("open")
        yield Answer(302 if len(self.sent) <= self.redirects else 200)

    def location(self, context: None, answer: Answer) -> str | None:
        return f"/next/{len(self.sent)}"

    async def complete(
        self,
        context: None,
        answer: Answer,
        method: str,
        url: str,
        max_body_size: int,
        cancel: CancelCheck,
    ) -> RawResponse:
        await self._maybe_lose("complete")
        return RawResponse(answer.status, {}, b"{}", "application/json", 0.0, url)

    async def discard(self, context: None, answer: Answer) -> None:
        await self._maybe_lose("discard")

    def translate(self, exc: Exception) -> TransportError:
        return TransportError(ErrorKind.OTHER, str(exc))


async def cancel_while_waiting(wire: LosingWire) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(exchange(wire, None, Request(URL), 1 << 20))
    await asyncio.wait_for(wire.waiting.wait(), 5)
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.done(), "the send did not end after its cancel"
    return task


@pytest.mark.parametrize("lose_in", ["open", "complete"])
@pytest.mark.parametrize("then_raise", [False, True], ids=["then-answers", "then-raises"])
async def test_a_cancel_the_library_loses_still_cancels_the_send(
    lose_in: str, then_raise: bool
) -> None:
    task = await cancel_while_waiting(LosingWire(lose_in, then_raise=then_raise))
    # Not a response, and not a TransportError (which the engine would count and retry).
    assert task.cancelled()


async def test_a_cancel_lost_on_a_redirect_sends_no_further_hop() -> None:
    wire = LosingWire("discard", redirects=3)
    task = await cancel_while_waiting(wire)
    assert task.cancelled()
    assert wire.sent == [URL]  # the chain stopped where the cancel came


async def test_without_a_cancel_the_response_comes_back() -> None:
    wire = LosingWire("nowhere", redirects=2)
    response = await exchange(wire, None, Request(URL), 1 << 20)
    assert response.status == 200
    assert response.url == "http://api.example/next/2"
    assert len(wire.sent) == 3


async def test_a_cancel_taken_back_inside_the_send_is_not_raised() -> None:
    """A timeout inside the send (a redirect body given up on) cancels and uncancels the task:
    the chain goes on."""

    class Draining(LosingWire):
        async def discard(self, context: None, answer: Answer) -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(10)

    wire = Draining("nowhere", redirects=1)
    response = await exchange(wire, None, Request(URL), 1 << 20)
    assert response.status == 200 and len(wire.sent) == 2


async def test_a_cancel_asked_before_the_send_started_is_not_its_own() -> None:
    """As with asyncio.timeout: a cancel already asked of the task when the send starts (the
    task is being cancelled and sends while cleaning up) is its caller's to handle."""
    current = asyncio.current_task()
    assert current is not None
    current.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # the cancel comes; the task goes on
        await asyncio.sleep(0)  # cleaning up, with the cancel still counted
    assert current.cancelling() == 1
    response = await exchange(LosingWire("nowhere"), None, Request(URL), 1 << 20)
    assert response.status == 200
    current.uncancel()
