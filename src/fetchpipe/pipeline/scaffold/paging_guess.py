"""How an API pages, guessed from its first response and confirmed by a second. Pure.

:func:`outlook` lists the ``paginate`` blocks a first response suggests, the strongest
evidence first: a ``Link: <...>; rel="next"`` header, a next-page URL in the body, a cursor in
the body (sent back under a parameter name that is guessed: the URL's own, one derived from the
key such as ``cursor`` for ``next_cursor``, then common ones), page or offset metadata (the
URL's ``page=``/``offset=``, a body's ``total_pages``, ``total``, ``page``). When nothing in the
response speaks of pages, ``page`` and ``offset`` are tried blind. When the body says that
everything is here (``has_more: false``, a ``total`` equal to the records on the page), no
block is proposed.

:func:`second_request` is the request the runtime's own paginator makes after the first page
for a block (so that what is confirmed is what ``fetchpipe run`` will send), and :func:`judge`
says whether the page it got confirms the block: records, none of which were on the first page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fetchpipe.pipeline.runtime.link_header import next_link
from fetchpipe.pipeline.runtime.pagination import Page, PageRequest, PaginationError, paginator_for
from fetchpipe.pipeline.scaffold.bodies import Segments, looks_like_url, normalized, scalars
from fetchpipe.pipeline.scaffold.bodies import path_text as _path
from fetchpipe.pipeline.scaffold.response import Response
from fetchpipe.pipeline.spec.paginate import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PagePagination,
)

Block = tuple[tuple[str, Any], ...]

_CURSOR_KEYS = frozenset(
    {
        "nextcursor", "cursor", "next", "endcursor", "nextpagetoken", "pagetoken", "nexttoken",
        "continuationtoken", "continuation", "after", "nextafter", "nextmarker", "marker",
        "scrollid", "nextkey", "nextpagecursor", "cursornext", "nextpage",
    }
)  # fmt: skip
_HAS_MORE = frozenset(
    {
        "hasmore", "hasnext", "hasnextpage", "more", "hasmorepages", "moreresults",
        "hasmoreitems", "morepages", "nextpageexists", "hasmoreresults",
    }
)  # fmt: skip
_TOTAL_PAGES = frozenset(
    {
        "totalpages", "pages", "pagecount", "lastpage", "numpages", "pagestotal",
        "totalpagecount", "numberofpages",
    }
)  # fmt: skip
_TOTAL_ITEMS = frozenset(
    {
        "total", "totalcount", "count", "totalresults", "totalitems", "totalentries",
        "numresults", "totalrecords", "totalhits", "resultcount", "totalsize", "numfound",
        "totalelements", "recordcount", "itemcount",
    }
)  # fmt: skip
_CURRENT_PAGE = frozenset({"page", "currentpage", "pagenumber", "pageno", "pageindex", "curpage"})
_NEXT_PAGE = frozenset({"nextpage", "nextpagenumber", "next"})
_BODY_OFFSET = frozenset({"offset", "skip", "start"})
_NOT_NEXT = frozenset({"prev", "previous", "first", "last", "self", "current"})

_PAGE_PARAMS = frozenset({"page", "p", "pagenumber", "pageno", "pageindex", "pagenum"})
_SIZE_PARAMS = frozenset(
    {"perpage", "pagesize", "size", "limit", "pagelen", "maxresults", "take", "count", "per"}
)
_OFFSET_PARAMS = frozenset({"offset", "skip", "start", "startindex"})
_CURSOR_PARAMS = frozenset(
    {
        "cursor", "after", "pagetoken", "startingafter", "continuation", "continuationtoken",
        "marker", "nexttoken", "startcursor", "next",
    }
)  # fmt: skip
COMMON_CURSOR_PARAMS = ("cursor", "after", "page_token", "starting_after")
"""Cursor parameter names tried after the ones the API itself suggests."""

_MODELS: dict[str, Any] = {
    "page": PagePagination,
    "offset": OffsetPagination,
    "cursor": CursorPagination,
    "link_header": LinkHeaderPagination,
    "next_url": NextUrlPagination,
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ``paginate`` block (its keys in the order they are written), what suggested it, and
    whether it is a blind guess (nothing in the response spoke of it)."""

    block: Block
    why: str
    blind: bool = False

    @property
    def type(self) -> str:
        return str(dict(self.block)["type"])

    def as_dict(self) -> dict[str, Any]:
        return dict(self.block)

    def model(self) -> Any:
        """The block as the pipeline model reads it (a ``*Pagination`` of the spec)."""
        return _MODELS[self.type].model_validate(self.as_dict())

    @property
    def owned(self) -> tuple[str, ...]:
        """The query parameters its paginator sends itself (they leave the source's params)."""
        b = self.as_dict()
        if self.type == "page":
            return tuple(n for n in (b.get("param", "page"), b.get("size_param")) if n)
        if self.type == "offset":
            return (b.get("offset_param", "offset"), b.get("limit_param", "limit"))
        if self.type == "cursor":
            return (b.get("param", "cursor"),)
        return ()


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a first response says about pages: the blocks to try, in order; why it is a
    single page (``None``: it does not say); and what was seen but cannot be used."""

    candidates: tuple[Candidate, ...]
    single_page: str | None = None
    notes: tuple[str, ...] = ()
    suggestion: Candidate | None = None
    """A block worth writing commented out when nothing can be confirmed (a single page)."""


@dataclass(frozen=True, slots=True)
class _Facts:
    next_urls: list[Segments]
    cursors: list[tuple[Segments, Any]]
    has_more: tuple[Segments, bool] | None
    total_pages: tuple[Segments, int] | None
    total_items: tuple[Segments, int] | None
    current_page: int | None
    next_page: bool
    body_offset: bool
    nulls: list[Segments]


def _facts(body: Any) -> _Facts:
    next_urls: list[Segments] = []
    cursors: list[tuple[Segments, Any]] = []
    nulls: list[Segments] = []
    has_more = total_pages = total_items = None
    current_page = None
    next_page = body_offset = False
    for at, value in scalars(body):
        names = [normalized(n) for n in at]
        last = names[-1]
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
        mentions_next = any("next" in n for n in names) and not set(names) & _NOT_NEXT
        if mentions_next and looks_like_url(value):
            next_urls.append(at)
        elif last in _CURSOR_KEYS or (mentions_next and ("cursor" in last or "token" in last)):
            if value is None or value == "":
                nulls.append(at)
            elif number is not None and last in _NEXT_PAGE:
                next_page = True
            elif isinstance(value, str | int) and not isinstance(value, bool):
                cursors.append((at, value))
        elif last in _HAS_MORE and isinstance(value, bool | str):
            flag = value if isinstance(value, bool) else value.strip().lower() == "true"
            has_more = has_more or (at, flag)
        elif number is not None and number >= 0:
            if last in _TOTAL_PAGES:
                total_pages = total_pages or (at, number)
            elif last in _TOTAL_ITEMS:
                total_items = total_items or (at, number)
            elif last in _CURRENT_PAGE and current_page is None:
                current_page = number
            elif last in _BODY_OFFSET:
                body_offset = True
        elif mentions_next and value is None:
            nulls.append(at)
    return _Facts(
        next_urls,
        cursors,
        has_more,
        total_pages,
        total_items,
        current_page,
        next_page,
        body_offset,
        nulls,
    )


def _first_param(query: Sequence[tuple[str, str]], names: frozenset[str]) -> tuple[str, str]:
    return next(((n, v) for n, v in query if normalized(n) in names), ("", ""))


def outlook(
    first: Response,
    query: Sequence[tuple[str, str]],
    record_count: int,
    whole_body: bool,
    *,
    blind: bool = True,
) -> Outlook:
    """The ``paginate`` blocks to try after ``first`` (see the module's docstring). ``query``
    is the first URL's query; ``record_count`` the records on the page; ``whole_body``: the
    records are the body itself (a list), so the body has no metadata; ``blind``: whether
    to try page numbers and offsets that nothing speaks of (not for a body without a list)."""
    facts = _facts(None if whole_body else first.body)
    notes = [f"{_path(at)} is null on this page" for at in facts.nulls]
    found: list[Candidate] = []
    has_more = facts.has_more
    more = () if has_more is None else (("has_more_path", _path(has_more[0])),)
    if next_link(first.headers, first.url) is not None:
        found.append(Candidate((("type", "link_header"),), 'the Link header has rel="next"'))
    for at in facts.next_urls:
        block: Block = (("type", "next_url"), ("next_url_path", _path(at)), *more)
        found.append(Candidate(block, f"{_path(at)} holds the next page's URL"))
    for at, _ in facts.cursors[:2]:
        for param in cursor_params(at, [n for n, _ in query]):
            block = (("type", "cursor"), ("cursor_path", _path(at)), ("param", param), *more)
            found.append(Candidate(block, f"{_path(at)} holds a cursor, sent back as {param}"))
    explicit = bool(found)
    single = _single_page(facts, record_count)
    if single is not None and not explicit:
        return Outlook((), single, tuple(notes), _suggestion(facts, query, record_count))
    if has_more is not None and not has_more[1]:
        return Outlook((), f"{_path(has_more[0])} is false", tuple(notes))
    if not explicit and record_count > 0:
        found += [c for c in _numbered(facts, query, record_count) if blind or not c.blind]
    return Outlook(tuple(found), None, tuple(notes))


def _single_page(facts: _Facts, record_count: int) -> str | None:
    if facts.total_items is not None and facts.total_items[1] == record_count:
        at, total = facts.total_items
        return f"{_path(at)} is {total}, the number of records in this response"
    if facts.total_pages is not None and facts.total_pages[1] <= 1:
        return f"{_path(facts.total_pages[0])} is {facts.total_pages[1]}"
    if facts.nulls and not facts.cursors and not facts.next_urls:
        return f"{_path(facts.nulls[0])} is null: no next page"
    if record_count == 0:
        return "the page has no records"
    return None


def _suggestion(
    facts: _Facts, query: Sequence[tuple[str, str]], record_count: int
) -> Candidate | None:
    """A block to write commented out for an API that pages but fits on one page now."""
    for at in facts.nulls:
        if "url" in normalized(at[-1]) or normalized(at[-1]) in ("next", "nextlink", "href"):
            block: Block = (("type", "next_url"), ("next_url_path", _path(at)))
            return Candidate(block, f"{_path(at)} would hold the next page's URL")
    numbered = _numbered(facts, query, max(record_count, 1))
    return next((c for c in numbered if not c.blind), None)


def _numbered(
    facts: _Facts, query: Sequence[tuple[str, str]], record_count: int
) -> list[Candidate]:
    """Page-number and offset blocks: those the URL or the body speak of, then blind ones."""
    page_name, page_value = _first_param(query, _PAGE_PARAMS)
    size_name, size_value = _first_param(query, _SIZE_PARAMS)
    offset_name, _ = _first_param(query, _OFFSET_PARAMS)
    size = int(size_value) if size_value.isdigit() and int(size_value) > 0 else None
    start = 0 if page_value == "0" or facts.current_page == 0 else 1
    page: list[tuple[str, Any]] = [("type", "page"), ("param", page_name or "page")]
    if start != 1:
        page.append(("start", start))
    if size_name and size is not None:
        page += [("size_param", size_name), ("size", size)]
    page_why = []
    if facts.total_pages is not None:
        page.append(("total_pages_path", _path(facts.total_pages[0])))
        page_why.append(f"{_path(facts.total_pages[0])} tells the number of pages")
    if page_name:
        page_why.append(f"the URL has {page_name}=")
    if facts.current_page is not None or facts.next_page:
        page_why.append("the body numbers its pages")
    limit = size if size is not None else record_count
    offset: list[tuple[str, Any]] = [
        ("type", "offset"),
        ("offset_param", offset_name or "offset"),
        ("limit_param", size_name or "limit"),
        ("limit", limit),
    ]
    offset_why = []
    if facts.total_items is not None:
        offset.append(("total_path", _path(facts.total_items[0])))
        offset_why.append(
            f"{_path(facts.total_items[0])} ({facts.total_items[1]}) counts more records "
            f"than the {record_count} here"
        )
    if offset_name or facts.body_offset:
        offset_why.append("the URL or the body has an offset")
    found: list[Candidate] = []
    blind = "nothing in the response speaks of pages: {} tried blind"
    page_candidate = Candidate(tuple(page), "; ".join(page_why) or blind.format("page numbers"))
    offset_candidate = Candidate(
        tuple(offset), "; ".join(offset_why) or blind.format("offsets"), blind=not offset_why
    )
    page_candidate = Candidate(page_candidate.block, page_candidate.why, blind=not page_why)
    hinted_offset = bool(offset_name or facts.body_offset) and not page_why
    totals_first = facts.total_items is not None and facts.total_pages is None and not page_why
    if hinted_offset or totals_first:
        found += [offset_candidate, page_candidate]
    else:
        found += [page_candidate, offset_candidate]
    return found


def cursor_params(at: Segments, query_names: Sequence[str]) -> list[str]:
    """Names a cursor found at ``at`` may be sent back under: a cursor-like parameter the URL
    already has, the name the key suggests (``cursor`` for ``next_cursor``, ``pageToken`` for
    ``nextPageToken``, ``after`` for Relay's ``endCursor``), then :data:`COMMON_CURSOR_PARAMS`."""
    names = [n for n in query_names if normalized(n) in _CURSOR_PARAMS]
    key = at[-1]
    stripped = re.sub(r"\A[Nn]ext[_-]?", "", key)
    if stripped and stripped != key:
        names.append(stripped[0].lower() + stripped[1:] if stripped[0].isupper() else stripped)
    if normalized(key) == "endcursor":
        names.append("after")
    if normalized(key) in _CURSOR_PARAMS:
        names.append(key)
    names += COMMON_CURSOR_PARAMS
    return list(dict.fromkeys(n for n in names if normalized(n) not in ("page", "")))


# --- confirming a block with a second page ------------------------------------------------------


def second_request(
    candidate: Candidate,
    url: str,
    params: Mapping[str, str],
    first: Response,
    record_count: int,
) -> PageRequest | str:
    """The request the runtime's paginator for ``candidate`` sends after ``first`` (a page of
    ``record_count`` records, fetched from ``url`` with ``params``), or why there is none."""
    paginator = paginator_for(candidate.model(), url, params)
    request = paginator.first()
    page = Page(request, first.url, first.headers, first.body, record_count)
    try:
        following = paginator.next(page)
    except PaginationError as exc:
        return str(exc)
    if not following:
        return "the first response leads to no next page"
    return following[0]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a second page confirmed a block, and what it showed."""

    confirmed: bool
    why: str


def judge(
    candidate: Candidate,
    first_records: Sequence[Mapping[str, Any]],
    second_records: Sequence[Mapping[str, Any]] | None,
    key: str | None,
    failure: str | None = None,
) -> Verdict:
    """A block is confirmed by a second page whose records are not on the first page. A next
    page the API linked to (``Link``, a next URL) may be empty: the API said there is one."""
    if failure is not None or second_records is None:
        return Verdict(False, failure or "the second page could not be read")
    if not second_records:
        if candidate.type in ("link_header", "next_url"):
            return Verdict(True, "the page it links to is empty (the API says it follows)")
        return Verdict(False, "the second page has no records: nothing to compare")
    seen = {_identity(r, key) for r in first_records}
    repeated = sum(_identity(r, key) in seen for r in second_records)
    if repeated == len(second_records):
        return Verdict(False, "the second page repeats the first: the API ignores it")
    if repeated:
        return Verdict(
            False, f"the second page repeats {repeated} of its {len(second_records)} records"
        )
    return Verdict(True, f"the second page has {len(second_records)} other records")


def _identity(record: Mapping[str, Any], key: str | None) -> str:
    if key is not None and key in record:
        return f"key:{record[key]!r}"
    return json.dumps(record, sort_keys=True, default=str)
