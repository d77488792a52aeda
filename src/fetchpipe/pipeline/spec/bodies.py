"""The checks of a source's request beyond its URL: the method with its ``json`` body, the
parent its body refers to, and a cursor sent in the body or in a header: pure functions over
the source's values, kept out of :mod:`.models` so that the model stays a list of fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from fetchpipe.pipeline.spec.errors import Problem, did_you_mean
from fetchpipe.pipeline.spec.paths import json_placeholders, placeholders

Location = Literal["query", "body", "header"]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""A header name (RFC 9110 section 5.1)."""


def body_problems(
    method: str,
    body: Any,
    url: str,
    headers: Mapping[str, str],
    cursor: tuple[Location, str] | None,
) -> list[Problem]:
    """What is wrong with a source's ``method``, ``json`` ``body`` and, for a cursor paginator,
    its ``(location, param)``: a body on a GET or HEAD, a body referring to a second parent, a
    cursor place that is not in the body, a cursor header set twice or not a header name."""
    found: list[Problem] = []
    if body is not None and method in ("GET", "HEAD"):
        hint = "HINT: add method: POST (the API's documentation says which), or use params"
        found.append(Problem(("json",), f"a {method} request carries no body. {hint}"))
    in_url = {p.source for p in _url_placeholders(url)}
    in_body = sorted({p.source for p in json_placeholders(body)} - in_url)
    if in_body and (in_url or len(in_body) > 1):
        found.append(
            Problem(
                ("json",),
                f"refers to {', '.join(in_body)} beside {', '.join(sorted(in_url)) or 'it'}: "
                "a source has at most one parent",
            )
        )
    if cursor is None:
        return found
    location, param = cursor
    if location == "header":
        for name in headers:
            if name.lower() == param.lower():
                message = "is set by paginate (the cursor header). HINT: remove it here"
                found.append(Problem(("headers", name), message))
        if not _TOKEN.fullmatch(param):
            found.append(Problem(("paginate", "param"), f"{param!r} is not a header name"))
    elif location == "body":
        if not isinstance(body, Mapping):
            found.append(
                Problem(
                    ("paginate", "location"),
                    "body needs a json object to put the cursor in. HINT: add json: with the "
                    "cursor's place set to null, e.g. json: {variables: {after: null}}",
                )
            )
        else:
            missing = _missing_part(body, param)
            if missing is not None:
                found.append(Problem(("paginate", "param"), missing))
    return found


def _url_placeholders(url: str) -> list[Any]:
    """The URL's placeholders; none when it has bad braces (the URL check reports those)."""
    try:
        return placeholders(url)
    except ValueError:
        return []


def _missing_part(body: Mapping[str, Any], path: str) -> str | None:
    """Which part of a cursor's dotted ``path`` is not in the json ``body`` (with a suggestion),
    None when the whole path is there."""
    current: Any = body
    done = ["json"]
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            keys = [str(k) for k in current] if isinstance(current, Mapping) else []
            hint = did_you_mean(part, keys) or (
                ". HINT: give the cursor's place in json, null for the first page, "
                "e.g. json: {variables: {after: null}} with param: variables.after"
            )
            return f"{path!r} is not in the json body: {'.'.join(done)} has no {part!r}{hint}"
        done.append(part)
        current = current[part]
    return None
