"""Fetching on a cluster: requests sharded by host, limits exact cluster-wide.

::

    from fetchpipe import Limits, HostLimits
    from fetchpipe.distributed import DaskExecutor, FetchSettings, fetch_sharded

    settings = FetchSettings(limits=Limits(per_host=HostLimits(max_concurrency=4)))
    with DaskExecutor.local(workers=2) as executor:  # or DaskExecutor.connect("tcp://host:8786")
        report = fetch_sharded(urls, "results.duckdb", executor, settings)
    print(report.results, report.failed)

A request's host maps to one of 256 virtual shards (:mod:`.sharding`), the shards are grouped
into one task per worker slot by estimated cost, and every request of a host runs in one task,
one batch at a time: the host's concurrency and rate limits hold across the cluster as in one
process. Each batch lands in a part file; the driver merges them into the output
(:mod:`.driver`). The executor is a small interface (:mod:`.executor`) with a Dask adapter
(:mod:`.dask_executor`: ``pip install 'fetchpipe[dask]'``). ``fetchpipe fetch --executor dask``
and ``--shard K/N`` are the command line's way in.

A pipeline runs on a cluster with the same rule, its runner on this process and its engine on
the workers (:mod:`.cluster_stream`: one long-lived shard engine per worker slot,
:mod:`.shard_engine`)::

    with DaskExecutor.local(workers=2) as executor:
        report = Pipeline.from_file("shop.yaml").run(executor=executor)

Layers (contract ``distributed-layers``): ``driver | factory | cluster_stream`` >
``shard_engine`` > ``batch | dask_executor`` > ``executor | sharding``. Importing this package
imports no Dask.
"""

import typing as _typing

from fetchpipe import _lazy_names
from fetchpipe._exceptions import ExecutorError

if _typing.TYPE_CHECKING:
    from fetchpipe.distributed.batch import BatchReport, FetchSettings, fetch_batch
    from fetchpipe.distributed.cluster_stream import ClusterStream, cluster_engine
    from fetchpipe.distributed.dask_executor import DaskExecutor
    from fetchpipe.distributed.driver import RunReport, fetch_sharded
    from fetchpipe.distributed.executor import Executor, Finished
    from fetchpipe.distributed.factory import open_executor
    from fetchpipe.distributed.sharding import (
        VIRTUAL_SHARDS,
        ShardSelector,
        TaskPlan,
        plan_tasks,
        virtual_shard,
    )

# Imported on first use (PEP 562): `fetch --help` imports the sharding rule without the
# driver, the engine or the part files.
_LAZY = {
    "BatchReport": "fetchpipe.distributed.batch",
    "ClusterStream": "fetchpipe.distributed.cluster_stream",
    "DaskExecutor": "fetchpipe.distributed.dask_executor",
    "Executor": "fetchpipe.distributed.executor",
    "FetchSettings": "fetchpipe.distributed.batch",
    "Finished": "fetchpipe.distributed.executor",
    "RunReport": "fetchpipe.distributed.driver",
    "ShardSelector": "fetchpipe.distributed.sharding",
    "TaskPlan": "fetchpipe.distributed.sharding",
    "VIRTUAL_SHARDS": "fetchpipe.distributed.sharding",
    "cluster_engine": "fetchpipe.distributed.cluster_stream",
    "fetch_batch": "fetchpipe.distributed.batch",
    "fetch_sharded": "fetchpipe.distributed.driver",
    "open_executor": "fetchpipe.distributed.factory",
    "plan_tasks": "fetchpipe.distributed.sharding",
    "virtual_shard": "fetchpipe.distributed.sharding",
}


def __getattr__(name: str) -> _typing.Any:
    return _lazy_names.load(globals(), _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "VIRTUAL_SHARDS",
    "BatchReport",
    "ClusterStream",
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "FetchSettings",
    "Finished",
    "RunReport",
    "ShardSelector",
    "TaskPlan",
    "cluster_engine",
    "fetch_batch",
    "fetch_sharded",
    "open_executor",
    "plan_tasks",
    "virtual_shard",
]
