"""The driver of a distributed fetch: read the input once, ship it to shard tasks, merge.

:func:`fetch_sharded` plans the tasks (:func:`~fetchpipe.distributed.sharding.plan_tasks`: one
per slot of the executor, virtual shards grouped by cost), then reads the requests once, in
order, and appends each to its task's buffer. A task runs one batch at a time (up to
``batch_size`` requests, a :func:`~fetchpipe.distributed.batch.fetch_batch` call on a worker):
every request of a host is in one task and a task's batches never overlap, so the host's
concurrency is never exceeded, anywhere. Between two batches of a task the driver waits the
longest ``burst / rate`` of the rate limits in force, so that the first requests of a batch keep
the rate after the last ones of the batch before (each batch's engine starts its rate meter
afresh, but for what the batch before handed on). Each batch's report carries the state its
engine left of each host (:class:`~fetchpipe.engine.carry.HostCarry`: Retry-After pauses, rate
meters, circuit breakers, retry budgets, learned rates, in wall-clock time) and the task's next
batch starts from it, so a host's politeness holds across the batches of its task. A batch the
executor runs again (its worker died) starts from the carry it was first given: the last one
the driver had received for its task. Memory stays flat: when ``max_buffered`` requests wait in
the buffers, reading stops until a batch finishes.

Each batch writes a part file (complete or absent, see
:mod:`fetchpipe.destinations.fetch.parts`) in ``OUT.parts/RUN/``; when every batch is done the
driver merges the parts into the output (:mod:`fetchpipe.destinations.fetch.merge`: one
transaction for DuckDB) and removes them. A task that fails for good stops the run with
:class:`~fetchpipe._exceptions.ExecutorError`; the parts of the batches that finished stay, for
``fetchpipe merge``.

Each batch also reports what it met at each host (its engine's politeness figures: the limit in
force, 429s, pauses); the run's :attr:`RunReport.rate_limits` adds them up for each host, one
batch after another within a task and side by side over a split host's tasks (see
:mod:`fetchpipe._host_rates`).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fetchpipe._config import Limits
from fetchpipe._exceptions import ConfigError, ExecutorError
from fetchpipe._host_rates import HostRateReport, one_after_another, side_by_side
from fetchpipe._models import Request
from fetchpipe.destinations.fetch.merge import merge, remove_parts
from fetchpipe.destinations.fetch.parts import PartFormat, list_parts, part_format
from fetchpipe.distributed.batch import (
    BatchJob,
    BatchReport,
    FetchSettings,
    RequestLog,
    fetch_batch,
)
from fetchpipe.distributed.executor import Executor, Finished
from fetchpipe.distributed.sharding import TaskPlan, limits_for_task, plan_tasks, virtual_shard
from fetchpipe.engine.carry import HostCarry
from fetchpipe.engine.limits import HostOf

BATCH_SIZE = 5_000
"""Requests per batch (a task's unit of work on a worker, and of a retry)."""

MAX_BUFFERED = 200_000
"""Requests the driver holds at most, waiting for their task (about 500 bytes each)."""

_POLL = 1.0


@dataclass
class RunReport:
    """What a distributed fetch did: counts over every batch, the plan, where time went."""

    plan: TaskPlan
    executor: str
    results: int = 0
    ok: int = 0
    retries: int = 0
    by_error: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    hosts_down: Counter[str] = field(default_factory=Counter)
    retries_denied: int = 0
    batches: int = 0
    rows_merged: int = 0
    worker_seconds: float = 0.0
    """Wall time of every batch on its worker, added up."""
    cpu_seconds: float = 0.0
    """CPU time the workers used for their batches, added up."""
    submit_seconds: float = 0.0
    """Time the driver spent handing batches to the executor (serialising, shipping)."""
    fetch_seconds: float = 0.0
    """From the first batch submitted to the last one finished."""
    merge_seconds: float = 0.0
    parts: Path | None = None
    """The run's part directory (removed after the merge unless kept)."""
    workers: set[str] = field(default_factory=set)
    """The processes that ran batches (``host:pid``)."""
    task_rate_limits: dict[int, dict[str, HostRateReport]] = field(default_factory=dict)
    """Task -> each host's politeness figures over the task's batches so far."""

    @property
    def failed(self) -> int:
        return self.results - self.ok

    @property
    def rate_limits(self) -> dict[str, HostRateReport]:
        """Each host's politeness figures over the run (only hosts where something happened),
        as a local run's ``Fetcher.rate_limits``: a split host's tasks side by side."""
        combined: dict[str, HostRateReport] = {}
        for task in sorted(self.task_rate_limits):
            combined = side_by_side(combined, self.task_rate_limits[task])
        return combined

    def add(self, batch: BatchReport) -> None:
        self.results += batch.results
        self.ok += batch.ok
        self.retries += batch.retries
        self.by_error.update(batch.by_error)
        self.by_source.update(batch.by_source)
        self.hosts_down.update(batch.hosts_down)
        self.retries_denied += batch.retries_denied
        self.batches += 1
        self.worker_seconds += batch.seconds
        self.cpu_seconds += batch.cpu_seconds
        self.workers.add(batch.worker)
        # a task's batches run one after another: the later one's limit is the one in force
        earlier = self.task_rate_limits.get(batch.task, {})
        self.task_rate_limits[batch.task] = one_after_another(earlier, batch.rate_limits)


def batch_gap(limits: Limits) -> float:
    """Seconds between two batches of a task that keep every rate limit: the longest
    ``burst / max_per_second`` in ``limits`` (0 without a rate)."""
    gaps = [
        own.burst / own.max_per_second
        for own in (limits.per_host, *limits.hosts.values())
        if own.max_per_second is not None
    ]
    return max(gaps, default=0.0)


class _Tasks:
    """The buffers and states of a run's tasks, and their submission."""

    def __init__(
        self,
        executor: Executor,
        plan: TaskPlan,
        settings: FetchSettings,
        parts: Path,
        fmt: PartFormat,
        batch_size: int,
        report: RunReport,
        on_batch: Callable[[BatchReport], None] | None,
        log: RequestLog | None = None,
    ) -> None:
        self.executor = executor
        self.log = log
        self.plan = plan
        self.parts = parts
        self.batch_size = batch_size
        self.report = report
        self.on_batch = on_batch
        self.format = fmt
        self.settings = [
            dataclasses.replace(settings, limits=limits_for_task(settings.limits, plan, task))
            for task in range(plan.tasks)
        ]
        self.gap = batch_gap(settings.limits)
        self.buffers: list[list[Request]] = [[] for _ in range(plan.tasks)]
        self.next_batch = [0] * plan.tasks
        self.running: dict[str, int] = {}
        self.busy = [False] * plan.tasks
        self.ready_at = [0.0] * plan.tasks
        self.carry: list[dict[str, HostCarry]] = [{} for _ in range(plan.tasks)]
        """Each task's hosts as its last finished batch left them, for its next batch."""
        self.buffered = 0
        self.started: float | None = None

    def add(self, task: int, request: Request) -> None:
        buffer = self.buffers[task]
        buffer.append(request)
        self.buffered += 1
        if len(buffer) >= self.batch_size and not self.busy[task]:
            self._submit(task, time.monotonic())

    def _submit(self, task: int, now: float) -> bool:
        if self.busy[task] or not self.buffers[task] or now < self.ready_at[task]:
            return False
        buffer = self.buffers[task]
        requests, self.buffers[task] = buffer[: self.batch_size], buffer[self.batch_size :]
        self.buffered -= len(requests)
        batch = self.next_batch[task]
        self.next_batch[task] += 1
        job = BatchJob(
            task,
            batch,
            requests,
            str(self.parts),
            self.format,
            self.settings[task],
            self.log,
            self.carry[task],
        )
        key = f"fetchpipe-{self.parts.name}-t{task}-b{batch}"
        began = time.perf_counter()
        if self.started is None:
            self.started = began
        self.executor.submit(key, fetch_batch, job)
        self.report.submit_seconds += time.perf_counter() - began
        self.running[key] = task
        self.busy[task] = True
        return True

    def pump(self, *, partial: bool) -> None:
        """Submit what may go (``partial``: batches under ``batch_size`` too), then wait for
        the next batches to finish and take their reports."""
        now = time.monotonic()
        for task in range(self.plan.tasks):
            if partial or len(self.buffers[task]) >= self.batch_size:
                self._submit(task, now)
        waiting = [
            self.ready_at[task] - now
            for task in range(self.plan.tasks)
            if self.buffers[task] and not self.busy[task]
        ]
        if not self.running:
            if waiting:
                time.sleep(max(0.0, min(waiting)))
            return
        timeout = min([_POLL, *(max(0.0, wait) for wait in waiting)])
        for finished in self.executor.wait(timeout):
            self._finished(finished)

    def _finished(self, finished: Finished) -> None:
        task = self.running.pop(finished.key)
        if finished.error is not None or not isinstance(finished.value, BatchReport):
            raise ExecutorError(
                f"a shard task failed ({finished.key}): {finished.error!r}. The parts of the "
                f"batches that finished are in {self.parts}. HINT: `fetchpipe merge "
                f"{self.parts} --out OUT` lands them; then run the fetch again with --resume"
            )
        self.busy[task] = False
        self.ready_at[task] = time.monotonic() + self.gap
        self.carry[task] = finished.value.carry
        self.report.add(finished.value)
        if self.on_batch is not None:
            self.on_batch(finished.value)

    @property
    def pending(self) -> bool:
        return bool(self.running) or self.buffered > 0


def fetch_sharded(
    requests: Iterable[Request | str],
    out: str | Path,
    executor: Executor,
    settings: FetchSettings | None = None,
    *,
    host_counts: Mapping[str, int] | None = None,
    batch_size: int = BATCH_SIZE,
    max_buffered: int = MAX_BUFFERED,
    split_heavy: bool = True,
    on_batch: Callable[[BatchReport], None] | None = None,
    parts_dir: str | Path | None = None,
    keep_parts: bool = False,
    log: RequestLog | None = None,
) -> RunReport:
    """Fetch ``requests`` on ``executor``'s workers into ``out`` (``.duckdb`` or ``.jsonl``).

    ``host_counts`` (requests per host, from a first pass over the input) lets the plan
    balance the tasks and split a heavy host; without it, shards are dealt out in turn.
    ``on_batch`` is called on this thread with each finished batch's report (progress).
    ``parts_dir``: where the run's part directory goes (default ``OUT.parts``; on a cluster,
    storage every worker and this process share); ``keep_parts`` keeps it after the merge
    (``report.parts`` says where). ``log``: each batch's report carries the rows of the
    run's request log (``BatchReport.requests`` and ``events``), for ``on_batch`` to keep.
    """
    if batch_size < 1 or max_buffered < batch_size:
        raise ConfigError(
            f"batch_size ({batch_size}) must be at least 1 and max_buffered ({max_buffered}) "
            "at least batch_size"
        )
    settings = settings or FetchSettings()
    plan = plan_tasks(host_counts, executor.slots, settings.limits, split_heavy=split_heavy)
    report = RunReport(plan, executor.description)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    parts = Path(parts_dir if parts_dir is not None else f"{out}.parts") / run_id
    try:
        parts.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the part directory {str(parts)!r}: {exc.strerror or exc}. HINT: "
            "give a writable parts directory on storage every worker shares"
        ) from None
    fmt = part_format(out)
    tasks = _Tasks(executor, plan, settings, parts, fmt, batch_size, report, on_batch, log)
    host_of = HostOf()
    seen: Counter[str] = Counter()
    splits = plan.splits
    shard_tasks = plan.shard_tasks
    for item in requests:
        request = Request.of(item) if isinstance(item, str) else item
        host = host_of(request.url) or ""
        if host in splits:
            task = plan.task_of(host, seen[host])
            seen[host] += 1
        else:
            task = shard_tasks[virtual_shard(host)]
        tasks.add(task, request)
        while tasks.buffered >= max_buffered:
            tasks.pump(partial=True)
    while tasks.pending:
        tasks.pump(partial=True)
    if tasks.started is not None:
        report.fetch_seconds = time.perf_counter() - tasks.started
    began = time.perf_counter()
    merged = merge(list_parts(parts), out)
    report.merge_seconds = time.perf_counter() - began
    report.rows_merged = merged.rows
    if merged.rows != report.results:
        raise ExecutorError(
            f"the parts in {parts} hold {merged.rows} results, the batches reported "
            f"{report.results}; the parts were kept. HINT: look for another process writing there"
        )
    report.parts = parts
    if not keep_parts:
        remove_parts(parts)
    return report
