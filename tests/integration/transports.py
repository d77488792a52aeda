"""Running a test module on both transports: ``pytestmark = both_transports`` in the module,
and ``with_transport(options)`` where the module builds its ``Fetcher``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
