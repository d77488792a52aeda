"""A shard engine on a worker: a long-lived :class:`~fetchpipe.engine.fetcher.Fetcher` fed
request by request, for a pipeline run whose requests are found while it runs.

A shard task of ``fetch --executor`` (:mod:`.batch`) knows its requests up front; a pipeline
does not (its next pages and its children's requests come from the pages it reads). So a
pipeline run on a cluster keeps one :class:`ShardEngine` per slot of the executor (a Dask
actor, see :mod:`.cluster_stream`), which runs the engine's ``Fetcher.stream()`` on an event
loop of its own, in a thread of its own inside the worker process (Dask runs actor methods on
one thread of the worker, and ``async`` tasks on the worker's own loop, beside its
communication: the engine must not sit on either). :meth:`ShardEngine.exchange` hands it new
requests and returns the results finished since the last call, waiting a short while for the
first one: the driver polls each shard engine this way.

Each request comes as ``(ticket, request)``: the driver's number for it, which comes back on
its result (as ``Result.request.key``; the driver puts the request back). With a cache, each
virtual shard has its own SQLite file in the cache directory and its own Fetcher (opened when
its first request comes), as a shard task of ``fetch`` does: no two workers write one file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fetchpipe._host_rates import HostRateReport, side_by_side
from fetchpipe._log import RunContext, run_context
from fetchpipe._models import Request, Result
from fetchpipe.distributed.batch import FetchSettings, cache_file, fetcher_for, shard_cache
from fetchpipe.distributed.sharding import virtual_shard
from fetchpipe.engine.limits import host_of

_STOP = None
_CLOSE_WAIT = 2.0
"""Seconds :meth:`ShardEngine.close` lets requests in flight finish before it cancels them."""


@dataclass(frozen=True, slots=True)
class Exchanged:
    """What :meth:`ShardEngine.exchange` returns: the results finished since the last call,
    and the worker's wall clock minus its engine's loop clock (the results' timings are loop
    readings: the driver moves them onto its own loop's clock with it)."""

    results: list[Result]
    clock_shift: float
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """The engine's recorded events (retries, pauses, breakers: ``fetchpipe._log.RECORDED``)
    since the last call, each with its request's ticket as its ``source``."""


@dataclass(slots=True)
class EngineFigures:
    """What engines that ran at the same time met over the run, for the run's report: a shard
    engine's Fetchers (one per virtual shard with a cache), and on the driver every shard
    engine's (:class:`~fetchpipe.distributed.cluster_stream.ClusterStream` adds each into one)."""

    hosts_down: dict[str, int] = field(default_factory=dict)
    """Host -> times its circuit breaker opened."""
    retries_denied: int = 0
    rate_limits: dict[str, HostRateReport] = field(default_factory=dict)
    """Host -> its politeness figures (only hosts where something happened)."""
    quotas_spent: dict[str, str] = field(default_factory=dict)
    """Host -> why its requests were not sent (a spent quota)."""

    def add(self, other: EngineFigures) -> None:
        """Add what ``other``, an engine beside these, met."""
        for host, times in other.hosts_down.items():
            self.hosts_down[host] = self.hosts_down.get(host, 0) + times
        self.retries_denied += other.retries_denied
        self.rate_limits = side_by_side(self.rate_limits, other.rate_limits)
        self.quotas_spent.update(other.quotas_spent)


class ShardEngine:
    """One shard engine, running in a thread of the worker until :meth:`close`."""

    def __init__(self, settings: FetchSettings) -> None:
        self._settings = settings
        self._done: list[Result] = []
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._context = RunContext(source_of=_ticket, on_event=self._event)
        self._failed: BaseException | None = None
        self._changed = threading.Lock()
        self._waiters: list[concurrent.futures.Future[None]] = []
        self._figures = EngineFigures()
        self._inputs: dict[int | None, asyncio.Queue[Request | None]] = {}
        self._streams: list[asyncio.Task[None]] = []
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="fetchpipe-shard-engine", daemon=True
        )
        self._thread.start()
        started.wait()

    # --- called by the driver (on the worker's actor thread) -------------------------------

    async def exchange(self, requests: Sequence[tuple[int, Request]], wait: float) -> Exchanged:
        """Queue ``requests``; return the results finished so far, waiting up to ``wait``
        seconds for one. Raises what stopped the engine, if it stopped.

        A coroutine: Dask runs it on the worker's event loop (not the actor thread), so a call
        that brings new requests is not held up by another that waits for results."""
        loop = self._loop
        assert loop is not None
        if requests:
            loop.call_soon_threadsafe(self._accept, requests)
        waiter: concurrent.futures.Future[None] | None = None
        with self._changed:
            if wait > 0 and not self._done and self._failed is None:
                waiter = concurrent.futures.Future()
                self._waiters.append(waiter)
        if waiter is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wrap_future(waiter), wait)
        with self._changed:
            if waiter is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
            done, self._done = self._done, []
            events, self._events = self._events, []
            failed = self._failed
        if failed is not None and not done:
            raise failed
        return Exchanged(done, time.time() - loop.time(), events)

    def _wake(self) -> None:
        """Answer every waiting :meth:`exchange` (the lock held)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            # a waiter whose exchange timed out meanwhile is cancelled: nothing to answer
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                waiter.set_result(None)

    def close(self) -> EngineFigures:
        """Stop the engines (what is in flight is cancelled) and say what they met."""
        loop, closing = self._loop, self._closing
        if loop is not None and closing is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(closing.set)
            self._thread.join()
        return self._figures

    # --- the engine's thread ---------------------------------------------------------------

    def _serve(self, started: threading.Event) -> None:
        from fetchpipe.engine.fetcher import run  # lazy: loads the engine on the worker only

        run(self._main(started))

    async def _main(self, started: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        started.set()
        await self._closing.wait()
        for queue in self._inputs.values():
            queue.put_nowait(_STOP)
        if self._streams:  # each ends when its queue is drained; what is still in flight, cut
            _, late = await asyncio.wait(self._streams, timeout=_CLOSE_WAIT)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._streams, return_exceptions=True)

    def _accept(self, requests: Sequence[tuple[int, Request]]) -> None:
        caching = self._settings.cache is not None and self._settings.cache_dir is not None
        for ticket, request in requests:
            group = virtual_shard(host_of(request.url) or "") if caching else None
            queue = self._inputs.get(group)
            if queue is None:
                queue = self._inputs[group] = asyncio.Queue()
                self._streams.append(asyncio.create_task(self._stream(group, queue)))
            queue.put_nowait(dataclasses.replace(request, key=ticket))

    def _event(self, name: str, fields: Mapping[str, Any]) -> None:
        with self._changed:
            self._events.append((name, dict(fields)))

    async def _stream(self, group: int | None, queue: asyncio.Queue[Request | None]) -> None:
        with run_context(self._context):  # the engine's events reach the driver with results
            await self._fetch(group, queue)

    async def _fetch(self, group: int | None, queue: asyncio.Queue[Request | None]) -> None:
        settings = self._settings
        cache = None
        if group is not None and settings.cache is not None and settings.cache_dir is not None:
            cache = shard_cache(settings.cache, cache_file(settings.cache_dir, group))
        try:
            async with fetcher_for(settings, settings.limits, cache) as fetcher:
                try:
                    async for result in fetcher.stream(_drain(queue)):
                        result.headers = _shippable(result.headers)
                        # the driver holds the request: only its ticket goes back (its
                        # headers, body and credentials do not cross the wire again)
                        result.request = Request(result.request.url, key=result.request.key)
                        with self._changed:
                            self._done.append(result)
                            self._wake()
                finally:
                    quotas = {} if fetcher.quotas is None else fetcher.quotas.spent()
                    self._figures.add(
                        EngineFigures(
                            dict(fetcher.hosts_down),
                            fetcher.retries_denied,
                            dict(fetcher.rate_limits),
                            quotas,
                        )
                    )
        except Exception as exc:  # the driver hears of it and starts the engine again elsewhere
            with self._changed:
                self._failed = exc
                self._wake()


def _ticket(key: object) -> str | None:
    """The "source" of a request's events on a worker: its ticket, which the driver turns into
    the source it knows."""
    return None if key is None else str(key)


async def _drain(queue: asyncio.Queue[Request | None]) -> AsyncIterator[Request]:
    while True:
        request = await queue.get()
        if request is _STOP or request is None:
            return
        yield request


def _shippable(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` as a value that can be pickled to the driver: aiohttp's read-only view
    cannot, its ``copy()`` (a case-insensitive multidict, repeated names kept) can."""
    copy = getattr(headers, "copy", None)
    return copy() if callable(copy) else dict(headers)
