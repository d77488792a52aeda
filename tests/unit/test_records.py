"""Records, parent values in URLs, include_parent, primary keys and incremental cursors."""

from __future__ import annotations

import pytest

from fetchpipe.pipeline.runtime.records import (
    RecordsError,
    duplicate_keys,
    extract_records,
    key_of,
    latest_cursor,
    render_url,
    with_parent,
)
from fetchpipe.pipeline.spec.paths import MISSING, get_path, parents_of, placeholders

BODY = {"data": {"items": [{"id": 1}, {"id": 2}], "meta": None}, "list": [[1, 2], {"a": 3}]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", BODY),
        ("data.items", [{"id": 1}, {"id": 2}]),
        ("data.items.1.id", 2),
        ("data.items.-1.id", 2),
        ("data.meta", None),
        ("list.1.a", 3),
        ("data.nope", MISSING),
        ("data.items.5", MISSING),
        ("data.items.x", MISSING),
        ("data.items.0.id.deeper", MISSING),
    ],
)
def test_get_path(path: str, expected: object) -> None:
    assert get_path(BODY, path) == expected or get_path(BODY, path) is expected


def test_extract_records() -> None:
    assert extract_records(BODY, "data.items") == [{"id": 1}, {"id": 2}]
    assert extract_records({"one": {"id": 1}}, "one") == [{"id": 1}]
    assert extract_records(BODY, "data.meta") == []
    assert extract_records([1, "a"], "") == [{"value": 1}, {"value": "a"}]


def test_extract_records_explains_a_missing_path() -> None:
    with pytest.raises(RecordsError) as caught:
        extract_records(BODY, "data.itms")
    assert str(caught.value) == (
        "records path 'data.itms' is not in the response: 'itms' not found in data "
        "(keys: items, meta)"
    )
    with pytest.raises(RecordsError, match="'x' not found in the body"):
        extract_records({}, "x")
    with pytest.raises(RecordsError, match=r"data\.items\.0\.id is a number, not an object"):
        extract_records(BODY, "data.items.0.id.more")
    with pytest.raises(RecordsError, match="holds a number, not a list of records"):
        extract_records(BODY, "data.items.0.id")


def test_placeholders_and_parents() -> None:
    template = "https://x.test/{products.id}/reviews/{products.meta.slug}"
    found = placeholders(template)
    assert [(p.source, p.field) for p in found] == [("products", "id"), ("products", "meta.slug")]
    assert parents_of(template) == ["products"]
    assert parents_of("https://x.test/plain") == []
    for bad in ("https://x.test/{id}", "https://x.test/{a.b", "https://x.test/a.b}"):
        with pytest.raises(ValueError, match=r"parent reference|unmatched"):
            placeholders(bad)


def test_render_url_encodes_parent_values() -> None:
    template = "https://x.test/p/{products.id}/r?tag={products.tag}&on={products.on}"
    record = {"id": "a/b c?&#", "tag": 5, "on": True}
    assert render_url(template, {"products": record}) == (
        "https://x.test/p/a%2Fb%20c%3F%26%23/r?tag=5&on=true"
    )


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({}, "the products record has no 'id'"),
        ({"id": None}, "the products record has no 'id'"),
        ({"id": [1]}, "'id' is a list, not a value for a URL"),
    ],
)
def test_render_url_refuses_missing_or_nested_values(
    record: dict[str, object], message: str
) -> None:
    with pytest.raises(RecordsError, match=message):
        render_url("https://x.test/{products.id}", {"products": record})


def test_render_url_needs_the_parent_record() -> None:
    with pytest.raises(RecordsError, match="no products record given"):
        render_url("https://x.test/{products.id}", {})


def test_with_parent_copies_parent_fields() -> None:
    child = {"id": 9, "product_id": "stale", "text": "ok"}
    parent = {"id": 1, "meta": {"sku": "S1"}}
    merged = with_parent(child, parent, {"product_id": "id", "sku": "meta.sku"})
    assert merged == {"id": 9, "product_id": 1, "text": "ok", "sku": "S1"}
    assert child["product_id"] == "stale"  # the input is left alone
    with pytest.raises(RecordsError, match="include_parent x: the parent has no 'nope'"):
        with_parent(child, parent, {"x": "nope"})


def test_primary_keys() -> None:
    assert key_of({"product_id": 1, "id": "a"}, ["product_id", "id"]) == (1, "a")
    with pytest.raises(RecordsError, match="no primary key field 'id': keys name"):
        key_of({"name": "x"}, ["id"])
    with pytest.raises(RecordsError, match="no primary key field 'id'"):
        key_of({"id": None}, ["id"])
    with pytest.raises(RecordsError, match="'id' is an object"):
        key_of({"id": {}}, ["id"])
    records = [{"id": 1}, {"id": 2}, {"id": 1}, {"id": 3}, {"id": 2}, {"id": 1}]
    assert duplicate_keys(records, ["id"]) == [(1,), (2,)]


def test_latest_cursor() -> None:
    records = [
        {"updated_at": "2024-02-01T00:00:00Z"},
        {"updated_at": None},
        {},
        {"updated_at": "2024-03-01T00:00:00Z"},
    ]
    assert latest_cursor(records, "updated_at", "2024-01-01T00:00:00Z") == "2024-03-01T00:00:00Z"
    assert latest_cursor(records, "updated_at", "2025-01-01") == "2025-01-01"
    assert latest_cursor([], "updated_at", None) is None
    with pytest.raises(RecordsError, match="does not compare"):
        latest_cursor([{"v": 1}, {"v": "a"}], "v", None)
