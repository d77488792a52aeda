"""Sources with a method and a json body, cursors in the body or a header, ``has_more_path``,
GraphQL errors: the file's checks, the paginators, the body templates and the journal, without
a network (the runs against real servers are in tests/integration/test_pipeline_bodies.py)."""

from __future__ import annotations

import hashlib
import textwrap
from typing import Any

import orjson
import pytest

from fetchpipe._redact import SecretTokens
from fetchpipe.destinations.pipelines.journal import JournalJob, page_key
from fetchpipe.pipeline import Pipeline, PipelineError
from fetchpipe.pipeline.plan.plan import build_plan, render
from fetchpipe.pipeline.runtime.pagination import (
    Page,
    PageRequest,
    PaginationError,
    paginator_for,
)
from fetchpipe.pipeline.runtime.records import RecordsError, graphql_errors, render_json
from fetchpipe.pipeline.runtime.resume import JobCodec
from fetchpipe.pipeline.runtime.source_run import PageJob, SourceRun
from fetchpipe.pipeline.spec.loading import load_yaml
from fetchpipe.pipeline.spec.paginate import (
    CursorPagination,
    NextUrlPagination,
    OffsetPagination,
    PagePagination,
)
from fetchpipe.pipeline.spec.paths import with_value_at

URL = "https://api.x.test/graphql"
QUERY = "query($after: String) { products(first: 2, after: $after) { nodes { id } } }"
GRAPHQL = {"query": QUERY, "variables": {"after": None}}


def _load(text: str, env: dict[str, str] | None = None) -> Pipeline:
    from fetchpipe.pipeline.spec.config import _build

    return _build(load_yaml(textwrap.dedent(text), "pipeline.yaml"), env or {})


