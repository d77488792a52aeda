"""The transport a name chooses (``_config.TRANSPORTS``), and whether it can run at all."""

from __future__ import annotations

import importlib.util
from typing import Unpack

from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.transports.base import Transport, TransportSettings


def open_transport(name: str, **settings: Unpack[TransportSettings]) -> Transport:
    """A new transport: ``"fast"`` on pyreqwest, any other name on aiohttp (the default)."""
    # lazy: only the chosen transport's module and HTTP library are loaded, when a Fetcher
    # opens (pyreqwest is an optional extra; importing the engine, or reading a pipeline file
    # to check or plan it, loads neither)
    if name == "fast":
        from fetchpipe.engine.transports.reqwest import ReqwestTransport

        return ReqwestTransport(**settings)
    from fetchpipe.engine.transports.aiohttp import AiohttpTransport

    return AiohttpTransport(**settings)


def fast_transport_problem(security: SecurityPolicy | None) -> str | None:
    """Why the fast (pyreqwest) transport cannot run with these settings, or None: checked
    before anything is sent."""
    if importlib.util.find_spec("pyreqwest") is None:
        return "the fast transport needs pyreqwest. HINT: pip install 'fetchpipe[fast]'"
    if security is not None and security.block_private:
        return (
            "the fast transport cannot apply block_private (pyreqwest has no hook to check the "
            "addresses a host resolves to). HINT: use the aiohttp transport with block_private"
        )
    return None
