"""Reading request lists: one URL per line, or one JSON object per line.

Input is streamed, never held in memory as a whole. :class:`InputFile` reads it twice: once to
validate every line (so a bad line stops the run before any request is sent) and once to yield
the requests. Standard input is first spooled to a temporary file so it can be read twice.

Messages name the source and the line, and never echo header values (they may be secrets).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import urlsplit

import orjson
import yarl

from fetchpipe._exceptions import InputError
from fetchpipe._models import Request
from fetchpipe._redact import redact_url

STDIN_NAME = "<stdin>"
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
"""Standard input above this size is spooled to disk instead of memory."""

JSON_FIELDS = ("url", "method", "headers", "key", "params", "json")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SHOWN_MAX = 80
_SPACE = re.compile(r"\s")
# The common shape, accepted without parsing: scheme, a plain host name, port, path.
_PLAIN_URL = re.compile(
    r"(?i:https?)://[A-Za-z0-9._~-]+(?::(?P<port>[0-9]{1,5}))?(?:[/?#][^\s\x00-\x1f\x7f]*)?\Z"
)

_URL_HINT = "each line must be an absolute URL such as https://api.example.com/items?page=1"
_JSON_HINT = 'write one object per line, e.g. {"url": "https://api.example.com/x", "key": 1}'


class LineError(ValueError):
    """What is wrong with one line, and how to fix it; the caller adds where."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(f"{problem}. HINT: {hint}")
        self.problem = problem
        self.hint = hint


def shown_url(url: str) -> str:
    """``url`` as safe to print: redacted (credential parameters, password) and shortened."""
    url = redact_url(url)
    if len(url) > _SHOWN_MAX:
        url = url[: _SHOWN_MAX - 3] + "..."
    return url


def check_url(url: str) -> None:
    """Raise :class:`LineError` unless ``url`` is an absolute http(s) URL with a host."""
    plain = _PLAIN_URL.match(url)
    if plain is not None and (plain["port"] is None or int(plain["port"]) <= 65535):
        return
    if not url:
        raise LineError("the URL is empty", _URL_HINT)
    shown = shown_url(url)
    if _SPACE.search(url):
        raise LineError(f"{shown!r} contains whitespace", "percent-encode spaces in URLs as %20")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise LineError(f"{shown!r} is not a valid URL ({exc})", _URL_HINT) from None
    if scheme not in ("http", "https"):
        raise LineError(f"{shown!r} is not an http(s) URL", _URL_HINT)
    if not host:
        raise LineError(f"{shown!r} has no host", _URL_HINT)
    try:
        yarl.URL(url)
    except (ValueError, UnicodeError) as exc:
        raise LineError(f"{shown!r} is not a valid URL ({exc})", _URL_HINT) from None


