"""Redirects under our rules, and the one loop both transports send a request through.

:func:`exchange` sends a request through a transport's :class:`Wire` (its HTTP library's side:
open a request, read the answer's head, complete or drop the answer) and follows redirects
itself, the libraries' own following being off: :func:`next_hop` decides each hop
(credentials never cross origins, no downgrade to plain HTTP with credentials, only http(s)
targets, method rules as browsers), at most ``max_redirects`` of them.

No message made here contains a header value, a credential query parameter, a URL query or
URL user info: those may be secrets, and messages end up in logs and result files.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from yarl import URL

from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind, Request
from fetchpipe._redact import public_url
from fetchpipe.engine.security import (
    SecurityPolicy,
    check_request_text,
    find_control_char,
    origin,
    without_params,
)
from fetchpipe.engine.transports.base import CancelCheck, RawResponse
from fetchpipe.engine.transports.default_headers import with_defaults

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


# --- the loop ---------------------------------------------------------------------------------


class Answer(Protocol):
    """A response of a transport's HTTP library, its head read."""

    @property
    def status(self) -> int: ...


R = TypeVar("R", bound=Answer)
C = TypeVar("C", contravariant=True)


class Wire(Protocol[R, C]):
    """A transport's side of :func:`exchange`. ``C`` is what the transport keeps for one send
    (its context: a timeout's watch, a start time), handed back to each call."""

    @property
    def security(self) -> SecurityPolicy: ...

    @property
    def credential_headers(self) -> Mapping[str, str]: ...

    def open(
        self, context: C, message: Request | Hop, headers: Mapping[str, str] | None
    ) -> AbstractAsyncContextManager[R]:
        """Send ``message`` (the request itself, then each redirect's hop) with ``headers``
        (in place of its own); the context manager gives the answer and releases it."""
        ...

    def location(self, context: C, answer: R) -> str | None:
        """The ``Location`` of an answer whose status is a redirect's (None: not given)."""
        ...

    async def complete(
        self, context: C, answer: R, method: str, url: str, max_body_size: int, cancel: CancelCheck
    ) -> RawResponse:
        """The final response, its body read within ``max_body_size`` (called as its head
        arrives, as :meth:`discard` is); a wire whose library can lose a cancel stops reading
        when ``cancel`` says that the task was asked to."""
        ...

    async def discard(self, context: C, answer: R) -> None:
        """Drop a redirect's body, reading a small one so that the connection can be reused."""
        ...

    def translate(self, exc: Exception) -> TransportError:
        """The library's error as fetchpipe's kind and message."""
        ...


async def exchange(
    wire: Wire[R, C], context: C, request: Request, max_body_size: int
) -> RawResponse:
    """Send ``request`` through ``wire`` and follow its redirects under the wire's policy.

    Control characters are refused before sending; the wire's credential headers are added to
    the request's own. Every error is a ``TransportError``. A cancel asked of the task while
    the request is in flight ends the send as ``CancelledError`` (never as a response or a
    ``TransportError``), also when the wire's library lost it (see
    :class:`~fetchpipe.engine.transports.base.CancelCheck`).
    """
    url = request.url
    headers = request.headers
    if headers or request.params or not url.isprintable():  # cheap on the hot path
        check_request_text(url, headers, request.params)
    if wire.credential_headers:
        headers = with_defaults(wire.credential_headers, headers)
    policy = wire.security
    cancel = CancelCheck()
    try:
        redirect: tuple[Hop, Hop] | None = None
        try:
            async with wire.open(context, request, headers) as answer:
                location = None
                if answer.status in REDIRECT_STATUSES and policy.max_redirects:
                    location = wire.location(context, answer)
                if location is None:
                    response = await wire.complete(
                        context, answer, request.method, url, max_body_size, cancel
                    )
                else:
                    first = first_hop(policy, request, headers)
                    redirect = (first, next_hop(policy, first, answer.status, location))
                    await wire.discard(context, answer)
        except Exception:
            if redirect is None:
                raise
            # A redirect body given up on may raise again as its answer is released (pyreqwest
            # does): the connection is dropped, the chain goes on.
        if redirect is not None:
            response = await _follow(wire, context, *redirect, max_body_size, cancel)
    except Exception as exc:
        cancel.raise_if_asked()  # the library's error after a cancel it lost: the cancel wins
        if isinstance(exc, TransportError):
            raise
        raise wire.translate(exc) from exc
    cancel.raise_if_asked()  # a response completed although a cancel came meanwhile
    return response


async def _follow(
    wire: Wire[R, C], context: C, first: Hop, hop: Hop, max_body_size: int, cancel: CancelCheck
) -> RawResponse:
    """Follow a redirect chain from ``hop``: at most ``max_redirects`` hops, within the
    request's total timeout, each hop's body released before the next one is sent (and no hop
    sent once the task was asked to cancel)."""
    policy = wire.security
    chain = [first.url, hop.url]
    for followed in range(1, policy.max_redirects + 1):
        cancel.raise_if_asked()
        following = False
        try:
            async with wire.open(context, hop, hop.headers) as answer:
                location = None
                if answer.status in REDIRECT_STATUSES:
                    location = wire.location(context, answer)
                if location is None:
                    return await wire.complete(
                        context, answer, hop.method, str(hop.url), max_body_size, cancel
                    )
                if followed == policy.max_redirects:
                    break
                hop = next_hop(policy, hop, answer.status, location)
                following = True
                await wire.discard(context, answer)
        except Exception:
            if not following:
                raise  # as in exchange(): a given-up redirect body only drops the connection
        chain.append(hop.url)
    raise too_many_redirects(policy, chain)


