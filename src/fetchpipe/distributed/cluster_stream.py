"""A pipeline run's engine on a cluster: ``stream(requests)`` as the local engine's, fetched on
the workers, each host on one shard engine.

The pipeline runner stays on the driver (its journal, commits, resume, pagination, fan-out and
the one DuckDB writer); :class:`ClusterStream` takes the place of its
:class:`~fetchpipe.engine.fetcher.Fetcher`. A pipeline does not know its requests up front (its
next pages and its children's requests come from the pages it reads), so rather than tasks
planned from counts (:func:`~fetchpipe.distributed.sharding.plan_tasks`) the run keeps one
*shard engine* per slot of the executor, each a long-lived
:class:`~fetchpipe.distributed.shard_engine.ShardEngine` on a worker (a Dask actor), and
routes a request by its host's virtual shard: ``virtual_shard(host) % engines``. Every request of
a host goes to one engine, so its concurrency and rate limits, Retry-After pauses, circuit
breaker and retry budget are exact across the cluster, as in one process. (A heavy host is not
split here: a run that found it only late could not divide its limits.)

The driver talks to every shard engine through :meth:`ShardEngine.exchange` (new requests in,
finished results out): one call after another polls for results (answered as soon as one is
in, or empty after :data:`POLL_WAIT` seconds), and new requests go in calls of their own as soon
as the pages find them (the engine's ``exchange`` is a coroutine on the worker, so a waiting
poll holds up nothing). The results are yielded as they come.

The driver keeps each shard engine's outstanding requests. When a shard engine's worker is
lost (a call raises), a new engine is started on a live worker and sent that engine's
outstanding requests again: a result that never came back is fetched again, and as only the
driver's journal commits a page, nothing is committed twice. After :data:`ENGINE_RESTARTS`
restarts the shard engine is given up: its outstanding and later requests end as ``host_down``
results saying why, so that their sources are suspended as when a host is down (what they
committed is kept; the next run resumes them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fetchpipe._exceptions import ConfigError, ExecutorError, InputError
from fetchpipe._log import current
from fetchpipe._models import ErrorKind, Request, Result, Timings
from fetchpipe._redact import redact_url
from fetchpipe.distributed.batch import FetchSettings
from fetchpipe.distributed.executor import Actor, ActorHost
from fetchpipe.distributed.shard_engine import EngineFigures, Exchanged, ShardEngine
from fetchpipe.distributed.sharding import virtual_shard
from fetchpipe.engine.limits import host_of
from fetchpipe.engine.quotas import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from fetchpipe._host_rates import HostRateReport
    from fetchpipe.engine.cache.http_cache import HttpCache

ENGINE_RESTARTS = 3
"""Times a shard engine is started again after its worker was lost (Dask's
``allowed-failures`` is 3 too)."""

POLL_WAIT = 0.2
"""Seconds a shard engine waits for a result before it answers a poll empty. New requests do
not wait for it: they go in a call of their own."""

MAX_IN_FLIGHT = 10_000
"""Requests sent to the shard engines and not yet answered, at most (the input is read no
further)."""


@dataclass(frozen=True, slots=True)
class SpentQuotas:
    """The hosts whose quota was spent, as the shard engines said when they ended."""

    hosts: dict[str, str] = field(default_factory=dict)

    def spent(self) -> dict[str, str]:
        return dict(self.hosts)


@dataclass(eq=False)
class _RemoteEngine:
    """The driver's side of one shard engine: its actor and the requests it holds."""

    index: int
    actor: Actor | None = None
    inbox: list[tuple[int, Request]] = field(default_factory=list)
    outstanding: dict[int, Request] = field(default_factory=dict)
    """Ticket -> request, sent (or to be sent) and not answered, in the order they came."""
    restarts: int = 0
    gave_up: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the shard engine has requests outstanding again (its poll goes on)."""
    sendable: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the shard engine has new requests to send."""


