"""The Python API: ``Fetcher`` streams results for a stream of requests; ``fetch_all`` collects.

A ``Fetcher`` holds the settings and one pooled transport; each ``stream()`` call is a
:class:`~fetchpipe.engine.stream_run.StreamRun` (intake, workers, results channel). ``run``
runs a coroutine on a fresh event loop (uvloop when installed), also where one is running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
from collections.abc import AsyncIterator, Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar

from fetchpipe._config import TRANSPORTS, Limits, Timeouts
from fetchpipe._exceptions import ConfigError, FetchpipeError, InputError
from fetchpipe._log import emit, logger
from fetchpipe._models import Result
from fetchpipe.engine.aimd import DEFAULT_ADAPTIVE, AdaptivePolicy
from fetchpipe.engine.breaker import DEFAULT_BREAKER, BreakerPolicy
from fetchpipe.engine.cache.http_cache import HttpCache
from fetchpipe.engine.carry import HostCarry
from fetchpipe.engine.gc_tuning import fewer_collections
from fetchpipe.engine.outcomes import RetryEvent as RetryEvent  # public: fetchpipe.RetryEvent
from fetchpipe.engine.outcomes import RetryHook
from fetchpipe.engine.politeness import HostRateReport, HostsSeen
from fetchpipe.engine.proxies import ProxyPolicy, proxy_policy
from fetchpipe.engine.quotas import DEFAULT_STATE_DIR, QuotaBook
from fetchpipe.engine.retry import DEFAULT_RETRY, RetryPolicy
from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.stream_run import DONE, Requests, StreamRun
from fetchpipe.engine.tls import TlsPolicy
from fetchpipe.engine.transports.base import Transport
from fetchpipe.engine.transports.factory import open_transport

T = TypeVar("T")
_LOG = logger("engine")
DEBUG = 10


class Fetcher:
    """Fetches a stream of requests at once, within limits, with retries.

    Use as ``async with Fetcher(...) as f: async for result in f.stream(requests): ...``.
    One pooled connection session serves every ``stream()`` call made inside the block.

    ``proxy``: ``"env"`` (the default) goes through the proxies of ``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY`` but for the hosts of ``NO_PROXY``, as requests and curl do;
    ``None`` (or ``"none"``) sends directly; a URL (``http://[user:password@]host:port``)
    sends every request through that proxy but for ``NO_PROXY``'s hosts; a
    :class:`~fetchpipe.engine.proxies.ProxyPolicy` says everything. ``tls``: CAs to trust
    besides the system's and a client certificate (:class:`~fetchpipe.engine.tls.TlsPolicy`).
    ``adaptive``: how hosts are paced by what they answer, their published rate limits and AIMD
    on their 429s (:class:`~fetchpipe.engine.aimd.AdaptivePolicy`; ``None``: by ``limits``
    and Retry-After only); ``HostLimits.adaptive`` turns it on or off per host.
    ``state_dir``: where the quotas of ``HostLimits.quota`` are counted across runs and
    processes (``quotas.sqlite`` in it; opened only when a host with a quota is fetched).
    ``carry``: each host's pause, rate meter, breaker, retry budget and learned rate as an
    earlier engine left them (its ``carry_out``, see :mod:`fetchpipe.engine.carry`): a batch
    of a cluster fetch goes on where the task's batch before it stopped.
    A proxy or TLS file that cannot be used raises ``ConfigError`` here or on entering.
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
        on_retry: RetryHook | None = None,
        transport: Transport | str | None = None,
        rng: random.Random | None = None,
        cache: HttpCache | None = None,
        breaker: BreakerPolicy | None = DEFAULT_BREAKER,
        security: SecurityPolicy | None = None,
        tune_gc: bool = True,
        proxy: ProxyPolicy | str | None = "env",
        tls: TlsPolicy | None = None,
        adaptive: AdaptivePolicy | None = DEFAULT_ADAPTIVE,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        carry: Mapping[str, HostCarry] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.quotas = QuotaBook(state_dir) if self.limits.has_quotas else None
        """The hosts' quotas and their ledger (``None``: no host has a quota)."""
        self.tune_gc = tune_gc
        """Collect cyclic garbage less often while streaming (see ``engine.gc_tuning``)."""
        self.security = security
        self.proxy = (
            proxy
            if isinstance(proxy, ProxyPolicy)
            else proxy_policy(proxy, "Fetcher(proxy=...)", os.environ)
        )
        """The proxies requests go through (``proxy.active`` false: none)."""
        self.tls = tls
        self.retry = retry
        self.breaker = breaker
        self.retries_denied = 0
        """Retries refused because the host's retry budget was spent."""
        self.hosts_down: dict[str, int] = {}
        """Host -> times its circuit breaker opened (the host kept failing)."""
        self.failed_fast = 0
        """Requests ended as ``host_down`` (not sent, or not retried) by an open breaker."""
        self.spilled = 0
        """Requests read ahead that went to the read-ahead's temporary file (see
        ``Limits.readahead``): 0 when every request read ahead fitted in memory."""
        self.adaptive = adaptive
        """How hosts are paced by what they answer (``None``: only by ``limits``)."""
        self.rate_limits: dict[str, HostRateReport] = {}
        """Host -> its limit read or learned, 429s and time paused (hosts where any of these
        happened)."""
        self.hosts_seen = HostsSeen()
        """Hosts whose first attempt has ended: their first request does not go alone again."""
        self.carry_in: Mapping[str, HostCarry] = dict(carry or {})
        """Hosts' states as an earlier engine left them, put into each ``stream()``'s."""
        for name in self.carry_in:
            self.hosts_seen.add(name)  # their first request went alone already
        self.carry_out: dict[str, HostCarry] = {}
        """After a ``stream()``: each host's state for the next engine (``carry=``)."""
        self.timeouts = timeouts or Timeouts()
        self._headers = dict(headers or {})
        self._on_retry = on_retry
        if isinstance(transport, str) and transport not in TRANSPORTS:
            raise ConfigError(
                f"unknown transport {transport!r}. HINT: use one of {', '.join(TRANSPORTS)}"
            )
        self._transport_name = transport if isinstance(transport, str) else "aiohttp"
        self._transport = None if isinstance(transport, str) else transport
        self._owns_transport = self._transport is None
        self._rng = rng or random.Random()
        self.cache = cache

    async def __aenter__(self) -> Fetcher:
        if self.cache is not None:
            self.cache.open()
        if self._transport is None:
            self._transport = open_transport(
                self._transport_name,
                limits=self.limits,
                timeouts=self.timeouts,
                headers=self._headers,
                security=self.security,
                proxy=self.proxy,
                tls=self.tls,
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self.quotas is not None:
            self.quotas.close()  # unspent reservations go back to the ledger
        if self._owns_transport and self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self.cache is not None:
            await asyncio.to_thread(self.cache.close)  # waits for queued writes to commit

    async def stream(self, requests: Requests) -> AsyncIterator[Result]:
        """Yield one ``Result`` per request, in completion order.

        Failed requests are results with ``ok`` false. If the input itself raises, the results
        already under way are yielded first, then ``InputError`` is raised from it.
        """
        if self._transport is None:
            raise ConfigError(
                "Fetcher is not open. HINT: use 'async with Fetcher(...) as f:' "
                "or call fetchpipe.fetch_all()."
            )
        tuning = fewer_collections() if self.tune_gc else contextlib.nullcontext()
        with tuning:
            run = StreamRun(
                self,
                self._transport,
                requests,
                headers=self._headers,
                rng=self._rng,
                on_retry=self._on_retry,
            )
            results = run.results
            debug = _LOG.isEnabledFor(DEBUG)  # asked once: nothing per result when off
            try:
                while True:
                    result = results.poll()  # most of the time one is waiting: no await
                    if result is None:
                        result = await results.get()
                    if result is DONE:
                        break
                    if debug:
                        _log_done(result)
                    yield result
                if run.crash is not None:
                    raise FetchpipeError(
                        f"the fetch stopped early: {run.crash!r}. Results delivered before it "
                        "are complete; the rest were not fetched."
                    ) from run.crash
                if run.input_error is not None:
                    raise InputError(
                        f"reading the requests failed: {run.input_error!r}. "
                        "Results fetched before the failure were delivered."
                    ) from run.input_error
            finally:
                await run.stop()
                self.carry_out = run.scheduler.export_carry()
                self.spilled += run.readahead.queues.spilled


def _log_done(result: Result) -> None:
    """The ``request_done`` event (DEBUG) of ``result``."""
    request = result.request
    how = f"{result.status}" if result.ok else f"{result.error}: {result.error_message}"
    emit(
        _LOG,
        DEBUG,
        "request_done",
        f"{request.method} done: {how} ({result.attempts} attempt(s), {result.source}, "
        f"{result.elapsed:.3f} s)",
        url=request.url,
        params=request.params,
        key=request.key,
        attempt=result.attempts,
        status=result.status,
        error=None if result.error is None else result.error.value,
        seconds=round(result.elapsed, 6),
        cache=result.source.value,
    )


# --- running -----------------------------------------------------------------------------------


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to the end on a new event loop (uvloop when installed) and return its value.

    Works where an event loop is already running in this thread (a notebook cell, an async
    web handler): ``main`` then runs on its own loop in a helper thread while this thread
    waits, as ``asyncio.run`` cannot nest.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(main)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_here, main).result()


def _run_here(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop  # lazy: installed on Linux and macOS only; loaded by a run, not by import
    except ImportError:  # pragma: no cover - uvloop is a default dependency on Linux
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def fetch_all(requests: Requests, **options: Any) -> list[Result]:
    """Fetch everything and return the results (completion order). Takes ``Fetcher``'s options.

    Works where an event loop is already running (a notebook cell), as :func:`run` does.
    """

    async def collect() -> list[Result]:
        async with Fetcher(**options) as fetcher:
            return [result async for result in fetcher.stream(requests)]

    return run(collect())
