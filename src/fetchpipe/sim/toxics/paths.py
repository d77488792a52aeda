"""Toxic URLs: ``/toxic/{name}[+{name}...]?key=k&times=1&...`` read into toxics and written back.

The path names the toxics, the query sets their fields; :func:`parse_toxics` and
:func:`toxic_path` are each other's inverse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fetchpipe.sim.toxics.values import TOXIC_TYPES, Toxic, ToxicError

MAX_STACK = 8
"""The most toxics one path may name."""
_BY_NAME: dict[str, type[Toxic]] = {cls.name: cls for cls in TOXIC_TYPES}


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _parse_statuses(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


_PARSERS: dict[str, Any] = {
    "latency": float,
    "jitter": float,
    "rate": int,
    "hang": float,
    "stage": str,
    "reset_after": int,
    "reset_delay": float,
    "truncate_after": int,
    "chunked": _parse_bool,
    "slice_size": int,
    "slice_delay": float,
    "statuses": _parse_statuses,
    "form": str,
    "delay": float,
    "status": int,
    "value": str,
    "times": int,
}
_REQUEST_PARAMS = frozenset({"key", "size"})


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _stack_classes(names: str) -> list[type[Toxic]]:
    parts = names.split("+")
    if len(parts) > MAX_STACK:
        raise ToxicError(f"at most {MAX_STACK} toxics per path")
    unknown = [p for p in parts if p not in _BY_NAME]
    if unknown:
        raise ToxicError(f"unknown toxic {unknown[0]!r}; known: {', '.join(sorted(_BY_NAME))}")
    if len(set(parts)) != len(parts):
        raise ToxicError("a toxic may appear only once per path")
    return [_BY_NAME[p] for p in parts]


def parse_toxics(names: str, query: Mapping[str, str]) -> tuple[Toxic, ...]:
    """The toxics of ``/toxic/{names}?{query}``: ``names`` joined by ``+``, fields as params.

    ``key`` and ``size`` belong to the request; any other unknown parameter is an error, so a
    typo never silently tests the wrong thing.
    """
    classes = _stack_classes(names)
    known = set(_REQUEST_PARAMS)
    for cls in classes:
        known.update(f.name for f in dataclasses.fields(cls))
    extra = sorted(set(query) - known)
    if extra:
        raise ToxicError(f"unknown parameter(s) for {names}: {', '.join(extra)}")
    stack: list[Toxic] = []
    for cls in classes:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in query:
                try:
                    kwargs[f.name] = _PARSERS[f.name](query[f.name])
                except ValueError:
                    raise ToxicError(f"{f.name}={query[f.name]!r} is not valid") from None
        stack.append(cls(**kwargs))
    return tuple(stack)


def toxic_path(*toxics: Toxic, key: str | None = None, size: int | None = None) -> str:
    """The path and query that select ``toxics`` (the inverse of :func:`parse_toxics`).

    ``times`` is one parameter for the whole path, so the toxics must agree on it.
    """
    if not toxics:
        raise ToxicError("give at least one toxic")
    _stack_classes("+".join(t.name for t in toxics))  # same rules as the parser
    if len({t.times for t in toxics}) > 1:
        raise ToxicError("toxics in one path share times; set it the same on each")
    params: dict[str, str] = {}
    for toxic in toxics:
        for f in dataclasses.fields(toxic):
            value = getattr(toxic, f.name)
            if value != f.default:
                params[f.name] = _render(value)
    if key is not None:
        params["key"] = key
    if size is not None:
        params["size"] = str(size)
    names = "+".join(t.name for t in toxics)
    return f"/toxic/{names}" + (f"?{urlencode(params)}" if params else "")
