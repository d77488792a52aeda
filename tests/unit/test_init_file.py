"""``fetchpipe init``'s file without a network: secrets become ${VAR}s, and what is rendered
loads with the pipeline loader as it was detected."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe.pipeline.scaffold.credentials import CredentialsError, looks_secret, prepare
from fetchpipe.pipeline.scaffold.detection import Trial, conclude
from fetchpipe.pipeline.scaffold.paging_guess import Candidate, Outlook, Verdict
from fetchpipe.pipeline.scaffold.records_guess import find_records
from fetchpipe.pipeline.scaffold.render import FileParts, check, render, scalar
from fetchpipe.pipeline.spec.loading import load_yaml

URL = "http://127.0.0.1:9/v1/products"
CANARY = "c4n4ry-9f8e7d6c5b4a"


# --- credentials ------------------------------------------------------------------------------


def test_a_literal_bearer_token_becomes_an_auth_block_reading_a_variable() -> None:
    p = prepare(URL, [("Authorization", f"Bearer {CANARY}")], {}, "products")
    assert p.headers == {"Authorization": f"Bearer {CANARY}"}  # sent as given
    assert p.file_auth == (("type", "bearer"), ("token", "${PRODUCTS_TOKEN}"))
    assert p.file_headers == ()
    assert [(v.name, v.given) for v in p.variables] == [("PRODUCTS_TOKEN", False)]
    assert CANARY in p.secrets


def test_a_variable_reference_is_read_for_the_request_and_kept_for_the_file() -> None:
    env = {"TOKEN": CANARY, "TRACE": "on"}
    p = prepare(URL, [("Authorization", "Bearer ${TOKEN}"), ("X-Trace", "${TRACE}")], env, "x")
    assert p.headers == {"Authorization": f"Bearer {CANARY}", "X-Trace": "on"}
    assert p.file_auth == (("type", "bearer"), ("token", "${TOKEN}"))
    assert p.file_headers == (("X-Trace", "${TRACE}"),)
    assert {v.name for v in p.variables if v.given} == {"TOKEN", "TRACE"}
    with pytest.raises(CredentialsError, match="TOKEN is not set"):
        prepare(URL, [("Authorization", "Bearer ${TOKEN}")], {}, "x")
    literal = prepare(URL, [("X-Note", "$${not a variable}")], {}, "x")
    assert literal.headers == {"X-Note": "${not a variable}"}
    assert literal.file_headers == (("X-Note", "$${not a variable}"),)


def test_query_credentials_go_to_an_api_key_auth_block_and_other_params_stay() -> None:
    url = f"{URL}?api_key={CANARY}&per_page=50&signature=s1g-s1g-s1g"
    p = prepare(url, [], {}, "products")
    assert p.url == url
    assert p.file_url == URL
    assert p.file_auth == (
        ("type", "api_key"),
        ("name", "api_key"),
        ("value", "${PRODUCTS_API_KEY}"),
        ("in", "query"),
    )
    assert p.auth_param == ("api_key", CANARY)
    assert p.file_params == (("per_page", "50"), ("signature", "${PRODUCTS_SIGNATURE}"))


def test_an_api_key_header_and_url_credentials() -> None:
    p = prepare(URL, [("X-Api-Key", CANARY), ("Cookie", "sid=abcdef")], {}, "shop")
    assert p.file_auth == (
        ("type", "api_key"),
        ("name", "X-Api-Key"),
        ("value", "${SHOP_X_API_KEY}"),
    )
    assert p.file_headers == (("Cookie", "${SHOP_COOKIE}"),)
    basic = prepare("http://me:pa55word@127.0.0.1:9/v1/x", [], {}, "x")
    assert basic.file_auth == (("type", "basic"), ("username", "me"), ("password", "${X_PASSWORD}"))
    assert basic.url == "http://127.0.0.1:9/v1/x"
    assert basic.headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("name", "header", "secret"),
    [
        ("Authorization", True, True),
        ("X-Auth-Token", True, True),
        ("X-Client-Secret", True, True),
        ("Accept", True, False),
        ("api_key", False, True),
        ("access_token", False, True),
        ("page_token", False, False),
        ("cursor", False, False),
        ("per_page", False, False),
    ],
)
def test_looks_secret(name: str, header: bool, secret: bool) -> None:
    assert looks_secret(name, header=header) is secret


# --- rendering ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(value=st.text(st.characters(exclude_categories=("Cs",)), max_size=20))
def test_a_scalar_reads_back_as_written(value: str) -> None:
    assert load_yaml(f"key: {scalar(value)}\n").data == {"key": value}


def _detection(body: Any, candidate: Candidate | None, query: Any = (), **outlook: Any) -> Any:
    records = find_records(body, "products")
    from fetchpipe.pipeline.runtime.records import extract_records

    first = extract_records(body, records.path)
    trials = [Trial(candidate, Verdict(True, "the second page has 5 other records"))]
    return conclude(
        "products", records, first, Outlook(tuple([candidate] if candidate else ()), **outlook),
        trials if candidate else [], query=query,
    )  # fmt: skip


BLOCKS = [
    (("type", "page"), ("param", "page"), ("total_pages_path", "meta.total_pages")),
    (("type", "offset"), ("offset_param", "offset"), ("limit_param", "limit"), ("limit", 5)),
    (("type", "cursor"), ("cursor_path", "meta.next"), ("param", "after")),
    (("type", "link_header"),),
    (("type", "next_url"), ("next_url_path", '$["@odata.nextLink"]')),
]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b[0][1])
def test_every_pagination_renders_to_a_file_that_loads_as_detected(block: Any) -> None:
    body = {"data": [{"id": i, "updated_at": "2024-01-01T00:00:00Z"} for i in range(5)]}
    detection = _detection(body, Candidate(block, "a reason"))
    url = f"{URL}?api_key={CANARY}&page=1&limit=5&q=a%20b"
    prepared = prepare(url, [("Authorization", "Bearer ${TOKEN}")], {"TOKEN": "t0ken-t0ken"}, "p")
    text = render(detection, FileParts(prepared, {}, "fetchpipe init"))
    spec = check(text, sorted(prepared.secrets))
    source = spec.sources[0]
    assert source.paginate == Candidate(block, "").model()
    assert source.records == "data"
    assert (source.primary_key, source.write) == ("id", "merge")
    owned = set(Candidate(block, "").owned)
    # the bearer token took the auth block: the query's key stays a parameter, as a ${VAR}
    assert set(source.params) == {"api_key", "page", "limit", "q"} - owned
    assert "api_key: ${P_API_KEY}" in text.replace('"', "")
    assert source.params["q"] == "a b"
    assert CANARY not in text
    assert "t0ken-t0ken" not in text
    assert "# incremental: {cursor_field: updated_at" in text  # commented out: no param known


def test_a_revealed_incremental_parameter_and_a_single_page() -> None:
    body = {
        "products": [{"sku": f"s{i}", "modified": "2024-03-01T00:00:00+02:00"} for i in range(3)]
    }
    prepared = prepare(f"{URL}?modified_since=2024-01-01T00:00:00Z", [], {}, "p")
    detection = _detection(body, None, prepared.query, single_page="count is 3")
    text = render(detection, FileParts(prepared, {"proxy": "none"}, "fetchpipe init"))
    spec = check(text)
    source = spec.sources[0]
    assert source.paginate.type == "none"
    assert source.primary_key == "sku"
    assert source.incremental is not None
    assert (source.incremental.param, source.incremental.initial) == (
        "modified_since",
        "2024-01-01T00:00:00Z",
    )
    assert source.params == {}
    assert spec.defaults.proxy == "none"
    assert "everything is in one response (count is 3)" in text


def test_no_key_no_list_replace() -> None:
    detection = _detection({"id": "x", "ok": True}, None)
    text = render(detection, FileParts(prepare(URL, [], {}, "p"), {}, "fetchpipe init"))
    source = check(text).sources[0]
    assert (source.records, source.write) == ("", "merge")  # one record: its id is a key
    detection = _detection([{"v": 1}, {"v": 1}], None)
    text = render(detection, FileParts(prepare(URL, [], {}, "p"), {}, "fetchpipe init"))
    source = check(text).sources[0]
    assert (source.primary_key, source.write) == (None, "replace")


def test_check_refuses_a_file_holding_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        check(f"name: x\nsources: [{{name: x, url: 'http://h/{CANARY}'}}]\n", [CANARY])
    # unless the user wrote it where it is, in a URL's path (the simulated /shop-key/ API)
    text = f"name: x\nsources: [{{name: x, url: 'http://h/{CANARY}/v1'}}]\n"
    assert check(text, [CANARY], [f"http://h/{CANARY}/v1"]).sources[0].name == "x"
