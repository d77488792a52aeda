"""``fetchpipe init`` as a real subprocess against the simulated shop and fleet: the file it
writes is run by ``fetchpipe run`` (another subprocess) and must load every record the server
has. Also: what it cannot detect, bad usage (nothing sent), and a canary for the secrets."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import duckdb
import pytest

from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_PRODUCT_COUNT, SHOP_TOKEN, shop_day_events
from fetchpipe.sim.shop_orders import SHOP_ORDER_COUNT
from tests.e2e.conftest import CountingServer, RunCli

# Every paginated GET listing of the shop: (path, the pagination init must find, the records
# the server holds).
PAGINATED = [
    ("/shop/v1/page/products", "page", SHOP_PRODUCT_COUNT),
    ("/shop/v1/offset/products", "offset", SHOP_PRODUCT_COUNT),
    ("/shop/v1/cursor/products", "cursor", SHOP_PRODUCT_COUNT),
    ("/shop/v1/link/products", "link_header", SHOP_PRODUCT_COUNT),
    ("/shop/v1/next/products", "next_url", SHOP_PRODUCT_COUNT),
    ("/shop/v1/orders", "page", SHOP_ORDER_COUNT),
    ("/shop/v1/days/3/events", "page", len(shop_day_events(3, 200))),  # no totals: blind
    ("/shop/v1/page/products?per_page=40", "page", SHOP_PRODUCT_COUNT),
]


def _init(run_cli: RunCli, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = run_cli("init", *args, "-o", "pipeline.yaml", cwd=str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _run_and_count(
    run_cli: RunCli, tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[int, int, PipelineSpec]:
    spec = PipelineSpec.from_file(tmp_path / "pipeline.yaml", env=env or {})
    done = run_cli("run", "pipeline.yaml", cwd=str(tmp_path), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    source = spec.sources[0]
    with duckdb.connect(str(tmp_path / f"{spec.name}.duckdb"), read_only=True) as db:
        rows, keys = db.execute(
            f"select count(*), count(distinct {source.primary_key}) from {source.name}"
        ).fetchone() or (0, 0)
    return rows, keys, spec


@pytest.mark.parametrize(("path", "kind", "total"), PAGINATED, ids=[p[0] for p in PAGINATED])
def test_init_writes_a_file_that_loads_every_record(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path, path: str, kind: str, total: int
) -> None:
    notes = _init(run_cli, tmp_path, cli_fleet.url(path))
    assert f"pagination: {kind} (" in notes
    assert "confirmed: the second page has" in notes
    rows, keys, spec = _run_and_count(run_cli, tmp_path)
    assert spec.sources[0].paginate.type == kind
    assert spec.sources[0].primary_key == "id"
    assert (rows, keys) == (total, total)


def test_a_literal_token_is_written_as_a_variable_and_the_file_runs_with_it(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    url = cli_fleet.url("/shop-bearer/v1/cursor/products?limit=50")
    notes = _init(
        run_cli, tmp_path, url, "--name", "catalog", "-H", f"Authorization: Bearer {SHOP_TOKEN}"
    )
    text = (tmp_path / "pipeline.yaml").read_text()
    assert SHOP_TOKEN not in text + notes
    assert "export CATALOG_TOKEN=..." in notes
    assert 'auth: {type: bearer, token: "${CATALOG_TOKEN}"}' in text
    unset = run_cli("run", "pipeline.yaml", cwd=str(tmp_path))
    assert unset.returncode == 2
    assert "CATALOG_TOKEN is not set" in unset.stderr
    rows, _, spec = _run_and_count(run_cli, tmp_path, env={"CATALOG_TOKEN": SHOP_TOKEN})
    assert (spec.name, spec.sources[0].params) == ("catalog", {"limit": "50"})
    assert rows == SHOP_PRODUCT_COUNT


def test_a_filter_in_the_url_becomes_the_incremental_parameter(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    since = "2024-07-01T00:00:00Z"
    _init(run_cli, tmp_path, cli_fleet.url(f"/shop/v1/offset/products?updated_since={since}"))
    rows, _, spec = _run_and_count(run_cli, tmp_path)
    incremental = spec.sources[0].incremental
    assert incremental is not None
    assert (incremental.cursor_field, incremental.param, incremental.initial) == (
        "updated_at",
        "updated_since",
        since,
    )
    expected = sum(p["updated_at"] > since for p in _all_products(cli_fleet))
    assert 0 < rows == expected < SHOP_PRODUCT_COUNT


def _all_products(fleet: Fleet) -> list[dict[str, object]]:
    import urllib.request

    with urllib.request.urlopen(fleet.url("/shop/v1/all/products"), timeout=10) as answer:
        products: list[dict[str, object]] = json.load(answer)["products"]
    return products


@pytest.mark.parametrize(
    ("path", "total"),
    [("/shop/v1/all/products", SHOP_PRODUCT_COUNT), ("/api/0", 3)],
)
def test_an_endpoint_without_pages_gets_no_paginate(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path, path: str, total: int
) -> None:
    notes = _init(run_cli, tmp_path, cli_fleet.url(path))
    assert "pagination: " in notes
    rows, keys, spec = _run_and_count(run_cli, tmp_path)
    assert spec.sources[0].paginate.type == "none"
    assert rows == keys == total


def test_a_cursor_that_cannot_be_confirmed_is_said_and_not_written(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    # the cursor goes in a header there: every query parameter tried is ignored
    notes = _init(run_cli, tmp_path, cli_fleet.url("/shop/v1/header/products"))
    assert "could not detect:" in notes
    assert "pagination: could not confirm any" in notes
    text = (tmp_path / "pipeline.yaml").read_text()
    assert (
        "# paginate: {type: cursor, cursor_path: next_cursor, param: X-Cursor, location: header}"
        in text
    )
    rows, _, spec = _run_and_count(run_cli, tmp_path)
    assert spec.sources[0].paginate.type == "none"
    assert rows == 25  # the first page only, as the file says


def test_a_body_without_a_list_is_one_record(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    notes = _init(run_cli, tmp_path, cli_fleet.url("/json"))
    assert "records: no list of objects in the body: it is loaded as one record" in notes
    rows, _, spec = _run_and_count(run_cli, tmp_path)
    assert (spec.name, spec.sources[0].records, rows) == ("json", "", 1)


def test_without_o_the_file_goes_to_stdout_and_the_notes_to_stderr(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    done = run_cli("init", cli_fleet.url("/shop/v1/page/products"), cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# A pipeline for GET")
    assert "detected:" in done.stderr
    assert "detected:" not in done.stdout
    (tmp_path / "printed.yaml").write_text(done.stdout)
    assert run_cli("validate", "printed.yaml", cwd=str(tmp_path)).returncode == 0
    assert list(tmp_path.iterdir()) == [tmp_path / "printed.yaml"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/text", "Error: the URL did not answer JSON (text/plain"),
        ("/status/404", "Error: the URL answered HTTP 404"),
        ("/invalid-json", "did not answer JSON"),
    ],
)
def test_an_unusable_answer_exits_1(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path, path: str, message: str
) -> None:
    done = run_cli("init", cli_fleet.url(path), "-o", "p.yaml", cwd=str(tmp_path))
    assert done.returncode == 1
    assert message in done.stderr
    assert not (tmp_path / "p.yaml").exists()


def test_no_answer_exits_1(run_cli: RunCli, tmp_path: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]  # closed on leaving: nothing listens there then
    done = run_cli("init", f"http://127.0.0.1:{port}/v1/x", "--timeout", "5", cwd=str(tmp_path))
    assert done.returncode == 1
    assert "Error: the URL could not be fetched" in done.stderr


def test_bad_usage_exits_2_before_any_request(
    run_cli: RunCli, server: CountingServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/items"
    existing = tmp_path / "pipeline.yaml"
    existing.write_text("keep me\n")
    cases = [
        (["-o", "pipeline.yaml"], "pipeline.yaml exists; nothing was sent. HINT: give --force"),
        (["-H", "Authorization: Bearer ${INIT_TEST_UNSET}"], "INIT_TEST_UNSET is not set"),
        (["-H", "no colon"], "-H #1: a header must look like 'Name: value'"),
        (["--name", "9lives"], "--name '9lives' is not a name"),
    ]
    for args, message in cases:
        done = run_cli("init", url, *args, cwd=str(tmp_path))
        assert done.returncode == 2, args
        assert message in done.stderr, (args, done.stderr)
    done = run_cli("init", "ftp://127.0.0.1/x", cwd=str(tmp_path))
    assert (done.returncode, "is not an http(s) URL" in done.stderr) == (2, True)
    assert server.hits == 0
    assert existing.read_text() == "keep me\n"


def test_force_overwrites(run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("old\n")
    done = run_cli(
        "init", cli_fleet.url("/shop/v1/cursor/products"), "-o", "pipeline.yaml", "--force",
        cwd=str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "paginate: {type: cursor" in (tmp_path / "pipeline.yaml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]  # no temporary left


# --- secrets ------------------------------------------------------------------------------------

TOKEN, HEADER_KEY, QUERY_KEY = (f"canary-{secrets.token_hex(8)}" for _ in range(3))
PAGES, PER_PAGE = 3, 10


class _Guarded(BaseHTTPRequestHandler):
    """Three pages of ten items behind a bearer token, an X-Api-Key header and an api_key
    parameter; the next page in a Link header that keeps the query (as GitHub's do)."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        if (
            self.headers.get("Authorization") != f"Bearer {TOKEN}"
            or self.headers.get("X-Api-Key") != HEADER_KEY
            or query.get("api_key") != QUERY_KEY
        ):
            self._send(401, {"error": "unauthorized"})
            return
        page = int(query.get("page", "1"))
        items = [] if page > PAGES else [{"id": (page - 1) * PER_PAGE + i} for i in range(PER_PAGE)]
        link = None
        if page < PAGES:
            host = self.headers.get("Host")
            link = (
                f'<http://{host}{parts.path}?{urlencode({**query, "page": page + 1})}>; rel="next"'
            )
        self._send(200, items, link)

    def _send(self, status: int, body: object, link: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if link is not None:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def guarded() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Guarded)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_secrets_canary(run_cli: RunCli, guarded: str, tmp_path: Path) -> None:
    """Three credentials given literally: sent, never written or printed; the file runs
    once the variables it names are set."""
    done = run_cli(
        "init", f"{guarded}/v1/items?api_key={QUERY_KEY}&sort=id",
        "-H", f"Authorization: Bearer {TOKEN}", "-H", f"X-Api-Key: {HEADER_KEY}",
        "-o", "pipeline.yaml", cwd=str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "pipeline.yaml").read_text()
    for secret in (TOKEN, HEADER_KEY, QUERY_KEY):
        assert secret not in text + done.stdout + done.stderr
    assert "pagination: link_header (" in done.stdout
    for name in ("ITEMS_TOKEN", "ITEMS_X_API_KEY", "ITEMS_API_KEY"):
        assert f"export {name}=..." in done.stdout
    env = {"ITEMS_TOKEN": TOKEN, "ITEMS_X_API_KEY": HEADER_KEY, "ITEMS_API_KEY": QUERY_KEY}
    rows, keys, _ = _run_and_count(run_cli, tmp_path, env=env)
    assert rows == keys == PAGES * PER_PAGE


