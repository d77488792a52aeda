"""A response as the guesses see it: a frozen value, built by the probe or by a test."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Response:
    """The URL that answered (after redirects), its status, its headers (any mapping; looked
    up without case where it matters) and its parsed JSON body."""

    url: str
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