class ClusterStream:
    """The engine of a pipeline run on ``host``'s workers (see the module's docstring)."""

    def __init__(
        self,
        host: ActorHost,
        settings: FetchSettings,
        *,
        engines: int | None = None,
        restarts: int = ENGINE_RESTARTS,
        poll_wait: float = POLL_WAIT,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.host = host
        self.settings = settings
        self.engines = engines or host.slots
        self.restarts = restarts
        self.poll_wait = poll_wait
        self.max_in_flight = max_in_flight
        self.figures = EngineFigures()
        """What every shard engine met, added up as each closes."""
        self.notes: list[str] = []
        """What happened to the shard engines (a worker lost, one given up), for the report."""
        self._open: list[_RemoteEngine] = []
        self._closing = False
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._tickets = 0
        self._in_flight = 0
        self._room = asyncio.Event()

    @property
    def hosts_down(self) -> dict[str, int]:
        """Host -> times its circuit breaker opened, over every shard engine."""
        return self.figures.hosts_down

    @property
    def retries_denied(self) -> int:
        return self.figures.retries_denied

    @property
    def rate_limits(self) -> dict[str, HostRateReport]:
        """Host -> its politeness figures (the limit in force, 429s, pauses), over every shard
        engine."""
        return self.figures.rate_limits

    @property
    def quotas(self) -> SpentQuotas | None:
        """The hosts whose quota was spent (``None`` when no host has a quota)."""
        if not self.settings.limits.has_quotas:
            return None
        return SpentQuotas(dict(self.figures.quotas_spent))

    async def __aenter__(self) -> ClusterStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close_engines()

    async def stream(self, requests: AsyncIterable[Request]) -> AsyncIterator[Result]:
        """Yield one result per request of ``requests``, in completion order."""
        engines = await self._open_engines()
        results: asyncio.Queue[Result | None] = asyncio.Queue()
        feeder = asyncio.create_task(self._feed(requests, engines, results))
        pumps = [
            asyncio.create_task(pump(engine, results))
            for engine in engines
            for pump in (self._receive, self._send)
        ]
        try:
            while not (feeder.done() and self._in_flight == 0):
                result = await results.get()
                if result is None:  # the input ended: maybe nothing is in flight
                    continue
                self._in_flight -= 1
                self._room.set()
                yield result
            if feeder.exception() is not None:
                raise InputError(
                    f"reading the requests failed: {feeder.exception()!r}. Results fetched "
                    "before the failure were delivered."
                ) from feeder.exception()
        finally:
            for task in (feeder, *pumps):
                task.cancel()
            await asyncio.gather(feeder, *pumps, return_exceptions=True)
            await self._close_engines()

    # --- the shard engines -----------------------------------------------------------------

    async def _call(self, function: Any, *args: Any) -> Any:
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def _open_engines(self) -> list[_RemoteEngine]:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2 * self.engines + 1, thread_name_prefix="fetchpipe-shard-engines"
        )
        engines = [_RemoteEngine(index) for index in range(self.engines)]
        self._open = engines
        self._closing = False
        started = await asyncio.gather(
            *(
                self._call(self.host.start_actor, ShardEngine, self.settings, i)
                for i in range(len(engines))
            ),
            return_exceptions=True,
        )
        failed: tuple[_RemoteEngine, BaseException] | None = None
        for engine, actor in zip(engines, started, strict=True):
            if isinstance(actor, BaseException):
                failed = failed or (engine, actor)
            else:
                engine.actor = actor  # released by _close_engines, even when another failed
        if failed is not None:
            await self._close_engines()
            engine, error = failed
            raise ExecutorError(
                f"the cluster could not start shard engine {engine.index}: {error!r}. "
                "HINT: check that its workers run and have fetchpipe installed"
            ) from error
        return engines

    async def _close_engines(self) -> None:
        """Stop every shard engine and add up what they met."""
        self._closing = True  # a call failing now starts no engine again
        engines, self._open = self._open, []
        await asyncio.gather(*(self._close_engine(engine) for engine in engines))  # together
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    async def _close_engine(self, engine: _RemoteEngine) -> None:
        actor, engine.actor = engine.actor, None
        if actor is None:
            return
        try:
            figures = await self._call(actor.call, "close")
        except Exception:  # its worker is gone: its figures with it
            figures = None
        if isinstance(figures, EngineFigures):
            self.figures.add(figures)
        await self._call(actor.release)

    # --- requests in, results out ----------------------------------------------------------

    async def _feed(
        self,
        requests: AsyncIterable[Request],
        engines: list[_RemoteEngine],
        results: asyncio.Queue[Result | None],
    ) -> None:
        try:
            async for request in requests:
                while self._in_flight >= self.max_in_flight:
                    self._room.clear()
                    await self._room.wait()
                engine = engines[virtual_shard(host_of(request.url) or "") % len(engines)]
                self._in_flight += 1
                if engine.gave_up is not None:
                    results.put_nowait(_not_fetched(request, engine.gave_up))
                    continue
                self._tickets += 1
                engine.outstanding[self._tickets] = request
                engine.inbox.append((self._tickets, request))
                engine.wake.set()
                engine.sendable.set()
        finally:
            results.put_nowait(None)

    async def _receive(self, engine: _RemoteEngine, results: asyncio.Queue[Result | None]) -> None:
        """Poll shard engine ``engine`` for results while it has requests outstanding."""
        while True:
            actor = engine.actor
            if not engine.outstanding or actor is None:
                engine.wake.clear()
                await engine.wake.wait()
                continue
            await self._exchange(engine, actor, [], self.poll_wait, results)

    async def _send(self, engine: _RemoteEngine, results: asyncio.Queue[Result | None]) -> None:
        """Hand shard engine ``engine`` its new requests as they come (beside the poll, which may be
        waiting for a result: the engine's ``exchange`` is a coroutine on the worker)."""
        while True:
            actor = engine.actor
            if not engine.inbox or actor is None:
                engine.sendable.clear()
                await engine.sendable.wait()
                continue
            sending, engine.inbox = engine.inbox, []
            await self._exchange(engine, actor, sending, 0.0, results)

    async def _exchange(
        self,
        engine: _RemoteEngine,
        actor: Actor,
        sending: list[tuple[int, Request]],
        wait: float,
        results: asyncio.Queue[Result | None],
    ) -> None:
        try:
            reply = await self._call(actor.call, "exchange", sending, wait)
        except Exception as exc:  # the worker holding the shard engine is lost (or the engine)
            if engine.actor is actor and not self._closing:  # not started again meanwhile
                await self._lost(engine, exc, results)
            return
        assert isinstance(reply, Exchanged)
        if reply.events:
            _record(reply.events, engine.outstanding)
        shift = reply.clock_shift - (time.time() - asyncio.get_running_loop().time())
        for result in reply.results:
            request = engine.outstanding.pop(int(result.request.key or 0), None)
            if request is None:  # answered already (sent again after a restart)
                continue
            result.request = request
            result.timings = _shifted(result.timings, shift)
            results.put_nowait(result)

    async def _lost(
        self, engine: _RemoteEngine, error: BaseException, results: asyncio.Queue[Result | None]
    ) -> None:
        """Start shard engine ``engine`` again elsewhere and send its outstanding requests
        again; after :attr:`restarts` restarts, end them as not fetched."""
        old, engine.actor = engine.actor, None
        if old is not None:
            await self._call(old.release)
        while engine.restarts < self.restarts:
            engine.restarts += 1
            try:
                actor = await self._call(
                    self.host.start_actor,
                    ShardEngine,
                    self.settings,
                    engine.index + engine.restarts,
                )
            except Exception as exc:
                error = exc
                continue
            engine.actor = actor
            engine.inbox = list(engine.outstanding.items())
            engine.wake.set()
            engine.sendable.set()
            self.notes.append(
                f"shard engine {engine.index}: its worker was lost ({_short(error)}); its "
                f"{len(engine.inbox)} outstanding requests were sent again to a new engine"
            )
            return
        lost = engine.restarts + 1
        engine.gave_up = (
            f"the cluster lost this host's shard engine {lost} time{'s' if lost > 1 else ''}"
            f" (last: {_short(error)}); not fetched. HINT: check the workers (memory, logs)"
        )
        self.notes.append(f"shard engine {engine.index}: given up: {engine.gave_up}")
        engine.inbox = []
        for request in engine.outstanding.values():
            results.put_nowait(_not_fetched(request, engine.gave_up))
        engine.outstanding.clear()


