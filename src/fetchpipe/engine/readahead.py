"""Reading ahead of the engine's buffer, so that an input grouped by host keeps every host busy.

The scheduler's buffer (:mod:`fetchpipe.engine.scheduler`) holds ``Limits.queue_size`` requests.
Given a file sorted by host, it fills with the first few hosts' requests; with a limit per host
those few hosts cannot use every worker, and the hosts further down the file wait for them.
So when the buffer is full *and a worker finds nothing to do*, the intake goes on reading into
per-host queues outside the buffer (:class:`~fetchpipe.engine.host_queues.HostQueues`: a few
thousand requests in memory, the rest in an encrypted temporary file), and the feeder
(:meth:`ReadAhead.feed`) moves each host's requests into the buffer as the host needs them:

- a host's queue in the buffer is topped up to its target depth (twice its concurrency, at
  least ``MIN_DEPTH``) when it falls to half of it, as far as the buffer has room (room for
  ``MIN_DEPTH`` requests at least: a full buffer is refilled in batches, once it has drained to
  its low-water mark, not one request at a time);
- a host with nothing queued in the buffer gets up to its concurrency beyond the buffer's room,
  from a reserve of ``max_concurrency`` requests: a full buffer never starves a host;
- once a host has requests waiting ahead, its next ones wait behind them (first in, first out
  per host); everything else (the cache answering, identical requests sharing one fetch, a
  down host failing fast) happens as a request enters the buffer, as it did.

Bounds: the buffer plus the reserve in the engine, ``MEMORY_ITEMS`` requests in the read-ahead's
memory, and ``Limits.readahead`` requests read ahead in all (then the intake waits); the input
is still read once, lazily. Requests read ahead are only ever in this process and its
temporary file, which disappears with the run (however it ends): a resumed ``fetch`` knows what
was done from its output alone, so an interrupted run leaves nothing half-done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from fetchpipe.engine.host_queues import MEMORY_ITEMS, HostQueues
from fetchpipe.engine.limits import HostState
from fetchpipe.engine.scheduler import Scheduler

T = TypeVar("T")
R = TypeVar("R")

MIN_DEPTH = 16
"""A host's queue in the buffer is topped up to at least this many requests (fewer reads)."""
YIELD_EVERY = 64
"""Requests the intake reads ahead before it lets the workers and the feeder run."""


