"""Fixtures shared by the integration tests."""

from tests.integration.transports import each_transport

__all__ = ["each_transport"]
