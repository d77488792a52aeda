"""Per-host FIFO queues of requests read ahead of the engine, spilling to disk past a bound.

:class:`HostQueues` holds requests by host in arrival order. Up to ``memory_items`` of them
stay in memory; when one more arrives, every request in memory is written, in arrival order,
to a :class:`~fetchpipe.engine.spill.SpillStore` (an encrypted temporary SQLite file, opened on
the first write) in one transaction, and memory is empty again. A host's requests come back
oldest first: from the file, then from memory (everything in the file is older than anything in
memory, as memory is always written out whole). So memory holds at most ``memory_items``
requests plus a small entry per host with requests waiting, however long the input; the file
holds the rest.

Pure and synchronous (no event loop): the engine's read-ahead (:mod:`fetchpipe.engine.readahead`)
drives it, and so can anything else that needs the requests of a stream grouped by host.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fetchpipe.engine.spill import SpillStore

T = TypeVar("T")

MEMORY_ITEMS = 4096
"""Requests kept in memory before all of them are written to the temporary file."""


class _Queue(Generic[T]):
    __slots__ = ("number", "on_disk", "recent")

    def __init__(self, number: int) -> None:
        self.number = number
        self.on_disk = 0
        self.recent: deque[tuple[int, T]] = deque()


class HostQueues(Generic[T]):
    """Requests by host, first in first out, at most ``memory_items`` of them in memory."""

    def __init__(
        self,
        memory_items: int = MEMORY_ITEMS,
        *,
        open_store: Callable[[], SpillStore] = SpillStore,
    ) -> None:
        if memory_items < 1:
            raise ValueError(f"memory_items must be at least 1, got {memory_items!r}")
        self._memory_items = memory_items
        self._open_store = open_store
        self._store: SpillStore | None = None
        self._queues: dict[str, _Queue[T]] = {}
        self._numbers = 0
        self._seq = 0
        self._in_memory = 0
        self.total = 0
        """Requests waiting, in memory and on disk."""
        self.spilled = 0
        """Requests written to the temporary file so far (each counted once)."""
        self.peak_in_memory = 0
        """The most requests held in memory at once."""
        self.closed = False

    def __len__(self) -> int:
        return self.total

    def __bool__(self) -> bool:
        return self.total > 0

    @property
    def in_memory(self) -> int:
        """Requests waiting in memory now."""
        return self._in_memory

    @property
    def on_disk(self) -> int:
        """Requests waiting in the temporary file now."""
        return self.total - self._in_memory

    def count(self, host: str) -> int:
        """Requests of ``host`` waiting."""
        queue = self._queues.get(host)
        return 0 if queue is None else queue.on_disk + len(queue.recent)

    def hosts(self) -> Iterator[str]:
        """Hosts with requests waiting, in the order their waiting began."""
        return iter(list(self._queues))

    def push(self, host: str, request: T) -> None:
        """Append ``request`` to ``host``'s queue."""
        if self.closed:
            raise RuntimeError("the host queues are closed")
        queue = self._queues.get(host)
        if queue is None:
            self._numbers += 1
            queue = self._queues[host] = _Queue(self._numbers)
        if self._in_memory >= self._memory_items:
            self._spill()
        self._seq += 1
        queue.recent.append((self._seq, request))
        self._in_memory += 1
        self.total += 1
        if self._in_memory > self.peak_in_memory:
            self.peak_in_memory = self._in_memory

    def pop(self, host: str, count: int) -> list[T]:
        """Remove and return up to ``count`` of ``host``'s oldest requests, oldest first."""
        queue = self._queues.get(host)
        if queue is None or count < 1:
            return []
        taken: list[T] = []
        if queue.on_disk:
            assert self._store is not None
            taken = self._store.take(queue.number, min(count, queue.on_disk))
            queue.on_disk -= len(taken)
        recent = queue.recent
        while recent and len(taken) < count:
            taken.append(recent.popleft()[1])
            self._in_memory -= 1
        self.total -= len(taken)
        if not queue.on_disk and not recent:
            del self._queues[host]
        return taken

    def close(self) -> None:
        """Forget every request waiting and delete the temporary file. Safe to call twice."""
        self.closed = True
        store, self._store = self._store, None
        if store is not None:
            store.close()
        self._queues.clear()
        self._in_memory = self.total = 0

    def _spill(self) -> None:
        """Write every request in memory to the temporary file, in arrival order."""
        if self._store is None:
            self._store = self._open_store()
        rows: list[tuple[int, int, T]] = []
        for queue in self._queues.values():
            if queue.recent:
                rows.extend((queue.number, seq, request) for seq, request in queue.recent)
        # In (queue, seq) order already, the table's key: queues are numbered as they come.
        self._store.put(rows)
        for queue in self._queues.values():
            queue.on_disk += len(queue.recent)
            queue.recent.clear()
        self.spilled += len(rows)
        self._in_memory = 0
