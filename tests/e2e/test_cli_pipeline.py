"""``fetchpipe validate|plan|schema`` as real subprocesses: messages, exit codes, no requests.

Every pipeline here points at a local server that counts what it receives: nothing may reach it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import CountingServer, RunCli

SECRET = "s3cr3t-token-9f8e7d"


@pytest.fixture
def base_url(server: CountingServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _good(base: str) -> str:
    return f"""\
name: shop
defaults:
  timeout: {{connect: 5, read: 30, total: 60}}
hosts:
  "127.0.0.1": {{max_concurrency: 4, max_per_second: 10}}
sources:
  - name: products
    url: {base}/v1/products
    params: {{fields: all, token: "${{SHOP_TOKEN}}"}}
    headers: {{X-Secret: "${{SHOP_TOKEN}}"}}
    auth: {{type: oauth2_client_credentials, token_url: {base}/token, client_id: me,
            client_secret: "${{SHOP_TOKEN}}"}}
    records: data.items
    primary_key: id
    write: merge
    paginate: {{type: offset, limit: 50, total_path: meta.total}}
  - name: reviews
    url: {base}/v1/products/{{products.id}}/reviews
    records: reviews
    primary_key: [product_id, id]
    include_parent: {{product_id: id}}
"""


def _write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# Each mistake: (what is wrong, a source block or a whole file, the expected message after
# "pipeline.yaml:"). {base} is the counting server.
SOURCE = "  - name: products\n    url: {base}/v1/products\n    primary_key: id\n"
TOP = "name: shop\nsources:\n"
MISTAKES = [
    (
        "unknown top-level key",
        "name: shop\nsoures:\n" + SOURCE,
        "2: soures: unknown key. HINT: did you mean `sources`?",
    ),
    (
        "misspelled source key",
        TOP + SOURCE + "    primry_key: id\n",
        "6: sources[0].primry_key: unknown key. HINT: did you mean `primary_key`?",
    ),
    ("missing url", TOP + "  - name: products\n", "3: sources[0].url: field required"),
    (
        "bad auth type",
        TOP + SOURCE + "    auth: {type: bearr, token: x}\n",
        "6: sources[0].auth.type: unknown type 'bearr'; expected one of bearer, api_key, basic, "
        "oauth2_client_credentials, oauth2_refresh_token. HINT: did you mean `bearer`?",
    ),
    (
        "cursor pagination without cursor_path",
        TOP + SOURCE + "    paginate:\n      type: cursor\n",
        "6: sources[0].paginate.cursor_path: field required",
    ),
    (
        "bad write mode",
        TOP + SOURCE + "    write: upsert\n",
        "6: sources[0].write: must be one of append, replace, merge; got 'upsert'",
    ),
    (
        "merge without primary_key",
        TOP + "  - name: products\n    url: {base}/v1/products\n    write: merge\n",
        "5: sources[0].write: merge needs a primary_key (rows are upserted by it). "
        "HINT: add primary_key: id, or use write: append",
    ),
    (
        "unset variable",
        TOP + SOURCE + "    auth: {type: bearer, token: '${UNSET_SHOP_TOKEN}'}\n",
        "6: sources[0].auth.token: environment variable UNSET_SHOP_TOKEN is not set. "
        "HINT: export UNSET_SHOP_TOKEN=... before running, or write the value in the file",
    ),
    (
        "duplicate source names",
        TOP + SOURCE + SOURCE,
        "6: sources[1].name: duplicate source name 'products' (also sources[0]). "
        "HINT: each source names its own table",
    ),
    (
        "child template referring to an unknown parent",
        TOP + SOURCE + "  - name: reviews\n    url: {base}/v1/products/{{prodcts.id}}/reviews\n",
        "7: sources[1].url: refers to unknown source 'prodcts'. HINT: did you mean `products`?",
    ),
    (
        "YAML syntax error",
        TOP + SOURCE + "    params: [1, 2\n    write: merge\n",
        "7: YAML syntax error: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence, which starts at line 6)",
    ),
    (
        "bad destination scheme",
        "name: shop\ndestination: sqlite:///shop.db\nsources:\n" + SOURCE,
        "2: destination: unknown destination scheme 'sqlite'. HINT: use duckdb, jsonl or parquet",
    ),
    (
        "line break in a header value",
        TOP + SOURCE + '    headers: {X-Trace: "a\\r\\nInjected: 1"}\n',
        '6: sources[0].headers["X-Trace"]: has a control character (such as a line break). '
        "HINT: remove it",
    ),
    (
        "unknown status action",
        TOP + SOURCE + "    on_status: {404: skip, 410: skp}\n",
        "6: sources[0].on_status[\"410\"]: 'skp' is not an action: use skip or fail. "
        "HINT: did you mean `skip`?",
    ),
    (
        "negative max_per_second",
        "name: shop\nhosts:\n  127.0.0.1: {max_per_second: -5}\nsources:\n" + SOURCE,
        '3: hosts["127.0.0.1"].max_per_second: must be greater than 0; got -5',
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_validate_reports_each_mistake_and_exits_2_without_a_request(
    run_cli: RunCli,
    tmp_path: Path,
    server: CountingServer,
    base_url: str,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    message: str,
) -> None:
    monkeypatch.delenv("UNSET_SHOP_TOKEN", raising=False)
    path = _write(tmp_path, text.replace("{base}", base_url).replace("{{", "{").replace("}}", "}"))
    for command in ("validate", "plan", "run"):
        done = run_cli(command, path)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"{path}:{message}",
            f"{path}: 1 problem; nothing was sent",
        ]
    assert server.hits == 0


def test_all_problems_of_a_file_are_listed(run_cli: RunCli, tmp_path: Path, base_url: str) -> None:
    text = TOP + SOURCE.replace("{base}", base_url) + "    write: upsert\n    recods: items\n"
    path = _write(tmp_path, text)
    done = run_cli("validate", path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{path}:6: sources[0].write: must be one of append, replace, merge; got 'upsert'",
        f"{path}:7: sources[0].recods: unknown key. HINT: did you mean `records`?",
        f"{path}: 2 problems; nothing was sent",
    ]


def test_validate_accepts_a_good_file(
    run_cli: RunCli,
    tmp_path: Path,
    server: CountingServer,
    base_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", SECRET)
    path = _write(tmp_path, _good(base_url))
    done = run_cli("validate", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"{path}: ok: pipeline shop, 2 sources (products, reviews) -> duckdb:///shop.duckdb\n"
    )
    assert server.hits == 0


def test_validate_reads_toml(run_cli: RunCli, tmp_path: Path) -> None:
    text = '[[sources]]\nname = "a"\nurl = "http://127.0.0.1:9/a"\nwrite = "merge"\n'
    path = _write(tmp_path, 'name = "t"\n' + text, "pipeline.toml")
    done = run_cli("validate", path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        f"{path}:5: sources[0].write: merge needs a primary_key (rows are upserted by it). "
        "HINT: add primary_key: id, or use write: append"
    )


def test_a_missing_file_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "cannot read the file" in done.stderr


def test_plan_shows_requests_without_sending_or_leaking_secrets(
    run_cli: RunCli,
    tmp_path: Path,
    server: CountingServer,
    base_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", SECRET)
    path = _write(tmp_path, _good(base_url))
    done = run_cli("plan", path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert SECRET not in out + done.stderr
    first = f"GET {base_url}/v1/products?fields=all&token=REDACTED&offset=0&limit=50"
    assert f"1. products (merge on id)\n   {first}\n" in out
    assert "pages: offset: unknown until the first page, then the rest in parallel" in out
    assert "headers X-Secret (values not shown)" in out
    assert "2. reviews (append on product_id, id, after products)" in out
    assert f"GET {base_url}/v1/products/{{products.id}}/reviews" in out
    assert "runs: one per products record (unknown until fetched)" in out
    assert "total: at least 1 request; unknown until fetched: products, reviews" in out

    done = run_cli("plan", path, "--json", "--pages", "4", "--latency", "0.5")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout
    plan = json.loads(done.stdout)
    assert [s["requests"] for s in plan["sources"]] == [4, 200]  # 4 pages of 50 products
    assert plan["requests"] == 204
    # 204 requests: 20.3 s at 10/s (burst 1); 51 rounds of 4 at 0.5 s is longer.
    assert plan["hosts"][0]["min_seconds"] == pytest.approx(25.5)
    assert server.hits == 0


def test_schema_is_json_schema(run_cli: RunCli) -> None:
    done = run_cli("schema")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert schema["title"] == "fetchpipe pipeline"
    assert set(schema["properties"]) == {
        "name",
        "destination",
        "defaults",
        "hosts",
        "sources",
        "report",
    }
    paginate = schema["$defs"]["Source"]["properties"]["paginate"]
    assert paginate["discriminator"]["propertyName"] == "type"