def test_a_wrong_credential_is_an_error_without_the_secret(
    run_cli: RunCli, guarded: str, tmp_path: Path
) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    done = run_cli(
        "init", f"{guarded}/v1/items?api_key={wrong}", "-H", f"Authorization: Bearer {wrong}",
        cwd=str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1
    assert "answered HTTP 401" in done.stderr
    assert "HINT: give the credentials" in done.stderr
    assert wrong not in done.stdout + done.stderr


# --- through a proxy ----------------------------------------------------------------------------


def test_init_goes_through_the_proxy_and_writes_no_proxy_password(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    from tests.integration.forward_proxy import PROXIED_HOST, forward_proxy

    password = f"canary-{secrets.token_hex(8)}"
    port = urlsplit(cli_fleet.url("/")).port
    url = f"http://{PROXIED_HOST}:{port}/shop/v1/next/products"  # only the proxy resolves it
    with forward_proxy(tmp_path / "proxy", ("init", password)) as proxy:
        folder = tmp_path / "work"
        folder.mkdir()
        notes = _init(run_cli, folder, url, "--proxy", proxy.authenticated_url)
        assert "pagination: next_url (" in notes
        assert "the proxy's credentials are not written" in notes
        proxy.wait_for(f"GET {PROXIED_HOST}:{port}/shop/v1/next/products")
        rows, _, _ = _run_and_count(run_cli, folder, env={"HTTP_PROXY": proxy.authenticated_url})
        assert rows == SHOP_PRODUCT_COUNT
        text = (folder / "pipeline.yaml").read_text()
        assert password not in text + notes + proxy.log()
