"""Pagination without I/O: objects that say which request comes next, given a response.

The runtime drives one paginator per source run (per parent record for a child source)::

    paginator = paginator_for(source.paginate, url, params, body=..., allow_cross_origin=...)
    pending = [paginator.first()]
    while pending:
        request = pending.pop()                     # or send them all at once
        response = send(request)                    # the runtime's I/O: auth only if
        records = extract_records(...)              #   request.send_credentials
        pending += paginator.next(Page(request, response.url, response.headers,
                                       response.body, len(records)))

:meth:`Paginator.next` returns no request (the last page), one (pages follow one another) or,
once, every remaining page when the first response tells the total (``total_pages_path``,
``total_path``): those may be fetched in parallel. A request's ``params`` are the complete
query parameters to send; next-page links carry theirs in the URL. Every page carries the
source's ``json`` body (``body``); a cursor may be sent in it or in a header instead of the
query (``location``). With ``has_more_path`` a response whose value there is false, null or
missing is the last page, whatever else it says. A link to another origin (scheme, host, port)
raises :class:`PaginationError` unless cross-origin links are allowed; then
``send_credentials`` is false for it (and a request with a body is not sent there). A repeated
cursor or link raises too (a loop).

The ``*_path`` keys are dotted paths or JSONPath queries, compiled when the file was validated
(:func:`~fetchpipe.pipeline.spec.paths.compile_path`); a query that matches several values
where one is needed raises :class:`PaginationError` rather than pick one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from fetchpipe._exceptions import FetchpipeError
from fetchpipe.engine.security import origin
from fetchpipe.pipeline.runtime.link_header import next_link
from fetchpipe.pipeline.spec.paginate import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    NoPagination,
    OffsetPagination,
    PagePagination,
)
from fetchpipe.pipeline.spec.paths import (
    MISSING,
    BodyPath,
    ManyValues,
    compile_path,
    describe,
    with_value_at,
)

Params = Mapping[str, str | int | float | bool]
PaginateConfig = (
    NoPagination
    | PagePagination
    | OffsetPagination
    | CursorPagination
    | LinkHeaderPagination
    | NextUrlPagination
)


class PaginationError(FetchpipeError):
    """The next page cannot be followed: a refused link, a loop, an unreadable total."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One request of a source run: its URL, complete query parameters, and its number; its
    JSON body (``None``: none) and the headers of its own (a cursor header)."""

    url: str
    params: Params = field(default_factory=dict)
    number: int = 1
    send_credentials: bool = True
    body: Any = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """A response, as far as pagination needs it. ``url`` is the final URL (after redirects);
    ``headers`` may be any mapping (looked up case-insensitively, repeated headers included
    when it has ``getall``); ``records`` is how many records the body held."""

    request: PageRequest
    url: str
    headers: Mapping[str, str]
    body: Any
    records: int


# --- origins ----------------------------------------------------------------------------------

_HTTP_SCHEMES = ("http", "https")


def follow(
    source_url: str, next_url: str, number: int, allow_cross_origin: bool, body: Any = None
) -> PageRequest:
    """The request for a next-page link (with the source's ``body``), or PaginationError when
    it may not be followed."""
    if urlsplit(next_url).scheme.lower() not in _HTTP_SCHEMES:
        raise PaginationError(f"next page link {next_url!r} is not an http(s) URL")
    same = origin(next_url) == origin(source_url)
    if not same and (not allow_cross_origin or body is not None):
        scheme, host, port = origin(next_url)
        why = "HINT: set allow_cross_origin: true to follow it (credentials are never sent there)"
        if allow_cross_origin:
            why = "the request's json body may hold credentials, and is sent to its origin only"
        raise PaginationError(
            f"next page link goes to another origin ({scheme}://{host}:{port}); not followed. "
            + why
        )
    return PageRequest(next_url, {}, number, send_credentials=same, body=body)


# --- paginators -------------------------------------------------------------------------------


class Paginator:
    """The base: one request, no next page. Subclasses implement :meth:`_next`."""

    def __init__(
        self,
        url: str,
        params: Params | None = None,
        *,
        body: Any = None,
        allow_cross_origin: bool = False,
        max_pages: int | None = None,
        has_more_path: str | None = None,
    ) -> None:
        self.url = url
        self.params: dict[str, str | int | float | bool] = dict(params or {})
        self.body = body
        self.allow_cross_origin = allow_cross_origin
        self.max_pages = max_pages
        self.has_more_path = has_more_path
        self.issued = 0
        self.parallel = False  # set once the remaining pages were all handed out

    def first(self) -> PageRequest:
        """The first request of the run."""
        self.issued = 1
        return PageRequest(self.url, self._first_params(), 1, body=self.body)

    def next(self, page: Page) -> list[PageRequest]:
        """The requests that follow ``page``: none, one, or (once) all remaining pages."""
        if self.parallel:
            return []
        if self.has_more_path is not None and not _more(page.body, self.has_more_path):
            return []
        found = self._next(page)
        if self.max_pages is not None:
            found = found[: max(0, self.max_pages - self.issued)]
        self.issued += len(found)
        return found

    @property
    def total_known(self) -> bool:
        """True when every request of the run is known (the remaining pages were handed out)."""
        return self.parallel

    def _first_params(self) -> dict[str, str | int | float | bool]:
        return dict(self.params)

    def _params(self, number: int) -> dict[str, str | int | float | bool]:
        return dict(self.params)

    def _request(self, number: int) -> PageRequest:
        """Page ``number`` of a paginator that counts pages."""
        return PageRequest(self.url, self._params(number), number, body=self.body)

    def _next(self, page: Page) -> list[PageRequest]:
        return []


class PageNumberPaginator(Paginator):
    """``?page=N``: sequential until an empty (or short) page, or all at once given a total."""

    def __init__(self, config: PagePagination, url: str, params: Params | None, body: Any) -> None:
        super().__init__(url, params, body=body, **_limits(config))
        self.config = config

    def _params(self, number: int) -> dict[str, str | int | float | bool]:
        c = self.config
        out = {**self.params, c.param: c.start + number - 1}
        if c.size_param is not None and c.size is not None:
            out[c.size_param] = c.size
        return out

    def _first_params(self) -> dict[str, str | int | float | bool]:
        return self._params(1)

    def _next(self, page: Page) -> list[PageRequest]:
        c = self.config
        number = page.request.number
        if number == 1 and c.total_pages_path is not None:
            total = _whole_number_at(
                page.body, compile_path(c.total_pages_path), "total_pages_path"
            )
            if total is not None:
                self.parallel = True
                return [self._request(k) for k in range(2, total + 1)]
        if page.records == 0 or (c.size is not None and page.records < c.size):
            return []
        return [self._request(number + 1)]


class OffsetPaginator(Paginator):
    """``?offset=N&limit=L``: sequential until a short page, or all at once given a total."""

    def __init__(
        self, config: OffsetPagination, url: str, params: Params | None, body: Any
    ) -> None:
        super().__init__(url, params, body=body, **_limits(config))
        self.config = config

    def _params(self, number: int) -> dict[str, str | int | float | bool]:
        c = self.config
        offset = c.start + (number - 1) * c.limit
        return {**self.params, c.offset_param: offset, c.limit_param: c.limit}

    def _first_params(self) -> dict[str, str | int | float | bool]:
        return self._params(1)

    def _next(self, page: Page) -> list[PageRequest]:
        c = self.config
        number = page.request.number
        if number == 1 and c.total_path is not None:
            total = _whole_number_at(page.body, compile_path(c.total_path), "total_path")
            if total is not None:
                self.parallel = True
                pages = math.ceil(max(0, total - c.start) / c.limit)
                return [self._request(k) for k in range(2, pages + 1)]
        if page.records < c.limit:
            return []
        return [self._request(number + 1)]


class CursorPaginator(Paginator):
    """The cursor at ``cursor_path`` in the body, sent as ``param`` (a query parameter, a
    dotted path in the request's json body, or a header); stops on none or empty."""

    def __init__(
        self, config: CursorPagination, url: str, params: Params | None, body: Any
    ) -> None:
        super().__init__(url, params, body=body, **_limits(config))
        self.config = config
        self.seen: set[str] = set()
        self._cursor_path = compile_path(config.cursor_path)

    def _next(self, page: Page) -> list[PageRequest]:
        cursor = _one(page.body, self._cursor_path, "cursor_path")
        if cursor is MISSING or cursor is None or cursor == "" or cursor is False:
            return []
        if isinstance(cursor, Mapping | list):
            raise PaginationError(
                f"cursor_path {self.config.cursor_path!r} holds {describe(cursor)}, "
                "not a cursor value"
            )
        key = str(cursor)
        if key in self.seen:
            raise PaginationError(f"the API returned cursor {key!r} twice; stopped (a loop)")
        self.seen.add(key)
        number, param = page.request.number + 1, self.config.param
        if self.config.location == "body":
            body = with_value_at(self.body, param, cursor)
            return [PageRequest(self.url, self.params, number, body=body)]
        if self.config.location == "header":
            headers = {param: str(cursor)}
            return [PageRequest(self.url, self.params, number, body=self.body, headers=headers)]
        return [PageRequest(self.url, {**self.params, param: cursor}, number, body=self.body)]


class _LinkPaginator(Paginator):
    def __init__(
        self,
        config: LinkHeaderPagination | NextUrlPagination,
        url: str,
        params: Params | None,
        body: Any,
        allow_cross_origin: bool,
    ) -> None:
        super().__init__(
            url, params, body=body, allow_cross_origin=allow_cross_origin, **_limits(config)
        )
        self.seen: set[str] = {url}

    def _link(self, page: Page) -> str | None:
        raise NotImplementedError

    def _next(self, page: Page) -> list[PageRequest]:
        target = self._link(page)
        if target is None:
            return []
        if target in self.seen:
            raise PaginationError(f"next page link {target!r} was already fetched; stopped")
        self.seen.add(target)
        number = page.request.number + 1
        return [follow(self.url, target, number, self.allow_cross_origin, self.body)]


class LinkHeaderPaginator(_LinkPaginator):
    """The ``Link`` header's ``rel="next"``, relative links resolved against the response."""

    def _link(self, page: Page) -> str | None:
        return next_link(page.headers, page.url)


class NextUrlPaginator(_LinkPaginator):
    """The URL at ``next_url_path`` in the body; stops on none or empty."""

    def __init__(
        self,
        config: NextUrlPagination,
        url: str,
        params: Params | None,
        body: Any,
        allow_cross_origin: bool,
    ) -> None:
        super().__init__(config, url, params, body, allow_cross_origin)
        self.config = config
        self._next_url_path = compile_path(config.next_url_path)

    def _link(self, page: Page) -> str | None:
        found = _one(page.body, self._next_url_path, "next_url_path")
        if found is MISSING or found is None or found == "":
            return None
        if not isinstance(found, str):
            raise PaginationError(
                f"next_url_path {self.config.next_url_path!r} holds {describe(found)}, not a URL"
            )
        return urljoin(page.url, found)


def _one(body: Any, path: BodyPath, key: str) -> Any:
    """The one value at ``path`` (MISSING when absent); PaginationError when several."""
    try:
        return path.one(body)
    except ManyValues as exc:
        raise PaginationError(f"{key} {exc}") from None


def _whole_number_at(body: Any, path: BodyPath, key: str) -> int | None:
    """A whole number at ``path`` (a number or digits), ``None`` when absent."""
    value = _one(body, path, key)
    if value is MISSING or value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    raise PaginationError(f"{path.text!r} holds {value!r}, not a count")


def paginator_for(
    config: PaginateConfig,
    url: str,
    params: Params | None = None,
    *,
    body: Any = None,
    allow_cross_origin: bool = False,
) -> Paginator:
    """The paginator for a source's ``paginate`` block, starting at ``url`` with ``params``
    and the json ``body`` (``None``: none)."""
    if isinstance(config, PagePagination):
        return PageNumberPaginator(config, url, params, body)
    if isinstance(config, OffsetPagination):
        return OffsetPaginator(config, url, params, body)
    if isinstance(config, CursorPagination):
        return CursorPaginator(config, url, params, body)
    if isinstance(config, LinkHeaderPagination):
        return LinkHeaderPaginator(config, url, params, body, allow_cross_origin)
    if isinstance(config, NextUrlPagination):
        return NextUrlPaginator(config, url, params, body, allow_cross_origin)
    return Paginator(url, params, body=body)


def _limits(config: PaginateConfig) -> dict[str, Any]:
    """The keys every paged configuration has, as the base paginator takes them."""
    assert not isinstance(config, NoPagination)
    return {"max_pages": config.max_pages, "has_more_path": config.has_more_path}


_FALSE_TEXT = frozenset({"false", "0", ""})


def _more(body: Any, path: str) -> bool:
    """Whether the value at ``has_more_path`` says more pages follow: true (or a non-zero
    number, or text other than "false") does; false, null, 0 and a missing value do not."""
    value = _one(body, compile_path(path), "has_more_path")
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    raise PaginationError(f"has_more_path {path!r} holds {describe(value)}, not true/false")


def sequential(config: PaginateConfig) -> bool:
    """True when pages of this kind can only be known one after another."""
    if isinstance(config, PagePagination):
        return config.total_pages_path is None
    if isinstance(config, OffsetPagination):
        return config.total_path is None
    return not isinstance(config, NoPagination)


def page_size(config: PaginateConfig) -> int | None:
    """Records per full page when the configuration says it."""
    if isinstance(config, OffsetPagination):
        return config.limit
    if isinstance(config, PagePagination):
        return config.size
    return None
