"""JSONPath in pipeline files: compiled once when the file is validated, read like dotted paths
where they name one place, each match a record where they name many."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe.pipeline import PipelineError
from fetchpipe.pipeline.runtime.pagination import Page, PaginationError, paginator_for
from fetchpipe.pipeline.runtime.records import RecordsError, extract_records
from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.pipeline.spec.loading import load_yaml
from fetchpipe.pipeline.spec.paginate import (
    CursorPagination,
    NextUrlPagination,
    OffsetPagination,
    PagePagination,
)
from fetchpipe.pipeline.spec.paths import (
    MISSING,
    ManyValues,
    PathSyntaxError,
    compile_path,
    get_path,
)

RELAY = {
    "data": {
        "products": {
            "edges": [{"node": {"id": 1, "name": "a"}}, {"node": {"id": 2, "name": "b"}}],
            "pageInfo": {"endCursor": "c2", "hasNextPage": True},
        }
    }
}


def test_a_relay_connection_gives_its_nodes_as_records() -> None:
    assert extract_records(RELAY, "$.data.products.edges[*].node") == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
    ]
    empty = {"data": {"products": {"edges": [], "pageInfo": {}}}}
    assert extract_records(empty, "$.data.products.edges[*].node") == []


def test_filters_descendants_and_slices_give_every_match_in_document_order() -> None:
    body = {"items": [{"id": 1, "ok": True}, {"id": 2, "ok": False}, {"id": 3, "ok": True}]}
    assert extract_records(body, "$.items[?@.ok == true]") == [
        {"id": 1, "ok": True},
        {"id": 3, "ok": True},
    ]
    assert extract_records(body, "$.items[1:]") == [{"id": 2, "ok": False}, {"id": 3, "ok": True}]
    assert extract_records(body, "$..id") == [{"value": 1}, {"value": 2}, {"value": 3}]


def test_a_query_naming_one_place_reads_like_the_dotted_path() -> None:
    body = {"data": {"items": [{"id": 1}, {"id": 2}], "one": {"id": 9}, "none": None}}
    assert extract_records(body, "$.data.items") == extract_records(body, "data.items")
    assert extract_records(body, "$['data']['one']") == [{"id": 9}]
    assert extract_records(body, "$.data.none") == []
    assert extract_records(body, "$") == [{"data": body["data"]}]
    with pytest.raises(RecordsError) as caught:
        extract_records(body, "$.data.itms")
    assert str(caught.value) == (
        "records path '$.data.itms' is not in the response: no match (the body's keys: data)"
    )
    with pytest.raises(RecordsError, match="holds a number, not a list of records"):
        extract_records({"n": 3}, "$.n")


def test_a_string_body_is_not_parsed_again_as_json() -> None:
    assert compile_path("$").values("[1, 2]") == ["[1, 2]"]
    assert compile_path("$[0]").values("[1, 2]") == []
    assert compile_path("$[0]").values([1, 2]) == [1]


def test_one_value_or_missing_or_an_error_for_several() -> None:
    assert compile_path("$.data.products.pageInfo.endCursor").one(RELAY) == "c2"
    assert compile_path("$..endCursor").one(RELAY) == "c2"
    assert compile_path("$.nope").one(RELAY) is MISSING
    with pytest.raises(ManyValues) as caught:
        compile_path("$..id").one(RELAY)
    assert caught.value.count == 2
    assert "matched 2 values where one is needed. HINT:" in str(caught.value)


def test_dotted_paths_are_not_queries() -> None:
    dotted = compile_path("data.items.0")
    assert dotted.query is None and dotted.singular
    assert dotted.one({"data": {"items": ["x"]}}) == "x"
    assert compile_path("$.a").query is not None
    assert compile_path("$.a[*]").singular is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$.data.items[*", "unexpected end of segment (at the end)"),
        ("$.items[01]", "leading zero in index selector (at character 9: '01]')"),
        ("$.a[?foo(@)]", "function 'foo' is not defined (at character 6: 'foo(@)]')"),
        ("$.a | $.b", "unexpected token '|' (at character 5: '| $.b')"),
    ],
)
def test_a_bad_query_says_what_and_where(text: str, message: str) -> None:
    with pytest.raises(PathSyntaxError) as caught:
        compile_path(text)
    assert str(caught.value) == (
        f"{text!r} is not a JSONPath query: {message}. HINT: a path starting with $ is a "
        "JSONPath query (RFC 9535), such as $.data.items[*].node or $['odd key'][0]; for a "
        "dotted path, leave out the $"
    )


def _load(text: str) -> PipelineSpec:
    from fetchpipe.pipeline.spec.config import _build

    return _build(load_yaml(text, "pipeline.yaml"), {})


def _pipeline_error(text: str) -> str:
    with pytest.raises(PipelineError) as caught:
        _load(text)
    return str(caught.value)


SOURCE = """\
name: shop
sources:
  - name: products
    url: https://api.shop.test/v1/products