class ReadAhead(Generic[T, R]):
    """The read-ahead of one run: per-host queues outside the buffer, and their feeder.

    ``admit`` puts a request into the buffer (or answers it: its result is returned);
    ``deliver`` hands such a result to the caller; ``queue_of`` names the queue a request
    waits in (its host's, or its host's group for its credentials: ``HostState.queue``), or
    ``None`` for what is not a request; ``prepare`` gives the state of that queue, or ``None``
    when the request must be admitted at once (its host is down and fails fast).
    """

    def __init__(
        self,
        scheduler: Scheduler[T],
        *,
        limit: int,
        max_concurrency: int,
        admit: Callable[[Any], R | None],
        deliver: Callable[[R], Awaitable[None]],
        queue_of: Callable[[Any], str | None],
        prepare: Callable[[Any], HostState[T] | None],
        memory_items: int = MEMORY_ITEMS,
    ) -> None:
        self.scheduler = scheduler
        self.limit = limit
        self.max_concurrency = max_concurrency
        self.queues: HostQueues[Any] = HostQueues(max(1, min(memory_items, limit)))
        self._admit = admit
        self._deliver = deliver
        self._queue_of = queue_of
        self._prepare = prepare
        self._wanting: dict[str, HostState[T]] = {}
        self._signal: asyncio.Future[None] | None = None
        self._input_done = False
        self._read = 0
        self.peak = 0
        """The most requests read ahead at once."""
        scheduler.on_low = self._on_low
        scheduler.on_room = self._wake

    # --- intake side ---------------------------------------------------------------------------

    async def place(self, request: Any) -> bool:
        """Read ``request`` ahead if it must wait outside the buffer (True), or wait until it
        may go into the buffer (False: the caller admits it)."""
        host = self._queue_of(request)  # None: admitted (and failed) when the buffer has room
        scheduler = self.scheduler
        queues = self.queues
        while True:
            waiting = queues.count(host) if host is not None else 0
            if not waiting and not scheduler.full:
                return False
            if host is not None and queues.total < self.limit and (waiting or scheduler.hungry):
                state = self._prepare(request)
                if state is None:
                    return False
                queues.push(host, request)
                state.ahead += 1
                if queues.total > self.peak:
                    self.peak = queues.total
                if self._low(state):
                    self._on_low(state)
                self._read += 1
                if self._read % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                return True
            await scheduler.wait_for_change()

    def input_done(self) -> bool:
        """The input is read through: True when nothing waits ahead (the buffer may close)."""
        self._input_done = True
        self._wake()
        return not self.queues

    # --- the feeder ----------------------------------------------------------------------------

    async def feed(self) -> None:
        """Move requests read ahead into the buffer as their hosts need them, until the input
        is read through and nothing waits ahead; then close the buffer's input."""
        scheduler = self.scheduler
        while not (self._input_done and not self.queues):
            answered, fed = self._round()
            for result in answered:
                await self._deliver(result)
            if fed:
                scheduler.wake_intake()  # the read-ahead is shorter now
                await asyncio.sleep(0)  # the workers take what was fed
                continue
            if self._wanting:
                scheduler.room_wanted = True
            signal = self._signal = asyncio.get_running_loop().create_future()
            await signal
        scheduler.close_input()

    def close(self) -> None:
        """Forget what waits ahead and delete the temporary file."""
        self.queues.close()
        self._wanting.clear()

    def _round(self) -> tuple[list[R], bool]:
        answered: list[R] = []
        fed = False
        for name, state in list(self._wanting.items()):
            count = self._count(state)
            if count <= 0:
                continue
            del self._wanting[name]
            for request in self.queues.pop(name, count):
                state.ahead -= 1
                result = self._admit(request)
                if result is not None:
                    answered.append(result)
            fed = True
            if state.ahead and self._low(state):
                self._wanting[name] = state
        return answered, fed

    def _count(self, state: HostState[T]) -> int:
        """Requests to move into the buffer for ``state``'s host now."""
        concurrency = self._concurrency(state)
        want = min(state.ahead, max(MIN_DEPTH, 2 * concurrency) - len(state.fresh))
        if want <= 0:
            return 0
        scheduler = self.scheduler
        room = scheduler.capacity - scheduler.held
        if room >= min(want, MIN_DEPTH):  # not one request at a time: wait for a batch's room
            return min(want, room)
        if not state.fresh:  # from the reserve: enough to start what the host may
            return min(want, concurrency, room + self.max_concurrency)
        return 0

    def _concurrency(self, state: HostState[T]) -> int:
        lanes = state.lanes
        if lanes is None:
            limit = state.max_concurrency
        else:  # a group: its lanes' together, unless one has no limit
            limit = (
                0
                if any(not lane.max_concurrency for lane in lanes)
                else sum(lane.max_concurrency for lane in lanes)
            )
        return min(limit, self.max_concurrency) if limit else self.max_concurrency

    def _low(self, state: HostState[T]) -> bool:
        return len(state.fresh) <= max(MIN_DEPTH, 2 * self._concurrency(state)) // 2

    def _on_low(self, state: HostState[T]) -> None:
        if not self._low(state):
            return
        if state.name not in self._wanting:
            self._wanting[state.name] = state
            self._wake()
        elif not state.fresh:
            self._wake()  # it waited for room; now it may draw on the reserve

    def _wake(self) -> None:
        signal, self._signal = self._signal, None
        if signal is not None and not signal.done():
            signal.set_result(None)
