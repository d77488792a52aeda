"""The results channel and the GC tuning of a run: pure values on a real loop, no network."""

from __future__ import annotations

import asyncio
import gc

import pytest

from fetchpipe.engine.channel import Channel
from fetchpipe.engine.gc_tuning import RUN_GEN0, fewer_collections


async def test_the_channel_keeps_order_and_makes_writers_wait_when_full() -> None:
    channel: Channel[int] = Channel(2)
    await channel.put(1)
    await channel.put(2)
    blocked = asyncio.create_task(channel.put(3))
    await asyncio.sleep(0.01)
    assert not blocked.done() and len(channel) == 2  # full: the third writer waits
    assert await channel.get() == 1
    await asyncio.wait_for(blocked, 1)  # a place freed: it went in
    assert [await channel.get(), await channel.get()] == [2, 3]
    reader = asyncio.create_task(channel.get())
    await asyncio.sleep(0.01)
    assert not reader.done()  # empty: the reader waits
    await channel.put(4)
    assert await asyncio.wait_for(reader, 1) == 4


async def test_a_cancelled_writer_passes_its_place_on() -> None:
    channel: Channel[int] = Channel(1)
    await channel.put(0)
    first = asyncio.create_task(channel.put(1))
    second = asyncio.create_task(channel.put(2))
    await asyncio.sleep(0.01)
    assert await channel.get() == 0  # wakes the first writer...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.sleep(0.01)
    assert first.cancelled() and await asyncio.wait_for(channel.get(), 1) == 2
    await second


async def test_a_channel_has_one_reader() -> None:
    channel: Channel[int] = Channel(1)
    reader = asyncio.create_task(channel.get())
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="one reader"):
        await channel.get()
    reader.cancel()


def test_runs_raise_the_gen0_threshold_and_the_last_one_restores_it() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 11, 12)
        with fewer_collections():
            assert gc.get_threshold() == (RUN_GEN0, 11, 12)
            with fewer_collections():  # a second run at the same time
                assert gc.get_threshold() == (RUN_GEN0, 11, 12)
            assert gc.get_threshold() == (RUN_GEN0, 11, 12)  # the first is still running
        assert gc.get_threshold() == (700, 11, 12)
        gc.set_threshold(0, 11, 12)  # collection switched off by the user: left alone
        with fewer_collections():
            assert gc.get_threshold() == (0, 11, 12)
        gc.set_threshold(50_000, 11, 12)  # already higher: left alone
        with fewer_collections():
            assert gc.get_threshold() == (50_000, 11, 12)
        gc.set_threshold(700, 11, 12)
        with fewer_collections():
            gc.set_threshold(9_000, 11, 12)  # changed by someone else during the run: kept
        assert gc.get_threshold() == (9_000, 11, 12)
    finally:
        gc.set_threshold(*before)
