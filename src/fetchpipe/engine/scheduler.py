"""Who goes next: per-host queues inside one bounded buffer, served round-robin.

Workers never wait on a host. They only take a request whose host can start now (not paused,
under its concurrency, a rate token available); a host that cannot start gets a timer for when
it can, and is skipped until then. So a throttled or paused host at the front of the input does
not hold back the others: Scrapy's download slots, with a bounded buffer in front.

A request with several credentials (``Request.lanes``) waits in its host's *group*, and goes on
the lane that may start when a worker takes it (:mod:`fetchpipe.engine.lanes`): each credential
has the host's limits of its own, and a resting one holds nothing back.

The buffer bounds the requests in the engine (waiting, in flight or waiting for a retry), so
memory follows the concurrency and the buffer size, never the length of the input. Per-host
state is made on first use and forgotten when idle (see ``HostState.forgettable``).

When the buffer is full and a worker still finds nothing to do (every host with work is at its
limit), the intake reads further ahead into per-host queues outside the buffer
(:mod:`fetchpipe.engine.readahead`); the scheduler tells it when a worker goes idle
(:attr:`Scheduler.hungry`, :meth:`Scheduler.wait_for_change`), when a host with requests read
ahead runs low (``on_low``) and when the buffer has drained (``on_room``, once asked).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from fetchpipe._config import HostLimits, Limits
from fetchpipe.engine.carry import HostCarry, export_host, import_limits, live_carries
from fetchpipe.engine.lanes import group_name, lane_name, pick_lane
from fetchpipe.engine.limits import TIMER_SLACK, HostState

T = TypeVar("T")

SWEEP_INTERVAL = 5.0
_UNLIMITED = HostLimits()
"""A group's own limits: none (its lanes have them)."""


