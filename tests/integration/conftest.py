"""Fixtures shared by the integration tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.per_token_api import PerTokenApi, serving
from tests.integration.transports import each_transport

__all__ = ["certificate", "each_transport", "per_token_api"]


@pytest.fixture
async def per_token_api() -> AsyncIterator[tuple[PerTokenApi, str]]:
    """An API on 127.0.0.1 that limits each bearer token on its own, and its base URL."""
    state = PerTokenApi()
    async with serving(state) as base:
        yield state, base


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
