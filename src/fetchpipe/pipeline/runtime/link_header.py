"""The ``Link`` header (RFC 8288): its links parsed, and the ``rel="next"`` one resolved.

Written here rather than taken from a library: aiohttp's ``ClientResponse.links`` works only
on its own responses (the fast transport has none), and the few lines below follow section 3
of the RFC, repeated headers and quoted parameters included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin


@dataclass(frozen=True, slots=True)
class Link:
    """One link of a ``Link`` header: its target as written and its parameters (names in
    lower case; the first occurrence of a parameter wins)."""

    target: str
    params: Mapping[str, str]

    @property
    def rels(self) -> list[str]:
        return self.params.get("rel", "").lower().split()


def parse_link_header(value: str) -> list[Link]:
    """The links of a ``Link`` header value (RFC 8288 section 3); malformed parts are skipped."""
    links: list[Link] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        if value[i] != "<":
            i = _skip_link(value, i)
            continue
        end = value.find(">", i)
        if end < 0:
            break
        target = value[i + 1 : end].strip()
        i = end + 1
        params: dict[str, str] = {}
        while True:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] != ";":
                break
            i += 1
            while i < n and value[i] in " \t":
                i += 1
            start = i
            while i < n and value[i] not in "=;, \t":
                i += 1
            name = value[start:i].lower()
            while i < n and value[i] in " \t":
                i += 1
            text = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                text, i = _param_value(value, i)
            if name:
                params.setdefault(name, text)
        links.append(Link(target, params))
        i = _skip_link(value, i)
    return links


def _param_value(value: str, i: int) -> tuple[str, int]:
    n = len(value)
    if i < n and value[i] == '"':
        out = []
        i += 1
        while i < n and value[i] != '"':
            if value[i] == "\\" and i + 1 < n:
                i += 1
            out.append(value[i])
            i += 1
        return "".join(out), i + 1
    start = i
    while i < n and value[i] not in ";, \t":
        i += 1
    return value[start:i], i


def _skip_link(value: str, i: int) -> int:
    """The index after the comma that ends the current link (quotes and <> respected)."""
    quoted = False
    n = len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ",":
            return i + 1
        elif c == "<":
            return i
        i += 1
    return i


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive), repeated headers included."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(name, [])]
    lowered = name.lower()
    return [v for k, v in headers.items() if k.lower() == lowered]


def next_link(headers: Mapping[str, str], base_url: str) -> str | None:
    """The absolute URL of the first ``rel="next"`` link, resolved against ``base_url``."""
    for value in header_values(headers, "link"):
        for link in parse_link_header(value):
            if "next" in link.rels:
                return urljoin(base_url, link.target)
    return None