class Scheduler(Generic[T]):
    """Holds queued work per host and hands out the next startable item to idle workers."""

    def __init__(
        self,
        limits: Limits,
        *,
        expired: Callable[[T, float], bool] | None = None,
        carry: Mapping[str, HostCarry] | None = None,
    ) -> None:
        self._limits = limits
        self._carry = dict(carry or {})
        """Hosts' states as an earlier engine left them (:mod:`fetchpipe.engine.carry`),
        by state name: each goes into its host's state when the state is made."""
        self._carried_names: set[str] = set()
        self._expired = expired
        self._loop = asyncio.get_running_loop()
        self._hosts: dict[str, HostState[T]] = {}
        self._ready: deque[HostState[T]] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._capacity = limits.queue_size + limits.max_concurrency
        self._low_water = max(1, self._capacity * 3 // 4)
        self._held = 0
        self._space: asyncio.Future[None] | None = None
        self._change: asyncio.Future[None] | None = None
        self._closed = False
        self._seq = itertools.count()
        self._lingering: set[str] = set()
        self._next_sweep = 0.0
        self.on_low: Callable[[HostState[T]], None] | None = None
        """Called when a request is taken from (or the queue emptied of) a host that has
        requests read ahead: the read-ahead may top the host's queue up."""
        self.on_room: Callable[[], None] | None = None
        """Called once when the buffer has drained to its low-water mark after ``room_wanted``
        was set (room for a batch, not for one request at a time)."""
        self.room_wanted = False
        self.on_lane: Callable[[HostState[T]], None] | None = None
        """Called with each new lane (:mod:`fetchpipe.engine.lanes`) to equip it."""
        self._gates = 0
        self._gates_until = 0.0

    # --- intake -------------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Requests in the engine: queued, in flight, or waiting for a retry."""
        return self._held

    @property
    def full(self) -> bool:
        """The buffer holds all it may: ``wait_for_space`` before adding."""
        return self._held >= self._capacity

    @property
    def capacity(self) -> int:
        """Requests the buffer holds (queued, in flight, waiting for a retry)."""
        return self._capacity

    @property
    def hungry(self) -> bool:
        """A worker is waiting: no host with work can start a request now, and not only because
        a host's first request goes alone (a wait of one round trip, no reason to read the input
        ahead; see :mod:`fetchpipe.engine.politeness`)."""
        if not self._idle:
            return False
        return not self._gates or self._loop.time() >= self._gates_until

    def gate(self, until: float) -> None:
        """A host's first request went alone: its others are held until it ends, at most until
        ``until`` (loop time). :meth:`ungate` when it ends."""
        self._gates += 1
        if until > self._gates_until:
            self._gates_until = until

    def ungate(self) -> None:
        """A host's first request ended (see :meth:`gate`)."""
        self._gates -= 1

    async def wait_for_space(self) -> None:
        if self._held < self._capacity:
            return
        self._space = self._loop.create_future()
        await self._space

    async def wait_for_change(self) -> None:
        """Until the buffer drains to its low-water mark, a worker goes idle, or
        :meth:`wake_intake` is called (whatever the state when called: the caller looks
        again)."""
        change = self._change
        if change is None or change.done():
            change = self._change = self._loop.create_future()
        if self._space is None or self._space.done():
            self._space = change
        await change

    def wake_intake(self) -> None:
        """End a :meth:`wait_for_change` (the read-ahead has room again)."""
        change, self._change = self._change, None
        if change is not None and not change.done():
            change.set_result(None)

    def state_for(self, host_name: str) -> HostState[T]:
        """The state of host ``host_name``, made if it has none."""
        host = self._hosts.get(host_name)
        if host is None:
            host = self._hosts[host_name] = HostState(host_name, self._limits.for_host(host_name))
            if self._carry:
                self._carried(host)
        return host

    def group_for(self, host_name: str, labels: tuple[str, ...]) -> HostState[T]:
        """The group of ``host_name``'s requests that may go on any of the lanes ``labels``
        (each lane with the host's limits), made if it has none."""
        name = group_name(host_name, labels)
        group = self._hosts.get(name)
        if group is None:
            group = self._hosts[name] = HostState(name, _UNLIMITED, host=host_name)
            if self._carry:
                self._carried(group)
            limits = self._limits.for_host(host_name)
            group.lanes = []
            for index, label in enumerate(labels):
                lane: HostState[T] = HostState(lane_name(host_name, label), limits, host=host_name)
                lane.group, lane.lane = group, index
                group.lanes.append(lane)
                if self._carry:
                    self._carried(lane)
                if self.on_lane is not None:
                    self.on_lane(lane)
        return group

    def add(self, host_name: str, item: T, *, lanes: tuple[str, ...] | None = None) -> HostState[T]:
        """Queue ``item`` on its host (on the group of its ``lanes``, when it has some)."""
        host = self.group_for(host_name, lanes) if lanes else self.state_for(host_name)
        self._held += 1
        host.fresh.append(item)
        self._make_ready(host)
        return host

    def hold(self) -> None:
        """Count a request that waits outside the host queues (it shares another's fetch)."""
        self._held += 1

    def close_input(self) -> None:
        """No more input: workers finish what is held, then stop."""
        self._closed = True
        self._wake_all_if_finished()

    # --- workers ------------------------------------------------------------------------------

    async def next(self) -> tuple[HostState[T], T] | None:
        """The next item whose host can start now, or ``None`` once everything is done."""
        while True:
            taken = self.take()
            if taken is not None:
                return taken
            if self._closed and self._held == 0:
                return None
            waiter = self._loop.create_future()
            self._idle.append(waiter)
            if self._change is not None:
                self.wake_intake()  # a worker with nothing to do: the intake may read ahead
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass the wake-up on to another worker
                raise

    def attempt_done(self, host: HostState[T]) -> None:
        """An attempt on ``host`` ended (whatever its outcome): free its concurrency slot."""
        host.active -= 1
        group = host.group
        if group is not None:  # a lane: its group may send on it again
            host = group
            group.active -= 1
            if group.active:
                self._make_ready(group)
                return
        self._make_ready(host)
        if not host.active and not host.has_work:
            self._forget(host)

    def retry_later(
        self, host: HostState[T], item: T, wait: float, *, pause_host: bool, deadline: float = 0.0
    ) -> None:
        """Queue ``item`` again on its host after ``wait`` seconds (the whole host if paused).

        With a ``deadline`` (loop time) before the host can start again, the host is woken at
        the deadline too, so that the item fails on time instead of when the host frees up.
        On a lane, only the lane is paused: the item goes back to its group, for any lane.
        """
        when = self._loop.time() + wait
        if pause_host:
            host.pause(when)
        if host.group is not None:
            host = host.group
        heapq.heappush(host.delayed, (when, next(self._seq), item))
        self._make_ready(host)
        if deadline and deadline < max(when, host.start_at()):
            self._wake_later(host, deadline)

    def pause(self, host: HostState[T], wait: float) -> None:
        """No new attempt on ``host`` for ``wait`` seconds (a Retry-After)."""
        host.pause(self._loop.time() + wait)

    def host(self, name: str) -> HostState[T] | None:
        """The state of host ``name``, if it has one now."""
        return self._hosts.get(name)

    def drain(self, host: HostState[T]) -> list[T]:
        """Take every item waiting on ``host`` (first attempts, then retries) out of its queue.

        They stay counted as held: the caller gives each its result, then calls
        :meth:`finished`.
        """
        items = list(host.fresh)
        host.fresh.clear()
        host.fresh_first = 0
        items.extend(entry[2] for entry in sorted(host.delayed))
        host.delayed.clear()
        if host.ahead and self.on_low is not None:
            self.on_low(host)
        return items

    def finished(self) -> None:
        """One item is final (its result is out): its buffer place is free."""
        self._held -= 1
        space = self._space
        if space is not None and self._held <= self._low_water:
            self._space = None
            if not space.done():
                space.set_result(None)
        if self.room_wanted and self._held <= self._low_water:
            self.room_wanted = False
            if self.on_room is not None:
                self.on_room()
        self._wake_all_if_finished()

    # --- internals ----------------------------------------------------------------------------

    def take(self) -> tuple[HostState[T], T] | None:
        """The next item whose host can start now, if there is one (without waiting)."""
        ready = self._ready
        now = 0.0
        while ready:
            host = ready.popleft()
            host.in_ready = False
            delayed = host.delayed
            if delayed and self._expired is not None:
                if not now:
                    now = self._loop.time()
                if self._expired(delayed[0][2], now):
                    # Out of time: hand it over to be failed, with no rate token spent on it.
                    item = heapq.heappop(delayed)[2]
                    host.active += 1
                    self._make_ready(host)
                    return host, item
            if host.saturated:
                continue  # attempt_done() makes it ready again
            if not now:
                now = self._loop.time()
            lanes = host.lanes
            if lanes is not None:  # a group: the lane that may start now, if any
                index, start_at = None, host.start_at()  # (its circuit's cool-down)
                if start_at <= now + TIMER_SLACK:
                    index, start_at = pick_lane(lanes, now, slack=TIMER_SLACK, turn=host.turn)
            else:
                index, start_at = None, host.start_at()
            if start_at > now + TIMER_SLACK:
                if start_at != math.inf:  # else a lane's attempt_done() makes it ready again
                    self._wake_later(host, start_at)
                continue
            if (
                delayed
                and delayed[0][0] <= now + TIMER_SLACK
                and not (host.fresh_first and host.fresh)
            ):
                item = heapq.heappop(delayed)[2]
            elif host.fresh:
                item = host.fresh.popleft()
                if host.fresh_first:
                    host.fresh_first -= 1
                if host.ahead and self.on_low is not None:
                    self.on_low(host)
            elif delayed:
                self._wake_later(host, delayed[0][0])
                continue
            else:
                continue
            if lanes is not None and index is not None:
                host.turn = index + 1
                host.active += 1  # the group counts its lanes' attempts, for its breaker
                breaker = host.breaker
                if breaker is not None:
                    breaker.starting(now)
                self._make_ready(host)  # unless half-open, a group is not saturated: lanes are
                lane = lanes[index]
                lane.note_start(now)
                return lane, item
            host.note_start(now)
            if not host.saturated:
                self._make_ready(host)
            return host, item
        return None

    def _make_ready(self, host: HostState[T]) -> None:
        if host.in_ready or not host.has_work or host.saturated:
            return
        host.in_ready = True
        self._ready.append(host)
        self._wake_one()

    def _wake_one(self) -> None:
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all_if_finished(self) -> None:
        if self._closed and self._held == 0:
            while self._idle:
                waiter = self._idle.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    def _wake_later(self, host: HostState[T], when: float) -> None:
        if host.wake_handle is not None:
            if host.wake_at <= when:
                return
            host.wake_handle.cancel()
        host.wake_at = when
        host.wake_handle = self._loop.call_at(when, self._on_wake, host)

    def _on_wake(self, host: HostState[T]) -> None:
        host.wake_handle = None
        self._make_ready(host)

    def _forget(self, host: HostState[T]) -> None:
        now = self._loop.time()
        if host.forgettable(now):
            if host.wake_handle is not None:
                host.wake_handle.cancel()
                host.wake_handle = None
            if self._hosts.get(host.name) is host:
                del self._hosts[host.name]
            self._lingering.discard(host.name)
        else:
            self._lingering.add(host.name)
        if self._lingering and now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for name in list(self._lingering):
            host = self._hosts.get(name)
            if host is None or host.forgettable(now):
                self._lingering.discard(name)
                if host is not None:
                    if host.wake_handle is not None:
                        host.wake_handle.cancel()
                        host.wake_handle = None
                    del self._hosts[name]
            elif host.active or host.has_work:
                self._lingering.discard(name)

    def _carried(self, host: HostState[T]) -> None:
        carry = self._carry.get(host.name)
        if carry is not None:
            self._carried_names.add(host.name)
            import_limits(host, carry, time.time() - self._loop.time(), self._loop.time())

    def carry_of(self, name: str) -> HostCarry | None:
        """The carry the state ``name`` was made with, if any."""
        return self._carry.get(name)

    def export_carry(self) -> dict[str, HostCarry]:
        """What the next engine should know of each host (wall-clock times): the states
        alive now, and the carries of hosts this run never made a state for."""
        now = self._loop.time()
        offset = time.time() - now
        carries = live_carries(
            {k: v for k, v in self._carry.items() if k not in self._carried_names}, now + offset
        )
        for state in list(self._hosts.values()):
            for one in (state, *state.lanes) if state.lanes is not None else (state,):
                carry = export_host(one, offset, now)
                if carry is not None:
                    carries[one.name] = carry
        return carries

    @property
    def host_count(self) -> int:
        """Per-host states alive now (for tests and memory checks)."""
        return len(self._hosts)
