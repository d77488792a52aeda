"""The output files of ``fetchpipe fetch``: one :class:`Sink` protocol, a JSONL and a DuckDB sink.

Every sink writes the same record per result (see :func:`record`); :func:`.factory.open_sink`
picks the implementation from the file extension, and :mod:`.resume` reads back what a file
holds, for ``fetch --resume``. Records never hold credentials: API-key query parameters, URL
passwords and a URL's user name given alone are replaced (see
:func:`fetchpipe._redact.redact_url`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from fetchpipe._models import Result
from fetchpipe._redact import redact_text, redact_url

COLUMNS = (
    "url",
    "method",
    "key",
    "status",
    "ok",
    "attempts",
    "error",
    "error_message",
    "elapsed",
    "body",
    "body_encoding",
    "fetched_at",
    "source",
)
"""The fields of every record, in order. ``source`` is ``network``, ``cache``, ``revalidated``
or ``stale`` (see :class:`fetchpipe.Source`); it came last so older tables gain it at the end."""

EXTENSIONS = (".jsonl", ".duckdb")


class Sink(Protocol):
    """Receives results one at a time. ``open`` before the first ``write``; ``close`` flushes.

    Errors raise :class:`fetchpipe.SinkError` with a message saying what went wrong.
    """

    def open(self) -> None: ...

    def write(self, result: Result) -> None: ...

    def close(self) -> None: ...


def _content_type(headers: Mapping[str, str]) -> str:
    value = headers.get("Content-Type") or headers.get("content-type")
    if value is None:
        for name, item in headers.items():
            if name.lower() == "content-type":
                return item.lower()
        return ""
    return value.lower()


def encode_body(result: Result) -> tuple[Any, str | None]:
    """``(body, body_encoding)`` as stored: parsed JSON as is (``json``), text as a string
    (``text``), bytes as a base64 string (``base64``); ``(None, None)`` without a body.
    """
    body = result.body
    if body is None:
        return None, None
    if isinstance(body, bytes | bytearray | memoryview):
        return base64.b64encode(body).decode("ascii"), "base64"
    if isinstance(body, str):
        expect = result.request.expect
        is_json = expect == "json" or (expect == "auto" and "json" in _content_type(result.headers))
        return body, "json" if is_json else "text"
    return body, "json"


_clock: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The current UTC time in ISO 8601, with milliseconds (formatted once per millisecond)."""
    global _clock
    millis = time.time_ns() // 1_000_000
    cached, text = _clock
    if millis != cached:
        moment = datetime.fromtimestamp(millis / 1000, UTC)
        text = moment.isoformat(timespec="milliseconds")
        _clock = (millis, text)
    return text


def record(result: Result, fetched_at: str | None = None) -> dict[str, Any]:
    """The stored form of ``result``: one value per name in :data:`COLUMNS`.

    The URL and the error message are redacted (see :mod:`fetchpipe._redact`); the body is the
    server's, as sent.
    """
    body, encoding = encode_body(result)
    message = result.error_message
    return {
        "url": redact_url(result.url),
        "method": result.request.method,
        "key": result.key,
        "status": result.status,
        "ok": result.ok,
        "attempts": result.attempts,
        "error": None if result.error is None else result.error.value,
        "error_message": None if message is None else redact_text(message),
        "elapsed": round(result.elapsed, 6),
        "body": body,
        "body_encoding": encoding,
        "fetched_at": fetched_at or utc_now(),
        "source": result.source.value,
    }


def encode_record(result: Result, fetched_at: str | None = None) -> bytes:
    """:func:`record` as one line of JSON, newline included."""
    data = record(result, fetched_at)
    try:
        return orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # Lone surrogates in text, integers beyond 64 bits, ...: the standard library copes.
        text = json.dumps(data, ensure_ascii=False, default=str)
        return text.encode("utf-8", "replace") + b"\n"


__all__ = [
    "COLUMNS",
    "EXTENSIONS",
    "Sink",
    "encode_body",
    "encode_record",
    "record",
    "utc_now",
]
