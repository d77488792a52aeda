"""The Dask adapter of :class:`~fetchpipe.distributed.executor.Executor`.

``DaskExecutor.local(n)`` starts a ``LocalCluster`` of ``n`` worker processes with one thread
each (a shard task is one event loop: a second thread in the process would contend for its
interpreter), listening on 127.0.0.1 only; ``DaskExecutor.connect(address)`` uses a running
scheduler. A task runs as a plain function that calls ``asyncio.run`` (Dask would run an
``async def`` task on the worker's own event loop, beside the worker's communication).

When a worker dies, the scheduler runs its tasks again on another worker (up to
``distributed.scheduler.allowed-failures`` times, 3 by default); a task's function writes its
part under a temporary name and renames it, so a repeated task replaces its own part.

``dask`` and ``distributed`` are imported inside the methods (lazy: they are an extra, and
heavy): importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fetchpipe._exceptions import ConfigError
from fetchpipe.distributed.executor import Finished

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

CONNECT_TIMEOUT = 10.0
"""Seconds to reach a running scheduler before giving up."""

PRELOAD = ("fetchpipe.distributed.batch", "fetchpipe.engine.fetcher", "duckdb")
"""Modules every worker imports when the executor starts (what a shard task runs, and DuckDB
for Parquet parts), so that the first batch does not pay for them: counted as start-up."""


def _preload(modules: tuple[str, ...]) -> None:
    for module in modules:
        importlib.import_module(module)


class DaskExecutor:
    """Runs shard tasks on a Dask cluster through ``client``."""

    def __init__(
        self, client: Client, cluster: LocalCluster | None = None, *, started_in: float = 0.0
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.started_in = started_in
        """Seconds it took to start the cluster (or reach the scheduler) and to import what a
        task runs on every worker."""
        self._futures: dict[Future[Any], str] = {}

    @classmethod
    def local(cls, workers: int) -> DaskExecutor:
        """A ``LocalCluster`` of ``workers`` processes (one thread each) on 127.0.0.1."""
        from distributed import Client, LocalCluster  # lazy: the dask extra

        began = time.perf_counter()
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # its HTTP server (health, metrics): loopback
            silence_logs=logging.ERROR,
        )
        try:
            client = Client(cluster)
            client.run(_preload, PRELOAD)
        except BaseException:
            cluster.close()
            raise
        return cls(client, cluster, started_in=time.perf_counter() - began)

    @classmethod
    def connect(cls, address: str) -> DaskExecutor:
        """The running scheduler at ``address`` (``tcp://HOST:PORT``)."""
        from distributed import Client  # lazy: the dask extra

        began = time.perf_counter()
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {address}: {exc}. HINT: start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS --nthreads 1`, or use "
                "--executor dask for a local cluster"
            ) from None
        client.run(_preload, PRELOAD)
        return cls(client, None, started_in=time.perf_counter() - began)

    @property
    def slots(self) -> int:
        return max(1, int(sum(self.client.nthreads().values())))

    @property
    def description(self) -> str:
        workers = len(self.client.nthreads())
        kind = "LocalCluster" if self.cluster is not None else "scheduler"
        where = "" if self.cluster is not None else f" {self.client.scheduler.address}"
        return f"dask {kind}{where}, {workers} worker{'s' if workers != 1 else ''}"

    def submit(self, key: str, function: Callable[[Any], Any], argument: Any) -> None:
        future = self.client.submit(function, argument, key=key, pure=False)
        self._futures[future] = key

    def wait(self, timeout: float | None) -> list[Finished]:
        from distributed import wait  # lazy: the dask extra

        if not self._futures:
            return []
        try:
            done, _ = wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        finished = []
        for future in done:
            key = self._futures.pop(future)
            if future.status == "finished":
                finished.append(Finished(key, future.result()))
            else:
                error = future.exception()
                finished.append(Finished(key, error=error or RuntimeError(future.status)))
            future.release()
        return finished

    def close(self) -> None:
        futures, self._futures = self._futures, {}
        if futures:
            self.client.cancel(list(futures))
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def start_actor(self, factory: Callable[[Any], Any], argument: Any, place: int) -> DaskActor:
        """``factory(argument)`` as a Dask actor on the ``place``-th live worker (modulo their
        number; another one if it cannot)."""
        workers = sorted(self.client.scheduler_info()["workers"])
        chosen = [workers[place % len(workers)]] if workers else None
        future = self.client.submit(
            factory, argument, actor=True, pure=False, workers=chosen, allow_other_workers=True
        )
        return DaskActor(future, future.result())

    def worker_pids(self) -> dict[str, int]:
        """Each worker's process id (by address): for tests that kill one."""
        import os

        return dict(self.client.run(os.getpid))

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class DaskActor:
    """A Dask actor and the future that holds it on its worker."""

    def __init__(self, future: Future[Any], actor: Any) -> None:
        self._future = future
        self._actor = actor

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self._actor, method)(*args).result()

    def release(self) -> None:
        with contextlib.suppress(Exception):  # the client or its worker is gone: nothing to do
            self._future.release()
