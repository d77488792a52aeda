"""The shape of a JSON body, for guessing: its lists of objects, its scalar values, and the
path text a pipeline file names a place by. Pure functions.

Objects are walked key by key, never into lists (a list of objects is a candidate for the
records, and what is inside records is no page metadata), to a bounded depth, skipping keys
that no path can name (a control character in them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 6
"""How deep objects are walked: page metadata and records lists sit near the top."""

Segments = tuple[str, ...]

_DOTTED_SAFE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True, slots=True)
class ObjectList:
    """A list in the body whose items are all objects: where it is, its items, and whether it
    is a Relay connection's ``edges`` (each item ``{"node": {...}}``: the nodes are the
    records)."""

    at: Segments
    items: tuple[Mapping[str, Any], ...]
    relay: bool = False

    @property
    def path(self) -> str:
        """The ``records`` value that reads this list (its nodes, for Relay edges)."""
        if self.relay:
            return jsonpath(self.at) + "[*].node"
        return path_text(self.at)

    @property
    def records(self) -> list[dict[str, Any]]:
        if self.relay:
            return [dict(item["node"]) for item in self.items]
        return [dict(item) for item in self.items]


def path_text(at: Segments) -> str:
    """The dotted path of ``at`` (``data.items``; ``""``: the body), or a JSONPath query of
    names (``$["@odata.nextLink"]``) when a name has a dot or another character a dotted path
    cannot hold."""
    if all(_DOTTED_SAFE.match(name) for name in at):
        return ".".join(at)
    return jsonpath(at)


def jsonpath(at: Segments) -> str:
    """``at`` as a JSONPath query of name selectors (RFC 9535: JSON string escapes)."""
    return "$" + "".join(f"[{json.dumps(name, ensure_ascii=False)}]" for name in at)


def object_lists(body: Any) -> list[ObjectList]:
    """Every non-empty list of objects reachable through objects from the top (the body
    itself when it is one), in document order."""
    found: list[ObjectList] = []

    def visit(value: Any, at: Segments) -> None:
        if isinstance(value, list):
            if value and all(isinstance(item, Mapping) for item in value):
                relay = (
                    bool(at)
                    and at[-1] == "edges"
                    and all(isinstance(item.get("node"), Mapping) for item in value)
                )
                found.append(ObjectList(at, tuple(value), relay))
            return
        if isinstance(value, Mapping) and len(at) < MAX_DEPTH:
            for key, item in value.items():
                if _nameable(str(key)):
                    visit(item, (*at, str(key)))

    visit(body, ())
    return found


def empty_lists(body: Any) -> list[Segments]:
    """Where the body holds empty lists (an empty page: its records list is one of them)."""
    return [at for at, value in _walk(body) if isinstance(value, list) and not value]


def scalars(body: Any) -> Iterator[tuple[Segments, Any]]:
    """Each scalar value (text, number, true/false, null) in the body's objects, with where it
    is: page metadata such as ``meta.next_cursor`` or ``total``."""
    for at, value in _walk(body):
        if not isinstance(value, Mapping | list):
            yield at, value


def _walk(body: Any) -> Iterator[tuple[Segments, Any]]:
    def visit(value: Any, at: Segments) -> Iterator[tuple[Segments, Any]]:
        if at:
            yield at, value
        if isinstance(value, Mapping) and len(at) < MAX_DEPTH:
            for key, item in value.items():
                if _nameable(str(key)):
                    yield from visit(item, (*at, str(key)))

    yield from visit(body, ())


def _nameable(key: str) -> bool:
    """Whether a path can name this key: JSONPath (as python-jsonpath reads it) refuses a
    control character, even escaped, so what is under such a key is not looked at."""
    return not any(ord(c) < 0x20 or c == "\x7f" for c in key)


def normalized(name: str) -> str:
    """A key compared without case, ``_`` or ``-``: ``next_cursor``, ``nextCursor`` and
    ``Next-Cursor`` are all ``nextcursor``."""
    return re.sub(r"[_\-\s]", "", name).lower()


def looks_like_url(value: Any) -> bool:
    """An absolute http(s) URL, or a reference relative to the page (``/v1/x?page=2``,
    ``?page=2``)."""
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return False
    lowered = value.lower()
    return lowered.startswith(("http://", "https://", "/", "?"))
