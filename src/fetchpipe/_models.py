"""Values that flow through the engine: what to fetch (Request) and what came back (Result)."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import unquote_plus

from fetchpipe._redact import url_shape

Expect = Literal["auto", "json", "text", "bytes"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class ErrorKind(enum.StrEnum):
    """Why a request failed. The retry policy decides on these, the summary groups by them."""

    CONNECT = "connect"  # could not open a connection (refused, DNS, unreachable)
    TLS = "tls"  # the server's TLS certificate cannot be verified: not retried
    TIMEOUT = "timeout"  # connect, read or total timeout of one attempt
    RESET = "reset"  # connection reset or closed by the server before a full response
    TRUNCATED = "truncated"  # body shorter than announced, or chunked encoding cut off
    HTTP_STATUS = "http_status"  # the server answered with an error status
    RATE_LIMITED = "rate_limited"  # Retry-After beyond the policy's retry_after_max
    BODY_TOO_LARGE = "body_too_large"  # decoded body over max_body_size
    INVALID_JSON = "invalid_json"  # JSON was expected and the body is not JSON
    DEADLINE = "deadline"  # the request's overall deadline passed
    HOST_DOWN = "host_down"  # the host's circuit breaker is open: not sent (or not retried)
    INVALID_REQUEST = "invalid_request"  # the request itself cannot be sent (bad URL, ...)
    NOT_CACHED = "not_cached"  # offline, and the cache holds nothing for this request
    QUOTA_EXHAUSTED = "quota_exhausted"  # the host's quota (per hour/day/month) is spent: not sent
    OTHER = "other"  # anything else; the message says what


class Provenance(enum.StrEnum):
    """Where a result's response came from (``Result.source``).

    Public as ``fetchpipe.Source``, its name before ``Source`` came to mean a pipeline's source.
    """

    NETWORK = "network"  # fetched (or failed) over the network
    CACHE = "cache"  # a fresh cached response: nothing was sent
    REVALIDATED = "revalidated"  # the server answered 304 Not Modified: the stored body
    STALE = "stale"  # the refresh failed; a stale stored response answered instead


def with_headers(headers: Mapping[str, str] | None, added: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with ``added`` set, each replacing any case variant of its name
    (a lane's credential, an authenticator's ``Authorization``)."""
    names = {name.lower() for name in added}
    out = {k: v for k, v in (headers or {}).items() if k.lower() not in names}
    out.update(added)
    return out


@dataclass(frozen=True, slots=True)
class Lane:
    """One of the credentials a request may be sent with: a *lane* of its host.

    ``label`` names it without a secret (``tokens[1]``), stably from run to run: the engine
    keys the credential's limits, pauses and quota by it, and shows only it. ``headers`` and
    ``params`` are what the engine adds to the request when it sends it on this lane: opaque
    values it never logs, stores or shows (``repr`` shows their names only).
    """

    label: str
    headers: Mapping[str, str] | None = None
    params: Mapping[str, str | int | float] | None = None

    def __repr__(self) -> str:
        headers = ", ".join(sorted(self.headers or {}))
        params = ", ".join(sorted(self.params or {}))
        return f"Lane({self.label!r}, headers=[{headers}], params=[{params}])"

    def applied(self, request: Request) -> Request:
        """``request`` with this lane's headers (replacing any case variant) and params
        (replacing any of the same name in its URL's query: see :func:`without_query_params`)."""
        headers = with_headers(request.headers, self.headers or {})
        params = dict(request.params or {})
        url = request.url
        if self.params:
            params.update(self.params)
            url = without_query_params(url, self.params.keys())
        return replace(request, url=url, headers=headers or None, params=params or None)


def without_query_params(
    url: str, names: Collection[str], values: Collection[str] | None = None
) -> str:
    """``url`` without the query pairs called one of ``names`` (a name as a server reads it:
    percent-decoded, ``+`` as a space), with ``values``: only those holding one of them (read
    the same way); the rest of it as it was, character for character.

    How a credential sent as a query parameter replaces one the URL already carries: a
    next-page link that the server built from the request's own query keeps the API key the
    request was sent with, and with the key added again it would go twice
    (``?api_key=K&page=2&api_key=K``, which some APIs refuse), or two keys at once when the next
    page goes on another lane. With ``values``, how a link to another origin loses the key
    that it copied from the request (credentials never go there), and keeps a key of its own.
    Written here rather than with :func:`urllib.parse.parse_qsl`: writing a parsed query again
    would re-encode the pairs that stay."""
    if "?" not in url:
        return url
    rest, hash_mark, fragment = url.partition("#")
    base, _, query = rest.partition("?")
    pairs = query.split("&")
    kept = [pair for pair in pairs if not _named(pair, names, values)]
    if len(kept) == len(pairs):
        return url
    return base + ("?" + "&".join(kept) if kept else "") + hash_mark + fragment


