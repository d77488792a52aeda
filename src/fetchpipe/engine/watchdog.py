"""Attempt timeouts kept by one timer for every attempt in flight.

aiohttp's total and read timeouts each start a timer per request (the read one again on every
chunk) and cancel it afterwards. On a fast local API that bookkeeping is about a sixth of the
CPU a small request costs (`fetchpipe bench throughput`). Here an attempt only records its
deadlines in a dict; one loop timer is armed at the earliest, and when it fires the attempts
that ran out are cancelled, the way ``asyncio.timeout`` does it (``cancel``, then ``uncancel``
on the way out, so a cancellation from elsewhere still propagates).

Two bounds, both optional: ``total`` for the whole attempt (a redirect chain included) and
``read``, the longest silence allowed: from the connection being ready to the response head,
then between body chunks. The transport reports progress with :meth:`Watch.progress` and the
making of a connection (bounded by its own connect timeout) with :meth:`Watch.connecting`.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind

SLACK = 0.001  # timers may fire this much early (uvloop rounds to milliseconds)


class Watch:
    """One attempt under watch; a context manager that turns the watchdog's cancellation into
    ``TransportError(TIMEOUT)``."""

    __slots__ = ("_dog", "cancelling", "ends", "fired", "quiet_until", "reason", "task", "total")

    def __init__(
        self, dog: Watchdog, task: asyncio.Task[object] | None, total: float | None, now: float
    ) -> None:
        self._dog = dog
        self.task = task
        self.total = total
        self.ends = math.inf if total is None else now + total
        self.quiet_until = math.inf
        self.fired = False
        self.cancelling = 0
        self.reason = ""

    def connecting(self) -> None:
        """A connection is being made (its own connect timeout bounds it): no read timeout
        until :meth:`progress` says it is there."""
        self.quiet_until = math.inf

    def progress(self) -> None:
        """Something arrived (or the connection is ready): the read timeout starts again."""
        read = self._dog.read
        if read is not None:
            self.quiet_until = self._dog.loop.time() + read

    def expiry(self) -> float:
        return min(self.ends, self.quiet_until)

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.task is None:
            return
        self._dog.forget(self)
        if self.fired:
            task = self.task
            if task.uncancel() <= self.cancelling and exc_type is asyncio.CancelledError:
                raise TransportError(ErrorKind.TIMEOUT, self.reason) from None


class Watchdog:
    """Deadlines of the attempts in flight, and one timer at the earliest of them."""

    def __init__(self, *, read: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.read = read
        self._watched: dict[asyncio.Task[object], Watch] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def watch(self, total: float | None) -> Watch:
        """Watch the current task's attempt for ``total`` seconds (``None``: no total bound)
        and, when ``read`` is set, for silences longer than ``read``."""
        read = self.read
        if total is None and read is None:
            return Watch(self, None, None, 0.0)
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - an attempt always runs in a task
            raise RuntimeError("an attempt must run inside an asyncio task")
        now = self.loop.time()
        watch = Watch(self, task, total, now)
        if read is not None:
            watch.quiet_until = now + read
        # As asyncio.timeout does: cancellations already asked of the task when the watch
        # starts are not ours, and one asked later by someone else still propagates.
        watch.cancelling = task.cancelling()
        self._watched[task] = watch
        expiry = watch.expiry()
        if expiry < self._timer_at:
            self._arm(expiry)
        return watch

    def current(self) -> Watch | None:
        """The watch of the current task's attempt, if it has one."""
        task = asyncio.current_task()
        return None if task is None else self._watched.get(task)

    def forget(self, watch: Watch) -> None:
        task = watch.task
        if task is not None and self._watched.get(task) is watch:
            del self._watched[task]

    @property
    def watched(self) -> int:
        """Attempts under watch now (for tests)."""
        return len(self._watched)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = self.loop.time() + SLACK
        earliest = math.inf
        for task, watch in list(self._watched.items()):
            if watch.fired:
                continue
            if watch.ends <= now:
                self._expire(task, watch, "total")
            elif watch.quiet_until <= now:
                self._expire(task, watch, "read")
            else:
                earliest = min(earliest, watch.expiry())
        if earliest < math.inf:
            self._arm(earliest)

    def _expire(self, task: asyncio.Task[object], watch: Watch, which: str) -> None:
        watch.fired = True
        if which == "total":
            watch.reason = f"timed out (the total timeout of {watch.total:g} s passed)"
        else:
            watch.reason = f"timed out (nothing received for {self.read:g} s: the read timeout)"
        task.cancel()
