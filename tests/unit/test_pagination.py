"""Pagination as pure objects: responses in, next requests out; Link headers per RFC 8288."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from fetchpipe.pipeline.models import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    NoPagination,
    OffsetPagination,
    PagePagination,
)
from fetchpipe.pipeline.pagination import (
    Link,
    Page,
    PageRequest,
    PaginationError,
    Paginator,
    next_link,
    origin,
    paginator_for,
    parse_link_header,
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
