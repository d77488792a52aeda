"""fetchpipe: fetch many HTTP/JSON APIs at once, politely and reliably, and land the records.

::

    import fetchpipe

    results = fetchpipe.fetch_all(["https://api.example.com/a", "https://api.example.com/b"])

    async with fetchpipe.Fetcher(limits=fetchpipe.Limits(max_concurrency=50)) as f:
        async for result in f.stream(urls):
            ...
"""

import typing as _typing

from fetchpipe._config import HostLimits, Limits, Timeouts
from fetchpipe._exceptions import (
    ConfigError,
    FetchpipeError,
    InputError,
    SinkError,
    TransportError,
)
from fetchpipe._fetcher import Fetcher, RetryEvent, fetch_all, run
from fetchpipe._models import ErrorKind, Request, Result, Source, Timings
from fetchpipe.engine.breaker import BreakerPolicy
from fetchpipe.engine.cache.http_cache import HttpCache
from fetchpipe.engine.retry import RetryPolicy, set_testing
from fetchpipe.engine.security import SecurityPolicy

__version__ = "0.1.0"

if _typing.TYPE_CHECKING:
    from fetchpipe.pipeline import Pipeline


def __getattr__(name: str) -> _typing.Any:
    # Pipelines load pydantic and YAML: imported on first use, so that the engine alone stays
    # light in memory and start-up time.
    if name == "Pipeline":
        from fetchpipe.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'fetchpipe' has no attribute {name!r}")


__all__ = [
    "BreakerPolicy",
    "ConfigError",
    "ErrorKind",
    "Fetcher",
    "FetchpipeError",
    "HostLimits",
    "HttpCache",
    "InputError",
    "Limits",
    "Pipeline",
    "Request",
    "Result",
    "RetryEvent",
    "RetryPolicy",
    "SecurityPolicy",
    "SinkError",
    "Source",
    "Timeouts",
    "Timings",
    "TransportError",
    "__version__",
    "fetch_all",
    "run",
    "set_testing",
]
