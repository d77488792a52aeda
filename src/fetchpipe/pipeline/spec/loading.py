"""Reading a pipeline file into plain data, keeping the line of every key and sequence item.

:func:`load_file` reads YAML (``.yaml``, ``.yml``, anything else) or TOML (``.toml``) into a
:class:`Document`: the data and a map from data paths to 1-based lines, so that a problem at
``sources.1.paginate.cursor_path`` can be reported at its line. A syntax error is a
:class:`PipelineError` carrying the line. :func:`substitute` then replaces ``${VAR}`` in
string values with the environment's value (``$${`` writes a literal ``${``).

YAML plain scalars are read as YAML 1.2's core schema reads them, not as YAML 1.1 (PyYAML's
default): only ``true`` and ``false`` are booleans (``yes``, ``no``, ``on``, ``off``, ``y``,
``n`` and ``NO`` stay strings, so ``params: {country: NO}`` sends ``country=NO``); integers
are decimal, ``0o17`` or ``0x1F``; floats need a dot or an exponent (``1.5``, ``1e3``,
``.inf``). Where 1.1 and 1.2 disagree about digits, what was written stays a string: ``0777``
(octal 511 in 1.1, 777 in 1.2), ``1:20`` (sexagesimal 80 in 1.1), ``1_000`` and
``2024-01-01`` (a date in 1.1). A zero-padded number in a pipeline file is an identifier (a
postcode, an account), so it is sent as written; a field that wants a number still takes it
(``"0100"`` is read as 100 there). This is a resolver table on PyYAML's safe loader, keeping
its marks for the line numbers, rather than a second YAML library.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fetchpipe.pipeline.spec.errors import DataPath, PipelineError, Problem

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Document:
    """A pipeline file's data, its name for messages, and the line of each data path."""

    data: Any
    name: str | None = None
    lines: Mapping[DataPath, int] = field(default_factory=dict)

    def line_of(self, path: DataPath) -> int | None:
        """The line of ``path``, or of its nearest enclosing key or item that has one."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def load_file(path: str | Path) -> Document:
    """Read ``path`` as TOML (``.toml``) or YAML (any other name)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PipelineError([Problem((), f"cannot read the file: {reason}")], name) from None
    if Path(path).suffix.lower() == ".toml":
        return load_toml(text, name)
    return load_yaml(text, name)


# --- YAML -----------------------------------------------------------------------------------


_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_YAML_1_1_TAGS = frozenset(
    {_BOOL_TAG, _INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG, "tag:yaml.org,2002:value"}
)


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the plain scalars of YAML 1.2's core schema (null and merge
    keys as before)."""


# The safe loader's resolvers less those of 1.1's scalars (add_implicit_resolver appends to a
# copy the subclass owns once it has one of its own).
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_1_1_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    _INT_TAG,
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Yaml12Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    """``0o17``, ``0x1F`` and decimals; an explicit ``!!int 0777`` is decimal."""
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]  # a scalar node
    for base in (0, 10):
        try:
            return int(text, base)
        except ValueError:
            continue
    raise yaml.constructor.ConstructorError(
        None, None, f"{text!r} is not an integer", node.start_mark
    )


_Yaml12Loader.add_constructor(_INT_TAG, _construct_int)


def load_yaml(text: str, name: str | None = None) -> Document:
    """Parse YAML ``text`` with YAML 1.2 scalars; a duplicate key is an error (PyYAML would
    keep the last)."""
    loader = _Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[DataPath, int] = {}
        problems: list[Problem] = []
        data = None if node is None else _yaml_value(loader, node, (), lines, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "cannot parse"
        if exc.problem and exc.context and exc.context_mark is not None:
            start = exc.context_mark.line + 1
            if start != line:
                what += f" ({exc.context}, which starts at line {start})"
        raise PipelineError([Problem((), f"YAML syntax error: {what}", line)], name) from None
    except yaml.YAMLError as exc:
        raise PipelineError([Problem((), f"YAML syntax error: {exc}")], name) from None
    finally:
        loader.dispose()
    if problems:
        raise PipelineError(problems, name)
    return Document(data, name, lines)


def _yaml_value(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: DataPath,
    lines: dict[DataPath, int],
    problems: list[Problem],
) -> Any:
    if len(path) > _MAX_DEPTH:
        raise yaml.MarkedYAMLError(problem="nested too deeply", problem_mark=node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, int | float) and not isinstance(key, bool):
                key = str(key)
            line = key_node.start_mark.line + 1
            child = (*path, key)
            if key in out:
                first = lines.get(child)
                problems.append(Problem(child, f"duplicate key (first at line {first})", line))
                continue
            lines[child] = line
            out[key] = _yaml_value(loader, value_node, child, lines, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            items.append(_yaml_value(loader, item, (*path, index), lines, problems))
        return items
    if node.tag == _TIMESTAMP_TAG:
        return node.value  # a date stays the text that was written
    return loader.construct_object(node, deep=True)


# --- TOML -----------------------------------------------------------------------------------

_PART = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)"""
_KEY = rf"{_PART}(?:\s*\.\s*{_PART})*"
_TABLE = re.compile(rf"^\s*(\[\[?)\s*({_KEY})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_KEY})\s*=")
_PART_RE = re.compile(_PART)
_TOML_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)")


