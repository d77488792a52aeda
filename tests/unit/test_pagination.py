"""Pagination as pure objects: responses in, next requests out; Link headers per RFC 8288."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from fetchpipe.pipeline.runtime.link_header import Link, next_link, parse_link_header
from fetchpipe.pipeline.runtime.pagination import (
    Page,
    PageRequest,
    PaginationError,
    Paginator,
    origin,
    paginator_for,
)
from fetchpipe.pipeline.spec.paginate import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    NoPagination,
    OffsetPagination,
    PagePagination,
)

URL = "https://api.x.test/v1/items"


def _page(
    request: PageRequest,
    body: Any = None,
    records: int = 0,
    headers: dict[str, str] | None = None,
    url: str | None = None,
) -> Page:
    return Page(request, url or request.url, headers or {}, body, records)


# --- page numbers -----------------------------------------------------------------------------


def test_page_numbers_follow_one_another_until_an_empty_page() -> None:
    pager = paginator_for(PagePagination(type="page"), URL, {"q": "x"})
    first = pager.first()
    assert (first.url, first.params, first.number) == (URL, {"q": "x", "page": 1}, 1)
    (second,) = pager.next(_page(first, records=10))
    assert second.params == {"q": "x", "page": 2} and second.number == 2
    assert pager.next(_page(second, records=0)) == []


def test_page_numbers_stop_on_a_short_page_when_the_size_is_known() -> None:
    config = PagePagination(type="page", param="p", start=0, size_param="per_page", size=50)
    pager = paginator_for(config, URL)
    first = pager.first()
    assert first.params == {"p": 0, "per_page": 50}
    (second,) = pager.next(_page(first, records=50))
    assert second.params == {"p": 1, "per_page": 50}
    assert pager.next(_page(second, records=49)) == []


def test_a_known_page_count_gives_every_remaining_page_at_once() -> None:
    pager = paginator_for(PagePagination(type="page", total_pages_path="meta.pages"), URL)
    first = pager.first()
    rest = pager.next(_page(first, {"meta": {"pages": 4}}, records=10))
    assert [r.params["page"] for r in rest] == [2, 3, 4]
    assert [r.number for r in rest] == [2, 3, 4]
    assert pager.total_known
    assert all(pager.next(_page(r, {"meta": {"pages": 4}}, records=10)) == [] for r in rest)


def test_a_missing_page_count_falls_back_to_one_after_another() -> None:
    pager = paginator_for(PagePagination(type="page", total_pages_path="meta.pages"), URL)
    (second,) = pager.next(_page(pager.first(), {"meta": {}}, records=3))
    assert second.params == {"page": 2} and not pager.total_known


def test_a_count_that_is_not_a_number_is_an_error() -> None:
    pager = paginator_for(PagePagination(type="page", total_pages_path="pages"), URL)
    with pytest.raises(PaginationError, match="'pages' holds 'many', not a count"):
        pager.next(_page(pager.first(), {"pages": "many"}, records=3))


def test_max_pages_caps_the_requests() -> None:
    pager = paginator_for(PagePagination(type="page", total_pages_path="n", max_pages=3), URL)
    rest = pager.next(_page(pager.first(), {"n": 100}, records=1))
    assert [r.params["page"] for r in rest] == [2, 3]
    pager = paginator_for(CursorPagination(type="cursor", cursor_path="c", max_pages=1), URL)
    assert pager.next(_page(pager.first(), {"c": "next"})) == []


# --- offsets ----------------------------------------------------------------------------------


def test_offsets_advance_by_the_limit_until_a_short_page() -> None:
    pager = paginator_for(OffsetPagination(type="offset", limit=20), URL)
    first = pager.first()
    assert first.params == {"offset": 0, "limit": 20}
    (second,) = pager.next(_page(first, records=20))
    assert second.params == {"offset": 20, "limit": 20}
    assert pager.next(_page(second, records=5)) == []


def test_a_known_total_gives_every_remaining_offset_at_once() -> None:
    config = OffsetPagination(
        type="offset", offset_param="skip", limit_param="take", limit=10, total_path="total"
    )
    pager = paginator_for(config, URL)
    rest = pager.next(_page(pager.first(), {"total": 35}, records=10))
    assert [r.params for r in rest] == [
        {"skip": 10, "take": 10},
        {"skip": 20, "take": 10},
        {"skip": 30, "take": 10},
    ]
    pager = paginator_for(config, URL)
    assert pager.next(_page(pager.first(), {"total": "10"}, records=10)) == []


# --- cursors ----------------------------------------------------------------------------------


def test_cursor_is_read_from_the_body_and_sent_as_the_param() -> None:
    pager = paginator_for(
        CursorPagination(type="cursor", cursor_path="meta.next_cursor", param="after"),
        URL,
        {"limit": 100},
    )
    first = pager.first()
    assert first.params == {"limit": 100}
    (second,) = pager.next(_page(first, {"meta": {"next_cursor": "abc"}}, records=100))
    assert second.params == {"limit": 100, "after": "abc"} and second.url == URL
    for end in ({"meta": {"next_cursor": None}}, {"meta": {"next_cursor": ""}}, {"meta": {}}):
        assert pager.next(_page(second, end, records=3)) == []


def test_a_repeated_cursor_is_a_loop() -> None:
    pager = paginator_for(CursorPagination(type="cursor", cursor_path="next"), URL)
    (second,) = pager.next(_page(pager.first(), {"next": 7}))
    with pytest.raises(PaginationError, match="cursor '7' twice"):
        pager.next(_page(second, {"next": 7}))


def test_a_cursor_that_is_an_object_is_an_error() -> None:
    pager = paginator_for(CursorPagination(type="cursor", cursor_path="next"), URL)
    with pytest.raises(PaginationError, match="holds an object"):
        pager.next(_page(pager.first(), {"next": {"a": 1}}))


# --- Link header ------------------------------------------------------------------------------


def test_link_header_next_is_followed_relative_to_the_response() -> None:
    pager = paginator_for(LinkHeaderPagination(type="link_header"), URL, {"per_page": 50})
    first = pager.first()
    assert first.params == {"per_page": 50}
    headers = {"Link": '</v1/items?page=2&per_page=50>; rel="next", </v1/items?page=9>; rel=last'}
    (second,) = pager.next(_page(first, headers=headers))
    assert second.url == "https://api.x.test/v1/items?page=2&per_page=50"
    assert second.params == {} and second.send_credentials and second.number == 2
    assert pager.next(_page(second, headers={"Link": '</v1/items?page=1>; rel="prev"'})) == []


def test_link_header_from_a_multidict_with_repeated_headers() -> None:
    headers = CIMultiDict([("Link", '<https://a.test/1>; rel="prev"')])
    headers.add("link", '<https://a.test/3>; rel="next"')
    assert next_link(headers, "https://a.test/2") == "https://a.test/3"


def test_a_link_already_fetched_stops_with_an_error() -> None:
    pager = paginator_for(LinkHeaderPagination(type="link_header"), URL)
    with pytest.raises(PaginationError, match="already fetched"):
        pager.next(_page(pager.first(), headers={"link": f"<{URL}>; rel=next"}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('<https://x.test/2>; rel="next"', [Link("https://x.test/2", {"rel": "next"})]),
        (
            '<https://x.test/a,b>; rel="next prev"; title="a, \\"quoted\\"; title"',
            [Link("https://x.test/a,b", {"rel": "next prev", "title": 'a, "quoted"; title'})],
        ),
        (
            "<a>;rel=next,<b> ; REL = last ; rel=ignored",
            [Link("a", {"rel": "next"}), Link("b", {"rel": "last"})],
        ),
        ("garbage, <c>; rel=next", [Link("c", {"rel": "next"})]),
        ('<d>; rel="next"; crossorigin', [Link("d", {"rel": "next", "crossorigin": ""})]),
        ("<unclosed; rel=next", []),
        ("", []),
    ],
)
def test_parse_link_header(value: str, expected: list[Link]) -> None:
    assert parse_link_header(value) == expected


def test_rel_values_are_a_case_insensitive_list() -> None:
    (link,) = parse_link_header('<x>; rel="Prev NEXT"')
    assert link.rels == ["prev", "next"]
    assert next_link({"Link": '<x>; rel="Prev NEXT"'}, "https://a.test/dir/") == (
        "https://a.test/dir/x"
    )


# --- next URL in the body, origins ------------------------------------------------------------


def test_next_url_from_the_body() -> None:
    pager = paginator_for(NextUrlPagination(type="next_url", next_url_path="links.next"), URL)
    first = pager.first()
    body = {"links": {"next": "https://api.x.test/v1/items?page=2"}}
    (second,) = pager.next(_page(first, body))
    assert second.url == "https://api.x.test/v1/items?page=2" and second.send_credentials
    (third,) = pager.next(_page(second, {"links": {"next": "?page=3"}}))
    assert third.url == "https://api.x.test/v1/items?page=3"
    assert pager.next(_page(third, {"links": {"next": None}})) == []
    with pytest.raises(PaginationError, match="holds a number, not a URL"):
        pager.next(_page(third, {"links": {"next": 4}}))


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.test/v1/items?page=2",
        "http://api.x.test/v1/items?page=2",  # a scheme downgrade is another origin
        "https://api.x.test:8443/v1/items?page=2",
    ],
)
def test_a_link_to_another_origin_is_refused(target: str) -> None:
    pager = paginator_for(NextUrlPagination(type="next_url", next_url_path="next"), URL)
    with pytest.raises(PaginationError, match=r"another origin.*allow_cross_origin: true"):
        pager.next(_page(pager.first(), {"next": target}))


def test_an_allowed_cross_origin_link_is_followed_without_credentials() -> None:
    pager = paginator_for(LinkHeaderPagination(type="link_header"), URL, allow_cross_origin=True)
    headers = {"Link": '<https://cdn.x.test/page2>; rel="next"'}
    (second,) = pager.next(_page(pager.first(), headers=headers))
    assert second.url == "https://cdn.x.test/page2" and not second.send_credentials
    headers = {"Link": '<https://api.x.test:443/v1/items?p=3>; rel="next"'}
    (third,) = pager.next(_page(second, headers=headers, url="https://cdn.x.test/page2"))
    assert third.send_credentials  # back on the source's origin (443 is https's port)


def test_a_link_that_is_not_http_is_refused_even_when_cross_origin_is_allowed() -> None:
    pager = paginator_for(
        NextUrlPagination(type="next_url", next_url_path="next"), URL, allow_cross_origin=True
    )
    with pytest.raises(PaginationError, match="not an http"):
        pager.next(_page(pager.first(), {"next": "file:///etc/passwd"}))


def test_origin() -> None:
    assert origin("HTTPS://API.x.test/a") == ("https", "api.x.test", 443)
    assert origin("http://x.test:8080/") == ("http", "x.test", 8080)


def test_no_pagination_is_one_request() -> None:
    pager = paginator_for(NoPagination(type="none"), URL, {"a": 1})
    assert isinstance(pager, Paginator)
    first = pager.first()
    assert first == PageRequest(URL, {"a": 1}, 1)
    assert pager.next(_page(first, {"next": "x"}, records=100)) == []


# --- properties: every run ends -----------------------------------------------------------------

RUN_LIMIT = 1000
"""More requests than any run below may take: reaching it means the paginator did not stop."""

Answer = Callable[[PageRequest, int], Page]


def _drive(pager: Paginator, answer: Answer) -> list[PageRequest]:
    """Every request of a run, sent one after another, each answered by ``answer(request, n)``
    (n: how many were sent before it). A PaginationError raised by the paginator ends the run
    (it propagates)."""
    sent: list[PageRequest] = []
    pending = [pager.first()]
    while pending:
        assert len(sent) < RUN_LIMIT, "the paginator did not stop"
        request = pending.pop(0)
        page = answer(request, len(sent))
        sent.append(request)
        pending += pager.next(page)
    return sent


def _counts(records: list[int]) -> Answer:
    """An API whose pages hold ``records[n]`` records, then none."""
    return lambda request, n: _page(request, records=records[n] if n < len(records) else 0)


_RECORDS = st.lists(st.integers(min_value=0, max_value=60), max_size=40)
_MAX_PAGES = st.one_of(st.none(), st.integers(min_value=1, max_value=50))


@settings(max_examples=150, deadline=None)
@given(
    records=_RECORDS,
    size=st.one_of(st.none(), st.integers(min_value=1, max_value=50)),
    start=st.integers(min_value=0, max_value=2),
    max_pages=_MAX_PAGES,
)
def test_page_numbers_stop_at_the_first_empty_or_short_page(
    records: list[int], size: int | None, start: int, max_pages: int | None
) -> None:
    config = PagePagination(
        type="page", start=start, size=size, size_param="n" if size else None, max_pages=max_pages
    )
    sent = _drive(paginator_for(config, URL), _counts(records))
    ends = [k for k, count in enumerate(records) if count == 0 or (size and count < size)]
    pages = min(ends[0] + 1 if ends else len(records) + 1, max_pages or RUN_LIMIT)
    assert [r.params["page"] for r in sent] == list(range(start, start + pages))
    assert [r.number for r in sent] == list(range(1, pages + 1))


@settings(max_examples=150, deadline=None)
@given(
    records=_RECORDS,
    limit=st.integers(min_value=1, max_value=50),
    start=st.integers(min_value=0, max_value=100),
    max_pages=_MAX_PAGES,
)
def test_offsets_stop_at_the_first_short_page(
    records: list[int], limit: int, start: int, max_pages: int | None
) -> None:
    config = OffsetPagination(type="offset", limit=limit, start=start, max_pages=max_pages)
    sent = _drive(paginator_for(config, URL), _counts(records))
    short = [k for k, count in enumerate(records) if count < limit]
    pages = min(short[0] + 1 if short else len(records) + 1, max_pages or RUN_LIMIT)
    assert [r.params["offset"] for r in sent] == [start + k * limit for k in range(pages)]


@settings(max_examples=150, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=300),
    as_text=st.booleans(),
    per_page=st.integers(min_value=1, max_value=50),
    start=st.integers(min_value=0, max_value=20),
    max_pages=_MAX_PAGES,
)
def test_a_total_ends_the_run_whatever_the_pages_hold(
    total: int, as_text: bool, per_page: int, start: int, max_pages: int | None
) -> None:
    """Given a total on the first page, the run asks for exactly the pages it implies (at
    least the first, at most max_pages), each once, even when every page is full."""
    body = {"total": str(total) if as_text else total}

    def full(request: PageRequest, n: int) -> Page:
        return _page(request, body, records=per_page)

    by_pages = PagePagination(type="page", total_pages_path="total", max_pages=max_pages)
    sent = _drive(paginator_for(by_pages, URL), full)
    assert sorted(r.params["page"] for r in sent) == list(
        range(1, min(max(total, 1), max_pages or RUN_LIMIT) + 1)
    )
    by_items = OffsetPagination(
        type="offset", limit=per_page, start=start, total_path="total", max_pages=max_pages
    )
    sent = _drive(paginator_for(by_items, URL), full)
    pages = min(max(1, math.ceil(max(0, total - start) / per_page)), max_pages or RUN_LIMIT)
    assert sorted(r.params["offset"] for r in sent) == [start + k * per_page for k in range(pages)]


_CURSOR = st.one_of(
    st.none(),
    st.just(""),
    st.just(False),
    st.integers(min_value=0, max_value=5),
    st.sampled_from(["a", "b", "c", "1", "2"]),
)


@settings(max_examples=200, deadline=None)
@given(cursors=st.lists(_CURSOR, min_size=1, max_size=12), max_pages=_MAX_PAGES)
def test_a_cursor_run_ends_even_when_the_api_never_does(
    cursors: list[Any], max_pages: int | None
) -> None:
    """The API answers the cursors in turn, over and over: the run ends at a missing cursor,
    or with an error at the first repeated one; no cursor is sent twice."""
    config = CursorPagination(type="cursor", cursor_path="next", max_pages=max_pages)

    def answer(request: PageRequest, n: int) -> Page:
        return _page(request, {"next": cursors[n % len(cursors)]}, records=1)

    sent: list[PageRequest] = []
    pager = paginator_for(config, URL)
    with contextlib.suppress(PaginationError):
        sent = _drive(pager, answer)
    distinct = {str(c) for c in cursors if not (c is None or c is False or c == "")}
    assert pager.issued <= len(distinct) + 1
    assert pager.issued <= (max_pages or RUN_LIMIT)
    sent_cursors = [str(r.params["cursor"]) for r in sent[1:]]
    assert len(sent_cursors) == len(set(sent_cursors))


_LINK = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(["?page=2", "items?page=3", "/v1/items?page=4", URL, URL + "?page=2"]),
)


@settings(max_examples=200, deadline=None)
@given(
    links=st.lists(_LINK, min_size=1, max_size=12),
    in_header=st.booleans(),
    max_pages=_MAX_PAGES,
)
def test_a_next_link_run_ends_even_when_the_api_never_does(
    links: list[str | None], in_header: bool, max_pages: int | None
) -> None:
    """The API answers the links in turn, over and over, in the body or a Link header: the
    run ends at a missing link, or with an error at the first link already fetched; no URL
    is fetched twice."""
    config: NextUrlPagination | LinkHeaderPagination
    if in_header:
        config = LinkHeaderPagination(type="link_header", max_pages=max_pages)
    else:
        config = NextUrlPagination(type="next_url", next_url_path="next", max_pages=max_pages)

    def answer(request: PageRequest, n: int) -> Page:
        link = links[n % len(links)]
        if not in_header:
            return _page(request, {"next": link}, records=1)
        headers = {"Link": f'<{link}>; rel="next"'} if link else {}
        return _page(request, records=1, headers=headers)

    sent: list[PageRequest] = []
    pager = paginator_for(config, URL)
    with contextlib.suppress(PaginationError):
        sent = _drive(pager, answer)
    # Every link resolves against the response's URL; the run starts at URL.
    assert pager.issued <= len({urljoin(URL, link) for link in links if link} | {URL})
    assert pager.issued <= (max_pages or RUN_LIMIT)
    urls = [r.url for r in sent]
    assert len(urls) == len(set(urls))


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from(["page", "offset", "cursor", "next_url", "link_header"]),
    max_pages=st.integers(min_value=1, max_value=60),
)
def test_max_pages_ends_a_run_against_an_api_that_never_ends(kind: str, max_pages: int) -> None:
    """Full pages, a new cursor and a new link on every page: only max_pages ends the run."""
    configs: dict[str, Any] = {
        "page": PagePagination(type="page", max_pages=max_pages),
        "offset": OffsetPagination(type="offset", limit=10, max_pages=max_pages),
        "cursor": CursorPagination(type="cursor", cursor_path="next", max_pages=max_pages),
        "next_url": NextUrlPagination(type="next_url", next_url_path="next", max_pages=max_pages),
        "link_header": LinkHeaderPagination(type="link_header", max_pages=max_pages),
    }

    def endless(request: PageRequest, n: int) -> Page:
        link = f"{URL}?page={n + 2}"
        return _page(request, {"next": link}, records=10, headers={"Link": f'<{link}>; rel="next"'})

    assert len(_drive(paginator_for(configs[kind], URL), endless)) == max_pages
