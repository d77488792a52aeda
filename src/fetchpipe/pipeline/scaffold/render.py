"""The pipeline file ``fetchpipe init`` writes: YAML text with a comment on every choice, and
its check by the pipeline loader itself.

The text is written here rather than dumped by a YAML library: PyYAML drops comments, and the
comments (why each key, what else there is) are the point of the file. Every scalar goes
through :func:`scalar`, which quotes anything that is not plainly a name or a number as a JSON
string (JSON strings are YAML 1.2 double-quoted scalars), so that what is read back is what
was meant. :func:`check` then loads the text with :class:`PipelineSpec` (each ``${VAR}`` set to
a stand-in): a file that does not load is never handed out.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fetchpipe.pipeline.scaffold.credentials import Prepared
from fetchpipe.pipeline.scaffold.detection import Detection
from fetchpipe.pipeline.spec.config import PipelineSpec

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*\Z")
_RESERVED = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"})
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def scalar(value: Any) -> str:
    """``value`` as a YAML scalar that reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return _quoted(text)


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar: printable ASCII as it is, anything else escaped (YAML
    refuses some characters written as they are, and PyYAML reads a JSON surrogate pair as
    two characters: ``\\U`` then)."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


_WIDTH = 100
_SOURCE = "    "


def comment(text: str, indent: str = _SOURCE) -> list[str]:
    """``text`` as comment lines within the file's width (continuations indented)."""
    return textwrap.wrap(
        text,
        _WIDTH,
        initial_indent=f"{indent}# ",
        subsequent_indent=f"{indent}#   ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def flow(pairs: Iterable[tuple[str, Any]]) -> str:
    """A one-line mapping: ``{type: page, param: page}``."""
    return "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in pairs) + "}"


@dataclass(frozen=True, slots=True)
class FileParts:
    """What goes into the file besides the detection: the request's parts as written, the
    ``defaults`` block (network settings given on the command line), the command shown."""

    prepared: Prepared
    defaults: Mapping[str, Any]
    command: str


def render(detection: Detection, parts: FileParts) -> str:
    """The pipeline file's text."""
    d, p = detection, parts.prepared
    paginate = d.paginate
    owned = set(paginate.owned) if paginate is not None else set()
    inc = d.incremental
    if inc.param is not None and inc.field is not None:
        owned.add(inc.param)
    params = [(n, v) for n, v in p.file_params if n not in owned]
    out = comment(
        f"A pipeline for GET {p.file_url}, written by `{parts.command}` from its first "
        + ("response and a second page. " if paginate is not None else "response. ")
        + "Each choice below says why, and what else there is. Check it, then: "
        "fetchpipe validate FILE && fetchpipe run FILE",
        "",
    )
    if p.variables:
        out += comment("It reads these environment variables (set them before running):", "")
        out += [f"#   {v.name}: {v.holds}" for v in p.variables]
    if any(not v.given for v in p.variables):
        out.append("# (the values given to init are not written here)")
    out += [
        f"name: {scalar(d.name)}",
        f"# destination: duckdb:///{d.name}.duckdb   # the default; also jsonl:///DIR, "
        "parquet:///DIR",
    ]
    if parts.defaults:
        out.append("defaults:")
        out += _block(parts.defaults, 1)
    out += [
        "sources:",
        f"  - name: {scalar(d.name)}                 # the table the records land in",
        f"    url: {scalar(p.file_url)}",
    ]
    if params:
        out.append("    params:                        # the URL's query, sent with every page")
        out += [f"      {scalar(n)}: {scalar(v)}" for n, v in params]
    if p.file_headers:
        out.append("    headers:")
        out += [f"      {scalar(n)}: {scalar(v)}" for n, v in p.file_headers]
    if p.file_auth is not None:
        out.append("    # auth: sent on every page, and only to this URL's origin")
        out.append(f"    auth: {flow(p.file_auth)}")
    out += _records(d)
    out += _key(d)
    out += _paginate(d)
    out += _incremental(d)
    return "\n".join(out) + "\n"


def _block(mapping: Mapping[str, Any], depth: int) -> list[str]:
    lines = []
    for key, value in mapping.items():
        pad = "  " * depth
        if isinstance(value, Mapping):
            lines.append(f"{pad}{scalar(key)}:")
            lines += _block(value, depth + 1)
        else:
            lines.append(f"{pad}{scalar(key)}: {scalar(value)}")
    return lines


def _records(d: Detection) -> list[str]:
    text = f"records: {d.records.why}."
    if d.records.others:
        text += f" Other lists of objects: {', '.join(d.records.others[:5])}."
    if not d.records.found:
        text += ' Point records at the list to load ("" is the whole body).'
    return [*comment(text), f"    records: {scalar(d.records.path)}"]


