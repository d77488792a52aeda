"""What every block of a pipeline file's model is built on: a frozen pydantic model that
refuses unknown keys, and the field types the blocks share."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class FrozenModel(BaseModel):
    """A block of a pipeline file: frozen, unknown keys refused, inputs kept out of errors (a
    value may be a secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


Text = Annotated[str, Field(min_length=1)]
"""Text that may not be empty."""


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL. HINT: write https://host/path")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An absolute http(s) URL."""