def _named(pair: str, names: Collection[str], values: Collection[str] | None) -> bool:
    name, _, value = pair.partition("=")
    return unquote_plus(name) in names and (values is None or unquote_plus(value) in values)


@dataclass(frozen=True)
class Request:
    """One request to fetch. A plain URL string is accepted wherever a Request is.

    ``key`` is yours: it comes back on the result so you can match them up.
    ``retry`` forces retries on (or off); by default only idempotent methods are retried.
    ``expect`` says how to read the body: ``auto`` parses JSON when the content type says so.
    ``lanes``: several credentials the request may go with (an API that limits per token): the
    engine sends it on one whose limits let it start then, each lane paced on its own.
    """

    url: str
    method: str = "GET"
    headers: Mapping[str, str] | None = None
    params: Mapping[str, str | int | float] | None = None
    json: Any = None
    body: bytes | str | None = None
    key: str | int | None = None
    retry: bool | None = None
    expect: Expect = "auto"
    lanes: tuple[Lane, ...] | None = None

    @classmethod
    def of(cls, url: str) -> Request:
        """``Request(url)`` with every default, made fast for the engine's hot path.

        Not slotted on purpose: the defaults live on the class, so a plain-URL request only
        needs its ``url`` set (a frozen dataclass ``__init__`` sets every field one by one).
        """
        request = object.__new__(cls)
        object.__setattr__(request, "url", url)
        return request

    def __repr__(self) -> str:
        """Without a secret: header and parameter names but not their values, and the URL
        without its query values or password (a repr may end up in a log or a traceback)."""
        parts = [f"url={url_shape(self.url)!r}"]
        if self.method != "GET":
            parts.append(f"method={self.method!r}")
        if self.headers:
            parts.append(f"headers=[{', '.join(sorted(self.headers))}]")
        if self.params:
            parts.append(f"params=[{', '.join(sorted(self.params))}]")
        if self.key is not None:
            parts.append(f"key={self.key!r}")
        if self.lanes:
            parts.append(f"lanes=[{', '.join(lane.label for lane in self.lanes)}]")
        return f"Request({', '.join(parts)})"

    @property
    def retryable_method(self) -> bool:
        if self.retry is not None:
            return self.retry
        return self.method.upper() in IDEMPOTENT_METHODS


@dataclass(slots=True)
class Timings:
    """Monotonic clock readings (seconds, ``loop.time()``) for one request.

    ``queued``: entered the engine's buffer; ``started``: first attempt began;
    ``first_byte``: headers of the last attempt arrived; ``done``: result ready.
    """

    queued: float = 0.0
    started: float = 0.0
    first_byte: float = 0.0
    done: float = 0.0

    @property
    def elapsed(self) -> float:
        """Seconds from the first attempt to the result, waits between attempts included."""
        return max(0.0, self.done - self.started) if self.started else 0.0

    @property
    def waited(self) -> float:
        """Seconds spent in the engine's queue before the first attempt."""
        return max(0.0, self.started - self.queued) if self.started else 0.0


@dataclass(slots=True)
class Result:
    """What came back for one request: a value, never an exception.

    ``body`` is parsed JSON, ``str`` or ``bytes`` (see ``Request.expect``), or ``None``.
    ``error`` and ``error_message`` are set when ``ok`` is false. ``source`` says whether the
    response came from the network or the cache (see ``Provenance``); a stale answer keeps the
    refresh's failure in ``error_message``.
    """

    request: Request
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    attempts: int = 0
    error: ErrorKind | None = None
    error_message: str | None = None
    timings: Timings = field(default_factory=Timings)
    source: Provenance = Provenance.NETWORK
    final_url: str | None = None
    """The URL that answered, after redirects (None when no response came, or from a cache)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def url(self) -> str:
        return self.request.url

    @property
    def key(self) -> str | int | None:
        return self.request.key

    @property
    def elapsed(self) -> float:
        return self.timings.elapsed

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)