def _error(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(PipelineError) as caught:
        _load(text, env)
    return str(caught.value)


def _page(request: PageRequest, body: Any, records: int = 2) -> Page:
    return Page(request, request.url, {}, body, records)


# --- the file ---------------------------------------------------------------------------------

RELAY = """\
name: shop
sources:
  - name: products
    url: https://api.x.test/graphql
    method: post
    json: {query: "query($after: String) { products(first: 50, after: $after) { edges { node { id name } } pageInfo { endCursor hasNextPage } } }", variables: {after: null}}
    records: data.products.edges
    paginate: {type: cursor, cursor_path: data.products.pageInfo.endCursor, param: variables.after, location: body, has_more_path: data.products.pageInfo.hasNextPage}
"""  # noqa: E501 - as a user writes it


def test_a_relay_connection_loads_as_written() -> None:
    source = _load(RELAY).sources[0]
    assert source.method == "POST"  # written in any case
    assert source.body == {"query": source.body["query"], "variables": {"after": None}}  # type: ignore[index, call-overload]
    assert "{ edges { node { id name } }" in source.body["query"]  # type: ignore[index, call-overload]
    assert isinstance(source.paginate, CursorPagination)
    assert (source.paginate.location, source.paginate.param) == ("body", "variables.after")
    assert source.paginate.has_more_path == "data.products.pageInfo.hasNextPage"
    assert source.parent is None  # GraphQL's braces are not parent references
    assert not source.idempotent


BASE = """\
name: shop
sources:
  - name: products
    url: https://api.x.test/v1/products
"""

MISTAKES = [
    (
        BASE + "    method: QUERY\n",
        "pipeline.yaml:5: sources[0].method: must be one of GET, HEAD, POST, PUT, PATCH, "
        "DELETE; got 'QUERY'",
    ),
    (
        BASE + "    method: PSOT\n",
        "pipeline.yaml:5: sources[0].method: must be one of GET, HEAD, POST, PUT, PATCH, "
        "DELETE; got 'PSOT'. HINT: did you mean `POST`?",
    ),
    (
        BASE + "    json: {q: 1}\n",
        "pipeline.yaml:5: sources[0].json: a GET request carries no body. HINT: add method: "
        "POST (the API's documentation says which), or use params",
    ),
    (
        BASE + "    method: POST\n    paginate: {type: cursor, cursor_path: next, "
        "location: body}\n",
        "pipeline.yaml:6: sources[0].paginate.location: body needs a json object to put the "
        "cursor in. HINT: add json: with the cursor's place set to null, e.g. json: "
        "{variables: {after: null}}",
    ),
    (
        BASE + "    method: POST\n    json: {variables: {after: null}}\n"
        "    paginate: {type: cursor, cursor_path: next, param: variables.afetr, "
        "location: body}\n",
        "pipeline.yaml:7: sources[0].paginate.param: 'variables.afetr' is not in the json "
        "body: json.variables has no 'afetr'. HINT: did you mean `after`?",
    ),
    (
        BASE + "    method: POST\n    json: {query: x}\n"
        "    paginate: {type: cursor, cursor_path: next, location: body}\n",
        "pipeline.yaml:7: sources[0].paginate.param: 'cursor' is not in the json body: json "
        "has no 'cursor'. HINT: give the cursor's place in json, null for the first page, "
        "e.g. json: {variables: {after: null}} with param: variables.after",
    ),
    (
        BASE + "    headers: {x-cursor: a}\n"
        "    paginate: {type: cursor, cursor_path: next, param: X-Cursor, location: header}\n",
        'pipeline.yaml:5: sources[0].headers["x-cursor"]: is set by paginate (the cursor header). '
        "HINT: remove it here",
    ),
    (
        BASE + "    paginate: {type: cursor, cursor_path: next, param: 'X Cursor', "
        "location: header}\n",
        "pipeline.yaml:5: sources[0].paginate.param: 'X Cursor' is not a header name",
    ),
    (
        BASE + "    paginate: {type: cursor, cursor_path: next, location: bdy}\n",
        "pipeline.yaml:5: sources[0].paginate.location: must be one of query, body, header; "
        "got 'bdy'. HINT: did you mean `body`?",
    ),
    (
        BASE + "    method: POST\n    json: {id: '{prodcts.id}'}\n",
        "pipeline.yaml:6: sources[0].json: refers to unknown source 'prodcts'. "
        "HINT: did you mean `products`?",
    ),
    (
        BASE + "  - name: reviews\n    url: https://api.x.test/v1/{products.id}\n"
        "    method: POST\n    json: {other: '{reviews.id}'}\n",
        "pipeline.yaml:8: sources[1].json: refers to reviews beside products: a source has at "
        "most one parent",
    ),
]


@pytest.mark.parametrize(("text", "message"), MISTAKES)
def test_each_mistake_is_reported_at_its_line_with_a_hint(text: str, message: str) -> None:
    assert _error(text) == message


def test_every_problem_of_a_body_is_reported_at_once() -> None:
    # Every problem at once, the file's lines in order.
    text = BASE + "    json: {a: 1}\n    paginate: {type: cursor, cursor_path: n, location: body}\n"
    assert _error(text).splitlines() == [
        "pipeline.yaml:5: sources[0].json: a GET request carries no body. HINT: add method: "
        "POST (the API's documentation says which), or use params",
        "pipeline.yaml:6: sources[0].paginate.param: 'cursor' is not in the json body: json "
        "has no 'cursor'. HINT: give the cursor's place in json, null for the first page, "
        "e.g. json: {variables: {after: null}} with param: variables.after",
    ]


def test_a_json_template_makes_a_child_source() -> None:
    text = (
        BASE + "  - name: reviews\n    url: https://api.x.test/graphql\n    method: POST\n"
        "    json: {query: 'query($id: Int!) { product(id: $id) { id } }', "
        "variables: {id: '{products.id}'}}\n"
    )
    pipeline = _load(text)
    assert pipeline.source("reviews").parent == "products"
    assert [s.name for s in pipeline.ordered_sources()] == ["products", "reviews"]


def test_a_secret_in_the_body_is_masked_in_errors_and_the_plan() -> None:
    secret = "body-5ecret-value"
    text = BASE + "    method: POST\n    json: {key: '${API_KEY}', q: x}\n    params: {a: {}}\n"
    message = _error(text, {"API_KEY": secret})
    assert "params.a" in message and secret not in message
    pipeline = _load(
        BASE + "    method: POST\n    json: {key: '${API_KEY}'}\n", {"API_KEY": secret}
    )
    shown = render(build_plan(pipeline))
    assert "POST https://api.x.test/v1/products" in shown
    assert 'json {"key":"' in shown and secret not in shown


def test_the_json_schema_has_the_new_keys() -> None:
    schema = Pipeline.json_schema()
    source = schema["$defs"]["Source"]["properties"]
    assert {"method", "json", "idempotent"} <= set(source)
    assert "POST" in source["method"]["anyOf"][0]["enum"]
    cursor = schema["$defs"]["CursorPagination"]["properties"]
    assert cursor["location"]["enum"] == ["query", "body", "header"]
    assert "has_more_path" in schema["$defs"]["PagePagination"]["properties"]


# --- paginators -------------------------------------------------------------------------------


def test_a_cursor_in_the_body_is_set_at_its_path_and_the_source_body_is_kept() -> None:
    config = CursorPagination(
        type="cursor", cursor_path="data.end", param="variables.after", location="body"
    )
    pager = paginator_for(config, URL, {"k": "v"}, body=GRAPHQL)
    first = pager.first()
    assert (first.body, first.params, first.headers) == (GRAPHQL, {"k": "v"}, None)
    (second,) = pager.next(_page(first, {"data": {"end": "c2"}}))
    assert second.body == {"query": QUERY, "variables": {"after": "c2"}}
    assert second.params == {"k": "v"} and second.url == URL and second.number == 2
    assert GRAPHQL["variables"] == {"after": None}  # the source's body is not changed
    (third,) = pager.next(_page(second, {"data": {"end": 17}}))
    assert third.body["variables"]["after"] == 17  # the cursor keeps its JSON type
    with pytest.raises(PaginationError, match="twice"):
        pager.next(_page(third, {"data": {"end": "c2"}}))


def test_a_cursor_in_a_header_leaves_query_and_body_alone() -> None:
    config = CursorPagination(
        type="cursor", cursor_path="next", param="X-Cursor", location="header"
    )
    pager = paginator_for(config, URL, {"limit": 5}, body={"q": 1})
    first = pager.first()
    (second,) = pager.next(_page(first, {"next": 42}))
    assert second.headers == {"X-Cursor": "42"}
    assert second.params == {"limit": 5} and second.body == {"q": 1}
    assert pager.next(_page(second, {"next": None})) == []


@pytest.mark.parametrize(
    ("value", "more"),
    [
        (True, True),
        ("true", True),
        (1, True),
        (False, False),
        ("false", False),
        ("False", False),
        (0, False),
        (None, False),
        ("missing", False),
    ],
)
def test_has_more_path_stops_a_cursor_that_never_runs_out(value: object, more: bool) -> None:
    config = CursorPagination(type="cursor", cursor_path="next", has_more_path="more")
    pager = paginator_for(config, URL)
    body = {"next": "always-a-cursor"} if value == "missing" else {"next": "c", "more": value}
    found = pager.next(_page(pager.first(), body))
    assert len(found) == int(more)


@pytest.mark.parametrize(
    "config",
    [
        PagePagination(type="page", has_more_path="more"),
        OffsetPagination(type="offset", limit=2, has_more_path="more"),
        NextUrlPagination(type="next_url", next_url_path="next", has_more_path="more"),
    ],
)
def test_has_more_path_works_with_every_paginator(config: Any) -> None:
    pager = paginator_for(config, URL, body={"q": 1})
    first = pager.first()
    body = {"more": True, "next": URL + "?p=2"}
    (second,) = pager.next(_page(first, body))
    assert second.body == {"q": 1}  # every page carries the body
    assert pager.next(_page(second, {**body, "more": False})) == []


def test_has_more_path_may_be_a_jsonpath_query() -> None:
    config = CursorPagination(type="cursor", cursor_path="$.next", has_more_path="$.page.more")
    pager = paginator_for(config, URL)
    (second,) = pager.next(_page(pager.first(), {"next": "c", "page": {"more": True}}))
    assert pager.next(_page(second, {"next": "d", "page": {"more": False}})) == []


def test_has_more_path_holding_an_object_is_an_error() -> None:
    config = CursorPagination(type="cursor", cursor_path="next", has_more_path="more")
    pager = paginator_for(config, URL)
    with pytest.raises(PaginationError, match="has_more_path 'more' holds an object"):
        pager.next(_page(pager.first(), {"next": "c", "more": {}}))


def test_a_body_is_not_sent_to_another_origin_even_when_cross_origin_links_are_allowed() -> None:
    config = NextUrlPagination(type="next_url", next_url_path="next")
    same = paginator_for(config, URL, body={"key": "s"}, allow_cross_origin=True)
    (second,) = same.next(_page(same.first(), {"next": "/graphql?page=2"}))
    assert second.body == {"key": "s"} and second.send_credentials
    other = paginator_for(config, URL, body={"key": "s"}, allow_cross_origin=True)
    with pytest.raises(PaginationError, match="json body may hold credentials"):
        other.next(_page(other.first(), {"next": "https://elsewhere.test/p2"}))


def test_with_value_at_copies_only_the_path() -> None:
    body = {"a": {"b": None, "c": [1]}, "d": [{"e": 1}]}
    out = with_value_at(body, "a.b", "x")
    assert out == {"a": {"b": "x", "c": [1]}, "d": [{"e": 1}]}
    assert body["a"]["b"] is None and out["d"] is body["d"]  # type: ignore[index]
    assert with_value_at(body, "d.0.e", 2)["d"] == [{"e": 2}]
    with pytest.raises(KeyError):
        with_value_at(body, "z.y", 1)


# --- body templates and GraphQL errors --------------------------------------------------------


def test_render_json_fills_placeholders_and_keeps_a_lone_value_typed() -> None:
    template = {
        "query": "query($id: Int!) { product(id: $id) { id } }",
        "variables": {"id": "{p.id}", "tag": "tag-{p.tag}", "flag": "{p.ok}", "n": ["{p.id}"]},
    }
    out = render_json(template, {"p": {"id": 7, "tag": "sale", "ok": False}})
    assert out == {
        "query": template["query"],
        "variables": {"id": 7, "tag": "tag-sale", "flag": False, "n": [7]},
    }
    assert render_json({"x": "{p.gone}-1"}, {"p": {"gone": True}}) == {"x": "true-1"}
    with pytest.raises(RecordsError, match="has no 'nope'"):
        render_json({"x": "{p.nope}"}, {"p": {}})
    with pytest.raises(RecordsError, match="an object, not text"):
        render_json({"x": "in {p.o} text"}, {"p": {"o": {}}})


def test_graphql_errors_are_read_only_from_graphql_responses() -> None:
    errors = [{"message": "first must be between 1 and 100", "path": ["products"]}]
    assert graphql_errors({"data": None, "errors": errors}) == (
        "the GraphQL API answered with 1 error(s): products: first must be between 1 and 100"
    )
    partial = graphql_errors({"data": {"x": 1}, "errors": [{"message": "m"}] * 5})
    assert partial == (
        "the GraphQL API answered with 5 error(s) beside partial data: m; m; m (and 2 more)"
    )
    assert graphql_errors({"errors": "Invalid API key or access token"}) == (
        "the GraphQL API answered with 1 error(s): Invalid API key or access token"
    )
    assert graphql_errors({"data": {"x": 1}}) is None
    assert graphql_errors({"errors": [], "data": None}) is None
    assert graphql_errors({"items": [], "errors": ["a REST field"]}) is None


# --- the journal ------------------------------------------------------------------------------


def test_a_page_without_a_body_keeps_the_key_of_earlier_journals() -> None:
    params = {"page": 2, "q": "x"}
    earlier = orjson.dumps(["s", "https://a.test/", sorted((k, str(v)) for k, v in params.items())])
    assert page_key("s", "https://a.test/", params) == hashlib.sha256(earlier).hexdigest()[:32]
    with_body = page_key("s", "https://a.test/", params, {"after": "c2"})
    assert with_body != page_key("s", "https://a.test/", params, {"after": "c3"})
    assert with_body == page_key("s", "https://a.test/", params, {"after": "c2"})
    with_header = page_key("s", "https://a.test/", params, None, {"X-Cursor": "c2"})
    assert with_header not in (with_body, page_key("s", "https://a.test/", params))
    # A job journaled before bodies existed reads back as a job without one, under its key.
    old = JournalJob.from_json({"s": "s", "u": "https://a.test/", "p": params, "n": 2})
    assert (old.body, old.headers) == (None, None)
    assert old.key == page_key("s", "https://a.test/", params)
    assert "j" not in old.as_json() and "hd" not in old.as_json()


def test_a_journaled_job_keeps_its_body_without_the_secret_in_it() -> None:
    secret = "body-5ecret-value"
    text = (
        "name: shop\nsources:\n  - name: products\n    url: https://api.x.test/graphql\n"
        "    method: POST\n    json: {token: '${TOKEN}', variables: {after: null}}\n"
        "    paginate: {type: cursor, cursor_path: end, param: variables.after, location: body}\n"
    )
    pipeline = _load(text, {"TOKEN": secret})
    source = pipeline.sources[0]
    run = SourceRun.start(
        source,
        write=False,
        full_refresh=False,
        state=None,
        ended=None,
        parent=None,
        redact=pipeline.redact,
    )
    codec = JobCodec(SecretTokens.of(pipeline.secret_values()))
    pager, first = run.paginator(source.url, source.body)
    (second,) = pager.next(_page(first, {"end": "c2"}))
    stored = codec.journaled(PageJob(run, pager, second, source.url))
    text_stored = orjson.dumps(stored.as_json()).decode()
    assert secret not in text_stored and "c2" in text_stored
    again = JournalJob.from_json(orjson.loads(text_stored))
    assert again.key == stored.key
    restored = codec.restored(run, again)
    assert restored.page.body == {"token": secret, "variables": {"after": "c2"}}
    # Its paginator goes on from there: the next cursor replaces the one it had.
    (third,) = restored.paginator.next(_page(restored.page, {"end": "c3"}))
    assert third.body == {"token": secret, "variables": {"after": "c3"}} and third.number == 3
