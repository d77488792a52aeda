"""Running a test module on both transports: ``pytestmark = both_transports`` in the module,
``with_transport(options)`` or ``transport=current()`` where the module builds its ``Fetcher``,
``on_transport(config)`` where it builds a pipeline, and ``opened(...)`` where it drives a
transport directly.

The integration modules that send nothing through a transport run once: test_sim and
test_sim_shop (the simulated servers), test_sinks and test_pipeline_load (writers), test_toxics'
server, test_pipeline_auth (credentials and the OAuth2 token client, which has an aiohttp
session of its own whatever the transport), test_bench_cache (aiohttp-client-cache against
fetchpipe's cache, as the bench compares them) and test_bench_scenarios (the benchmarks' code
paths, each on the transport its scenario chooses).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from yarl import URL

from fetchpipe import Limits, Request, Timeouts, TransportError
from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.transports.aiohttp import AiohttpTransport
from fetchpipe.engine.transports.base import RawResponse, Transport

MiB = 1024 * 1024

CURRENT = {"name": "aiohttp"}


@pytest.fixture(params=["aiohttp", "fast"])
def each_transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test runs once per transport (fast: only when pyreqwest is installed)."""
    if request.param == "fast":
        pytest.importorskip("pyreqwest")
    CURRENT["name"] = request.param
    yield request.param
    CURRENT["name"] = "aiohttp"


both_transports = pytest.mark.usefixtures("each_transport")


def with_transport(options: dict[str, object]) -> dict[str, object]:
    """``options`` for a Fetcher, on the transport of the current run unless one is given."""
    options.setdefault("transport", CURRENT["name"])
    return options


def on_fast() -> bool:
    return CURRENT["name"] == "fast"


def current() -> str:
    """The transport of the current run."""
    return CURRENT["name"]


def on_transport(config: dict[str, Any]) -> dict[str, Any]:
    """A pipeline file's contents, on the transport of the current run unless they name one."""
    defaults = {"transport": CURRENT["name"], **config.get("defaults", {})}
    return {**config, "defaults": defaults}


def only_on(name: str, reason: str) -> None:
    """Skip the current run unless it is on transport ``name``; ``reason`` says why."""
    if CURRENT["name"] != name:
        pytest.skip(f"{name} transport only: {reason}")


@contextlib.asynccontextmanager
async def opened(security: SecurityPolicy | None = None, **options: Any) -> AsyncIterator[Any]:
    """The current run's transport, with ``Limits()`` and a 10 s total timeout unless given."""
    settings: dict[str, Any] = {
        "limits": options.pop("limits", Limits()),
        "timeouts": options.pop("timeouts", Timeouts(total=10)),
        "security": security,
        **options,
    }
    transport: Transport
    if on_fast():
        from fetchpipe.engine.transports.reqwest import ReqwestTransport

        transport = ReqwestTransport(**settings)
    else:
        transport = AiohttpTransport(**settings)
    try:
        yield transport
    finally:
        await transport.close()


async def send(
    transport: Transport,
    request: Request | str | URL,
    *,
    max_body_size: int = 64 * MiB,
    total_timeout: float | None = None,
) -> RawResponse:
    """One request straight through ``transport`` (a URL: a plain GET)."""
    if not isinstance(request, Request):
        request = Request(str(request))
    return await transport.send(request, total_timeout=total_timeout, max_body_size=max_body_size)


async def failure(
    transport: Transport, request: Request | str | URL, **options: Any
) -> TransportError:
    """The ``TransportError`` that sending ``request`` raises (the test fails if none)."""
    with pytest.raises(TransportError) as caught:
        await send(transport, request, **options)
    return caught.value