def _key(d: Detection) -> list[str]:
    inc = d.incremental
    incremental = inc.field is not None and inc.param is not None
    if d.key.field is None:
        write = "append" if incremental else "replace"
        why = (
            "each run adds the new records (no key to merge by)"
            if incremental
            else "each run replaces the table (append would add every run's rows again)"
        )
        return [
            *comment(f"primary_key: none: {d.key.why}. Name one (or a list) to merge by it."),
            *comment(f"write: {write}: {why}."),
            f"    write: {write}",
        ]
    return [
        *comment(f"primary_key: {d.key.why}."),
        f"    primary_key: {scalar(d.key.field)}",
        *comment(
            "write: merge upserts by primary_key, so a run again changes rows, never doubles "
            "them (append: add every run's records; replace: keep the last run's)."
        ),
        "    write: merge",
    ]


def _paginate(d: Detection) -> list[str]:
    paginate = d.paginate
    if paginate is not None:
        lines = comment(f"paginate: {paginate.why}; confirmed: {d.confirmation}.")
        lines += _tried(d, confirmed=True)
        lines.append(f"    paginate: {flow(paginate.block)}")
        return lines
    if d.outlook.single_page is not None:
        lines = comment(f"paginate: none: everything is in one response ({d.outlook.single_page}).")
        suggestion = d.outlook.suggestion
        if suggestion is not None:
            lines += comment(f"If it grows past one page ({suggestion.why}), try:")
            lines.append(f"    # paginate: {flow(suggestion.block)}")
        return lines
    if not d.trials:
        return comment("paginate: none: nothing in the response speaks of pages.")
    lines = ["    # paginate: none written: no pagination could be confirmed."]
    lines += _tried(d, confirmed=False)
    cursors = [t.candidate for t in d.trials if t.candidate.type == "cursor"]
    if cursors:
        path = cursors[0].as_dict()["cursor_path"]
        header = [("type", "cursor"), ("cursor_path", path), ("param", "X-Cursor")]
        lines += comment(
            "The API may take the cursor in a header (its name is a guess here) or in a json "
            "body (location: body, with method: POST and json:). For a header:"
        )
        lines.append(f"    # paginate: {flow([*header, ('location', 'header')])}")
    return lines


def _tried(d: Detection, *, confirmed: bool) -> list[str]:
    lines = []
    for trial in d.trials:
        if not trial.verdict.confirmed:
            lines += comment(f"  Tried {flow(trial.candidate.block)}: {trial.verdict.why}.")
    if not confirmed:
        for candidate in d.untried:
            lines += comment(f"  Not tried (a few requests at most): {flow(candidate.block)}.")
    return lines


def _incremental(d: Detection) -> list[str]:
    inc = d.incremental
    if inc.field is None:
        return comment(f"incremental: none: {inc.why}.")
    if inc.param is not None:
        block = [("cursor_field", inc.field), ("param", inc.param), ("initial", inc.initial)]
        return [
            *comment(
                f"incremental: {inc.why}; the URL filtered it with {inc.param}=, so each run "
                "sends the greatest value loaded so far (the first run sends initial)."
            ),
            f"    incremental: {flow(block)}",
        ]
    block = [("cursor_field", inc.field), ("param", "updated_since"), ("initial", inc.latest)]
    return [
        *comment(
            f"incremental: {inc.why}. The request parameter that returns only the records "
            "changed after a value is not in the response: find it in the API's documentation, "
            "put it as param (updated_since is a guess) and uncomment (initial: the first "
            "run's value; the latest seen is shown)."
        ),
        f"    # incremental: {flow(block)}",
    ]


# --- the check ---------------------------------------------------------------------------------


def variables_in(text: str) -> list[str]:
    """The ``${VAR}`` names the text reads."""
    return sorted(set(_REFERENCE.findall(text)))


def check(text: str, secrets: Sequence[str] = (), written: Sequence[str] = ()) -> PipelineSpec:
    """``text`` loaded by the pipeline loader, each ``${VAR}`` standing for a placeholder
    value: :class:`~fetchpipe.pipeline.spec.errors.PipelineError` when it does not load.
    ValueError when a secret value is in it (a bug: it must never be written), unless it is
    part of a value given to be ``written`` as it is (a URL's path that holds it)."""
    leaked = [s for s in secrets if len(s) >= 4 and s in text and not any(s in w for w in written)]
    if leaked:
        raise ValueError("the generated file would hold a secret value given to init")
    env = {name: f"placeholder-{name.lower()}" for name in variables_in(text)}
    handle, path = tempfile.mkstemp(prefix="fetchpipe-init-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        return PipelineSpec.from_file(path, env=env)
    finally:
        os.unlink(path)
