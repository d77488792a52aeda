"""Where the records are, which field keys them, which field could drive incremental loads.
Pure functions over parsed JSON bodies.

- :func:`find_records`: the largest list of objects in the body (a name such as ``data``,
  ``items`` or the source's own name breaks a tie; the shallower wins then).
- :func:`guess_key`: a field present, scalar and unique in every record seen, ``id`` first.
- :func:`guess_incremental`: a field holding ISO 8601 date-times in every record, one named
  like ``updated_at`` first; the request parameter that filters by it is not in a response,
  so it is known only when the URL already carries one (``?updated_since=...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fetchpipe.pipeline.scaffold.bodies import (
    Segments,
    empty_lists,
    normalized,
    object_lists,
    path_text,
)
from fetchpipe.pipeline.spec.cursors import infer_type, parse_datetime

_RECORD_NAMES = (
    "data", "items", "results", "records", "rows", "entries", "hits", "objects", "nodes",
    "elements", "values", "list", "content", "collection",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RecordsGuess:
    """The ``records`` path and the records there. ``found`` is false when the body holds no
    list of objects: ``path`` is then ``""`` (an object body is one record)."""

    path: str
    records: tuple[Mapping[str, Any], ...]
    found: bool
    why: str
    others: tuple[str, ...] = ()
    """The paths of the other lists of objects, for the file's comment."""


def find_records(body: Any, source_name: str = "") -> RecordsGuess:
    """The list of records in ``body`` (see the module's docstring)."""
    lists = object_lists(body)
    if not lists:
        return _no_list(body, source_name)
    wanted = {normalized(source_name), *_RECORD_NAMES} if source_name else set(_RECORD_NAMES)

    def rank(candidate: Any) -> tuple[int, int, int]:
        named = bool(candidate.at) and normalized(candidate.at[-1]) in wanted
        return (len(candidate.items), named, -len(candidate.at))

    best = max(lists, key=rank)
    others = tuple(c.path for c in lists if c is not best)
    where = "the body" if not best.at else best.path
    kind = "Relay edges' nodes" if best.relay else "objects"
    why = f"the list of {len(best.items)} {kind} at {where}"
    if others:
        why += f" (the largest of {len(lists)} lists of objects)"
    return RecordsGuess(best.path, tuple(best.records), True, why, others)


def _no_list(body: Any, source_name: str) -> RecordsGuess:
    if isinstance(body, list):
        what = "an empty list" if not body else "a list of values, not objects"
        return RecordsGuess(
            "", (), False, f"the body is {what}: each item is loaded as a record (as `value`)"
        )
    empty = [at for at in empty_lists(body) if at and _named(at, source_name)]
    if empty:
        path = path_text(empty[0])
        return RecordsGuess(
            path, (), False, f"the list at {path} is empty on this page: nothing to look at"
        )
    if isinstance(body, Mapping):
        return RecordsGuess(
            "", (dict(body),), False, "no list of objects in the body: it is loaded as one record"
        )
    return RecordsGuess("", (), False, "the body is not an object or a list of objects")


def _named(at: Segments, source_name: str) -> bool:
    return normalized(at[-1]) in {normalized(source_name), *_RECORD_NAMES}


# --- primary key ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyGuess:
    """A primary key field (``None``: none found) and why."""

    field: str | None
    why: str


def _singular(name: str) -> str:
    lowered = name.lower()
    if lowered.endswith("ies"):
        return lowered[:-3] + "y"
    if lowered.endswith("s") and not lowered.endswith("ss"):
        return lowered[:-1]
    return lowered


def _key_rank(field: str, source_name: str) -> int | None:
    """How good a name is for a primary key (lower is better); None: not a key's name."""
    lowered = field.lower()
    if lowered == "id":
        return 0
    if lowered in ("uuid", "guid", "_id"):
        return 1
    if source_name and normalized(field) == normalized(_singular(source_name) + "id"):
        return 2
    if re.search(r"(_id|Id|ID|_uuid|Uuid)\Z", field):
        return 3
    if lowered in ("key", "slug", "sku", "code", "number", "uid", "handle"):
        return 4
    return None


def guess_key(records: Sequence[Mapping[str, Any]], source_name: str = "") -> KeyGuess:
    """The best-named field that every record has, as text or an integer, with no value twice.
    A float or a true/false value is no key."""
    if not records:
        return KeyGuess(None, "no records to look at")
    ranked: list[tuple[int, str]] = []
    for field in records[0]:
        rank = _key_rank(field, source_name)
        if rank is not None and _unique_scalar(records, field):
            ranked.append((rank, field))
    if not ranked:
        return KeyGuess(
            None,
            f"no field named like a key (id, uuid, *_id, ...) is unique in the {len(records)} "
            "records seen",
        )
    field = min(ranked)[1]
    seen = f"the {len(records)} records seen" if len(records) > 1 else "the one record seen"
    return KeyGuess(field, f"`{field}` is present and unique in {seen}")


def _unique_scalar(records: Sequence[Mapping[str, Any]], field: str) -> bool:
    values = set()
    for record in records:
        value = record.get(field)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            return False
        if value in values:
            return False
        values.add(value)
    return True


# --- incremental ------------------------------------------------------------------------------

_UPDATED = (
    "updatedat", "updated", "modifiedat", "modified", "lastmodified", "lastmodifiedat",
    "datemodified", "lastupdated", "lastupdatedat", "updatetime", "modifiedtime", "updatedon",
    "modifiedon", "changedat", "changed", "lastchanged", "updateddate", "modifieddate",
)  # fmt: skip
_CREATED = ("createdat", "created", "createdon", "datecreated", "createtime", "insertedat")
_SINCE_PARAMS = re.compile(r"(since|after|from|gte|gt|min|start)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class IncrementalGuess:
    """A cursor field (``None``: none), its greatest value seen, and the query parameter that
    filters by it when the URL showed one (with the value it had)."""

    field: str | None
    why: str
    latest: str | None = None
    param: str | None = None
    initial: str | None = None


def guess_incremental(
    records: Sequence[Mapping[str, Any]], query: Sequence[tuple[str, str]] = ()
) -> IncrementalGuess:
    """A date-time field of every record (an "updated" name first, then a "created" one),
    and, from the URL's ``query``, a date-time parameter named like ``updated_since``."""
    if not records:
        return IncrementalGuess(None, "no records to look at")
    best: tuple[int, str] | None = None
    for field in records[0]:
        name = normalized(field)
        if name in _UPDATED or any(word in name for word in ("updated", "modified", "changed")):
            rank = 0
        elif name in _CREATED:
            rank = 1
        else:
            continue
        if all(infer_type(r.get(field)) == "datetime" for r in records) and (
            best is None or rank < best[0]
        ):
            best = (rank, field)
    if best is None:
        return IncrementalGuess(
            None, "no field named like updated_at or created_at holds date-times in every record"
        )
    field = best[1]
    latest = max((str(r[field]) for r in records), key=parse_datetime)
    param = _since_param(query)
    kind = "changed" if best[0] == 0 else "created (changes are not seen)"
    why = f"`{field}` holds ISO 8601 date-times in every record: when each was {kind}"
    if param is None:
        return IncrementalGuess(field, why, latest)
    return IncrementalGuess(field, why, latest, param[0], param[1])


def _since_param(query: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    for name, value in query:
        if _SINCE_PARAMS.search(name) and infer_type(value) == "datetime":
            return name, value
    return None
