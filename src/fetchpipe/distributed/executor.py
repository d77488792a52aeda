"""The executor a distributed run submits its shard tasks to: a small interface, one adapter each.

:class:`Executor` is all the driver asks of a cluster: how many tasks run at once (``slots``),
submit a function with one picklable argument under a unique key, and wait for the next
finished tasks. Dask is the adapter shipped (:mod:`.dask_executor`); another (Ray's
``ray.remote`` and ``ray.wait``, or a ``concurrent.futures`` pool) needs these four methods.
A task that fails for good (its worker died more often than the cluster allows, or the
function raised) comes back as a :class:`Finished` with its error.

:func:`executor_problem` says, without importing anything heavy, why an ``--executor`` value
cannot be used (an unknown name, a bad address, the extra not installed): the command line
exits 2 with it before anything is read or sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

EXECUTORS = ("local", "dask")
"""``--executor`` values besides a scheduler address (``dask://HOST:PORT`` or ``tcp://...``)."""

INSTALL_HINT = "pip install 'fetchpipe[dask]'"
_ADDRESS = re.compile(
    r"(?:dask|tcp)://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})"
)


@dataclass(frozen=True, slots=True)
class Finished:
    """A task that ended: its key, and its value or the error it failed with."""

    key: str
    value: Any = None
    error: BaseException | None = None


class Executor(Protocol):
    """Runs shard tasks somewhere; the driver keeps at most ``slots`` of them submitted."""

    @property
    def slots(self) -> int:
        """Tasks that run at once (a Dask cluster: its worker threads)."""
        ...

    @property
    def description(self) -> str:
        """What runs the tasks, for the summary (``dask LocalCluster, 2 workers``)."""
        ...

    def submit(self, key: str, function: Callable[[Any], Any], argument: Any) -> None:
        """Run ``function(argument)`` as the task ``key`` (unique within the run)."""
        ...

    def wait(self, timeout: float | None) -> list[Finished]:
        """The tasks that finished since the last call, waiting up to ``timeout`` seconds for
        one (``[]`` when none did, or none is submitted)."""
        ...

    def close(self) -> None:
        """Cancel what still runs and release the cluster (a cluster it started, it stops)."""
        ...


class Actor(Protocol):
    """An object living on a worker (a pipeline run's shard engine): its methods are called from the
    driver, one call at a time."""

    def call(self, method: str, *args: Any) -> Any:
        """``method(*args)`` on the worker, waited for. Raises when the worker holding the
        object is lost (it died, or cannot be reached)."""
        ...

    def release(self) -> None:
        """Let the cluster forget the object (its worker may already be gone)."""
        ...


class ActorHost(Executor, Protocol):
    """An executor that can also keep long-lived objects on its workers (pipeline runs)."""

    def start_actor(self, factory: Callable[[Any], Any], argument: Any, place: int) -> Actor:
        """``factory(argument)`` made on a worker: the ``place``-th live worker (modulo their
        number), or another one if that one cannot take it."""
        ...


def dask_installed() -> bool:
    """Whether ``dask.distributed`` can be imported (it is imported to know: a run that asks
    for it imports it next anyway)."""
    try:
        import distributed  # noqa: F401  # lazy: the dask extra
    except ImportError:
        return False
    return True


def scheduler_address(spec: str) -> str | None:
    """The scheduler address of ``dask://HOST:PORT`` or ``tcp://HOST:PORT`` (as ``tcp://...``),
    ``None`` for another value."""
    match = _ADDRESS.fullmatch(spec.strip())
    if match is None:
        return None
    return f"tcp://{match['host']}:{match['port']}"


def executor_problem(spec: str) -> str | None:
    """Why ``--executor spec`` cannot be used, with a hint; ``None`` when it can."""
    name = spec.strip().lower()
    if name == "local":
        return None
    if name != "dask" and scheduler_address(spec) is None:
        return (
            f"--executor {spec[:60]!r} is not an executor. HINT: use local, dask (a local "
            "cluster of --workers processes) or the address of a running Dask scheduler, "
            "dask://HOST:PORT or tcp://HOST:PORT"
        )
    address = scheduler_address(spec)
    if address is not None and not 0 < int(address.rpartition(":")[2]) <= 65535:
        return (
            f"--executor {spec[:60]!r}: the port must be 1..65535. HINT: give the port the "
            "scheduler listens on (8786 unless it was started with another)"
        )
    if not dask_installed():
        return f"--executor {spec[:60]} needs Dask, which is not installed. HINT: {INSTALL_HINT}"
    return None