def load_toml(text: str, name: str | None = None) -> Document:
    """Parse TOML ``text``. Lines are found for tables, array tables and ``key =`` lines."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_LINE.search(message)
        line = int(found.group(1)) if found else None
        if line is None and message.endswith("(at end of document)"):
            line = max(1, len(text.splitlines()))
        what = _TOML_LINE.sub("", message)
        raise PipelineError([Problem((), f"TOML syntax error: {what}", line)], name) from None
    return Document(data, name, _toml_lines(text))


def _key_parts(key: str) -> list[str]:
    parts = []
    for match in _PART_RE.finditer(key):
        part = match.group(0)
        if part[0] in "\"'":
            part = part[1:-1]
        parts.append(part)
    return parts


def _toml_lines(text: str) -> dict[DataPath, int]:
    """Best effort: the line of each table and ``key =`` (not keys inside inline tables)."""
    lines: dict[DataPath, int] = {}
    arrays: dict[tuple[str, ...], int] = {}  # array-of-tables path -> its current index
    table: DataPath = ()
    in_string = False
    for number, raw in enumerate(text.splitlines(), start=1):
        quotes = raw.count('"""') + raw.count("'''")
        if in_string:
            in_string = quotes % 2 == 0
            continue
        header = _TABLE.match(raw)
        if header is not None:
            names = _key_parts(header.group(2))
            resolved: list[str | int] = []
            for depth, part in enumerate(names):
                resolved.append(part)
                plain = tuple(names[: depth + 1])
                last = depth == len(names) - 1
                if plain in arrays and not (last and header.group(1) == "[["):
                    resolved.append(arrays[plain])
            if header.group(1) == "[[":
                plain = tuple(names)
                arrays[plain] = arrays.get(plain, -1) + 1
                lines.setdefault(tuple(resolved), number)
                resolved.append(arrays[plain])
            table = tuple(resolved)
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(raw)
        if assign is not None:
            path = (*table, *_key_parts(assign.group(1)))
            for end in range(len(table) + 1, len(path) + 1):
                lines.setdefault(path[:end], number)
            in_string = quotes % 2 == 1
    return lines


# --- ${VAR} ---------------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class Substituted:
    """Data after ``${VAR}`` substitution, the problems found, the values read, and (when unset
    variables were skipped) where each unset one was."""

    data: Any
    problems: tuple[Problem, ...]
    secrets: frozenset[str]
    unset: tuple[Problem, ...] = ()
    unset_names: frozenset[str] = frozenset()


UNSET_URL = "https://unset.invalid"
"""What a skipped unset variable stands for at the start of a ``*url`` value."""
UNSET = "unset"
"""What a skipped unset variable stands for anywhere else."""


def substitute(data: Any, env: Mapping[str, str], *, skip_unset: bool = False) -> Substituted:
    """Replace ``${VAR}`` in every string value (not keys) with ``env[VAR]``.

    An unset variable is a problem naming it; its reference is replaced by an empty string so
    that validation can go on. With ``skip_unset`` (``validate --skip-env``) it is no problem:
    it is listed in ``unset`` and stands for :data:`UNSET_URL` at the start of a value whose
    key ends in ``url`` and :data:`UNSET` elsewhere, values that pass the checks of most
    fields. Every value read is returned in ``secrets`` for redaction.
    """
    problems: list[Problem] = []
    unset: list[Problem] = []
    unset_names: set[str] = set()
    secrets: set[str] = set()

    def text(value: str, path: DataPath) -> str:
        def one(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            if not _NAME.match(name):
                problems.append(
                    Problem(
                        path,
                        f"`${{{name}}}` is not a variable reference. HINT: a name is letters, "
                        "digits and _ (write `$${` for a literal `${`)",
                    )
                )
                return match.group(0)
            found = env.get(name)
            if found is None and skip_unset:
                unset.append(Problem(path, f"not checked: environment variable {name} is not set"))
                unset_names.add(name)
                key = path[-1] if path else ""
                at_url = match.start() == 0 and isinstance(key, str) and key.endswith("url")
                return UNSET_URL if at_url else UNSET
            if found is None:
                problems.append(
                    Problem(
                        path,
                        f"environment variable {name} is not set. HINT: export {name}=... "
                        "before running, or write the value in the file",
                    )
                )
                return ""
            secrets.add(found)
            return found

        return _REFERENCE.sub(one, value) if "${" in value else value

    def walk(value: Any, path: DataPath) -> Any:
        if isinstance(value, str):
            return text(value, path)
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        return value

    result = walk(data, ())
    return Substituted(
        result, tuple(problems), frozenset(secrets), tuple(unset), frozenset(unset_names)
    )
