"""``fetchpipe init``'s guesses without a network: records, keys, incremental fields,
pagination candidates and their confirmation, names."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe.pipeline.runtime.records import extract_records
from fetchpipe.pipeline.scaffold.bodies import object_lists, path_text
from fetchpipe.pipeline.scaffold.detection import name_from_url
from fetchpipe.pipeline.scaffold.paging_guess import (
    Candidate,
    cursor_params,
    judge,
    outlook,
    second_request,
)
from fetchpipe.pipeline.scaffold.records_guess import find_records, guess_incremental, guess_key
from fetchpipe.pipeline.scaffold.response import Response

URL = "http://127.0.0.1:9/v1/products"


def _items(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"n{i}", "updated_at": f"2024-01-{i % 28 + 1:02d}T00:00:00Z"}
            for i in range(start, start + n)]  # fmt: skip


# --- records ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "count"),
    [
        (_items(3), "", 3),
        ({"data": {"items": _items(4)}, "meta": {"page": 1}}, "data.items", 4),
        ({"products": _items(5), "count": 5}, "products", 5),
        # the largest list wins over a smaller one, whatever its name
        ({"tags": _items(2), "results": _items(6)}, "results", 6),
        ({"@odata.context": "x", "value.list": _items(2)}, '$["value.list"]', 2),
        (
            {"data": {"products": {"edges": [{"node": {"id": i}} for i in range(3)]}}},
            '$["data"]["products"]["edges"][*].node',
            3,
        ),
    ],
)
def test_find_records_reads_the_list_the_runtime_reads(body: Any, path: str, count: int) -> None:
    guess = find_records(body, "products")
    assert guess.found
    assert guess.path == path
    assert len(extract_records(body, guess.path)) == count


def test_a_tie_goes_to_the_list_named_like_records() -> None:
    body = {"aaa": _items(3), "items": _items(3, 10)}
    assert find_records(body).path == "items"


@pytest.mark.parametrize(
    ("body", "path", "says"),
    [
        ({"id": 0, "ok": True}, "", "one record"),
        ({"items": [], "total": 0}, "items", "empty"),
        ([1, 2, 3], "", "values"),
    ],
)
def test_find_records_says_when_there_is_no_list(body: Any, path: str, says: str) -> None:
    guess = find_records(body)
    assert not guess.found
    assert guess.path == path
    assert says in guess.why


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
records_lists = st.lists(
    st.dictionaries(st.text(min_size=1, max_size=4), json_values, min_size=1, max_size=3),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(body=json_values)
def test_a_found_path_reads_a_list_of_objects(body: Any) -> None:
    guess = find_records(body)
    if guess.found:
        found = extract_records(body, guess.path)
        assert found and all(isinstance(r, dict) for r in found)
        assert len(found) == max(len(c.items) for c in object_lists(body))


@settings(max_examples=200, deadline=None)
@given(
    # keys without control characters: no JSONPath names them (python-jsonpath refuses them)
    wrapper=st.lists(
        st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=6),
        max_size=3,
    ),
    records=records_lists,
    extra=st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=3), max_size=3),
)
def test_an_embedded_list_of_objects_is_found(
    wrapper: list[str], records: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    body: Any = records
    for name in reversed(wrapper):
        body = {**{k: v for k, v in extra.items() if k != name}, name: body}
    guess = find_records(body)
    assert guess.found
    found = extract_records(body, guess.path)
    assert len(found) >= len(records)  # this list, or a larger one inside the records
    assert all(isinstance(r, dict) for r in found)


# --- keys and incremental fields ---------------------------------------------------------------


def test_guess_key_prefers_id_then_a_named_id() -> None:
    assert guess_key(_items(3)).field == "id"
    reviews = [{"id": 1, "product_id": 7}, {"id": 1, "product_id": 8}]  # id repeats
    assert guess_key(reviews, "reviews").field == "product_id"
    assert guess_key([{"uuid": "a", "sku": "x"}, {"uuid": "b", "sku": "y"}]).field == "uuid"


def test_guess_key_refuses_floats_booleans_missing_and_repeated_values() -> None:
    assert guess_key([{"id": 1.5}, {"id": 2.5}]).field is None
    assert guess_key([{"id": True}, {"id": False}]).field is None
    assert guess_key([{"id": 1}, {"name": "x"}]).field is None
    guess = guess_key([{"id": 1}, {"id": 1}])
    assert guess.field is None
    assert "unique" in guess.why


@settings(max_examples=200, deadline=None)
@given(records=records_lists)
def test_a_guessed_key_is_present_and_unique_in_every_record(records: list[dict[str, Any]]) -> None:
    field = guess_key(records).field
    if field is not None:
        values = [r[field] for r in records]
        assert len(set(values)) == len(values)
        assert all(isinstance(v, str | int) and not isinstance(v, bool) for v in values)


def test_guess_incremental_prefers_a_changed_field_and_compares_instants() -> None:
    records = [
        {"id": 1, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2025-01-01T10:00:00+02:00"},
        {"id": 2, "created_at": "2024-01-02T00:00:00Z", "updated_at": "2025-01-01T09:00:00Z"},
    ]
    guess = guess_incremental(records)
    assert guess.field == "updated_at"
    assert guess.latest == "2025-01-01T09:00:00Z"  # later as an instant, though not as text
    assert guess.param is None
    revealed = guess_incremental(records, [("updated_since", "2024-06-01T00:00:00Z")])
    assert (revealed.param, revealed.initial) == ("updated_since", "2024-06-01T00:00:00Z")
    assert guess_incremental([{"id": 1, "updated_at": "soon"}]).field is None


# --- pagination candidates ----------------------------------------------------------------------


def _types(found: Any) -> list[str]:
    return [c.type for c in found.candidates]


def test_a_link_header_comes_first() -> None:
    first = Response(URL, 200, _items(3), {"Link": f'<{URL}?page=2>; rel="next"'})
    found = outlook(first, [], 3, whole_body=True)
    assert _types(found) == ["link_header"]


def test_a_next_url_and_a_cursor_in_the_body() -> None:
    body = {"results": _items(3), "next": f"{URL}?page=2"}
    assert outlook(Response(URL, 200, body), [], 3, False).candidates[0].as_dict() == {
        "type": "next_url",
        "next_url_path": "next",
    }
    body = {"data": _items(3), "meta": {"next_cursor": "abc", "has_more": True}}
    found = outlook(Response(URL, 200, body), [], 3, False)
    assert found.candidates[0].as_dict() == {
        "type": "cursor",
        "cursor_path": "meta.next_cursor",
        "param": "cursor",
        "has_more_path": "meta.has_more",
    }
    assert _types(found) == ["cursor"] * len(found.candidates)  # no blind guesses then


@pytest.mark.parametrize(
    ("key", "query", "first"),
    [
        ("next_cursor", [], "cursor"),
        ("nextPageToken", [], "pageToken"),
        ("next_page_token", [], "page_token"),
        ("endCursor", [], "after"),
        ("cursor", [], "cursor"),
        ("next_cursor", [("starting_after", "x"), ("limit", "5")], "starting_after"),
    ],
)
def test_cursor_params_start_with_what_the_api_suggests(
    key: str, query: list[tuple[str, str]], first: str
) -> None:
    names = cursor_params(("meta", key), [n for n, _ in query])
    assert names[0] == first
    assert len(names) == len(set(names))
    assert "cursor" in names


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"items": _items(3), "has_more": False, "next_cursor": "x"}, "has_more is false"),
        ({"products": _items(3), "count": 3}, "count is 3"),
        ({"items": _items(3), "meta": {"total_pages": 1}}, "meta.total_pages is 1"),
        ({"items": _items(3), "next": None}, "next is null"),
    ],
)
def test_a_body_that_says_everything_is_here_gets_no_candidate(body: Any, says: str) -> None:
    found = outlook(Response(URL, 200, body), [], 3, False)
    assert found.candidates == ()
    assert found.single_page is not None
    assert says in found.single_page


def test_page_metadata_and_totals() -> None:
    body = {"data": {"items": _items(25)}, "meta": {"page": 1, "total_pages": 10}}
    page = outlook(Response(URL, 200, body), [], 25, False).candidates[0]
    assert page.as_dict() == {
        "type": "page",
        "param": "page",
        "total_pages_path": "meta.total_pages",
    }
    assert not page.blind
    body = {"items": _items(25), "total": 250}
    found = outlook(Response(URL, 200, body), [], 25, False)
    assert found.candidates[0].as_dict() == {
        "type": "offset",
        "offset_param": "offset",
        "limit_param": "limit",
        "limit": 25,
        "total_path": "total",
    }
    query = [("page", "1"), ("per_page", "50")]
    page = outlook(Response(URL, 200, {"rows": _items(50)}), query, 50, False).candidates[0]
    assert page.as_dict() == {"type": "page", "param": "page", "size_param": "per_page", "size": 50}
    assert set(page.owned) == {"page", "per_page"}


def test_nothing_said_means_blind_page_then_offset_guesses() -> None:
    found = outlook(Response(URL, 200, {"events": _items(10)}), [], 10, False)
    assert _types(found) == ["page", "offset"]
    assert all(c.blind for c in found.candidates)
    assert outlook(Response(URL, 200, {"id": 1}), [], 1, False, blind=False).candidates == ()


def test_second_request_is_the_runtime_paginators() -> None:
    first = Response(URL, 200, {"data": {"items": _items(25)}, "meta": {"total_pages": 10}})
    page = Candidate((("type", "page"), ("total_pages_path", "meta.total_pages")), "")
    request = second_request(page, URL, {"sort": "id"}, first, 25)
    assert not isinstance(request, str)
    assert (request.url, dict(request.params)) == (URL, {"sort": "id", "page": 2})
    cursor = Candidate((("type", "cursor"), ("cursor_path", "c"), ("param", "after")), "")
    request = second_request(cursor, URL, {}, Response(URL, 200, {"c": "xyz"}), 1)
    assert not isinstance(request, str)
    assert dict(request.params) == {"after": "xyz"}
    link = Candidate((("type", "link_header"),), "")
    linked = Response(URL, 200, [], {"link": '</v1/products?page=2>; rel="next"'})
    request = second_request(link, URL, {}, linked, 0)
    assert not isinstance(request, str)
    assert request.url == "http://127.0.0.1:9/v1/products?page=2"
    other = Response(URL, 200, [], {"link": '<http://198.51.100.7/p?page=2>; rel="next"'})
    refused = second_request(link, URL, {}, other, 0)
    assert isinstance(refused, str)
    assert "another origin" in refused


def test_judge_wants_records_the_first_page_did_not_have() -> None:
    page = Candidate((("type", "page"),), "")
    first = _items(5)
    assert judge(page, first, _items(5, 6), "id").confirmed
    same = judge(page, first, _items(5), "id")
    assert not same.confirmed
    assert "ignores" in same.why
    assert not judge(page, first, _items(5, 3), "id").confirmed  # overlaps
    assert not judge(page, first, [], "id").confirmed
    assert judge(
        Candidate((("type", "next_url"), ("next_url_path", "n")), ""), first, [], None
    ).confirmed
    failed = judge(page, first, None, "id", "HTTP 400")
    assert (failed.confirmed, failed.why) == (False, "HTTP 400")
    assert judge(page, [{"a": 1}], [{"a": 2}], None).confirmed  # whole records compared


# --- names and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://h/shop/v1/page/products", "products"),
        ("http://h/shop/v1/days/3/events?page=1", "events"),
        ("http://h/api/0", "api"),
        ("http://h/v2/", "h"),
        ("http://h/v1/line-items.json", "line_items"),
        ("http://127.0.0.1:8/", "records"),
    ],
)
def test_name_from_url(url: str, name: str) -> None:
    assert name_from_url(url) == name


def test_path_text_falls_back_to_jsonpath() -> None:
    assert path_text(("data", "items")) == "data.items"
    assert path_text(()) == ""
    assert path_text(("@odata.nextLink",)) == '$["@odata.nextLink"]'
    assert path_text(("a b", "c")) == '$["a b"]["c"]'


# --- notes ----------------------------------------------------------------------------------------


def test_the_notes_say_what_was_found_and_what_was_not() -> None:
    from fetchpipe.pipeline.scaffold.detection import Trial, conclude
    from fetchpipe.pipeline.scaffold.paging_guess import Verdict

    first = Response(URL, 200, {"events": _items(10)})
    records = find_records(first.body, "events")
    rows = extract_records(first.body, records.path)
    found = outlook(first, [], 10, False)
    ignored = Verdict(False, "the second page repeats the first: the API ignores it")
    trials = [Trial(c, ignored) for c in found.candidates]
    detected, missed = conclude("events", records, rows, found, trials).notes()
    assert detected[:2] == [
        "records: the list of 10 objects at events",
        "primary key: `id` is present and unique in the 10 records seen",
    ]
    assert missed[0].startswith("pagination: none found: nothing in the response speaks of pages")
    assert "tried blind" in missed[0]
    confirmed = [Trial(found.candidates[0], Verdict(True, "the second page has 10 other records"))]
    detected, missed = conclude("events", records, rows, found, confirmed, _items(10, 11)).notes()
    assert detected[2] == (
        "pagination: page (nothing in the response speaks of pages: page numbers tried blind); "
        "confirmed: the second page has 10 other records"
    )
    assert detected[1] == "primary key: `id` is present and unique in the 20 records seen"
    assert missed[0].startswith("incremental: `updated_at` holds ISO 8601 date-times")
