"""Records out of response bodies, parent values into child URLs, primary keys: pure functions.

- :func:`extract_records`: a dotted path (``data.items``, ``results.0``; ``""`` is the whole
  body) to the list of records, or a JSONPath query (``$.data.items[*].node``) whose matches
  are the records (both compiled by :func:`~fetchpipe.pipeline.spec.paths.compile_path`).
- :func:`render_url`: a child source's URL template refers to its parent's fields as
  ``{products.id}`` (parsed by :func:`~fetchpipe.pipeline.spec.paths.placeholders`); each
  value is URL-encoded into the URL. :func:`render_json` does the same in a json body.
- :func:`graphql_errors`: what a GraphQL response's ``errors`` say.
- :func:`with_parent`: ``include_parent`` copies parent fields into each child record.
- :func:`key_of` / :func:`duplicate_keys`: primary-key values of records, checked.
- :func:`latest_cursor`: the greatest incremental cursor value seen in a batch of records, by
  the cursor's type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fetchpipe._exceptions import FetchpipeError
from fetchpipe.pipeline.spec.cursors import CursorError, CursorRule
from fetchpipe.pipeline.spec.paths import (
    MISSING,
    Placeholder,
    compile_path,
    describe,
    get_path,
    placeholders,
    text_placeholders,
)


class RecordsError(FetchpipeError):
    """A response does not hold what the source configuration says it holds."""


def extract_records(body: Any, path: str) -> list[dict[str, Any]]:
    """The records at ``path`` in a response body.

    A path that names one place (a dotted path, or a JSONPath query of names and indices
    only) reads one value: a list gives its items, an object gives itself, ``null`` gives
    none, and a path that is not there is a RecordsError naming the keys that are. Any other
    JSONPath query (``*``, ``..``, slices, filters) gives its matches, in document order, as
    the records (none when nothing matches: an empty page). Items that are not objects are
    wrapped as ``{"value": item}``.
    """
    compiled = compile_path(path)
    if not compiled.singular:
        return [_record(item) for item in compiled.values(body)]
    found = compiled.one(body)
    if found is MISSING:
        where = _where(body, path) if compiled.query is None else _keys_of(body)
        raise RecordsError(f"records path {path!r} is not in the response: {where}")
    if found is None:
        return []
    if isinstance(found, Mapping):
        return [dict(found)]
    if isinstance(found, list):
        return [_record(item) for item in found]
    raise RecordsError(
        f"records path {path!r} holds {describe(found)}, not a list of records. "
        'HINT: point `records` at the list ("" for the whole body)'
    )


def _record(item: Any) -> dict[str, Any]:
    return dict(item) if isinstance(item, Mapping) else {"value": item}


def _keys_of(body: Any) -> str:
    if isinstance(body, Mapping):
        return (
            "no match (the body's keys: " + (", ".join(sorted(map(str, body))[:20]) or "none") + ")"
        )
    return f"no match (the body is {describe(body)})"


def _where(body: Any, path: str) -> str:
    """Which part of ``path`` is missing, and what is there instead."""
    current = body
    done: list[str] = []
    for part in path.split("."):
        step = get_path(current, part)
        if step is MISSING:
            at = ".".join(done) or "the body"
            if isinstance(current, Mapping):
                keys = ", ".join(sorted(map(str, current))[:20]) or "none"
                return f"{part!r} not found in {at} (keys: {keys})"
            return f"{at} is {describe(current)}, not an object"
        done.append(part)
        current = step
    return "not found"  # pragma: no cover - get_path and this walk agree


# --- URL templates ----------------------------------------------------------------------------


def _url_value(value: Any, placeholder: Placeholder) -> str:
    if value is MISSING or value is None:
        raise RecordsError(
            f"{placeholder.text}: the {placeholder.source} record has no {placeholder.field!r}"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return quote(str(value), safe="")
    raise RecordsError(
        f"{placeholder.text}: {placeholder.field!r} is {describe(value)}, not a value for a URL"
    )


def render_url(template: str, parents: Mapping[str, Mapping[str, Any]]) -> str:
    """``template`` with each ``{source.field}`` replaced by the URL-encoded parent value.

    ``parents`` maps a source name to its current record. A missing or null field, or an
    object/list value, is a RecordsError.
    """
    url = template
    for placeholder in placeholders(template):
        record = parents.get(placeholder.source)
        if record is None:
            raise RecordsError(f"{placeholder.text}: no {placeholder.source} record given")
        value = _url_value(get_path(record, placeholder.field), placeholder)
        url = url.replace(placeholder.text, value, 1)
    return url


def render_json(template: Any, parents: Mapping[str, Mapping[str, Any]]) -> Any:
    """A json body ``template`` with the placeholders of its string values filled in from the
    ``parents`` records. A string that is a placeholder alone becomes the parent's value as it
    is (a number stays a number, null stays null: what a GraphQL variable wants); within text
    the value is written as text. A missing field, or an object or list within text, is a
    RecordsError."""
    if isinstance(template, str):
        found = text_placeholders(template)
        if len(found) == 1 and found[0].text == template:
            value = _parent_value(found[0], parents)
            if value is MISSING:
                raise RecordsError(
                    f"{template}: the {found[0].source} record has no {found[0].field!r}"
                )
            return value
        for placeholder in found:
            value = _parent_value(placeholder, parents)
            if value is MISSING or value is None or isinstance(value, Mapping | list):
                raise RecordsError(
                    f"json {placeholder.text}: {placeholder.field!r} is "
                    f"{'missing' if value is MISSING else describe(value)}, not text"
                )
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            template = template.replace(placeholder.text, text, 1)
        return template
    if isinstance(template, Mapping):
        return {k: render_json(v, parents) for k, v in template.items()}
    if isinstance(template, list):
        return [render_json(v, parents) for v in template]
    return template


def _parent_value(placeholder: Placeholder, parents: Mapping[str, Mapping[str, Any]]) -> Any:
    record = parents.get(placeholder.source)
    if record is None:
        raise RecordsError(f"{placeholder.text}: no {placeholder.source} record given")
    return get_path(record, placeholder.field)


_GRAPHQL_KEYS = frozenset({"data", "errors", "extensions"})
_SHOWN_ERRORS = 3


def graphql_errors(body: Any) -> str | None:
    """What a GraphQL response's ``errors`` say, or None when it has none.

    A GraphQL response is an object of ``data``, ``errors`` and ``extensions`` only (the
    GraphQL specification, section 7.1); a body with other keys is not one. The first messages
    are given, each with the path of the field it concerns. An ``errors`` string (as some APIs
    answer for a bad token) is one message."""
    if not isinstance(body, Mapping) or not body.keys() <= _GRAPHQL_KEYS:
        return None
    errors = body.get("errors")
    if isinstance(errors, str) and errors:
        errors = [{"message": errors}]
    if not isinstance(errors, list) or not errors:
        return None
    shown = []
    for error in errors[:_SHOWN_ERRORS]:
        message = error.get("message") if isinstance(error, Mapping) else None
        text = str(message)[:300] if message is not None else describe(error)
        path = error.get("path") if isinstance(error, Mapping) else None
        if isinstance(path, list) and path:
            text = f"{'.'.join(map(str, path))}: {text}"
        shown.append(text)
    more = len(errors) - len(shown)
    data = " beside partial data" if body.get("data") is not None else ""
    listed = "; ".join(shown) + (f" (and {more} more)" if more else "")
    return f"the GraphQL API answered with {len(errors)} error(s){data}: {listed}"


def with_parent(
    record: Mapping[str, Any], parent: Mapping[str, Any], include: Mapping[str, str]
) -> dict[str, Any]:
    """``record`` plus, for each ``child_field: parent_path`` of ``include``, the parent value.

    Parent values replace fields of the same name. A missing parent field is a RecordsError.
    """
    out = dict(record)
    for child_field, parent_path in include.items():
        value = get_path(parent, parent_path)
        if value is MISSING:
            raise RecordsError(f"include_parent {child_field}: the parent has no {parent_path!r}")
        out[child_field] = value
    return out


# --- primary keys -----------------------------------------------------------------------------

Key = tuple[Any, ...]


def key_of(record: Mapping[str, Any], primary_key: Sequence[str]) -> Key:
    """The primary-key values of ``record``; RecordsError when one is missing, null or nested."""
    values = []
    for name in primary_key:
        value = get_path(record, name)
        if value is MISSING or value is None:
            raise RecordsError(f"a record has no primary key field {name!r}: {_keys(record)}")
        if isinstance(value, Mapping | list):
            raise RecordsError(
                f"primary key field {name!r} is {describe(value)}; "
                "a key must be a string or a number"
            )
        values.append(value)
    return tuple(values)


def _keys(record: Mapping[str, Any]) -> str:
    return "keys " + (", ".join(sorted(map(str, record))[:20]) or "none")


def duplicate_keys(records: Iterable[Mapping[str, Any]], primary_key: Sequence[str]) -> list[Key]:
    """Keys that occur more than once among ``records``, in order of their second occurrence."""
    seen: set[Key] = set()
    repeated: dict[Key, None] = {}
    for record in records:
        key = key_of(record, primary_key)
        if key in seen:
            repeated[key] = None
        seen.add(key)
    return list(repeated)


def latest_cursor(
    records: Iterable[Mapping[str, Any]], rule: CursorRule | str, current: Any
) -> Any:
    """The greatest cursor value among ``records`` and ``current`` (``None``: none), as written.

    Values compare by the rule's type (datetimes as instants, numbers as numbers: see
    :mod:`~fetchpipe.pipeline.spec.cursors`; a field name alone: the first value's type).
    Records without the field are skipped; a value that is not of the cursor's type is a
    RecordsError.
    """
    rule = CursorRule(rule) if isinstance(rule, str) else rule
    best = current
    for record in records:
        best = greater_cursor(best, get_path(record, rule.field), rule)
    return best


def greater_cursor(current: Any, value: Any, rule: CursorRule) -> Any:
    """The greater of two cursor values; ``None`` or missing ``value`` keeps ``current``."""
    if value is MISSING:
        return current
    try:
        return rule.greater(current, value)
    except CursorError as exc:
        raise RecordsError(f"incremental cursor_field {rule.field!r}: {exc}") from None
