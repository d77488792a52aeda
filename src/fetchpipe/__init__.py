"""fetchpipe: fetch many HTTP/JSON APIs at once, politely and reliably, and land the records.

::

    import fetchpipe

    results = fetchpipe.fetch_all(["https://api.example.com/a", "https://api.example.com/b"])

    async with fetchpipe.Fetcher(limits=fetchpipe.Limits(max_concurrency=50)) as f:
        async for result in f.stream(urls):
            ...
"""

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
from fetchpipe.engine.cache.http_cache import HttpCache
from fetchpipe.engine.retry import RetryPolicy, set_testing
from fetchpipe.pipeline import Pipeline

__version__ = "0.1.0"

__all__ = [
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
