from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import fetchpipe
from fetchpipe.engine import retry
from fetchpipe.sim import Fleet


@pytest.fixture(autouse=True)
def _testing_mode() -> Iterator[None]:
    """Backoff waits are zero in tests unless a test switches testing mode off."""
    previous = retry.is_testing()
    fetchpipe.set_testing(True)
    yield
    fetchpipe.set_testing(previous)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    """Three simulated hosts (127.0.0.1-3) on one port, counting what they receive."""
    async with Fleet(hosts=3, minute=0.01) as running:
        yield running
