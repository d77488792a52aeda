"""The public :class:`Pipeline`: a checked pipeline file that can run.

::

    report = Pipeline.from_file("pipeline.yaml").run()

It is the file's model (:class:`~fetchpipe.pipeline.spec.config.PipelineSpec`: loading, checks,
engine values) with ``run`` and ``arun`` on top. They live here, above the runner, so that
the model, the plan and the runner import one another in one direction only: the runner
and the plan read a spec, and this module drives the runner.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from fetchpipe.engine.fetcher import run as run_loop
from fetchpipe.engine.quotas import DEFAULT_STATE_DIR
from fetchpipe.pipeline.runtime.report import RunReport
from fetchpipe.pipeline.runtime.runner import PipelineRunner
from fetchpipe.pipeline.spec.config import PipelineSpec


class Pipeline(PipelineSpec):
    """A declarative pipeline: sources fetched into tables of one destination."""

    def run(
        self,
        *,
        select: Iterable[str] | None = None,
        full_refresh: bool = False,
        restart: bool = False,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    ) -> RunReport:
        """Fetch every source (or those in ``select``, with the parents they need) into the
        destination. Returns the report; ``report.ok`` is false when a source failed.

        ``full_refresh`` ignores stored incremental state and replaces the tables. A run that
        was interrupted is resumed (with the same options), unless ``restart``. ``state_dir``:
        where the quotas of ``hosts.HOST.quota`` are counted across runs and processes.
        """
        return run_loop(
            self.arun(
                select=select, full_refresh=full_refresh, restart=restart, state_dir=state_dir
            )
        )

    async def arun(
        self,
        *,
        select: Iterable[str] | None = None,
        full_refresh: bool = False,
        restart: bool = False,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    ) -> RunReport:
        """:meth:`run` inside a running event loop."""
        runner = PipelineRunner(
            self, select=select, full_refresh=full_refresh, restart=restart, state_dir=state_dir
        )
        return await runner.run()
