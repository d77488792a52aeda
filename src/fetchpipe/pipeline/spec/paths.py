"""The small languages of a pipeline file, parsed and read without I/O: pure functions.

- A dotted path (``data.items``, ``results.0``; ``""`` is the whole value) into JSON data:
  ``records``, ``cursor_field``, ``include_parent``, the paginators' ``*_path`` keys.
  :func:`get_path` reads one, :data:`MISSING` when it is not there.
- A JSONPath query (RFC 9535), for ``records`` and the paginators' ``*_path`` keys: a value
  starting with ``$``, such as ``$.data.items[*].node``. :func:`compile_path` compiles either
  kind once (the model does, when it validates the file) into a :class:`BodyPath`, which
  reads every value a path matches (:meth:`BodyPath.values`) or the one value a cursor, a next
  URL or a total must be (:meth:`BodyPath.one`: several matches are :class:`ManyValues`, an
  error rather than a guess, because taking one of them could loop or skip pages silently).
- A URL template referring to the parent source's fields as ``{products.id}``:
  :func:`placeholders` parses one; the model checks it, the runtime renders it with records
  (:func:`fetchpipe.pipeline.runtime.records.render_url`). The string values of a ``json``
  body may hold the same placeholders (:func:`json_placeholders`), among other braces.

They live with the model, not the runtime, because the model checks a file written in them
(a template's parent, a placeholder's syntax, a query's syntax) and the model imports nothing
of the runtime.

JSONPath is `python-jsonpath <https://pypi.org/project/python-jsonpath/>`_ (2.2), in its
strict mode (RFC 9535 syntax only, so that a query means what the standard says). It was
chosen over ``jsonpath-rfc9535`` and ``jsonpath-ng`` on these figures (Python 3.11, the
RFC 9535 compliance test suite's 703 cases; ``$.data.items[*].node`` compiled once and run on
a page of 1,000 records, best of 5 runs of 50, on a shared 2-core machine; measured by
``tools/compare_jsonpath_libraries.py``):

======================================  ===========  ================  ===========
library                                 compliance   1,000 records     import
======================================  ===========  ================  ===========
python-jsonpath 2.2.2, strict           695 / 703    5.5 ms            80 ms
python-jsonpath 2.2.2, strict, [strict] 703 / 703    5.5 ms            80 ms
jsonpath-rfc9535 1.0.1                  703 / 703    2.3 ms            40 ms
jsonpath-ng 1.16.0 (``ext`` parser)     367 / 703    3.0 ms            33 ms
dotted ``data.items``, then ``node``    (no query)   0.03 ms           0
======================================  ===========  ================  ===========

``jsonpath-rfc9535`` is faster, but its maintained line (2.x) requires Python 3.12 and changed
its API; on 3.11, which fetchpipe supports, only the older 1.x line installs, so choosing it
meant two APIs or a pin to the old one. ``python-jsonpath`` has one line for Python 3.8 to
3.15, no dependencies, type hints (``py.typed``), and the same author keeps both libraries.
``jsonpath-ng`` predates RFC 9535 and fails half of its suite. Without the optional
``regex`` package (``python-jsonpath[strict]``), the 8 cases it fails are Unicode character
classes in the regular expressions of ``match()`` and ``search()``. One deviation the suite
does not catch (found by a property test): a name written with an escaped control character
(``$["\\u0007"]``) is refused as a syntax error, though RFC 9535 allows it. The 5.5 ms per 1,000
records are paid only by a source whose path starts with ``$``; a dotted path costs what it
did. The library is imported on first compiling a ``$`` path (start-up time: a pipeline
without JSONPath never loads it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
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


def with_value_at(data: Any, path: str, value: Any) -> Any:
    """A copy of ``data`` with ``value`` at dotted ``path``, whose parents must be objects (or
    lists, by index) in ``data``: KeyError otherwise. Only the containers on the path are
    copied (a cursor set in a request body leaves the source's body as it was)."""
    head, dot, rest = path.partition(".")
    copy: Any
    key: str | int
    if isinstance(data, Mapping) and (not dot or head in data):
        copy, key = dict(data), head
    elif isinstance(data, list) and _is_index(head) and -len(data) <= int(head) < len(data):
        copy, key = list(data), int(head)
    else:
        raise KeyError(path)
    copy[key] = with_value_at(copy[key], rest, value) if dot else value
    return copy


# --- JSONPath -------------------------------------------------------------------------------

_JSONPATH_HINT = (
    "HINT: a path starting with $ is a JSONPath query (RFC 9535), such as "
    "$.data.items[*].node or $['odd key'][0]; for a dotted path, leave out the $"
)


class PathSyntaxError(ValueError):
    """A ``$`` path that is not a JSONPath query: the message says what, where, and a fix."""


class ManyValues(ValueError):
    """A path that must give one value (a cursor, a next URL, a total) matched several."""

    def __init__(self, path: str, count: int) -> None:
        self.path = path
        self.count = count
        super().__init__(
            f"{path!r} matched {count} values where one is needed. HINT: narrow the query to "
            "one place (for instance [0] for the first match, or a name instead of * or ..)"
        )


def is_jsonpath(text: str) -> bool:
    """True when ``text`` is written as JSONPath (it starts with ``$``), not as a dotted path."""
    return text.startswith("$")


@dataclass(frozen=True, slots=True)
class BodyPath:
    """A compiled path into JSON data: a dotted path, or a JSONPath query.

    ``singular`` paths name at most one place (a dotted path, or a query of names and indices
    only: RFC 9535's singular query); the others (``*``, ``..``, slices, filters) may match
    any number of values.
    """

    text: str
    singular: bool = True
    query: Any = None
    """The compiled query (``jsonpath.JSONPath``), ``None`` for a dotted path."""

    def values(self, data: Any) -> list[Any]:
        """Every value the path matches in ``data``, in document order (none when absent)."""
        if self.query is None:
            found = get_path(data, self.text)
            return [] if found is MISSING else [found]
        if isinstance(data, str):  # the library would parse a string as a JSON document
            return [] if self.query.segments else [data]
        return list(self.query.findall(data))

    def one(self, data: Any) -> Any:
        """The value the path matches, :data:`MISSING` when none; :class:`ManyValues` when
        several (a non-singular query that matched more than one)."""
        if self.query is None:
            return get_path(data, self.text)
        found = self.values(data)
        if not found:
            return MISSING
        if len(found) > 1:
            raise ManyValues(self.text, len(found))
        return found[0]


@lru_cache(maxsize=1024)
def compile_path(text: str) -> BodyPath:
    """``text`` compiled: a dotted path, or (starting with ``$``) a JSONPath query.

    Raises :class:`PathSyntaxError` for a query that is not valid RFC 9535 JSONPath. Compiled
    paths are kept, so that the runtime finds compiled the paths the model checked.
    """
    if not is_jsonpath(text):
        return BodyPath(text)
    import jsonpath  # lazy: start-up time (80 ms), paid only by files that use JSONPath

    try:
        query = _environment().compile(text)
    except jsonpath.JSONPathError as exc:
        raise PathSyntaxError(
            f"{text!r} is not a JSONPath query: {exc.message}{_where(text, exc)}. " + _JSONPATH_HINT
        ) from None
    singular = getattr(query, "singular_query", None)
    return BodyPath(text, bool(singular()) if singular is not None else False, query)


def _where(text: str, exc: Any) -> str:
    index = getattr(exc.token, "index", None) if exc.token is not None else None
    if not isinstance(index, int) or index < 0 or index >= len(text):
        return " (at the end)"
    return f" (at character {index + 1}: {text[index:][:20]!r})"


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jsonpath  # lazy: start-up time

    return jsonpath.JSONPathEnvironment(strict=True)


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


_TEXT_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\.([^{}\s]+)\}")


def text_placeholders(text: str) -> list[Placeholder]:
    """The ``{source.field}`` placeholders in a string value of a ``json`` body, in order.

    Unlike a URL, a body's text may hold other braces (a GraphQL query is full of them): only
    ``{name.path}`` without spaces is a placeholder, the rest is left as written."""
    return [
        Placeholder(m.group(0), m.group(1), m.group(2)) for m in _TEXT_PLACEHOLDER.finditer(text)
    ]


def json_placeholders(value: Any) -> list[Placeholder]:
    """The placeholders in the string values (not the keys) of a ``json`` body, in order."""
    if isinstance(value, str):
        return text_placeholders(value)
    if isinstance(value, Mapping):
        return [p for item in value.values() for p in json_placeholders(item)]
    if isinstance(value, list):
        return [p for item in value for p in json_placeholders(item)]
    return []
