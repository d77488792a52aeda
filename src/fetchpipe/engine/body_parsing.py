"""A response body as the request expects it: parsed JSON, text, or the bytes."""

from __future__ import annotations

from typing import Any

import orjson

from fetchpipe.engine.transports.base import RawResponse


def parse_body(response: RawResponse, expect: str, *, strict: bool) -> Any:
    """Parse the body as asked; ``strict`` raises ``ValueError`` for JSON that does not parse."""
    body = response.body
    if expect == "bytes":
        return body
    content_type = response.content_type
    if expect == "json" or (expect == "auto" and "json" in content_type):
        if not body:
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if strict:
                preview = body[:60].decode("utf-8", "replace")
                raise ValueError(
                    f"response is not valid JSON ({exc}); content type {content_type!r}, "
                    f"body starts {preview!r}"
                ) from None
            return body.decode("utf-8", "replace")
    if expect == "text" or content_type.startswith("text/") or not content_type:
        try:
            return body.decode(_charset(content_type), "replace")
        except (LookupError, ValueError):  # a codec that cannot decode bytes (idna, ...)
            return body.decode("utf-8", "replace")
    return body


def _charset(content_type: str) -> str:
    _, sep, rest = content_type.partition("charset=")
    if not sep:
        return "utf-8"
    name = rest.split(";", 1)[0].strip().strip('"') or "utf-8"
    try:
        b"".decode(name, "replace")
    except (LookupError, ValueError):
        return "utf-8"
    return name
