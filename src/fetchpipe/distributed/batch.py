"""One shard task's batch, as a worker runs it: fetch the requests, write the part, report.

:func:`fetch_batch` is a plain function (Dask runs an ``async def`` task on the worker's own
event loop): it runs the engine's :class:`~fetchpipe.engine.fetcher.Fetcher` on a loop of its
own (:func:`fetchpipe.engine.fetcher.run`), writes every result to the batch's part file
(:class:`~fetchpipe.destinations.fetch.parts.PartWriter`: complete or absent, replaced when the
task runs again) and returns a :class:`BatchReport` of counts, the summary's material.

With the job's ``log`` (:class:`RequestLog`), the report also carries the rows of the run's
request log for its requests and the engine's events, their times counted from the driver's
start (the driver writes them: :mod:`fetchpipe.destinations.fetch.gathered_log`).

The job's ``carry`` is each host's state as the task's batch before this one left it (see
:mod:`fetchpipe.engine.carry`); the report's ``carry`` is the state this batch leaves, for the
next: a Retry-After pause, an open breaker or a spent burst goes on from batch to batch.

The report's ``rate_limits`` are the politeness figures of each host the batch met (what its
engine's ``Fetcher.rate_limits`` holds: the limit in force, 429s, pauses), for the driver to add
up over the task's batches and a split host's tasks.

The batch is fed host by host in turn (:func:`interleaved`), so that every host of the batch is
busy from the start even when the input came sorted by host.

With a cache, each virtual shard of the batch has its own SQLite file in the cache directory
(:func:`cache_file`) and its own Fetcher: a virtual shard runs in one task at a time, so no two
workers ever write to one cache file. The task's global concurrency is then shared out between
them; a host's limits are unchanged (a host is in one virtual shard).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import socket
import time
from array import array
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetchpipe._config import Limits, Timeouts
from fetchpipe._host_rates import HostRateReport, side_by_side
from fetchpipe._log import RunContext, run_context
from fetchpipe._models import ErrorKind, Request, Result
from fetchpipe.destinations.fetch.parts import PartFormat, PartWriter, part_name
from fetchpipe.distributed.sharding import virtual_shard
from fetchpipe.engine.aimd import DEFAULT_ADAPTIVE, AdaptivePolicy
from fetchpipe.engine.breaker import DEFAULT_BREAKER, BreakerPolicy
from fetchpipe.engine.carry import HostCarry
from fetchpipe.engine.limits import host_of
from fetchpipe.engine.quotas import DEFAULT_STATE_DIR
from fetchpipe.engine.retry import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:
    from fetchpipe.destinations.run_log import RequestRecorder
    from fetchpipe.engine.cache.http_cache import HttpCache
    from fetchpipe.engine.fetcher import Fetcher
    from fetchpipe.engine.proxies import ProxyPolicy
    from fetchpipe.engine.security import SecurityPolicy
    from fetchpipe.engine.tls import TlsPolicy


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """The :class:`~fetchpipe.engine.fetcher.Fetcher`'s arguments, as shipped to the workers.

    ``proxy`` is resolved by the driver (a worker's environment may name other proxies).
    ``headers`` and ``proxy`` are left out of the repr: a cluster logs a failed task's
    arguments, and they may hold credentials.
    ``cache``: an unopened :class:`~fetchpipe.engine.cache.http_cache.HttpCache` whose settings
    every virtual shard's cache file takes, in the directory ``cache_dir``.
    ``adaptive``: how hosts are paced by what they answer (AIMD on 429s, published limits).
    ``state_dir``: where host quotas are counted (``quotas.sqlite``): storage every worker
    shares, for a quota to hold across the cluster.
    """

    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = DEFAULT_RETRY
    timeouts: Timeouts = field(default_factory=Timeouts)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    security: SecurityPolicy | None = None
    transport: str = "aiohttp"
    breaker: BreakerPolicy | None = DEFAULT_BREAKER
    proxy: ProxyPolicy | None = field(default=None, repr=False)
    tls: TlsPolicy | None = None
    cache: HttpCache | None = None
    cache_dir: str | None = None
    adaptive: AdaptivePolicy | None = DEFAULT_ADAPTIVE
    state_dir: str = str(DEFAULT_STATE_DIR)


@dataclass(frozen=True, slots=True)
class RequestLog:
    """Asks a batch for the rows of the run's request log (``fetch --executor ... --report``):
    the run's id and its start on the driver (``time.time()``), from which the worker counts
    its requests' times, as a local run counts them from its start."""

    run_id: str
    started: float


@dataclass(frozen=True, slots=True)
class BatchJob:
    """Batch ``batch`` of task ``task``: its requests, where its part goes, how to fetch."""

    task: int
    batch: int
    requests: Sequence[Request]
    parts: str
    """The run's part directory (shared storage on a cluster)."""
    format: PartFormat
    settings: FetchSettings
    log: RequestLog | None = None
    carry: Mapping[str, HostCarry] = field(default_factory=dict)
    """Each host's state as the task's batch before this one left it (its report's
    ``carry``): pauses, rate meters, breakers, budgets and learned rates go on."""

    @property
    def part(self) -> str:
        return part_name(self.task, self.batch, self.format)


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What a batch did, for the driver's progress and summary."""

    task: int
    batch: int
    part: str
    results: int
    ok: int
    retries: int
    by_error: dict[str, int]
    by_source: dict[str, int]
    latencies: bytes
    """Each result's ``elapsed`` as 8-byte floats (``array('d')``)."""
    hosts_down: dict[str, int]
    retries_denied: int
    seconds: float
    """Wall time of the batch on its worker, part written."""
    cpu_seconds: float
    """CPU time the worker process used meanwhile."""
    worker: str = ""
    """The process that ran it: ``host:pid``."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """With the job's ``log``: the rows of its requests in ``_fetchpipe_requests``."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """With the job's ``log``: the rows of the engine's events in ``_fetchpipe_events``."""
    carry: dict[str, HostCarry] = field(default_factory=dict)
    """Each host's state at the batch's end, for the task's next batch (wall-clock times)."""
    rate_limits: dict[str, HostRateReport] = field(default_factory=dict)
    """Each host's politeness figures over the batch (only hosts where something happened: a
    limit read or learned, a 429 or a 503 with ``Retry-After``, a pause)."""


@dataclass
class _Counts:
    results: int = 0
    ok: int = 0
    retries: int = 0
    by_error: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    hosts_down: Counter[str] = field(default_factory=Counter)
    retries_denied: int = 0
    recorder: RequestRecorder | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    carry: dict[str, HostCarry] = field(default_factory=dict)
    rate_limits: dict[str, HostRateReport] = field(default_factory=dict)

    def add(self, result: Result) -> None:
        if self.recorder is not None:
            row = self.recorder.row(result, None)
            if row is not None:
                self.rows.append(row)
        self.results += 1
        if result.error is None:
            self.ok += 1
        else:
            self.by_error[result.error.value] += 1
        if result.error is not ErrorKind.NOT_CACHED:  # offline, from nowhere (as the summary)
            self.by_source[result.source.value] += 1
        self.retries += result.retries
        self.latencies.append(result.elapsed)


def interleaved(requests: Sequence[Request]) -> Iterator[Request]:
    """``requests`` taken one host at a time in turn (each host's own order kept)."""
    queues: dict[str, deque[Request]] = {}
    for request in requests:
        host = host_of(request.url) or ""
        queue = queues.get(host)
        if queue is None:
            queue = queues[host] = deque()
        queue.append(request)
    turn = deque(queues.values())
    while turn:
        queue = turn.popleft()
        yield queue.popleft()
        if queue:
            turn.append(queue)


def cache_file(directory: str | Path, shard: int) -> Path:
    """The cache file of virtual shard ``shard`` in the cache directory."""
    return Path(directory) / f"shard-{shard:03d}.sqlite"


def shard_cache(template: HttpCache, path: Path) -> HttpCache:
    """An unopened cache at ``path`` with ``template``'s settings."""
    from fetchpipe.engine.cache.http_cache import HttpCache

    return HttpCache(
        path,
        ttl=template.ttl,
        ttl_overrides=template.ttl_overrides,
        stale_if_error=template.stale_if_error,
        offline=template.offline,
        max_size=template.max_size,
        shared=template.shared,
        credential_headers=template.credential_headers,
        credential_params=template.credential_params,
    )


def fetch_batch(job: BatchJob) -> BatchReport:
    """Fetch ``job``'s requests into its part file; the worker's entry point."""
    from fetchpipe.engine.fetcher import run  # lazy: loads the engine on the worker only

    began, cpu = time.perf_counter(), time.process_time()
    writer = PartWriter(job.parts, job.part)
    try:
        counts = run(_fetch(job, writer))
        writer.commit()
    finally:
        writer.discard()
    return BatchReport(
        task=job.task,
        batch=job.batch,
        part=job.part,
        results=counts.results,
        ok=counts.ok,
        retries=counts.retries,
        by_error=dict(counts.by_error),
        by_source=dict(counts.by_source),
        latencies=counts.latencies.tobytes(),
        hosts_down=dict(counts.hosts_down),
        retries_denied=counts.retries_denied,
        seconds=time.perf_counter() - began,
        cpu_seconds=time.process_time() - cpu,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        requests=counts.rows,
        events=[] if counts.recorder is None else counts.recorder.take_events(),
        carry=counts.carry,
        rate_limits=counts.rate_limits,
    )


async def _fetch(job: BatchJob, writer: PartWriter) -> _Counts:
    if job.log is None:
        return await _fetch_all(job, writer, _Counts())
    from fetchpipe.destinations.run_log import RequestRecorder

    loop = asyncio.get_running_loop()
    # The driver's start on this loop's clock: the rows' times count from it.
    started = loop.time() - (time.time() - job.log.started)
    recorder = RequestRecorder(job.log.run_id, started, loop.time)
    with run_context(RunContext(job.log.run_id, on_event=recorder.event)):
        return await _fetch_all(job, writer, _Counts(recorder=recorder))


async def _fetch_all(job: BatchJob, writer: PartWriter, counts: _Counts) -> _Counts:
    settings = job.settings
    if settings.cache is None or settings.cache_dir is None:
        await _stream(settings, settings.limits, job.requests, None, writer, counts, job.carry)
        return counts
    groups: dict[int, list[Request]] = {}
    for request in job.requests:
        groups.setdefault(virtual_shard(host_of(request.url) or ""), []).append(request)
    share = max(1, math.ceil(settings.limits.max_concurrency / len(groups)))
    limits = dataclasses.replace(settings.limits, max_concurrency=share)
    template, directory = settings.cache, settings.cache_dir
    await asyncio.gather(
        *(
            _stream(
                settings,
                limits,
                requests,
                shard_cache(template, cache_file(directory, shard)),
                writer,
                counts,
                {n: c for n, c in job.carry.items() if _shard_of(n) == shard},
            )
            for shard, requests in sorted(groups.items())
        )
    )
    return counts


async def _stream(
    settings: FetchSettings,
    limits: Limits,
    requests: Sequence[Request],
    cache: HttpCache | None,
    writer: PartWriter,
    counts: _Counts,
    carry: Mapping[str, HostCarry],
) -> None:
    async with fetcher_for(settings, limits, cache, carry) as fetcher:
        async for result in fetcher.stream(interleaved(requests)):
            writer.write(result)
            counts.add(result)
        counts.carry.update(fetcher.carry_out)
        counts.hosts_down.update(fetcher.hosts_down)
        counts.retries_denied += fetcher.retries_denied
        # a virtual shard's engine beside the others (their hosts apart)
        counts.rate_limits = side_by_side(counts.rate_limits, fetcher.rate_limits)


def _shard_of(name: str) -> int:
    """The virtual shard of a host state's name (a lane's: ``host label``)."""
    return virtual_shard(name.split(" ", 1)[0])


def fetcher_for(
    settings: FetchSettings,
    limits: Limits,
    cache: HttpCache | None,
    carry: Mapping[str, HostCarry] | None = None,
) -> Fetcher:
    """The engine ``settings`` describe, with ``limits``, ``cache`` (unopened) and the
    hosts' ``carry`` from an earlier batch."""
    from fetchpipe.engine.fetcher import Fetcher  # lazy: loads the engine on the worker only

    return Fetcher(
        limits=limits,
        retry=settings.retry,
        timeouts=settings.timeouts,
        headers=settings.headers,
        cache=cache,
        security=settings.security,
        transport=settings.transport,
        breaker=settings.breaker,
        proxy=settings.proxy,
        tls=settings.tls,
        adaptive=settings.adaptive,
        state_dir=settings.state_dir,
        carry=carry,
    )
