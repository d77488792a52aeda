from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import fetchpipe
from fetchpipe.engine import retry
from fetchpipe.engine.proxies import PROXY_VARIABLES
from fetchpipe.sim import Fleet

FLEET_DEFAULTS: dict[str, Any] = {"hosts": 3, "minute": 0.01}

# The proxy variables of the shell that runs the tests would send the tests' loopback requests
# (and the CLI's, in the subprocesses that inherit this environment) through that proxy: the
# tests that use a proxy set their own.
for _name in PROXY_VARIABLES:
    os.environ.pop(_name, None)
    os.environ.pop(_name.upper(), None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fleet(hosts=3, minute=0.01): the shape of the simulated fleet that the `fleet` and "
        "`fleet_in_thread` fixtures start (on a test, or on a module with pytestmark)",
    )


@pytest.fixture(autouse=True)
def _testing_mode() -> Iterator[None]:
    """Backoff waits are zero in tests unless a test switches testing mode off."""
    previous = retry.is_testing()
    fetchpipe.set_testing(True)
    yield
    fetchpipe.set_testing(previous)


def _marked_fleet(request: pytest.FixtureRequest) -> Fleet:
    """A fleet of the shape the nearest ``fleet`` mark asks for (the test's, else its
    module's), three hosts and 1 minute = 10 ms where nothing is marked."""
    marker = request.node.get_closest_marker("fleet")
    if marker is not None and marker.args:
        raise TypeError("pytest.mark.fleet takes keywords only: fleet(hosts=..., minute=...)")
    return Fleet(**{**FLEET_DEFAULTS, **(marker.kwargs if marker else {})})


@pytest.fixture
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    """Simulated hosts (127.0.0.1, .2, ...) on one port, counting what they receive, served on
    the test's event loop. ``@pytest.mark.fleet(hosts=N, minute=S)`` sets their number and the
    simulated minute."""
    async with _marked_fleet(request) as running:
        yield running


@pytest.fixture
def fleet_in_thread(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    """The same fleet served on an event loop of its own in a thread, for blocking clients
    (urllib, ``fetch_all``, the benchmarks' measures) and for code that runs its own loop."""
    with _marked_fleet(request).running_in_thread() as running:
        yield running
