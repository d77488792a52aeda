"""``fetch --executor``, ``--workers`` and ``--shard K/N``: one shard of the input, or the whole
input on a Dask cluster (:mod:`fetchpipe.distributed`), with progress and one summary.

Everything is checked before the input is read: an unknown executor, a scheduler address
without a port, Dask not installed (``pip install 'fetchpipe[dask]'``), ``--workers`` without a
local cluster, a bad ``K/N``: exit 2. Dask is imported only when a cluster is used (lazy:
start-up time).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fetchpipe._exceptions import ConfigError, ExecutorError, InputError, SinkError
from fetchpipe._models import ErrorKind, Provenance, Request
from fetchpipe._redact import redact_text
from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.executor_options import executor_options
from fetchpipe.cli.fetching import Settings, counted, stderr
from fetchpipe.cli.options import shard_selector

if TYPE_CHECKING:
    from fetchpipe.cli.summary import Summary
    from fetchpipe.destinations.fetch.gathered_log import GatheredLog
    from fetchpipe.distributed.batch import RequestLog
    from fetchpipe.distributed.driver import RunReport
    from fetchpipe.distributed.sharding import ShardSelector

_Decorated = TypeVar("_Decorated", bound=Callable[..., Any])

CLUSTER_CACHE = str(Path(".fetchpipe") / "shards")
"""The cache directory of a bare ``--cache`` with a cluster executor."""

_SPLITS_SHOWN = 5


def scale_options(command: _Decorated) -> _Decorated:
    """``--executor``, ``--workers`` and ``--shard``."""
    command = click.option(
        "--shard",
        "shard",
        default=None,
        metavar="K/N",
        help="Fetch only the hosts of shard K of N (K from 0 to N-1): N runs, e.g. the tasks "
        "of an orchestrator, cover the input exactly once; `fetchpipe merge` joins their "
        "outputs.",
    )(command)
    return executor_options(command)


@dataclass(frozen=True, slots=True)
class ScaleOut:
    """Where ``fetch`` runs its requests, and which of them."""

    executor: str = "local"
    workers: int | None = None
    shard: ShardSelector | None = None

    @property
    def on_cluster(self) -> bool:
        return self.executor.strip().lower() != "local"


def scale_out(executor: str, workers: int | None, shard: str | None) -> ScaleOut:
    """The options checked (exit 2 with a hint for a bad one)."""
    if executor.strip().lower() == "local" and workers is None and shard is None:
        return ScaleOut()  # what a plain fetch asks: nothing more to load
    from fetchpipe.distributed.executor import executor_problem

    problem = executor_problem(executor)
    if problem is not None:
        raise BadUsage(problem)
    if workers is not None and executor.strip().lower() != "dask":
        raise BadUsage(
            "--workers sizes the local cluster of --executor dask. HINT: add --executor dask, "
            "or size a running cluster where its workers are started"
        )
    selector = None if shard is None else shard_selector(shard)
    return ScaleOut(executor.strip(), workers, selector)


def cluster_cache_dir(path: str, default: str) -> str:
    """The cache directory of a cluster run (``--cache`` names one; a bare ``--cache`` means
    :data:`CLUSTER_CACHE`); exit 2 when ``path`` is a file."""
    directory = CLUSTER_CACHE if path == default else path
    if Path(directory).is_file():
        raise BadUsage(
            f"with --executor, --cache names a directory (one SQLite file per virtual shard, "
            f"so that no two workers share a writer), and {directory!r} is a file. HINT: give "
            f"--cache=DIR, e.g. --cache={CLUSTER_CACHE}"
        )
    return directory


def only_shard(requests: Iterable[Request], selector: ShardSelector) -> Iterator[Request]:
    """The requests of ``requests`` whose host is in shard ``selector``."""
    holds = selector.holds
    return (request for request in requests if holds(request.url))


def say_shard(selector: ShardSelector, kept: int, total: int) -> None:
    stderr().print(
        f"shard {selector}: {kept:,} of {counted(total, 'request')} (the hosts whose virtual "
        f"shard is {selector.index} mod {selector.count})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def fetch_on_cluster(
    requests: Iterable[Request],
    total: int | None,
    host_counts: dict[str, int] | None,
    out: str,
    settings: Settings,
    scale: ScaleOut,
    cache_dir: str | None,
    outputs: tuple[str | None, str | None] = (None, None),
) -> Summary:
    """Fetch ``requests`` on the cluster ``scale`` names into ``out``; progress and the summary
    on stderr, as a local run prints them (with each host's politeness figures, added up over
    the batches); then, with ``outputs`` (paths, or None), the run's row with those figures
    and the request log the batches brought back in a DuckDB ``out``, the HTML report and the
    metrics."""
    from fetchpipe.cli.fetching import print_summary
    from fetchpipe.cli.progress import reporter_for
    from fetchpipe.cli.summary import Summary
    from fetchpipe.distributed.batch import BatchReport, FetchSettings
    from fetchpipe.distributed.driver import fetch_sharded
    from fetchpipe.distributed.factory import open_executor
    from fetchpipe.engine.proxies import ProxyPolicy, proxy_policy

    try:
        proxy = (
            settings.proxy
            if isinstance(settings.proxy, ProxyPolicy)
            else proxy_policy(settings.proxy, "--proxy", os.environ)
        )
    except ConfigError as exc:
        raise BadUsage(redact_text(str(exc))) from None
    shipped = FetchSettings(
        limits=settings.limits,
        retry=settings.retry,
        timeouts=settings.timeouts,
        headers=settings.headers,
        security=settings.security,
        transport=settings.transport,
        breaker=settings.breaker,
        proxy=proxy,
        tls=settings.tls,
        cache=settings.cache,
        cache_dir=cache_dir,
        adaptive=settings.adaptive,
        state_dir=settings.state_dir,
    )
    console = stderr()
    try:
        executor = open_executor(scale.executor, scale.workers)
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    started_in = getattr(executor, "started_in", None)
    summary = Summary(cache_used=settings.cache is not None)
    gathered = _gathered_log() if any(path is not None for path in outputs) else None
    finished = False

    def on_batch(batch: BatchReport) -> None:
        if gathered is not None:
            gathered.add(batch.requests, batch.events)
        summary.add_counts(
            total=batch.results,
            ok=batch.ok,
            retries=batch.retries,
            by_error={ErrorKind(kind): n for kind, n in batch.by_error.items()},
            by_source={Provenance(source): n for source, n in batch.by_source.items()},
            latencies=array("d", batch.latencies),
        )
        progress.advance_by(batch.results, batch.ok)

    try:
        console.print(
            f"running on {executor.description} ({counted(executor.slots, 'task')} at once)",
            markup=False,
            highlight=False,
        )
        with reporter_for(console, total) as progress:
            report = fetch_sharded(
                requests,
                out,
                executor,
                shipped,
                host_counts=host_counts,
                on_batch=on_batch,
                log=None if gathered is None else _request_log(gathered),
            )
            finished, ended_at = True, datetime.now(UTC)  # the merge done, as a local run's
    except ExecutorError as exc:
        raise click.ClickException(redact_text(str(exc))) from None
    except SinkError as exc:
        raise click.ClickException(f"{exc} (the run was stopped)") from None
    except InputError as exc:
        raise click.ClickException(redact_text(str(exc))) from None
    except ConfigError as exc:
        raise BadUsage(redact_text(str(exc))) from None
    finally:
        executor.close()
        if gathered is not None and not finished:
            gathered.discard()  # the run stopped: no report
    summary.hosts_down = dict(report.hosts_down)
    summary.retries_denied = report.retries_denied
    summary.rate_limits = report.rate_limits
    summary.wall_time = report.fetch_seconds + report.merge_seconds
    summary.notes = cluster_notes(report, started_in)
    print_summary(summary, out)
    if gathered is not None:
        politeness = {host: info.as_dict() for host, info in summary.rate_limits.items()}
        _write_gathered(gathered, ended_at, out, settings, outputs, politeness)
    return summary


def _gathered_log() -> GatheredLog:
    from fetchpipe._log import new_run_id
    from fetchpipe.destinations.fetch.gathered_log import GatheredLog

    return GatheredLog(new_run_id(), datetime.now(UTC))


def _request_log(gathered: GatheredLog) -> RequestLog:
    """What the batches need to make the rows: the run's id and its start on this machine's
    clock (they ran after it: the cluster is started)."""
    from fetchpipe.distributed.batch import RequestLog

    return RequestLog(gathered.run_id, gathered.started_at.timestamp())


def _write_gathered(
    gathered: GatheredLog,
    ended_at: datetime,
    out: str,
    settings: Settings,
    outputs: tuple[str | None, str | None],
    politeness: dict[str, dict[str, Any]],
) -> None:
    """The gathered log and the run's ``politeness`` figures into a DuckDB ``out`` (as a local
    run leaves them), then the report and metrics of ``outputs`` from it (or from the rows, for
    a JSON Lines ``out``)."""
    from fetchpipe.cli.fetching import RunLog, write_outputs
    from fetchpipe.destinations.fetch.parts import part_format

    log = RunLog(gathered.run_id, gathered.started_at, part_format(out) == "parquet")
    log.ended_at = ended_at
    log.politeness = politeness
    try:
        if log.in_database:
            gathered.write_into(out, ended_at, politeness)
        else:
            log.requests, log.events = gathered.rows()
    except SinkError as exc:
        raise click.ClickException(f"the results are in {out}, but {exc}") from None
    finally:
        gathered.discard()
    write_outputs(*outputs, log, out, settings)


def cluster_notes(report: RunReport, started_in: float | None) -> list[tuple[str, str]]:
    """The summary's rows about a distributed run: where, how many tasks, split hosts, times."""
    notes = [
        ("executor", report.executor),
        (
            "shard tasks",
            f"{report.plan.tasks} ({report.batches} batch{'es' if report.batches != 1 else ''})",
        ),
    ]
    splits = sorted(report.plan.splits.values(), key=lambda split: split.host)
    for split in splits[:_SPLITS_SHOWN]:
        notes.append((f"split host {split.host}", f"{split.parts} parts, limits / {split.parts}"))
    if len(splits) > _SPLITS_SHOWN:
        notes.append(("split hosts", f"{len(splits) - _SPLITS_SHOWN} more"))
    if started_in is not None:
        notes.append(("cluster start", f"{started_in:.3f} s"))
    notes.append(("merge", f"{report.merge_seconds:.3f} s"))
    if report.results:
        per_request = report.cpu_seconds / report.results * 1000
        notes.append(("worker CPU/request", f"{per_request:.3f} ms"))
    return notes
