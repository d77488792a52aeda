"""``unnest``: the block's checks (file:line, a HINT) and the split of records into parent and
child rows, without a network or a database."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fetchpipe.destinations.pipelines.tables import ROW_COLUMN
from fetchpipe.pipeline.runtime.records import RecordsError
from fetchpipe.pipeline.runtime.unnest import split_records
from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.pipeline.spec.errors import PipelineError
from fetchpipe.pipeline.spec.unnest import Unnest

URL = "http://127.0.0.1:8080/shop/v1/orders"


def source(**extra: Any) -> dict[str, Any]:
    return {"name": "orders", "url": URL, "records": "orders", **extra}


def problems(*sources: dict[str, Any]) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        PipelineSpec.from_dict({"name": "p", "sources": list(sources)})
    return [p.render() for p in caught.value.problems]


def items(**extra: Any) -> dict[str, Any]:
    return {"field": "items", "table": "order_items", **extra}


def test_a_valid_block_is_read_with_its_defaults() -> None:
    spec = PipelineSpec.from_dict(
        {
            "name": "p",
            "sources": [
                source(
                    primary_key="id",
                    write="merge",
                    unnest=[items(include_parent={"order_id": "id"})],
                )
            ],
        }
    )
    (entry,) = spec.sources[0].unnest
    assert (entry.table, entry.index, entry.path) == ("order_items", "_index", ("items",))
    assert spec.tables() == ["orders", "order_items"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            items(field="$.items[*]"),
            "sources[0].unnest[0].field: is a JSONPath query; unnest takes a field of the record. "
            "HINT: write the key (items) or a dotted path of keys (details.items)",
        ),
        (
            items(field="details..items"),
            "sources[0].unnest[0].field: 'details..items' has an empty part. HINT: write a.items",
        ),
        (
            items(table="_fetchpipe_items"),
            "sources[0].unnest[0].table: '_fetchpipe_items' is a name of fetchpipe's own "
            "(_fetchpipe_...). HINT: choose another table name",
        ),
        (
            items(table="order items"),
            "sources[0].unnest[0].table: 'order items' is not a name: use letters, digits and _, "
            "not starting with a digit",
        ),
        (
            items(table="Orders"),
            "sources[0].unnest[0].table: is the source's own table. HINT: name the child table, "
            "e.g. orders_items",
        ),
        (
            items(include_parent={"_index": "id"}),
            "sources[0].unnest[0].include_parent._index: is the index column too. HINT: rename "
            "it, or set index: to another name",
        ),
        (
            items(field="id"),
            "sources[0].unnest[0].field: is the primary key 'id': it would leave the parent's "
            "row. HINT: unnest a list field",
        ),
        (
            {"field": "items", "tabel": "order_items"},
            "sources[0].unnest[0].tabel: unknown key. HINT: did you mean `table`?",
        ),
    ],
)
def test_a_bad_entry_is_named_with_a_hint(entry: dict[str, Any], message: str) -> None:
    found = problems(source(primary_key="id", unnest=[entry]))
    assert any(p.startswith(message) for p in found), found


def test_merge_needs_the_parent_key_in_include_parent() -> None:
    found = problems(source(primary_key="id", write="merge", unnest=[items()]))
    assert found == [
        "sources[0].unnest[0].include_parent: must carry the parent's primary key (id) under "
        "write: merge, so that the child rows of a re-loaded record replace its earlier ones. "
        "HINT: add {orders_id: id}"
    ]
    # Under append and replace the rows need no tie to their parent.
    for write in ("append", "replace"):
        PipelineSpec.from_dict(
            {"name": "p", "sources": [source(primary_key="id", write=write, unnest=[items()])]}
        )


def test_duplicate_and_overlapping_fields_and_tables() -> None:
    found = problems(
        source(
            unnest=[
                items(),
                items(table="other"),
                items(field="items.sku", table="skus"),
                items(field="lines"),
            ]
        )
    )
    assert found == [
        "sources[0].unnest[1].field: duplicate unnest field 'items' (also unnest[0]). HINT: "
        "unnest each list once, into one table",
        "sources[0].unnest[2].field: overlaps the unnest field 'items' (also unnest[0]). HINT: "
        "unnest each list once, into one table",
        "sources[0].unnest[3].table: duplicate table 'order_items' (also unnest[0]). HINT: each "
        "list lands in a table of its own",
    ]


def test_a_table_of_another_source_is_refused_with_its_line() -> None:
    text = (
        "name: p\n"
        "sources:\n"
        "  - name: orders\n"
        f"    url: {URL}\n"
        "    unnest:\n"
        "      - {field: items, table: customers}\n"
        "  - name: customers\n"
        f"    url: {URL}\n"
        "    unnest:\n"
        "      - {field: lines, table: Order_Items}\n"
        "  - name: order_items\n"
        f"    url: {URL}\n"
    )
    with pytest.raises(PipelineError) as caught:
        PipelineSpec.from_dict(__import__("yaml").safe_load(text))
    rendered = [p.render() for p in caught.value.problems]
    assert rendered == [
        "sources[0].unnest[0].table: table 'customers' is also sources[1]'s. HINT: give the "
        "child table a name no source or other unnest has",
        "sources[1].unnest[0].table: table 'Order_Items' is also sources[2]'s. HINT: give the "
        "child table a name no source or other unnest has",
    ]


def test_problems_carry_the_line_of_the_file(tmp_path: Any) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\n"
        "sources:\n"
        "  - name: orders\n"
        f"    url: {URL}\n"
        "    primary_key: id\n"
        "    write: merge\n"
        "    unnest:\n"
        "      - field: items\n"
        "        table: order_items\n"
        "        include_parent: {order_id: idd}\n"
    )
    with pytest.raises(PipelineError) as caught:
        PipelineSpec.from_file(path)
    assert str(caught.value).startswith(
        f"{path}:10: sources[0].unnest[0].include_parent: must carry the parent's primary key"
    )


# --- the split -----------------------------------------------------------------------------------


def entry(**extra: Any) -> Unnest:
    return Unnest.model_validate({"field": "items", "table": "order_items", **extra})


def test_objects_become_rows_with_position_and_parent_fields() -> None:
    records = [
        {"id": 7, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], "total": 3},
        {"id": 8, "items": []},
        {"id": 9},
        {"id": 10, "items": None},
    ]
    parents, children = split_records(records, [entry(include_parent={"order_id": "id"})], first=5)
    assert parents == [
        {"id": 7, "total": 3, ROW_COLUMN: 5},
        {"id": 8, ROW_COLUMN: 6},
        {"id": 9, ROW_COLUMN: 7},
        {"id": 10, ROW_COLUMN: 8},
    ]
    assert children == {
        "order_items": [
            {"sku": "a", "qty": 1, "order_id": 7, "_index": 0, ROW_COLUMN: 5},
            {"sku": "b", "qty": 2, "order_id": 7, "_index": 1, ROW_COLUMN: 5},
        ]
    }
    assert records[0]["items"] == [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]  # unchanged


def test_scalars_land_in_a_value_column_and_a_dotted_field_leaves_its_object() -> None:
    records = [{"id": 1, "meta": {"tags": ["x", 2, None, [3]], "kept": True}}]
    parents, children = split_records(
        records, [entry(field="meta.tags", table="tags", index="pos")], first=0
    )
    assert parents == [{"id": 1, "meta": {"kept": True}, ROW_COLUMN: 0}]
    assert [(r["value"], r["pos"]) for r in children["tags"]] == [
        ("x", 0),
        (2, 1),
        (None, 2),
        ([3], 3),
    ]
    assert records[0]["meta"]["tags"] == ["x", 2, None, [3]]  # the record itself is unchanged


def test_parent_fields_win_over_element_keys_of_the_same_name() -> None:
    _, children = split_records(
        [{"id": 1, "items": [{"id": 99, "_index": "x"}]}],
        [entry(include_parent={"id": "id"})],
        first=0,
    )
    assert children["order_items"] == [{"id": 1, "_index": 0, ROW_COLUMN: 0}]


@pytest.mark.parametrize(("value", "kind"), [({"sku": "a"}, "an object"), ("a,b", "a string")])
def test_a_value_that_is_not_a_list_fails_naming_the_record(value: Any, kind: str) -> None:
    with pytest.raises(RecordsError) as caught:
        split_records([{"id": 1, "items": []}, {"id": 2, "items": value}], [entry()], first=0)
    assert str(caught.value) == (
        f"unnest items: record 1 of the page holds {kind} there, not a list. HINT: point field "
        "at a list; without this unnest entry the value lands in a JSON column"
    )


def test_a_missing_parent_field_fails() -> None:
    with pytest.raises(RecordsError, match="include_parent order_id: the record has no 'oid'"):
        split_records([{"items": [1]}], [entry(include_parent={"order_id": "oid"})], first=0)


lists = st.lists(st.integers() | st.fixed_dictionaries({"k": st.integers()}), max_size=5)


@given(st.lists(st.none() | lists, max_size=8), st.integers(min_value=0, max_value=10**6))
def test_every_element_is_one_row_tied_to_its_parent(
    values: list[list[Any] | None], first: int
) -> None:
    records = [{"id": n, "items": v} for n, v in enumerate(values)]
    parents, children = split_records(
        records, [entry(include_parent={"order_id": "id"})], first=first
    )
    assert [p[ROW_COLUMN] for p in parents] == list(range(first, first + len(records)))
    assert all("items" not in p for p in parents)
    rows = children["order_items"]
    assert len(rows) == sum(len(v or []) for v in values)
    for parent in parents:
        mine = [r for r in rows if r[ROW_COLUMN] == parent[ROW_COLUMN]]
        assert all(r["order_id"] == parent["id"] for r in mine)
        assert [r["_index"] for r in mine] == list(range(len(values[parent["id"]] or [])))


def test_the_json_schema_has_the_unnest_block() -> None:
    schema = PipelineSpec.json_schema()
    block = schema["$defs"]["Source"]["properties"]["unnest"]
    assert block["items"] == {"$ref": "#/$defs/Unnest"}
    entry = schema["$defs"]["Unnest"]
    assert entry["required"] == ["field", "table"]
    assert set(entry["properties"]) == {"field", "table", "include_parent", "index"}
    assert entry["properties"]["index"]["default"] == "_index"
    assert entry["additionalProperties"] is False
