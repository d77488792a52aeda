"""Helpers shared by the fleet's handlers: JSON answers and checked query parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

JSON = "application/json"
N = TypeVar("N", int, float)


class BadParam(Exception):
    """A query or path parameter could not be used; answered with 400."""


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    body = None if status in (204, 304) else orjson.dumps(obj)
    return web.Response(body=body, status=status, headers=headers, content_type=JSON)


def int_param(request: web.Request, name: str, default: int, lo: int = 0, hi: int = 1 << 31) -> int:
    return _number_param(request, name, default, lo, hi, int, "an integer")


def float_param(
    request: web.Request, name: str, default: float, lo: float = 0.0, hi: float = 3600.0
) -> float:
    return _number_param(request, name, default, lo, hi, float, "a number")


def _number_param(
    request: web.Request,
    name: str,
    default: N,
    lo: N,
    hi: N,
    parse: Callable[[str], N],
    what: str,
) -> N:
    """The query parameter ``name`` read by ``parse``, within ``lo`` .. ``hi`` (nan is not)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise BadParam(f"{name} must be {what}") from None
    if not lo <= value <= hi:  # also rejects nan
        raise BadParam(f"{name} must be between {lo} and {hi}")
    return value
