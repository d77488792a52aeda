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
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fetchpipe.engine.fetcher import run as run_loop
from fetchpipe.engine.quotas import DEFAULT_STATE_DIR
from fetchpipe.pipeline.runtime.report import RunReport
from fetchpipe.pipeline.runtime.runner import PipelineRunner
from fetchpipe.pipeline.spec.config import PipelineSpec

if TYPE_CHECKING:
    from fetchpipe.distributed.executor import ActorHost


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
        from fetchpipe.distributed.cluster_stream import cluster_engine
        from fetchpipe.distributed.factory import open_executor

        opened = None
        if isinstance(executor, str):  # started (or reached) here, closed here
            opened = executor = await asyncio.to_thread(open_executor, executor, workers)
        try:
            runner = PipelineRunner(
                self,
                select=select,
                full_refresh=full_refresh,
                restart=restart,
                state_dir=state_dir,
                engine=cluster_engine(executor),
            )
            return await runner.run()
        finally:
            if opened is not None:
                await asyncio.to_thread(opened.close)