def check_header(name: str, value: str) -> None:
    """Raise :class:`LineError` unless ``name: value`` is a valid HTTP header.

    The message names the header but never repeats its value.
    """
    if not _TOKEN.match(name):
        raise LineError(
            f"header name {name[:_SHOWN_MAX]!r} is not valid",
            "header names are letters, digits and !#$%&'*+-.^_`|~ only, e.g. 'Authorization'",
        )
    if any(c in value for c in "\r\n\0"):
        raise LineError(
            f"the value of header {name!r} contains a line break or NUL",
            "header values must be on one line",
        )


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` -> ``("Name", "value")``. Raises :class:`LineError`."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name:
        raise LineError("a header must look like 'Name: value'", "e.g. 'Authorization: Bearer ...'")
    value = value.strip()
    check_header(name, value)
    return name, value


def parse_rate(text: str) -> tuple[str, float]:
    """``"HOST=N"`` -> ``("host", N)``: at most N requests per second to HOST.

    HOST is a host name or a pattern such as ``*.example.com``. Raises :class:`LineError`.
    """
    host, sep, number = text.partition("=")
    host = host.strip().lower()
    hint = "write HOST=N, e.g. api.example.com=5 or '*.example.com=10' (N per second)"
    if not sep or not host:
        raise LineError(f"{text[:_SHOWN_MAX]!r} is not HOST=N", hint)
    if any(c in host for c in "/: "):
        raise LineError(f"{host[:_SHOWN_MAX]!r} is not a host name (no scheme or port)", hint)
    try:
        rate = float(number)
    except ValueError:
        raise LineError(f"{number.strip()[:_SHOWN_MAX]!r} is not a number", hint) from None
    if not (rate > 0 and rate != float("inf")):
        raise LineError(f"the rate for {host!r} must be a positive number, got {number!r}", hint)
    return host, rate


def _parse_object(text: str) -> Request:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"invalid JSON ({exc})", _JSON_HINT) from None
    if not isinstance(data, dict):
        raise LineError(f"a JSON line must be an object, got {type(data).__name__}", _JSON_HINT)
    unknown = sorted(set(data) - set(JSON_FIELDS))
    if unknown:
        raise LineError(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
            f"the fields are {', '.join(JSON_FIELDS)}",
        )
    url = data.get("url")
    if not isinstance(url, str):
        problem = "'url' is missing" if url is None else "'url' must be a string"
        raise LineError(problem, _JSON_HINT)
    check_url(url)
    method = data.get("method", "GET")
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise LineError("'method' must be an HTTP method such as GET or POST", _JSON_HINT)
    return Request(
        url=url,
        method=method.upper(),
        headers=_headers(data.get("headers")),
        params=_params(data.get("params")),
        json=data.get("json"),
        key=_key(data.get("key")),
    )


def _headers(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    hint = 'write "headers": {"Name": "value"} with string values'
    if not isinstance(value, dict):
        raise LineError("'headers' must be an object", hint)
    for name, item in value.items():
        if not isinstance(item, str):
            raise LineError(f"the value of header {name!r} must be a string", hint)
        check_header(name, item)
    return value


def _params(value: Any) -> dict[str, str | int | float] | None:
    if value is None:
        return None
    hint = 'write "params": {"page": 2, "q": "text"} with string or number values'
    if not isinstance(value, dict):
        raise LineError("'params' must be an object", hint)
    for name, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise LineError(f"param {name!r} must be a string or a number", hint)
    return value


def _key(value: Any) -> str | int | None:
    if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
        return value
    raise LineError("'key' must be a string or an integer", 'e.g. "key": "user-42" or "key": 42')


def parse_line(line: str) -> Request | None:
    """One input line -> a :class:`Request`, or ``None`` for a blank line or a ``#`` comment.

    Raises :class:`LineError` when the line is not a valid URL or JSON request.
    """
    text = line.strip()
    if not text or text[0] == "#":
        return None
    if text[0] == "{":
        return _parse_object(text)
    _check_plain(text)
    return Request(url=text)


def check_line(line: str) -> bool:
    """Validate one input line as :func:`parse_line` does; ``True`` when it holds a request."""
    text = line.strip()
    if not text or text[0] == "#":
        return False
    if text[0] == "{":
        _parse_object(text)
    else:
        _check_plain(text)
    return True


def _check_plain(text: str) -> None:
    if text[0] == "[":
        raise LineError("a JSON array is not a request", _JSON_HINT)
    check_url(text)


def _lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    for lineno, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                f"{name}:{lineno}: the line is not valid UTF-8. HINT: save the file as UTF-8"
            ) from None
        if lineno == 1:
            text = text.removeprefix("\ufeff")
        yield lineno, text


def iter_requests(lines: IO[bytes], name: str) -> Iterator[Request]:
    """Yield the requests in ``lines`` (bytes, UTF-8), one line at a time.

    Raises :class:`InputError` naming ``name`` and the line number at the first bad line.
    """
    for lineno, text in _lines(lines, name):
        try:
            request = parse_line(text)
        except LineError as exc:
            raise InputError(f"{name}:{lineno}: {exc}") from None
        if request is not None:
            yield request


def count_requests(lines: IO[bytes], name: str) -> int:
    """Validate every line and count the requests, without building them.

    Raises :class:`InputError` naming ``name`` and the line number at the first bad line.
    """
    count = 0
    for lineno, text in _lines(lines, name):
        try:
            if check_line(text):
                count += 1
        except LineError as exc:
            raise InputError(f"{name}:{lineno}: {exc}") from None
    return count


class InputFile:
    """A request list that can be read twice: :meth:`validate`, then :meth:`requests`."""

    def __init__(self, name: str, stream: IO[bytes], *, owned: bool = True) -> None:
        self.name = name
        self._stream = stream
        self._owned = owned

    @classmethod
    def open(cls, path: str, *, stdin: IO[bytes] | None = None) -> InputFile:
        """Open ``path``; ``-`` spools standard input (or ``stdin``) to a temporary file."""
        if path == "-":
            source = stdin if stdin is not None else sys.stdin.buffer
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY, mode="w+b")  # noqa: SIM115
            try:
                shutil.copyfileobj(source, spool, 1024 * 1024)
            except BaseException:
                spool.close()
                raise
            return cls(STDIN_NAME, spool)
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputError(
                f"{path}: cannot be read ({exc.strerror or exc}). "
                "HINT: give a file with one URL or JSON request per line, or - for stdin"
            ) from None
        return cls(path, stream)

    def validate(self) -> int:
        """Read every line and return the number of requests; raises :class:`InputError`."""
        self._stream.seek(0)
        return count_requests(self._stream, self.name)

    def requests(self) -> Iterator[Request]:
        """Yield the requests from the start of the input, one line at a time."""
        self._stream.seek(0)
        yield from iter_requests(self._stream, self.name)

    def close(self) -> None:
        if self._owned:
            self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
