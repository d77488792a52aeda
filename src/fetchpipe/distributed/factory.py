"""The executor an ``--executor`` value names: the only module that knows the adapters."""

from __future__ import annotations

from fetchpipe._exceptions import ConfigError
from fetchpipe.distributed.dask_executor import DaskExecutor
from fetchpipe.distributed.executor import ActorHost, executor_problem, scheduler_address


def open_executor(spec: str, workers: int | None) -> ActorHost:
    """The executor ``spec`` names (``dask`` or a scheduler address), started or connected.

    Raises :class:`~fetchpipe._exceptions.ConfigError` when it cannot be used (see
    :func:`executor_problem`) or the scheduler cannot be reached.
    """
    problem = executor_problem(spec)
    if problem is not None:
        raise ConfigError(problem)
    address = scheduler_address(spec)
    if address is None:
        return DaskExecutor.local(workers or 2)
    return DaskExecutor.connect(address)
