"""fetchpipe: fetch many HTTP/JSON APIs at once, politely and reliably, and land the records.

::

    import fetchpipe

    results = fetchpipe.fetch_all(["https://api.example.com/a", "https://api.example.com/b"])

    async with fetchpipe.Fetcher(limits=fetchpipe.Limits(max_concurrency=50)) as f:
        async for result in f.stream(urls):
            ...
"""

import typing as _typing

from fetchpipe import _lazy_names
from fetchpipe._config import HostLimits, Limits, Timeouts
from fetchpipe._exceptions import (
    ConfigError,
    FetchpipeError,
    InputError,
    SinkError,
    TransportError,
)
from fetchpipe._models import ErrorKind, Lane, Request, Result, Timings
from fetchpipe._models import Provenance as Source  # a result's origin: its name kept as it was
from fetchpipe._quota import Quota

__version__ = "0.1.0"

if _typing.TYPE_CHECKING:
    from fetchpipe.engine.aimd import AdaptivePolicy
    from fetchpipe.engine.breaker import BreakerPolicy
    from fetchpipe.engine.cache.http_cache import HttpCache
    from fetchpipe.engine.fetcher import Fetcher, RetryEvent, fetch_all, run
    from fetchpipe.engine.proxies import ProxyPolicy
    from fetchpipe.engine.retry import RetryPolicy, set_testing
    from fetchpipe.engine.security import SecurityPolicy
    from fetchpipe.engine.tls import TlsPolicy
    from fetchpipe.pipeline import Pipeline

# The engine loads aiohttp, yarl and sqlite3, pipelines pydantic and YAML: their names are
# imported on first use (PEP 562), so that ``import fetchpipe`` and the command line start fast.
# The settings, errors and models above need only light parts of the standard library.
_LAZY = {
    "AdaptivePolicy": "fetchpipe.engine.aimd",
    "BreakerPolicy": "fetchpipe.engine.breaker",
    "Fetcher": "fetchpipe.engine.fetcher",
    "HttpCache": "fetchpipe.engine.cache.http_cache",
    "Pipeline": "fetchpipe.pipeline",
    "ProxyPolicy": "fetchpipe.engine.proxies",
    "RetryEvent": "fetchpipe.engine.outcomes",
    "RetryPolicy": "fetchpipe.engine.retry",
    "SecurityPolicy": "fetchpipe.engine.security",
    "TlsPolicy": "fetchpipe.engine.tls",
    "fetch_all": "fetchpipe.engine.fetcher",
    "run": "fetchpipe.engine.fetcher",
    "set_testing": "fetchpipe.engine.retry",
}


def __getattr__(name: str) -> _typing.Any:
    return _lazy_names.load(globals(), _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AdaptivePolicy",
    "BreakerPolicy",
    "ConfigError",
    "ErrorKind",
    "Fetcher",
    "FetchpipeError",
    "HostLimits",
    "HttpCache",
    "InputError",
    "Lane",
    "Limits",
    "Pipeline",
    "ProxyPolicy",
    "Quota",
    "Request",
    "Result",
    "RetryEvent",
    "RetryPolicy",
    "SecurityPolicy",
    "SinkError",
    "Source",
    "Timeouts",
    "Timings",
    "TlsPolicy",
    "TransportError",
    "__version__",
    "fetch_all",
    "run",
    "set_testing",
]
