"""Pipeline files as values: loading, line numbers, suggestions, secrets, engine values, plans."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest

import fetchpipe
from fetchpipe import ConfigError, HostLimits, Pipeline
from fetchpipe.pipeline import PipelineError
from fetchpipe.pipeline.plan.plan import build_plan, render
from fetchpipe.pipeline.spec.destination import DestinationUrl, parse_destination
from fetchpipe.pipeline.spec.errors import format_path, suggest
from fetchpipe.pipeline.spec.graph import DependencyCycle, dependency_order
from fetchpipe.pipeline.spec.loading import load_toml, load_yaml, substitute

TOKEN = "tok-5ecret-value"
ENV = {"SHOP_TOKEN": TOKEN}

SHOP_YAML = """\
name: shop
destination: duckdb:///shop.duckdb
defaults:
  timeout: {connect: 5, read: 30, total: 60}
  retry: {attempts: 4, wait_initial: 0.5, wait_max: 30}
  cache: {enabled: true, ttl: 0}
hosts:
  "api.shop.test": {max_concurrency: 4, max_per_second: 10}
sources:
  - name: products
    url: https://api.shop.test/v1/products
    params: {limit: 100}
    headers: {Accept: application/json}
    auth: {type: bearer, token: "${SHOP_TOKEN}"}
    records: data.items
    primary_key: id
    write: merge
    paginate: {type: cursor, cursor_path: meta.next_cursor, param: cursor}
    incremental: {cursor_field: updated_at, param: updated_since, initial: "2024-01-01"}
  - name: reviews
    url: https://api.shop.test/v1/products/{products.id}/reviews
    records: reviews
    primary_key: [product_id, id]
    include_parent: {product_id: id}
"""

SHOP_TOML = """\
name = "shop"
destination = "duckdb:///shop.duckdb"

[defaults]
timeout = {connect = 5, read = 30, total = 60}
retry = {attempts = 4, wait_initial = 0.5, wait_max = 30}
cache = {enabled = true, ttl = 0}

[hosts."api.shop.test"]
max_concurrency = 4
max_per_second = 10

[[sources]]
name = "products"
url = "https://api.shop.test/v1/products"
params = {limit = 100}
headers = {Accept = "application/json"}
auth = {type = "bearer", token = "${SHOP_TOKEN}"}
records = "data.items"
primary_key = "id"
write = "merge"
paginate = {type = "cursor", cursor_path = "meta.next_cursor", param = "cursor"}
incremental = {cursor_field = "updated_at", param = "updated_since", initial = "2024-01-01"}

