"""What the runner needs of the engine that fetches its pages: the local
:class:`~fetchpipe.engine.fetcher.Fetcher`, or a run on a cluster
(:class:`~fetchpipe.distributed.cluster_stream.ClusterStream`).

An :data:`EngineFactory` is called with the Fetcher's keyword arguments (limits, retry,
breaker, timeouts, headers, transport, cache, security, proxy, tls, adaptive, state_dir) and
returns an :class:`Engine`: an async context manager whose ``stream(requests)`` yields one
result per request, and the figures the run's report reads after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

from fetchpipe._models import Request, Result
from fetchpipe.engine.politeness import HostRateReport


class SpentQuotas(Protocol):
    def spent(self) -> dict[str, str]:
        """Host -> why its requests were not sent, for each host whose quota is spent."""
        ...


class Engine(Protocol):
    """Fetches the run's requests; the runner reads the figures when the stream ends."""

    def stream(self, requests: AsyncIterable[Request]) -> AsyncIterator[Result]: ...

    @property
    def hosts_down(self) -> Mapping[str, int]: ...

    @property
    def retries_denied(self) -> int: ...

    @property
    def rate_limits(self) -> Mapping[str, HostRateReport]: ...

    @property
    def quotas(self) -> SpentQuotas | None: ...

    async def __aenter__(self) -> Engine: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


EngineFactory = Callable[..., Engine]
"""Makes the run's engine from the Fetcher's keyword arguments."""


def local_engine(**settings: Any) -> Engine:
    """The engine of a run in this process: a :class:`~fetchpipe.engine.fetcher.Fetcher`."""
    from fetchpipe.engine.fetcher import Fetcher

    return Fetcher(**settings)
