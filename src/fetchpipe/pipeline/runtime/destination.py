"""The run's destination, and the one thread that calls it.

A DuckDB connection is used from one thread; every call of the runner's parts on the
destination (open, commit, apply, close) goes through :meth:`DestinationThread.call`, so that
the event loop never waits on the database and the calls keep their order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from fetchpipe.destinations.pipelines import Destination

T = TypeVar("T")


class DestinationThread:
    """A destination with the one thread that uses its database connection."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "fetchpipe-load")

    async def call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a call of the destination on its thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)