[[sources]]
name = "reviews"
url = "https://api.shop.test/v1/products/{products.id}/reviews"
records = "reviews"
primary_key = ["product_id", "id"]
include_parent = {product_id = "id"}
"""


def _yaml(text: str, env: dict[str, str] | None = None) -> Pipeline:
    from fetchpipe.pipeline.spec.config import _build

    return _build(load_yaml(textwrap.dedent(text), "pipeline.yaml"), env or ENV)


def _error(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(PipelineError) as caught:
        _yaml(text, env)
    return str(caught.value)


def _minimal(**source: Any) -> dict[str, Any]:
    return {"name": "p", "sources": [{"name": "a", "url": "https://x.test/a", **source}]}


# --- the example of the issue -----------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "text"), [(".yaml", SHOP_YAML), (".toml", SHOP_TOML)])
def test_the_shop_example_loads_from_yaml_and_toml(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"pipeline{suffix}"
    path.write_text(text, encoding="utf-8")
    pipeline = Pipeline.from_file(path, env=ENV)
    products, reviews = pipeline.sources
    assert pipeline.file == str(path)
    assert pipeline.target == DestinationUrl("duckdb", "shop.duckdb")
    assert products.auth is not None and products.auth.type == "bearer"
    assert products.auth.token.get_secret_value() == TOKEN
    assert products.paginate.type == "cursor"
    assert products.key_fields == ("id",)
    assert products.incremental is not None
    assert products.incremental.initial == "2024-01-01"
    assert reviews.key_fields == ("product_id", "id")
    assert reviews.parent == "products"
    assert reviews.include_parent == {"product_id": "id"}
    assert [s.name for s in pipeline.ordered_sources()] == ["products", "reviews"]


def test_the_yaml_and_toml_forms_are_the_same_pipeline(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(SHOP_YAML, encoding="utf-8")
    (tmp_path / "p.toml").write_text(SHOP_TOML, encoding="utf-8")
    a = Pipeline.from_file(tmp_path / "p.yaml", env=ENV)
    b = Pipeline.from_file(tmp_path / "p.toml", env=ENV)
    assert a.model_dump() == b.model_dump()


def test_engine_values_come_from_defaults_and_hosts() -> None:
    pipeline = _yaml(SHOP_YAML)
    limits = pipeline.limits()
    assert limits.max_concurrency == 100
    assert limits.for_host("api.shop.test") == HostLimits(max_concurrency=4, max_per_second=10)
    assert pipeline.timeouts() == fetchpipe.Timeouts(connect=5, read=30, total=60)
    assert pipeline.retry_policy() == fetchpipe.RetryPolicy(attempts=4, wait_max=30)
    cache = pipeline.http_cache()
    assert cache is not None and cache.ttl is None  # ttl 0: the server's headers decide
    assert _yaml("name: p\nsources: [{name: a, url: 'https://x.test/'}]").http_cache() is None


def test_retry_budget_and_breaker_come_from_defaults() -> None:
    pipeline = _yaml(
        "name: p\nsources: [{name: a, url: 'https://x.test/'}]\n"
        "defaults: {retry: {budget: off}, breaker: {on_open: wait, threshold: 30}}\n"
    )
    assert pipeline.retry_policy().budget is None  # YAML reads off as false: no budget too
    assert pipeline.breaker_policy() == fetchpipe.BreakerPolicy(threshold=30, on_open="wait")
    plain = Pipeline.from_dict(_minimal())
    assert plain.retry_policy().budget == 50 and plain.breaker_policy() == fetchpipe.BreakerPolicy()
    assert (
        Pipeline.from_dict({**_minimal(), "defaults": {"retry": {"budget": 12}}})
        .retry_policy()
        .budget
        == 12
    )


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ({"retry": {"budget": 0.5}}, r"defaults\.retry\.budget: 0\.5 is not a retry budget\. HINT"),
        ({"retry": {"budget": "many"}}, r"defaults\.retry\.budget: 'many' is not a retry budget"),
        ({"breaker": {"on_open": "drop"}}, r"defaults\.breaker\.on_open: .*fail, wait"),
        (
            {"breaker": {"cooldown": 10, "cooldown_max": 5}},
            r"defaults\.breaker\.cooldown_max: is below cooldown \(10\)\. HINT",
        ),
    ],
)
def test_bad_retry_budget_and_breaker_settings_are_named(
    defaults: dict[str, Any], message: str
) -> None:
    with pytest.raises(PipelineError, match=message):
        Pipeline.from_dict({**_minimal(), "defaults": defaults})


def test_cache_ttl_is_passed_on() -> None:
    pipeline = Pipeline.from_dict(
        {**_minimal(), "defaults": {"cache": {"enabled": True, "ttl": 600, "path": "c.sqlite"}}}
    )
    cache = pipeline.http_cache()
    assert cache is not None and cache.ttl == 600 and str(cache.path) == "c.sqlite"


def test_models_are_frozen_and_python_loading_works_without_a_file() -> None:
    pipeline = Pipeline.from_dict(_minimal(), env={})
    assert pipeline.file is None
    assert pipeline.target == DestinationUrl("duckdb", "p.duckdb")
    with pytest.raises(ValueError, match="frozen"):
        pipeline.name = "q"  # type: ignore[misc]
    assert fetchpipe.Pipeline is Pipeline


# --- mistakes: message, field path, line ------------------------------------------------------

BASE = """\
name: shop
sources:
  - name: products
    url: https://api.shop.test/v1/products
    primary_key: id