# --- the hops ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    """One request of a redirect chain. ``credentialed``: the original request carried
    credentials (a credential header or query parameter, or user info in the URL)."""

    method: str
    url: URL
    headers: Mapping[str, str] | None = None
    params: Mapping[str, Any] | None = None
    json: Any = None
    body: bytes | str | None = None
    credentialed: bool = False


def first_hop(policy: SecurityPolicy, request: Request, headers: Mapping[str, str] | None) -> Hop:
    """The original request as a redirect-chain hop (built only when a 3xx arrives);
    ``headers`` are the ones sent (with the transport's credential defaults)."""
    url = URL(request.url)
    credentialed = carries_credentials(policy, url, headers, request.params)
    return Hop(
        request.method.upper(),
        url,
        headers,
        request.params,
        request.json,
        request.body,
        credentialed,
    )


def time_left(start: float, now: float, total: float | None) -> float | None:
    """What is left of a request's total timeout across a redirect chain (None: no total);
    a TIMEOUT error once none is."""
    if total is None:
        return None
    left = total - (now - start)
    if left <= 0:
        raise TransportError(
            ErrorKind.TIMEOUT, f"timed out following redirects (total timeout {total:g} s)"
        )
    return left


def carries_credentials(
    policy: SecurityPolicy,
    url: URL,
    headers: Mapping[str, str] | None,
    params: Mapping[str, Any] | None,
) -> bool:
    """Whether a request sends secrets: credential headers or params, or URL user info."""
    if url.user is not None or url.password is not None:
        return True
    names = policy.all_credential_headers
    if headers and any(name.lower() in names for name in headers):
        return True
    wanted = policy.credential_params
    if wanted and params and any(str(name).lower() in wanted for name in params):
        return True
    return bool(wanted) and any(name.lower() in wanted for name in url.query)


def next_hop(policy: SecurityPolicy, hop: Hop, status: int, location: str) -> Hop:
    """The request that follows ``hop`` after a ``status`` redirect to ``location``.

    Raises ``TransportError(INVALID_REQUEST)`` when our rules forbid following it.
    Method rules as browsers and ``requests``: 303 (but HEAD), and 301/302 after a POST,
    become a GET without a body; otherwise method and body are kept (307/308 always).
    On any change of scheme, host or port the credentials stay behind.
    """
    target = _redirect_target(hop, location)
    if hop.url.scheme == "https" and target.scheme == "http" and hop.credentialed:
        raise TransportError(
            ErrorKind.INVALID_REQUEST,
            f"redirect from {public_url(hop.url)} to plain HTTP ({public_url(target)}) refused: "
            "the request carries credentials, which must not travel unencrypted. "
            "HINT: use the https:// URL the API documents, or ask its owner to fix the redirect.",
        )
    method, headers, json, body = hop.method, hop.headers, hop.json, hop.body
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, json, body = "GET", None, None
        headers = _without(headers, _CONTENT_HEADERS)
    if origin(target) != origin(hop.url):
        headers = _without(headers, policy.all_credential_headers | {"host"})
        target = without_params(target, policy.credential_params)
    return Hop(method, target, headers, None, json, body, hop.credentialed)


_CONTENT_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


def _redirect_target(hop: Hop, location: str) -> URL:
    """Resolve ``location`` against the current URL; refuse what is not a plain http(s) URL."""
    here = public_url(hop.url)
    if find_control_char(location) is not None:
        raise TransportError(
            ErrorKind.INVALID_REQUEST,
            f"redirect from {here} refused: its Location has a control character.",
        )
    try:
        target = hop.url.join(URL(location.strip()))
    except (ValueError, TypeError):
        target = None
    if target is None or target.scheme not in ("http", "https") or not target.host:
        scheme = location.split(":", 1)[0][:20] if ":" in location else ""
        if target is None:
            what = "something that is not a URL"
        elif target.scheme in ("http", "https"):
            what = "a URL without a host"
        elif scheme.isalnum():
            what = f"a {scheme.lower()!r} URL"
        else:
            what = "something that is not a URL"
        raise TransportError(
            ErrorKind.INVALID_REQUEST,
            f"redirect from {here} to {what} refused: only http and https are followed. "
            "HINT: fetch that location yourself if you really mean it.",
        )
    return target.with_fragment(None)


def _without(headers: Mapping[str, str] | None, names: Collection[str]) -> dict[str, str] | None:
    if not headers:
        return None
    return {k: v for k, v in headers.items() if k.lower() not in names}


def too_many_redirects(policy: SecurityPolicy, chain: list[URL]) -> TransportError:
    """The error for a chain longer than ``max_redirects``; lists the hops without queries.

    Kind OTHER, not INVALID_REQUEST: the request was fine, the server loops or chains too far
    (neither kind is retried).
    """
    hops = " -> ".join(public_url(url) for url in chain)
    return TransportError(
        ErrorKind.OTHER,
        f"too many redirects: stopped after {policy.max_redirects} (max_redirects): {hops}. "
        "HINT: request the final URL directly, or raise SecurityPolicy.max_redirects.",
    )
