"""The two small languages of a pipeline file, parsed and read without I/O: pure functions.

- A dotted path (``data.items``, ``results.0``; ``""`` is the whole value) into JSON data:
  ``records``, ``cursor_field``, ``include_parent``, the paginators' ``*_path`` keys.
  :func:`get_path` reads one, :data:`MISSING` when it is not there.
- A URL template referring to the parent source's fields as ``{products.id}``:
  :func:`placeholders` parses one; the model checks it, the runtime renders it with records
  (:func:`fetchpipe.pipeline.runtime.records.render_url`).

They live with the model, not the runtime, because the model checks a file written in them
(a template's parent, a placeholder's syntax) and the model imports nothing of the runtime.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Returned by :func:`get_path` when the path is not in the data."""


def describe(value: Any) -> str:
    """What kind of JSON value ``value`` is, for messages: "a string", "an object", ..."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else f"a {type(value).__name__}"


def get_path(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data`` (numeric parts index lists), else ``MISSING``."""
    if path == "":
        return data
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list) and _is_index(part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def _is_index(part: str) -> bool:
    return part.isdigit() or (part.startswith("-") and part[1:].isdigit())


# --- URL templates ----------------------------------------------------------------------------

_BRACES = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.([^{}\s]+)\Z")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """``{products.id}`` in a URL template: the parent source and the field path in its record."""

    text: str
    source: str
    field: str


def placeholders(template: str) -> list[Placeholder]:
    """The ``{source.field}`` placeholders of a URL template, in order.

    Raises ValueError for braces that are not a placeholder (``{id}``, an unclosed ``{``).
    """
    found = []
    for match in _BRACES.finditer(template):
        inner = _PLACEHOLDER.match(match.group(1))
        if inner is None:
            raise ValueError(
                f"{match.group(0)} is not a parent reference. "
                "HINT: write {source.field}, as in {products.id}"
            )
        found.append(Placeholder(match.group(0), inner.group(1), inner.group(2)))
    leftover = _BRACES.sub("", template)
    if "{" in leftover or "}" in leftover:
        raise ValueError("has an unmatched { or }")
    return found


def parents_of(template: str) -> list[str]:
    """The sources a URL template refers to, each once, in order of appearance."""
    return list(dict.fromkeys(p.source for p in placeholders(template)))
