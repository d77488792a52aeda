"""A source's ``unnest`` block: list fields of its records landed as tables of their own.

::

    unnest:
      - field: items                        # a list in each record (or a dotted path: a.items)
        table: order_items
        include_parent: {order_id: id}      # child column: parent field, copied into each row
        index: _index                       # the element's position in the list (the default)

Each element of the list becomes a row of ``table``: an object's keys are its columns, any other
value (a string, a number, a list) is one ``value`` column. Every row has its position in the
list (``index``, from 0) and the parent fields of ``include_parent``, which win over an
element's keys of the same name. The field leaves the parent's row. A record without the field,
or with ``null``, has no child rows; a value that is not a list fails the source (the runtime
says which record).

``field`` is a key, or a dotted path of keys into nested objects (``details.lines``); a JSONPath
query is refused (a list of lists is not unnested: one level per entry). Under ``write: merge``
the child rows of a re-loaded parent replace its earlier ones, so ``include_parent`` must carry
the parent's primary key: the rows are tied to their parent by it (and the child rows are keyed
by it with ``index``). The checks here need only the file; the runtime's half is
:mod:`fetchpipe.pipeline.runtime.unnest`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from fetchpipe.pipeline.spec.base import FrozenModel
from fetchpipe.pipeline.spec.errors import Problem, Problems

RESERVED_PREFIX = "_fetchpipe_"
"""Tables and columns of fetchpipe's own (state, journal, stages, meta columns)."""
VALUE_COLUMN = "value"
"""The column of an element that is not an object."""


def _table_name(value: str) -> str:
    if not value.isidentifier() or not value.isascii():
        raise ValueError(
            f"{value!r} is not a name: use letters, digits and _, not starting with a digit"
        )
    if value.lower().startswith(RESERVED_PREFIX):
        raise ValueError(
            f"{value!r} is a name of fetchpipe's own ({RESERVED_PREFIX}...). HINT: choose "
            "another table name"
        )
    return value


TableName = Annotated[str, AfterValidator(_table_name)]


def _field_path(value: str) -> str:
    if value.startswith("$"):
        raise ValueError(
            "is a JSONPath query; unnest takes a field of the record. HINT: write the key "
            "(items) or a dotted path of keys (details.items)"
        )
    if not all(value.split(".")):
        raise ValueError(f"{value!r} has an empty part. HINT: write a.items")
    return value


FieldPath = Annotated[str, Field(min_length=1), AfterValidator(_field_path)]


class Unnest(FrozenModel):
    """A list field of the source's records landed as a table: a row per element."""

    field: FieldPath = Field(
        description="The list field of each record: a key, or a dotted path of keys (a.items)."
    )
    table: TableName = Field(description="The table of the list's elements.")
    include_parent: dict[TableName, str] = Field(
        default_factory=dict,
        description="child_column: parent_field, copied into each row; under write: merge it "
        "must carry the parent's primary key.",
    )
    index: TableName = Field(
        default="_index", description="The column of each element's position in the list."
    )

    @property
    def path(self) -> tuple[str, ...]:
        """``field`` as the keys to follow."""
        return tuple(self.field.split("."))

    @model_validator(mode="after")
    def _check(self) -> Unnest:
        problems = []
        for column, parent_field in self.include_parent.items():
            if column.lower() == self.index.lower():
                problems.append(
                    Problem(
                        ("include_parent", column),
                        "is the index column too. HINT: rename it, or set index: to another name",
                    )
                )
            if not parent_field:
                problems.append(Problem(("include_parent", column), "names no parent field"))
        if problems:
            raise Problems(problems)
        return self


def unnest_problems(
    entries: Sequence[Unnest], source: str, write: str, key: Sequence[str]
) -> list[Problem]:
    """The problems of a source's ``unnest`` entries among themselves and with the source
    (named ``source``, written by ``write`` with primary key ``key``)."""
    found: list[Problem] = []
    fields: dict[tuple[str, ...], int] = {}
    tables: dict[str, int] = {}
    for index, entry in enumerate(entries):
        at = ("unnest", index)
        path = entry.path
        clash = next(
            (i for p, i in fields.items() if p[: len(path)] == path or path[: len(p)] == p), None
        )
        if clash is not None:
            same = entries[clash].field == entry.field
            found.append(
                Problem(
                    (*at, "field"),
                    f"{'duplicate unnest field' if same else 'overlaps the unnest field'} "
                    f"{entries[clash].field!r} (also unnest[{clash}]). HINT: unnest each list "
                    "once, into one table",
                )
            )
        fields.setdefault(path, index)
        name = entry.table.lower()
        if name == source.lower():
            found.append(
                Problem(
                    (*at, "table"),
                    f"is the source's own table. HINT: name the child table, e.g. {source}_"
                    f"{path[-1]}",
                )
            )
        elif name in tables:
            found.append(
                Problem(
                    (*at, "table"),
                    f"duplicate table {entry.table!r} (also unnest[{tables[name]}]). HINT: "
                    "each list lands in a table of its own",
                )
            )
        tables.setdefault(name, index)
        if path[0] in key and len(path) == 1:
            found.append(
                Problem(
                    (*at, "field"),
                    f"is the primary key {entry.field!r}: it would leave the parent's row. "
                    "HINT: unnest a list field",
                )
            )
        carried = set(entry.include_parent.values())
        missing = [k for k in key if k not in carried]
        if write == "merge" and missing:
            wanted = ", ".join(f"{source}_{k}: {k}" for k in missing)
            found.append(
                Problem(
                    (*at, "include_parent"),
                    f"must carry the parent's primary key ({', '.join(missing)}) under write: "
                    "merge, so that the child rows of a re-loaded record replace its earlier "
                    f"ones. HINT: add {{{wanted}}}",
                )
            )
    return found


def table_problems(sources: Sequence[tuple[str, Sequence[Unnest]]]) -> list[Problem]:
    """An unnest table that has the name of a source's table, or of another source's unnest
    table; ``sources`` are each source's name and ``unnest`` entries, in file order."""
    owners: dict[str, tuple[str | int, ...]] = {}
    for index, (name, _) in enumerate(sources):
        owners.setdefault(name.lower(), ("sources", index, "name"))
    found: list[Problem] = []
    for index, (_, entries) in enumerate(sources):
        for number, entry in enumerate(entries):
            name = entry.table.lower()
            owner = owners.get(name)
            at = ("sources", index, "unnest", number, "table")
            if owner is not None and owner[:2] != at[:2]:
                found.append(
                    Problem(
                        at,
                        f"table {entry.table!r} is also {_shown(owner)}'s. HINT: give the child "
                        "table a name no source or other unnest has",
                    )
                )
            owners.setdefault(name, at)
    return found


def _shown(path: tuple[str | int, ...]) -> str:
    if len(path) == 3:
        return f"sources[{path[1]}]"
    return f"sources[{path[1]}].unnest[{path[3]}]"


def child_tables(entries: Iterable[Sequence[Unnest]]) -> list[str]:
    """The tables of each source's ``unnest`` entries, in file order."""
    return [entry.table for source in entries for entry in source]