"""

MISTAKES = [
    ("nme: shop\n" + BASE[11:], "pipeline.yaml:1: nme: unknown key. HINT: did you mean `name`?"),
    (
        BASE + "    primry_key: id\n",
        "pipeline.yaml:6: sources[0].primry_key: unknown key. HINT: did you mean `primary_key`?",
    ),
    (
        "name: shop\nsources:\n  - name: products\n    uri: https://x.test/\n",
        "pipeline.yaml:4: sources[0].uri: unknown key. HINT: did you mean `url`?",
    ),
    (
        "name: shop\nsources:\n  - name: products\n    records: items\n",
        "pipeline.yaml:3: sources[0].url: field required",
    ),
    (
        BASE + "    auth: {type: oauth2, token: x}\n",
        "pipeline.yaml:6: sources[0].auth.type: unknown type 'oauth2'; expected one of bearer, "
        "api_key, basic, oauth2_client_credentials, oauth2_refresh_token. HINT: did you mean "
        "`oauth2_client_credentials` or `oauth2_refresh_token`?",
    ),
    (
        BASE + "    paginate:\n      type: cursor\n      param: c\n",
        "pipeline.yaml:6: sources[0].paginate.cursor_path: field required",
    ),
    (
        BASE + "    paginate: {cursor_path: x}\n",
        "pipeline.yaml:6: sources[0].paginate.type: field required; expected one of none, page, "
        "offset, cursor, link_header, next_url",
    ),
    (
        BASE + "    write: upsert\n",
        "pipeline.yaml:6: sources[0].write: must be one of append, replace, merge; got 'upsert'",
    ),
    (
        "name: shop\nsources:\n  - name: a\n    url: https://x.test/\n    write: merge\n",
        "pipeline.yaml:5: sources[0].write: merge needs a primary_key (rows are upserted by it). "
        "HINT: add primary_key: id, or use write: append",
    ),
    (
        BASE + "    auth: {type: bearer, token: '${NOPE_TOKEN}'}\n",
        "pipeline.yaml:6: sources[0].auth.token: environment variable NOPE_TOKEN is not set. "
        "HINT: export NOPE_TOKEN=... before running, or write the value in the file",
    ),
    (
        BASE + "  - name: products\n    url: https://x.test/\n",
        "pipeline.yaml:6: sources[1].name: duplicate source name 'products' (also sources[0]). "
        "HINT: each source names its own table",
    ),
    (
        BASE + "  - name: reviews\n    url: https://x.test/{prodcts.id}/r\n",
        "pipeline.yaml:7: sources[1].url: refers to unknown source 'prodcts'. "
        "HINT: did you mean `products`?",
    ),
    (
        "name: shop\nsources:\n  - name: a\n    url: https://x.test/{b.id}\n"
        "  - name: b\n    url: https://x.test/{a.id}\n",
        "pipeline.yaml:4: sources[0].url: sources depend on each other: a -> b -> a",
    ),
    (
        BASE + "    params: {a: 1\n  - x\n",
        "pipeline.yaml:8: YAML syntax error: expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping, which starts at line 6)",
    ),
    (
        "name: shop\ndestination: duckbd:///x.duckdb\n" + BASE[11:],
        "pipeline.yaml:2: destination: unknown destination scheme 'duckbd'. "
        "HINT: did you mean `duckdb`?",
    ),
    (
        "name: shop\nhosts:\n  x.test: {max_per_second: -1}\n" + BASE[11:],
        'pipeline.yaml:3: hosts["x.test"].max_per_second: must be greater than 0; got -1',
    ),
    (
        "name: shop\nhosts:\n  'https://x.test': {}\n" + BASE[11:],
        'pipeline.yaml:3: hosts["https://x.test"]: is not a host name. '
        "HINT: write api.example.com or *.example.com, without scheme or port",
    ),
    (
        BASE + "    params: {a: {b: 1}}\n",
        "pipeline.yaml:6: sources[0].params.a: must be a string, an integer, a number or "
        "true/false",
    ),
    (
        "name: shop\nsources:\n  - name: a\n    url: https://x.test/\n    primary_key: 5\n",
        "pipeline.yaml:5: sources[0].primary_key: must be a string or a list of strings",
    ),
    (
        "name: shop\nsources:\n  - name: 1abc\n    url: https://x.test/\n",
        "pipeline.yaml:3: sources[0].name: '1abc' is not a name: use letters, digits and _, "
        "not starting with a digit",
    ),
    (
        BASE + "    url: https://y.test/\n",
        "pipeline.yaml:6: sources[0].url: duplicate key (first at line 4)",
    ),
    (
        "name: shop\ndefaults: {retry: {attempts: zero}}\n" + BASE[11:],
        "pipeline.yaml:2: defaults.retry.attempts: must be a valid integer, unable to parse "
        "string as an integer; got 'zero'",
    ),
    (
        BASE + "    include_parent: {a: b}\n",
        "pipeline.yaml:6: sources[0].include_parent: needs a parent source: the url must refer "
        "to one, as in {products.id}",
    ),
    (
        "name: shop\nsources:\n  - name: a\n    url: ftp://x.test/{b.c\n",
        "pipeline.yaml:4: sources[0].url: has an unmatched { or }",
    ),
    (
        "name: shop\nsources:\n  - name: a\n    url: https://x.test/{id}\n",
        "pipeline.yaml:4: sources[0].url: {id} is not a parent reference. "
        "HINT: write {source.field}, as in {products.id}",
    ),
    (
        "name: shop\nsources:\n  - name: a\n    url: /relative/path\n",
        "pipeline.yaml:4: sources[0].url: is not an http(s) URL. HINT: write https://host/path",
    ),
    (
        BASE + "    params: {limit: 100}\n    paginate: {type: offset, limit: 20}\n",
        "pipeline.yaml:6: sources[0].params.limit: is set by paginate (offset pagination sends "
        "limit). HINT: remove it here; set the value in paginate",
    ),
    (
        "name: shop\nsources: []\n",
        "pipeline.yaml:2: sources: list should have at least 1 item after validation, not 0",
    ),
    ("- a\n", "pipeline.yaml: the top level must be a mapping with name and sources"),
    ("", "pipeline.yaml: the file is empty. HINT: give at least name and sources"),
]


@pytest.mark.parametrize(("text", "message"), MISTAKES)
def test_each_mistake_is_reported_at_its_line_and_field(text: str, message: str) -> None:
    assert _error(text) == message


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = BASE + "    write: upsert\n  - name: b\n    uri: https://x.test/\n"
    assert _error(text).splitlines() == [
        "pipeline.yaml:6: sources[0].write: must be one of append, replace, merge; got 'upsert'",
        "pipeline.yaml:8: sources[1].uri: unknown key. HINT: did you mean `url`?",
    ]


def test_an_unknown_key_far_from_any_lists_the_keys() -> None:
    message = _error(BASE + "    paginate: {type: link_header, zzzzzz: 1}\n")
    assert message == (
        "pipeline.yaml:6: sources[0].paginate.zzzzzz: unknown key. "
        "HINT: the keys here are max_pages, has_more_path, type"
    )


def test_api_key_auth_uses_in_as_its_key() -> None:
    source = _yaml(BASE + "    auth: {type: api_key, name: key, value: v, in: query}\n").sources[0]
    assert source.auth is not None and source.auth.type == "api_key"
    assert source.auth.in_ == "query"
    assert "sources[0].auth.inn: unknown key. HINT: did you mean `in`?" in _error(
        BASE + "    auth: {type: api_key, name: key, value: v, inn: query}\n"
    )


def test_errors_without_a_file_have_paths_only() -> None:
    with pytest.raises(PipelineError) as caught:
        Pipeline.from_dict({"name": "p", "sources": [{"name": "a"}]}, env={})
    assert str(caught.value) == "sources[0].url: field required"
    assert isinstance(caught.value, ConfigError)
    assert caught.value.problems[0].path == ("sources", 0, "url")


# --- TOML line numbers ------------------------------------------------------------------------


def test_toml_problems_carry_lines() -> None:
    from fetchpipe.pipeline.spec.config import _build

    text = SHOP_TOML.replace('write = "merge"', 'write = "upsert"').replace(
        "max_per_second = 10", "max_per_second = -10"
    )
    with pytest.raises(PipelineError) as caught:
        _build(load_toml(text, "p.toml"), ENV)
    assert str(caught.value).splitlines() == [
        'p.toml:11: hosts["api.shop.test"].max_per_second: must be greater than 0; got -10',
        "p.toml:21: sources[0].write: must be one of append, replace, merge; got 'upsert'",
    ]


def test_toml_lines_for_tables_array_tables_and_subtables() -> None:
    text = '[[sources]]\nname = "a"\n[sources.paginate]\ntype = "x"\n[[sources]]\nname = "b"\n'
    lines = load_toml(text).lines
    assert lines[("sources", 0)] == 1
    assert lines[("sources", 0, "paginate")] == 3
    assert lines[("sources", 0, "paginate", "type")] == 4
    assert lines[("sources", 1, "name")] == 6


def test_toml_syntax_error_has_its_line() -> None:
    with pytest.raises(PipelineError) as caught:
        load_toml('name = "a"\nsources = [ = \n\n', "p.toml")
    assert str(caught.value) == "p.toml:2: TOML syntax error: Invalid value"
    with pytest.raises(PipelineError) as caught:
        load_toml('name = "a"\nsources = [\n', "p.toml")
    assert str(caught.value) == "p.toml:2: TOML syntax error: Invalid value (at end of document)"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"missing\.yaml: cannot read the file"):
        Pipeline.from_file(tmp_path / "missing.yaml")


# --- ${VAR} and secrets -----------------------------------------------------------------------


def test_substitution_reads_the_environment_and_keeps_escapes() -> None:
    done = substitute({"a": "x-${A}-${B}", "b": ["$${LITERAL}"], "c": 3}, {"A": "1", "B": "2"})
    assert done.data == {"a": "x-1-2", "b": ["${LITERAL}"], "c": 3}
    assert done.problems == ()
    assert done.secrets == {"1", "2"}


def test_a_malformed_reference_is_a_problem() -> None:
    done = substitute({"a": "${1BAD}"}, {})
    assert [p.message for p in done.problems] == [
        "`${1BAD}` is not a variable reference. HINT: a name is letters, digits and _ "
        "(write `$${` for a literal `${`)"
    ]


def test_numbers_can_come_from_the_environment() -> None:
    pipeline = Pipeline.from_dict(
        {**_minimal(), "hosts": {"x.test": {"max_per_second": "${RATE}"}}}, env={"RATE": "2.5"}
    )
    assert pipeline.hosts["x.test"].max_per_second == 2.5


def test_secrets_from_the_environment_never_appear_in_errors_or_reprs() -> None:
    env = {"TOK": TOKEN}
    text = (
        "name: shop\nsources:\n  - name: a\n    url: https://x.test/\n"
        "    params: {k: '${TOK}'}\n    write: 'upsert-${TOK}'\n"
    )
    message = _error(text, env)
    assert TOKEN not in message
    assert "got 'upsert-***'" in message
    pipeline = _yaml(SHOP_YAML)
    assert TOKEN not in repr(pipeline) and TOKEN not in str(pipeline.model_dump())


# --- destination, names, order, schema --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("duckdb:///shop.duckdb", DestinationUrl("duckdb", "shop.duckdb")),
        ("duckdb:////data/shop.duckdb", DestinationUrl("duckdb", "/data/shop.duckdb")),
        ("jsonl://out", DestinationUrl("jsonl", "out")),
        ("PARQUET:///out/dir", DestinationUrl("parquet", "out/dir")),
    ],
)
def test_destination_urls(text: str, expected: DestinationUrl) -> None:
    assert parse_destination(text) == expected
    assert parse_destination(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shop.duckdb", "is not a destination URL"),
        ("csv://out", "unknown destination scheme 'csv'. HINT: use duckdb, jsonl or parquet"),
        ("jsonl://", "names no file or directory"),
    ],
)
def test_bad_destinations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_destination(text)


def test_dependency_order_keeps_file_order_and_finds_cycles() -> None:
    assert dependency_order({"c": ["b"], "a": [], "b": ["a"], "d": []}) == ["a", "b", "c", "d"]
    assert dependency_order({"a": ["elsewhere"]}) == ["a"]
    with pytest.raises(DependencyCycle) as caught:
        dependency_order({"x": [], "a": ["c"], "b": ["a"], "c": ["b"]})
    assert caught.value.cycle == ["a", "c", "b", "a"]
    with pytest.raises(DependencyCycle):
        dependency_order({"a": ["a"]})


def test_a_child_listed_first_still_runs_after_its_parent() -> None:
    pipeline = Pipeline.from_dict(
        {
            "name": "p",
            "sources": [
                {"name": "child", "url": "https://x.test/{parent.id}"},
                {"name": "parent", "url": "https://x.test/"},
            ],
        }
    )
    assert [s.name for s in pipeline.ordered_sources()] == ["parent", "child"]


def test_the_json_schema_describes_the_file() -> None:
    schema = Pipeline.json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["required"] == ["name", "sources"]
    assert schema["additionalProperties"] is False
    source = schema["$defs"]["Source"]
    assert {"url", "paginate", "auth", "primary_key", "write"} <= set(source["properties"])
    assert "in" in schema["$defs"]["ApiKeyAuth"]["properties"]
    bearer = schema["$defs"]["BearerAuth"]
    assert bearer["properties"]["token"]["anyOf"][0]["writeOnly"] is True  # or null: tokens
    assert bearer["properties"]["tokens"]["anyOf"][0]["items"]["writeOnly"] is True
    assert bearer["oneOf"] == [{"required": ["token"]}, {"required": ["tokens"]}]


def test_paths_and_suggestions() -> None:
    assert format_path(("sources", 1, "paginate", "cursor_path")) == (
        "sources[1].paginate.cursor_path"
    )
    assert format_path(("hosts", "api.x.test")) == 'hosts["api.x.test"]'
    assert suggest("primry_key", ["primary_key", "paginate"]) == "primary_key"
    assert suggest("oauth", ["bearer", "oauth2_client_credentials"]) == (
        "oauth2_client_credentials"
    )
    assert suggest("zzz", ["bearer"]) is None


# --- plan -------------------------------------------------------------------------------------


def test_plan_without_assumptions_says_what_is_unknown() -> None:
    plan = build_plan(_yaml(SHOP_YAML))
    products, reviews = plan.sources
    assert products.url == ("https://api.shop.test/v1/products?limit=100&updated_since=2024-01-01")
    assert products.requests is None and products.min_requests == 1
    assert reviews.parent == "products" and reviews.runs is None and reviews.requests is None
    assert plan.requests is None and plan.min_requests == 1
    text = render(plan)
    assert "pages: cursor: unknown until fetched, one after another" in text
    assert "total: at least 1 request; unknown until fetched: products, reviews" in text
    assert TOKEN not in text and "application/json" not in text


def test_plan_estimates_requests_and_time_from_assumptions_and_rates() -> None:
    plan = build_plan(_yaml(SHOP_YAML), pages=3, records_per_page=50, latency=0.2)
    products, reviews = plan.sources
    assert (products.requests, reviews.runs, reviews.requests) == (3, 150, 150)
    assert plan.requests == 153
    (host,) = plan.hosts
    assert host.requests == 153 and host.complete
    # 10 per second with a burst of 1: the 152 requests after the first take 15.2 s; four at a
    # time at 0.2 s each would take 7.8 s, so the rate is the bound.
    assert plan.min_seconds == pytest.approx(15.2)


def test_plan_uses_the_page_size_of_offset_pagination_and_redacts_query_keys() -> None:
    pipeline = Pipeline.from_dict(
        {
            "name": "p",
            "defaults": {"max_concurrency": 2},
            "sources": [
                {
                    "name": "a",
                    "url": "https://x.test/a",
                    "auth": {"type": "api_key", "name": "api_key", "value": "${K}", "in": "query"},
                    "paginate": {"type": "offset", "limit": 10},
                },
                {"name": "b", "url": "https://x.test/{a.id}"},
            ],
        },
        env={"K": "k-secret-123"},
    )
    plan = build_plan(pipeline, pages=2, latency=1.0)
    assert plan.sources[0].url == "https://x.test/a?offset=0&limit=10&api_key=REDACTED"
    assert plan.sources[1].requests == 20
    assert plan.requests == 22
    assert plan.min_seconds == pytest.approx(11.0)  # 22 requests, 2 at a time, 1 s each
    assert "k-secret-123" not in render(plan)


@pytest.mark.parametrize(("tokens", "seconds"), [(1, 10.0), (2, 5.0), (4, 2.5)])
def test_plan_time_counts_each_credential_at_the_host_rate(tokens: int, seconds: float) -> None:
    """The host's limits apply per credential: 201 requests at 20 per second (burst 1) take
    10 s on one token, half on two, a quarter on four, unless two at a time per token, 0.1 s
    each, takes longer (it does on one and on four tokens)."""
    names = [f"T{i}" for i in range(tokens)]
    pipeline = Pipeline.from_dict(
        {
            "name": "p",
            "hosts": {"x.test": {"max_per_second": 20, "max_concurrency": 2}},
            "sources": [
                {
                    "name": "a",
                    "url": "https://x.test/a",
                    "auth": {"type": "bearer", "tokens": [f"${{{n}}}" for n in names]},
                    "paginate": {"type": "page", "total_pages_path": "meta.pages"},
                }
            ],
        },
        env={n: f"secret-{n}" for n in names},
    )
    plan = build_plan(pipeline, pages=201, latency=0.1)
    (host,) = plan.hosts
    assert host.credentials == tokens
    assert plan.min_seconds == pytest.approx(max(seconds, math.ceil(201 / (2 * tokens)) * 0.1))
    text = render(plan)
    assert ("per credential" in text) == (tokens > 1)
    assert "secret-" not in text


@pytest.mark.parametrize(
    ("paginate", "seconds"),
    [
        ({"type": "page"}, 100 * 0.5),  # one page after another
        ({"type": "page", "total_pages_path": "meta.pages"}, 2 * 0.5),  # first, then the rest
    ],
)
def test_plan_time_follows_whether_pages_are_known_after_the_first(
    paginate: dict[str, str], seconds: float
) -> None:
    source = {"name": "a", "url": "https://x.test/a", "paginate": paginate}
    pipeline = Pipeline.from_dict({"name": "p", "sources": [source]})
    plan = build_plan(pipeline, pages=100, latency=0.5)
    assert plan.requests == 100
    assert plan.min_seconds == pytest.approx(seconds)


def test_an_unquoted_yaml_date_stays_the_text_written() -> None:
    text = (
        BASE + "    incremental: {cursor_field: u, param: since, initial: 2024-01-01T00:00:00Z}\n"
    )
    incremental = _yaml(text).sources[0].incremental
    assert incremental is not None and incremental.initial == "2024-01-01T00:00:00Z"


def test_security_settings_are_checked_and_api_key_names_are_credentials() -> None:
    bad = {
        "name": "p",
        "defaults": {"security": {"allow_addresses": ["10.0.0.0/33"]}},
        "sources": [{"name": "a", "url": "https://x.test/a"}],
    }
    with pytest.raises(PipelineError, match=r"defaults\.security: .*10\.0\.0\.0/33"):
        Pipeline.from_dict(bad)
    good = Pipeline.from_dict(
        {
            "name": "p",
            "defaults": {"security": {"block_private": True, "max_redirects": 3}},
            "sources": [
                {
                    "name": "a",
                    "url": "https://x.test/a",
                    "auth": {"type": "api_key", "name": "X-Key", "value": "v1234"},
                },
                {
                    "name": "b",
                    "url": "https://y.test/b",
                    "auth": {"type": "api_key", "name": "apikey", "in": "query", "value": "v5678"},
                },
            ],
        }
    )
    policy = good.security_policy()
    assert policy.block_private and policy.max_redirects == 3
    assert "x-key" in policy.credential_headers and policy.credential_params == {"apikey"}


def test_the_fast_transport_cannot_block_private_addresses() -> None:
    data = {
        "name": "p",
        "defaults": {"transport": "fast", "security": {"block_private": True}},
        "sources": [{"name": "a", "url": "https://x.test/a"}],
    }
    with pytest.raises(PipelineError, match=r"defaults\.transport: the fast transport"):
        Pipeline.from_dict(data)