"""


def test_a_bad_query_in_a_file_is_reported_at_its_line_and_field() -> None:
    text = SOURCE + "    records: $.data.items[*\n"
    assert _pipeline_error(text) == (
        "pipeline.yaml:5: sources[0].records: '$.data.items[*' is not a JSONPath query: "
        "unexpected end of segment (at the end). HINT: a path starting with $ is a JSONPath "
        "query (RFC 9535), such as $.data.items[*].node or $['odd key'][0]; for a dotted path, "
        "leave out the $"
    )
    text = SOURCE + "    paginate:\n      type: cursor\n      cursor_path: $..[\n"
    error = _pipeline_error(text)
    assert error.startswith(
        "pipeline.yaml:7: sources[0].paginate.cursor_path: '$..[' is not a JSONPath query: "
    )
    text = SOURCE + "    paginate: {type: offset, total_path: '$.meta.total[?'}\n"
    assert _pipeline_error(text).startswith(
        "pipeline.yaml:5: sources[0].paginate.total_path: '$.meta.total[?' is not a JSONPath"
    )


def test_queries_in_a_file_are_compiled_when_it_is_validated() -> None:
    compile_path.cache_clear()
    text = SOURCE + (
        "    records: $.data.products.edges[*].node\n"
        "    paginate: {type: cursor, cursor_path: $.data.products.pageInfo.endCursor}\n"
    )
    _load(text)
    assert compile_path.cache_info().currsize == 2
    paginator_for(_load(text).sources[0].paginate, "https://api.shop.test/")
    assert compile_path.cache_info().misses == 2


# --- pagination ---------------------------------------------------------------------------------

URL = "https://api.x.test/v1/items"


def _next(config: Any, body: Any, records: int = 10) -> list[Any]:
    pager = paginator_for(config, URL)
    first = pager.first()
    return pager.next(Page(first, URL, {}, body, records))


def test_a_cursor_and_a_next_url_from_queries() -> None:
    config = CursorPagination(type="cursor", cursor_path="$.data.products.pageInfo.endCursor")
    (second,) = _next(config, RELAY)
    assert second.params == {"cursor": "c2"}
    links = {"links": [{"rel": "self", "href": "/p1"}, {"rel": "next", "href": "/p2"}]}
    config_url = NextUrlPagination(type="next_url", next_url_path="$.links[?@.rel == 'next'].href")
    (following,) = _next(config_url, links)
    assert following.url == "https://api.x.test/p2"
    assert _next(config_url, {"links": [{"rel": "self", "href": "/p1"}]}) == []


def test_several_cursors_are_an_error_not_a_guess() -> None:
    config = CursorPagination(type="cursor", cursor_path="$..endCursor")
    twice = {"a": {"endCursor": "x"}, "b": {"endCursor": "y"}}
    with pytest.raises(PaginationError, match=r"^cursor_path '\$\.\.endCursor' matched 2 values"):
        _next(config, twice)


def test_totals_from_queries() -> None:
    pages = PagePagination(type="page", total_pages_path="$.meta[0].pages")
    assert len(_next(pages, {"meta": [{"pages": 3}]})) == 2
    offset = OffsetPagination(type="offset", limit=10, total_path="$..total")
    assert len(_next(offset, {"x": {"total": 35}})) == 3
    with pytest.raises(PaginationError, match=r"^total_path '\$\.\.total' matched 2 values"):
        _next(offset, {"x": {"total": 35}, "y": {"total": 1}})


# --- properties -------------------------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
# Keys without control characters: python-jsonpath 2.2 refuses their escapes (\u0000 to
# \u001f) in a query, which RFC 9535 allows (found by this test; said in spec/paths.py).
_KEYS = _TEXT.filter(lambda k: k != "" and "." not in k and min(map(ord, k)) > 0x1F)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def _walk(draw: st.DrawFn) -> tuple[Any, str, str]:
    """A document, and a path into it (maybe ending in a part that is not there) written both
    ways: dotted, and as JSONPath."""
    document = draw(_JSON.filter(lambda d: isinstance(d, dict | list)))
    current: Any = document
    dotted: list[str] = []
    query = "$"
    for _ in range(draw(st.integers(1, 5))):
        if isinstance(current, dict) and current and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(current)))
        elif isinstance(current, list) and current and draw(st.booleans()):
            index = draw(st.integers(-len(current), len(current) - 1))
            dotted.append(str(index))
            query += f"[{index}]"
            current = current[index]
            continue
        elif isinstance(current, list):
            index = len(current) + draw(st.integers(0, 3))  # past the end: not there
            dotted.append(str(index))
            query += f"[{index}]"
            break
        else:
            key = draw(_KEYS)  # a key that may or may not be there, or a step into a value
        dotted.append(key)
        query += f"[{json.dumps(key)}]"
        if not isinstance(current, dict) or key not in current:
            break
        current = current[key]
    return document, ".".join(dotted), query


@settings(max_examples=300, deadline=None)
@given(_walk())
def test_a_dotted_path_and_its_jsonpath_form_read_the_same_value(
    walk: tuple[Any, str, str],
) -> None:
    document, dotted, query = walk
    expected = get_path(document, dotted)
    compiled = compile_path(query)
    assert compiled.singular
    found = compiled.one(document)
    assert found is expected if expected is MISSING else found == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(_JSON, max_size=6))
def test_a_wildcard_over_a_list_gives_the_records_of_the_dotted_path(items: list[Any]) -> None:
    body = {"data": {"items": items}}
    dotted = extract_records(body, "data.items")
    assert extract_records(body, "$.data.items[*]") == dotted
    assert extract_records(body, "$.data.items") == dotted
