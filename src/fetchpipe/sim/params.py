"""Helpers shared by the fleet's handlers: JSON answers and checked query parameters."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON = "application/json"


class BadParam(Exception):
    """A query or path parameter could not be used; answered with 400."""


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    body = None if status in (204, 304) else orjson.dumps(obj)
    return web.Response(body=body, status=status, headers=headers, content_type=JSON)


def int_param(request: web.Request, name: str, default: int, lo: int = 0, hi: int = 1 << 31) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise BadParam(f"{name} must be between {lo} and {hi}")
    return value


def float_param(
    request: web.Request, name: str, default: float, lo: float = 0.0, hi: float = 3600.0
) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadParam(f"{name} must be a number") from None
    if not lo <= value <= hi:  # also rejects nan
        raise BadParam(f"{name} must be between {lo} and {hi}")
    return value