def _record(events: list[tuple[str, dict[str, Any]]], outstanding: dict[int, Request]) -> None:
    """Hand a shard engine's events to this run's context (the request log's events), each
    with the source of its request and redacted with the run's secrets. They are timed when
    they arrive here: within a poll of when they happened."""
    context = current()
    if context is None or context.on_event is None:
        return
    for name, fields in events:
        ticket = fields.get("source")
        request = outstanding.get(int(ticket)) if isinstance(ticket, str) else None
        source = None
        if request is not None and context.source_of is not None:
            source = context.source_of(request.key)
        url, message = fields.get("url"), fields.get("message")
        context.on_event(
            name,
            {
                **fields,
                "run_id": context.run_id,
                "source": source,
                "url": redact_url(context.redact(url)) if isinstance(url, str) else None,
                "message": context.redact(message) if isinstance(message, str) else None,
            },
        )


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 200 else text[:199] + "…"


def _not_fetched(request: Request, why: str) -> Result:
    now = asyncio.get_running_loop().time()
    return Result(
        request, error=ErrorKind.HOST_DOWN, error_message=why, timings=Timings(now, 0.0, 0.0, now)
    )


def _shifted(timings: Timings, shift: float) -> Timings:
    """``timings`` (a worker loop's readings) on this loop's clock; unset readings stay 0."""
    return dataclasses.replace(
        timings,
        **{
            name: value + shift
            for name in ("queued", "started", "first_byte", "done")
            if (value := getattr(timings, name))
        },
    )


def cluster_engine(host: ActorHost, **options: Any) -> Callable[..., ClusterStream]:
    """What makes a pipeline run's engine on ``host``'s workers: called, as a
    :class:`~fetchpipe.engine.fetcher.Fetcher` is, with the engine's keyword arguments
    (``options``: :class:`ClusterStream`'s own, e.g. ``restarts``).

    A cache becomes one file per virtual shard in the directory ``CACHE.shards`` beside the
    pipeline's cache file (see :mod:`.shard_engine`); ``state_dir`` (the quotas) and the cache
    must be storage every worker shares.
    """

    def make(
        *,
        transport: object = "aiohttp",
        cache: HttpCache | None = None,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        **settings: Any,
    ) -> ClusterStream:
        if not isinstance(transport, str):
            raise ConfigError(
                "a run on a cluster cannot ship a Transport object to its workers. HINT: name "
                "the transport (aiohttp or fast) in the pipeline's defaults.transport"
            )
        shipped = FetchSettings(
            transport=transport,
            cache=cache,
            cache_dir=None if cache is None else f"{cache.path}.shards",
            state_dir=str(state_dir),
            **settings,
        )
        return ClusterStream(host, shipped, **options)

    return make
