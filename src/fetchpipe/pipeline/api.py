"""The public :class:`Pipeline`: a checked pipeline file that can run.

::

    report = Pipeline.from_file("pipeline.yaml").run()
    report = Pipeline.from_file("pipeline.yaml").run(executor="dask", workers=2)

It is the file's model (:class:`~fetchpipe.pipeline.spec.config.PipelineSpec`: loading, checks,
engine values) with ``run`` and ``arun`` on top. They live here, above the runner, so that
the model, the plan and the runner import one another in one direction only: the runner
and the plan read a spec, and this module drives the runner.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fetchpipe.engine.fetcher import run as run_loop
from fetchpipe.engine.quotas import DEFAULT_STATE_DIR
from fetchpipe.pipeline.runtime.report import RunReport
from fetchpipe.pipeline.runtime.runner import PipelineRunner
from fetchpipe.pipeline.spec.config import PipelineSpec

if TYPE_CHECKING:
    from fetchpipe.distributed.cluster_stream import ClusterStream
    from fetchpipe.distributed.executor import ActorHost


@dataclass(frozen=True, slots=True)
class OpenCluster:
    """A cluster a pipeline run sends its requests from, and the engine it makes there."""

    host: ActorHost
    engine: Callable[..., ClusterStream]
    """What :class:`~fetchpipe.pipeline.runtime.runner.PipelineRunner` takes as ``engine``."""
    owned: bool
    """Started or reached by :func:`open_cluster` (``close`` closes it), not given to it."""

    def close(self) -> None:
        """Close the cluster if it was opened here (one given is left open)."""
        if self.owned:
            self.host.close()


def open_cluster(executor: str | ActorHost, workers: int | None = None) -> OpenCluster:
    """The cluster ``executor`` names (``dask`` with ``workers``, or a scheduler's address),
    started or reached, or the executor given, with a pipeline run's engine on it. Raises
    :class:`~fetchpipe._exceptions.ConfigError` when it cannot be used or reached."""
    from fetchpipe.distributed.cluster_stream import cluster_engine
    from fetchpipe.distributed.factory import open_executor

    owned = isinstance(executor, str)
    host = open_executor(executor, workers) if isinstance(executor, str) else executor
    return OpenCluster(host, cluster_engine(host), owned)


class Pipeline(PipelineSpec):
    """A declarative pipeline: sources fetched into tables of one destination."""

    def run(
        self,
        *,
        select: Iterable[str] | None = None,
        full_refresh: bool = False,
        restart: bool = False,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        executor: str | ActorHost | None = None,
        workers: int | None = None,
    ) -> RunReport:
        """Fetch every source (or those in ``select``, with the parents they need) into the
        destination. Returns the report; ``report.ok`` is false when a source failed.

        ``full_refresh`` ignores stored incremental state and replaces the tables. A run that
        was interrupted is resumed (with the same options), unless ``restart``. ``state_dir``:
        where the quotas of ``hosts.HOST.quota`` are counted across runs and processes.

        ``executor``: where the requests are sent from: this process (``None`` or
        ``"local"``), a local Dask cluster of ``workers`` processes (``"dask"``), a running
        scheduler (``"dask://HOST:PORT"``), or an executor you opened
        (:class:`fetchpipe.distributed.DaskExecutor`, left open). The run itself (parsing,
        pagination, the journal, the writes) stays on this process; see docs/scale-out.md.
        """
        return run_loop(
            self.arun(
                select=select,
                full_refresh=full_refresh,
                restart=restart,
                state_dir=state_dir,
                executor=executor,
                workers=workers,
            )
        )

    async def arun(
        self,
        *,
        select: Iterable[str] | None = None,
        full_refresh: bool = False,
        restart: bool = False,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        executor: str | ActorHost | None = None,
        workers: int | None = None,
    ) -> RunReport:
        """:meth:`run` inside a running event loop."""
        if executor is None or (isinstance(executor, str) and executor.strip().lower() == "local"):
            runner = PipelineRunner(
                self, select=select, full_refresh=full_refresh, restart=restart, state_dir=state_dir
            )
            return await runner.run()
        cluster = await asyncio.to_thread(open_cluster, executor, workers)
        try:  # a cluster started (or reached) here is closed here
            runner = PipelineRunner(
                self,
                select=select,
                full_refresh=full_refresh,
                restart=restart,
                state_dir=state_dir,
                engine=cluster.engine,
            )
            return await runner.run()
        finally:
            await asyncio.to_thread(cluster.close)
