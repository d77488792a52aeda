"""The ``paginate`` block of a source: a union of paginator models told apart by ``type``.

What each does at run time is :mod:`fetchpipe.pipeline.runtime.pagination`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from fetchpipe.pipeline.spec.base import FrozenModel as _Model
from fetchpipe.pipeline.spec.base import Text
from fetchpipe.pipeline.spec.path_fields import PathText


class NoPagination(_Model):
    """One request per source (per parent record for a child source)."""

    type: Literal["none"]


class _Paged(_Model):
    max_pages: int | None = Field(default=None, ge=1, description="Stop after this many requests.")
    has_more_path: PathText | None = Field(
        default=None, description="Stop when the value here is false, null or missing."
    )


class PagePagination(_Paged):
    """``?page=N`` from ``start``; stops on an empty (or short, with ``size``) page. With
    ``total_pages_path`` the remaining pages are known after the first."""

    type: Literal["page"]
    param: Text = "page"
    start: int = Field(default=1, ge=0)
    size_param: Text | None = None
    size: int | None = Field(default=None, ge=1)
    total_pages_path: PathText | None = None


class OffsetPagination(_Paged):
    """``?offset=N&limit=L``; stops on a short page. With ``total_path`` the remaining pages
    are known after the first."""

    type: Literal["offset"]
    offset_param: Text = "offset"
    limit_param: Text = "limit"
    limit: int = Field(default=100, ge=1)
    start: int = Field(default=0, ge=0)
    total_path: PathText | None = None


class CursorPagination(_Paged):
    """The next cursor is read from the body at ``cursor_path`` and sent as ``param``: a query
    parameter, a dotted path inside the source's ``json`` body, or a header."""

    type: Literal["cursor"]
    cursor_path: PathText
    param: Text = "cursor"
    location: Literal["query", "body", "header"] = "query"


class LinkHeaderPagination(_Paged):
    """The next page is the ``Link`` header's ``rel="next"`` (RFC 8288)."""

    type: Literal["link_header"]


class NextUrlPagination(_Paged):
    """The next page's URL is read from the body at ``next_url_path``."""

    type: Literal["next_url"]
    next_url_path: PathText


Paginate = Annotated[
    NoPagination
    | PagePagination
    | OffsetPagination
    | CursorPagination
    | LinkHeaderPagination
    | NextUrlPagination,
    Field(discriminator="type"),
]
