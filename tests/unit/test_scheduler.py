"""The scheduler's choices, driven directly on an event loop with no network."""

from __future__ import annotations

import asyncio

from fetchpipe import HostLimits, Limits
from fetchpipe.engine.scheduler import Scheduler


async def test_round_robin_across_hosts_in_input_order() -> None:
    scheduler: Scheduler[str] = Scheduler(Limits())
    for i in range(3):
        for host in ("a", "b"):
            scheduler.add(host, f"{host}{i}")
    taken = []
    for _ in range(6):
        got = await scheduler.next()
        assert got is not None
        taken.append(got[1])
    assert taken == ["a0", "b0", "a1", "b1", "a2", "b2"]


async def test_a_saturated_host_is_skipped_until_an_attempt_ends() -> None:
    scheduler: Scheduler[str] = Scheduler(Limits(per_host=HostLimits(max_concurrency=1)))
    scheduler.add("a", "a0")
    scheduler.add("a", "a1")
    scheduler.add("b", "b0")
    first = await scheduler.next()
    second = await scheduler.next()
    assert first is not None and second is not None
    assert (first[1], second[1]) == ("a0", "b0")  # a1 waits: host a is at its limit
    waiter = asyncio.ensure_future(scheduler.next())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    scheduler.attempt_done(first[0])
    got = await asyncio.wait_for(waiter, 1)
    assert got is not None and got[1] == "a1"


async def test_a_rate_limited_host_is_woken_when_its_token_is_due() -> None:
    loop = asyncio.get_running_loop()
    scheduler: Scheduler[int] = Scheduler(Limits(per_host=HostLimits(max_per_second=20)))
    for i in range(3):
        scheduler.add("a", i)
    start = loop.time()
    times = []
    for _ in range(3):
        got = await scheduler.next()
        assert got is not None
        times.append(loop.time() - start)
        scheduler.attempt_done(got[0])
    assert times[0] < 0.01
    assert 0.04 <= times[2] - times[1] <= 0.07


async def test_retry_later_pauses_the_host_for_fresh_work_too() -> None:
    loop = asyncio.get_running_loop()
    scheduler: Scheduler[str] = Scheduler(Limits())
    scheduler.add("a", "x")
    scheduler.add("a", "y")
    scheduler.add("b", "z")
    got = await scheduler.next()
    assert got is not None and got[1] == "x"
    scheduler.attempt_done(got[0])
    scheduler.retry_later(got[0], "x", 0.1, pause_host=True)
    start = loop.time()
    order = []
    for _ in range(3):
        item = await scheduler.next()
        assert item is not None
        order.append((item[1], loop.time() - start >= 0.09))
        scheduler.attempt_done(item[0])
    assert order[0] == ("z", False)  # host b goes on at once
    assert {o[0] for o in order[1:]} == {"x", "y"}
    assert all(late for _, late in order[1:])  # host a waited out its pause


async def test_idle_hosts_are_forgotten() -> None:
    scheduler: Scheduler[int] = Scheduler(Limits())
    for i in range(500):
        scheduler.add(f"host{i}.test", i)
    assert scheduler.host_count == 500
    for _ in range(500):
        got = await scheduler.next()
        assert got is not None
        scheduler.attempt_done(got[0])
        scheduler.finished()
    assert scheduler.host_count == 0
    scheduler.close_input()
    assert await scheduler.next() is None


async def test_a_host_with_rate_debt_lingers_then_is_swept() -> None:
    scheduler: Scheduler[int] = Scheduler(Limits(hosts={"a": HostLimits(max_per_second=1000)}))
    scheduler.add("a", 1)
    got = await scheduler.next()
    assert got is not None
    scheduler.attempt_done(got[0])  # its next token is 1 ms away: keep the state a while
    assert scheduler.host_count == 1
    await asyncio.sleep(0.01)
    scheduler._next_sweep = 0.0  # sweep now rather than in SWEEP_INTERVAL seconds
    scheduler.add("b", 2)
    got = await scheduler.next()
    assert got is not None
    scheduler.attempt_done(got[0])
    assert scheduler.host_count == 0


async def test_intake_waits_for_space_and_is_woken_at_the_low_water_mark() -> None:
    scheduler: Scheduler[int] = Scheduler(Limits(max_concurrency=1, buffer_size=3))
    for i in range(4):  # capacity: buffer 3 + 1 in flight
        await asyncio.wait_for(scheduler.wait_for_space(), 1)
        scheduler.add("a", i)
    blocked = asyncio.ensure_future(scheduler.wait_for_space())
    await asyncio.sleep(0.01)
    assert not blocked.done()
    got = await scheduler.next()
    assert got is not None
    scheduler.attempt_done(got[0])
    scheduler.finished()
    await asyncio.wait_for(blocked, 1)


async def test_the_intake_hears_when_a_worker_finds_nothing_to_do() -> None:
    scheduler: Scheduler[int] = Scheduler(
        Limits(max_concurrency=2, buffer_size=1, per_host=HostLimits(max_concurrency=1))
    )
    for i in range(3):
        scheduler.add("a", i)  # full: one host, one request at a time
    assert scheduler.full and not scheduler.hungry
    change = asyncio.ensure_future(scheduler.wait_for_change())
    got = await scheduler.next()
    assert got is not None
    await asyncio.sleep(0.01)
    assert not change.done()  # a worker busy, the buffer full: nothing new
    idle = asyncio.ensure_future(scheduler.next())  # host a is at its limit: this one waits
    await asyncio.wait_for(change, 1)
    assert scheduler.hungry
    scheduler.attempt_done(got[0])
    assert (await asyncio.wait_for(idle, 1)) is not None
    assert not scheduler.hungry
