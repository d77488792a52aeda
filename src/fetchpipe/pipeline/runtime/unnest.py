"""A page's records split into the source's rows and the rows of its ``unnest`` tables.

:func:`split_records` takes each ``unnest`` field out of the records (see
:mod:`fetchpipe.pipeline.spec.unnest` for what the block means) and makes a row of each element
of its list. Every parent row and each of its child rows carry the same number in
:data:`~fetchpipe.destinations.pipelines.tables.ROW_COLUMN`: the parent's position among the
records of one commit, which the destination turns into its position among the source's staged
rows. With it, a merge keeps exactly the child rows of the parent record that won (a record
fetched twice in one run keeps the children of its last copy), and the column is dropped when
the rows reach their tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fetchpipe.destinations.pipelines.tables import ROW_COLUMN
from fetchpipe.pipeline.runtime.records import RecordsError
from fetchpipe.pipeline.spec.paths import MISSING, describe, get_path
from fetchpipe.pipeline.spec.unnest import VALUE_COLUMN, Unnest

Rows = list[dict[str, Any]]


def split_records(
    records: Sequence[Mapping[str, Any]], entries: Sequence[Unnest], first: int
) -> tuple[Rows, dict[str, Rows]]:
    """The parent rows (the ``unnest`` fields taken out, each numbered from ``first``) and, by
    table, the child rows of ``records``. A field that holds something other than a list (or
    null) is a RecordsError naming the record."""
    parents: Rows = []
    children: dict[str, Rows] = {entry.table: [] for entry in entries}
    for number, record in enumerate(records):
        row = first + number
        parent: dict[str, Any] = dict(record)
        for entry in entries:
            parent, found = _take(parent, entry.path)
            if found is MISSING or found is None:
                continue
            if not isinstance(found, list):
                raise RecordsError(
                    f"unnest {entry.field}: record {number} of the page holds "
                    f"{describe(found)} there, not a list. HINT: point field at a list; without "
                    "this unnest entry the value lands in a JSON column"
                )
            children[entry.table].extend(_rows(entry, found, record, row))
        parent[ROW_COLUMN] = row
        parents.append(parent)
    return parents, children


def _rows(entry: Unnest, elements: list[Any], record: Mapping[str, Any], row: int) -> Rows:
    """A row per element, with its position, the parent's fields and the parent's number."""
    copied = {}
    for column, parent_field in entry.include_parent.items():
        value = get_path(record, parent_field)
        if value is MISSING:
            raise RecordsError(
                f"unnest {entry.field}: include_parent {column}: the record has no {parent_field!r}"
            )
        copied[column] = value
    out = []
    for position, element in enumerate(elements):
        fields = dict(element) if isinstance(element, Mapping) else {VALUE_COLUMN: element}
        out.append({**fields, **copied, entry.index: position, ROW_COLUMN: row})
    return out


def _take(record: dict[str, Any], path: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
    """``record`` without the value at ``path`` (the objects on the way copied, the record's
    own left as they are), and that value; MISSING when a step is not an object with the key."""
    head, rest = path[0], path[1:]
    if head not in record:
        return record, MISSING
    if not rest:
        out = dict(record)
        return out, out.pop(head)
    inner = record[head]
    if not isinstance(inner, Mapping):
        return record, MISSING
    changed, found = _take(dict(inner), rest)
    if found is MISSING:
        return record, MISSING
    return {**record, head: changed}, found
