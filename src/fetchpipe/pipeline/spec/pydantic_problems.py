"""Pydantic's validation errors as problems of a pipeline file, worded for the person editing it.

:func:`problems_from` turns each error into a :class:`~fetchpipe.pipeline.spec.errors.Problem`
on the data path of the file (the tags of discriminated unions dropped, the members of plain
unions said in words), with a did-you-mean for an unknown key or type.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from fetchpipe.pipeline.spec.errors import DataPath, Problem, Problems, did_you_mean


def problems_from(error: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Pydantic's errors in validating ``root`` as problems on data paths, worded for a person
    editing the file."""
    problems: list[Problem] = []
    unknown: dict[DataPath, str] = {}  # the parent path of an unknown key -> its suggestion
    unions: dict[DataPath, list[str]] = {}
    missing: list[Problem] = []
    for item in error.errors(include_url=False):
        path, container, field_type, labels = _resolve(item["loc"], root)
        kind = item["type"]
        ctx = item.get("ctx") or {}
        if kind == "value_error" and isinstance(ctx.get("error"), Problems):
            problems.extend(p.under(path) for p in ctx["error"].problems)
        elif labels:
            unions.setdefault(path, []).extend(labels)
        elif kind == "missing":
            missing.append(Problem(path, "field required"))
        elif kind == "extra_forbidden":
            allowed = _keys(container)
            key = str(path[-1])
            hint = did_you_mean(key, allowed)
            if hint:
                unknown[path[:-1]] = hint
            else:
                hint = f". HINT: the keys here are {', '.join(allowed)}" if allowed else ""
            problems.append(Problem(path, f"unknown key{hint}"))
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            tags = _tags(field_type)
            expected = f"; expected one of {', '.join(tags)}"
            if kind == "union_tag_not_found":
                problems.append(Problem((*path, "type"), f"field required{expected}"))
            else:
                tag = str(ctx.get("tag"))
                message = f"unknown type {tag!r}{expected}{did_you_mean(tag, tags)}"
                problems.append(Problem((*path, "type"), message))
        else:
            problems.append(Problem(path, _message(item, field_type)))
    for path, labels in unions.items():
        words = list(dict.fromkeys(_LABELS.get(label.split("[")[0], label) for label in labels))
        choices = ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
        problems.append(Problem(path, f"must be {choices}"))
    for problem in missing:
        hint = unknown.get(problem.path[:-1], "")
        if f"`{problem.path[-1]}`" not in hint:
            problems.append(problem)
    return problems


_LABELS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "tuple": "a list of strings",
    "list": "a list",
    "dict": "a mapping",
}
_MAPPING_KINDS = frozenset({"model_type", "model_attributes_type", "dict_type"})
_QUOTED = re.compile(r"'([^']*)'")


def _message(item: Any, field_type: Any) -> str:
    kind = item["type"]
    ctx = item.get("ctx") or {}
    value = item.get("input")
    if kind in _MAPPING_KINDS:
        return "must be a mapping (key: value lines)"
    if kind == "value_error":
        return str(ctx.get("error", item["msg"]))
    if kind == "literal_error":
        expected = _QUOTED.findall(str(ctx.get("expected", "")))
        text = f"must be one of {', '.join(expected)}{_got(value, field_type)}"
        return text + did_you_mean(str(value), expected)
    if kind == "string_pattern_mismatch":
        return "must be letters, digits, _, . and -" + _got(value, field_type)
    text = str(item["msg"]).replace("Input should be", "must be").replace("String", "must")
    return text[:1].lower() + text[1:] + _got(value, field_type)


def _got(value: Any, field_type: Any) -> str:
    tp = _unwrap(field_type)
    secret = tp is SecretStr or (get_origin(tp) is list and get_args(tp) == (SecretStr,))
    if secret or not isinstance(value, str | int | float | None):  # a secret, or a list of them
        return ""
    shown = repr(value)
    return f"; got {shown}" if len(shown) <= 60 else ""


def _unwrap(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and ``| None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is not None and get_origin(field.annotation) is Literal:
        return str(get_args(field.annotation)[0])
    return None


def _tags(tp: Any) -> list[str]:
    return [t for m in get_args(_unwrap(tp)) if _is_model(m) and (t := _tag(m)) is not None]


def _keys(model: Any) -> list[str]:
    if not _is_model(model):
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _resolve(
    loc: tuple[int | str, ...], root: type[BaseModel]
) -> tuple[DataPath, Any, Any, list[str]]:
    """A pydantic error location as a data path.

    Drops the tags of discriminated unions and the member labels of plain unions (returned as
    ``labels``). Also returns the model holding the last key and the type at the location.
    """
    tp: Any = root
    path: list[str | int] = []
    container: Any = None
    labels: list[str] = []
    for part in loc:
        tp = _unwrap(tp)
        if part == "[key]":
            continue
        if _is_model(tp):
            container = tp
            path.append(part)
            fields = {f.alias or name: f for name, f in tp.model_fields.items()}
            found = fields.get(str(part))
            tp = found.annotation if found is not None else None
            continue
        container = None
        origin = get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            members = [m for m in get_args(tp) if _is_model(m) and _tag(m) == part]
            if members:
                tp = members[0]
            else:
                labels.append(str(part))
                tp = None
            continue
        path.append(part)
        args = get_args(tp)
        if origin in (list, tuple) and args:
            tp = args[0]
        elif origin is dict and len(args) == 2:
            tp = args[1]
        else:
            tp = None
    return tuple(path), container, tp, labels
