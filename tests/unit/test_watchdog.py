"""The watchdog that keeps attempt timeouts with one timer: on a real event loop, no network."""

from __future__ import annotations

import asyncio
import time

import pytest

from fetchpipe import ErrorKind, TransportError
from fetchpipe.engine.watchdog import Watchdog


async def test_the_total_bound_cancels_the_attempt_as_a_timeout() -> None:
    dog = Watchdog(read=None)
    start = time.monotonic()
    with pytest.raises(TransportError) as caught, dog.watch(0.1):
        await asyncio.sleep(5)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert "total timeout of 0.1 s" in caught.value.message
    assert 0.09 <= time.monotonic() - start < 1.0
    assert dog.watched == 0
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0  # uncancelled: the task lives on
    await asyncio.sleep(0)  # and is not cancelled at its next await either
    dog.close()


async def test_progress_keeps_an_attempt_alive_and_silence_ends_it() -> None:
    dog = Watchdog(read=0.15)
    start = time.monotonic()
    with dog.watch(None) as watch:  # no total: only the read bound
        for _ in range(6):  # 0.3 s in all, never silent for 0.15 s
            await asyncio.sleep(0.05)
            watch.progress()
    assert time.monotonic() - start >= 0.29
    with pytest.raises(TransportError) as caught, dog.watch(None) as watch:
        await asyncio.sleep(0.05)
        watch.progress()
        await asyncio.sleep(5)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert "nothing received for 0.15 s" in caught.value.message
    assert time.monotonic() - start < 1.5
    dog.close()


async def test_each_attempt_has_its_own_deadline_and_an_earlier_one_rearms_the_timer() -> None:
    dog = Watchdog(read=None)
    ended: dict[str, float] = {}
    start = time.monotonic()

    async def attempt(name: str, total: float, work: float) -> str:
        try:
            with dog.watch(total):
                await asyncio.sleep(work)
            return "done"
        except TransportError as exc:
            return exc.kind.value
        finally:
            ended[name] = time.monotonic() - start

    long = asyncio.create_task(attempt("long", 1.0, 5))  # armed first, at 1.0 s
    await asyncio.sleep(0.01)
    short = asyncio.create_task(attempt("short", 0.1, 5))  # earlier: the timer moves
    fine = asyncio.create_task(attempt("fine", 1.0, 0.05))
    results = await asyncio.gather(long, short, fine)
    assert results == ["timeout", "timeout", "done"]
    assert 0.09 <= ended["short"] < 0.5 and 0.95 <= ended["long"] < 2.0
    assert ended["fine"] < 0.5 and dog.watched == 0
    dog.close()


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_timeout() -> None:
    dog = Watchdog(read=None)

    async def attempt() -> None:
        with dog.watch(10):
            await asyncio.sleep(5)

    task = asyncio.create_task(attempt())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dog.watched == 0
    dog.close()


async def test_without_bounds_nothing_is_watched() -> None:
    dog = Watchdog(read=None)
    with dog.watch(None) as watch:
        watch.progress()
        assert dog.watched == 0
        await asyncio.sleep(0.01)
    dog.close()


async def test_a_cancellation_in_the_same_turn_as_the_expiry_still_propagates() -> None:
    """The task's cancellations are counted when the watch starts, as asyncio.timeout does: a
    cancel from elsewhere that lands just before the watchdog's (a busy loop turn makes both
    due together) is not swallowed into a timeout."""
    loop = asyncio.get_running_loop()
    dog = Watchdog(read=None)

    async def attempt() -> None:
        with dog.watch(0.2):
            await asyncio.sleep(10)

    task = asyncio.create_task(attempt())
    await asyncio.sleep(0)
    loop.call_later(0.10, time.sleep, 0.2)  # a busy turn: the two timers below come due at once
    loop.call_later(0.19, task.cancel)  # someone else's cancel, first
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    dog.close()


async def test_no_read_timeout_while_a_connection_is_being_made() -> None:
    dog = Watchdog(read=0.1)
    start = time.monotonic()
    with dog.watch(None) as watch:
        watch.connecting()
        await asyncio.sleep(0.2)  # connecting: longer than read (the connect timeout bounds it)
        watch.progress()  # the connection is ready
        await asyncio.sleep(0.05)
    with pytest.raises(TransportError), dog.watch(None) as watch:
        watch.progress()  # ready: only read applies
        await asyncio.sleep(5)
    assert time.monotonic() - start < 1.5
    dog.close()
