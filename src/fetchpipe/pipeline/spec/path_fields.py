"""The field types of a pipeline file's paths into a response body: a dotted path or a JSONPath
query, compiled once at validation so that a bad query is its field's problem (file:line)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from fetchpipe.pipeline.spec.paths import compile_path


def _body_path(value: str) -> str:
    compile_path(value)  # compiled once, here; a bad $ query is this field's problem
    return value


BodyPathText = Annotated[str, AfterValidator(_body_path)]
"""A dotted path (``data.items``) or, starting with ``$``, a JSONPath query (RFC 9535)."""
PathText = Annotated[
    BodyPathText,
    Field(
        min_length=1,
        description="A dotted path (meta.next_cursor) or a JSONPath query starting with $ "
        "that matches one value.",
    ),
]
