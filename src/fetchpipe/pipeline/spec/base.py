"""What every block of a pipeline file's model is built on: a frozen pydantic model that
refuses unknown keys, and the field types the blocks share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class FrozenModel(BaseModel):
    """A block of a pipeline file: frozen, unknown keys refused, inputs kept out of errors (a
    value may be a secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


Text = Annotated[str, Field(min_length=1)]
"""Text that may not be empty."""
