"""``fetchpipe run`` as a real subprocess against the simulated shop API, and ``Pipeline.run()``.

The canary test sets secrets through ``${VAR}``, forces 401s with a wrong one, and then searches
every byte the run wrote: the DuckDB file, the cache files, the JSON report, stdout and stderr.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import yaml

from fetchpipe.pipeline import Pipeline
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import (
    SHOP_API_KEY,
    SHOP_BASIC_PASSWORD,
    SHOP_BASIC_USER,
    SHOP_CLIENT_ID,
    SHOP_CLIENT_SECRET,
    SHOP_PRODUCT_COUNT,
    shop_reviews,
)
from fetchpipe.sim.shop_orders import customer_status, shop_orders
from fetchpipe.sim.shop_tokens import SHOP_REFRESH_TOKEN
from tests.e2e.conftest import RunCli

CANARY = "canary-7f3a9c1e-not-a-real-key"
REVIEW_COUNT = sum(len(r) for r in shop_reviews().values())


def write_pipeline(path: Path, fleet: Fleet, destination: Path, **defaults: object) -> Path:
    """A pipeline with OAuth2 products, Basic-auth reviews, and two sources that get a 401."""
    config = {
        "name": "shop",
        "destination": f"duckdb:///{destination}",
        "defaults": {"retry": {"attempts": 2, "wait_initial": 0.01}, **defaults},
        "sources": [
            {
                "name": "products",
                "url": fleet.url("/shop-oauth/v1/page/products"),
                "params": {"per_page": 50},
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": fleet.url("/shop/oauth/token"),
                    "client_id": SHOP_CLIENT_ID,
                    "client_secret": "${OAUTH_SECRET}",
                },
                "records": "data.items",
                "primary_key": "id",
                "write": "merge",
                "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
            },
            {
                "name": "reviews",
                "url": fleet.url("/shop-basic/v1/products/") + "{products.id}/reviews",
                "auth": {
                    "type": "basic",
                    "username": SHOP_BASIC_USER,
                    "password": "${BASIC_PASSWORD}",
                },
                "records": "reviews",
                "primary_key": ["product_id", "id"],
                "write": "merge",
                "include_parent": {"product_id": "id"},
            },
            {
                "name": "wrong_bearer",
                "url": fleet.url("/shop-bearer/v1/all/products"),
                "auth": {"type": "bearer", "token": "${CANARY}"},
                "records": "products",
            },
            {
                "name": "wrong_query_key",
                "url": fleet.url("/shop-key/v1/link/products"),
                "auth": {"type": "api_key", "name": "api_key", "in": "query", "value": "${CANARY}"},
                "paginate": {"type": "link_header"},
            },
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


SECRETS_ENV = {
    "OAUTH_SECRET": SHOP_CLIENT_SECRET,
    "BASIC_PASSWORD": SHOP_BASIC_PASSWORD,
    "CANARY": CANARY,
}


def test_run_loads_isolates_failures_and_never_writes_a_secret(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "shop.duckdb"
    cache = tmp_path / "cache.sqlite"
    pipeline = write_pipeline(
        tmp_path / "shop.yaml", cli_fleet, db, cache={"enabled": True, "path": str(cache)}
    )
    report_path = tmp_path / "report.json"
    proc = run_cli("run", str(pipeline), "--json", str(report_path), env=SECRETS_ENV)
    assert proc.returncode == 1, proc.stderr  # two sources failed; the others were loaded

    report = json.loads(report_path.read_text())
    status = {s["name"]: s["status"] for s in report["sources"]}
    assert status == {
        "products": "ok",
        "reviews": "ok",
        "wrong_bearer": "failed",
        "wrong_query_key": "failed",
    }
    reasons = {s["name"]: s["reason"] for s in report["sources"] if s["reason"]}
    assert "HTTP 401" in reasons["wrong_bearer"] and "HINT" in reasons["wrong_bearer"]
    assert "products: ok, 5 pages, 250 records -> 250 rows" in proc.stderr
    assert "failed: wrong_bearer: page 1 of http://" in proc.stdout
    with duckdb.connect(str(db), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM products").fetchall() == [
            (SHOP_PRODUCT_COUNT,)
        ]
        assert connection.execute("SELECT count(*) FROM reviews").fetchall() == [(REVIEW_COUNT,)]

    written = [db, report_path, *tmp_path.glob("cache.sqlite*")]
    assert any(p.name == "cache.sqlite" for p in written)
    outputs = {str(p): p.read_bytes() for p in written if p.is_file()}
    outputs["stdout"] = proc.stdout.encode()
    outputs["stderr"] = proc.stderr.encode()
    for secret in (SHOP_CLIENT_SECRET, SHOP_BASIC_PASSWORD, CANARY):
        leaks = [name for name, data in outputs.items() if secret.encode() in data]
        assert leaks == [], f"{secret!r} found in {leaks}"


def test_run_select_and_exit_codes(run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    pipeline = write_pipeline(tmp_path / "shop.yaml", cli_fleet, db)
    proc = run_cli("run", str(pipeline), "--select", "reviews", "-q", env=SECRETS_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""  # --quiet
    assert "products" in proc.stdout and "fetched" in proc.stdout
    with duckdb.connect(str(db), read_only=True) as connection:
        tables = {r[0] for r in connection.execute("SHOW TABLES").fetchall()}
    assert "reviews" in tables and "products" not in tables

    before = cli_fleet.stats.requests()
    proc = run_cli("run", str(pipeline), "--select", "review", env=SECRETS_ENV)
    assert proc.returncode == 2
    assert "--select 'review': no such source" in proc.stderr
    assert "did you mean `reviews`?" in proc.stderr
    assert cli_fleet.stats.requests() == before  # nothing was sent

    proc = run_cli("run", str(pipeline), env={})  # ${OAUTH_SECRET} and others unset
    assert proc.returncode == 2
    assert "OAUTH_SECRET" in proc.stderr and "nothing was sent" in proc.stderr
    assert cli_fleet.stats.requests() == before


def test_pipeline_run_from_python(cli_fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pipeline = Pipeline.from_dict(
        {
            "name": "shop",
            "destination": f"parquet:///{out}",
            "sources": [
                {
                    "name": "products",
                    "url": cli_fleet.url("/shop/v1/offset/products"),
                    "records": "items",
                    "paginate": {"type": "offset", "limit": 100, "total_path": "total"},
                }
            ],
        }
    )
    report = pipeline.run()
    assert report.ok and report.source("products").rows == SHOP_PRODUCT_COUNT
    files = list((out / "products").glob("*.parquet"))
    assert len(files) == 1
    with duckdb.connect() as connection:
        count = connection.execute(f"SELECT count(*) FROM read_parquet('{files[0]}')").fetchall()
    assert count == [(SHOP_PRODUCT_COUNT,)]


def test_the_readme_example_runs_against_the_simulated_fleet(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    example = Path(__file__).parents[2] / "examples" / "shop.yaml"
    text = example.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{cli_fleet.port}")
    (tmp_path / "shop.yaml").write_text(text)
    env = {"SHOP_CLIENT_SECRET": SHOP_CLIENT_SECRET, "SHOP_API_KEY": SHOP_API_KEY}
    first = run_cli("run", "shop.yaml", env=env, cwd=str(tmp_path))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "reviews: ok, 250 pages" in first.stderr
    second = run_cli("run", "shop.yaml", env=env, cwd=str(tmp_path))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "products: ok, 1 page, 0 records" in second.stderr  # incremental: nothing new
    with duckdb.connect(str(tmp_path / "shop.duckdb"), read_only=True) as connection:
        counts = connection.execute(
            "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM reviews)"
        ).fetchall()
    assert counts == [(SHOP_PRODUCT_COUNT, REVIEW_COUNT)]


def test_the_readme_secrets_hide_no_part_of_the_example_urls(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """A secret is masked wherever it shows: the shop's API key, as the README exports it, must
    not equal a part of a URL, or ``plan`` would print ``/***/v1/...`` for its route."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    export = next(line for line in readme.splitlines() if line.startswith("export SHOP_"))
    env = dict(word.split("=", 1) for word in export.split()[1:])
    assert env["SHOP_API_KEY"] == SHOP_API_KEY  # the README's key is the one the shop takes
    given = {word for word in readme.split() if word.startswith("SHOP_API_KEY=")}
    assert given == {f"SHOP_API_KEY={SHOP_API_KEY}"}  # in every command that sets it
    example = Path(__file__).parents[2] / "examples" / "shop.yaml"
    assert f"SHOP_API_KEY={SHOP_API_KEY} " in example.read_text()
    done = run_cli("plan", str(example), env=env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "/shop-key/v1/products/{products.id}/reviews" in done.stdout
    assert "***" not in done.stdout
    assert SHOP_API_KEY not in done.stdout


def test_a_destination_in_use_fails_at_once_with_a_lock_message(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "new" / "dir" / "shop.duckdb"  # missing directories are created
    pipeline = write_pipeline(tmp_path / "shop.yaml", cli_fleet, db)
    first = run_cli("run", str(pipeline), "--select", "products", env=SECRETS_ENV)
    assert first.returncode == 0, first.stderr
    with duckdb.connect(str(db)):  # this process holds the file's write lock
        before = cli_fleet.stats.requests()
        proc = run_cli("run", str(pipeline), env=SECRETS_ENV)
        assert proc.returncode == 1
        assert f"{str(db)!r} is in use by process {os.getpid()}" in proc.stderr
        assert "another run on this destination is active" in proc.stderr
        assert cli_fleet.stats.requests() == before


def test_the_orders_example_skips_gone_customers_and_merges_what_lookback_refetches(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    """examples/orders.yaml: some orders' customers answer 404 (never existed) or 410
    (deleted); they are skipped, not failed, and the other customers load. The orders' cursor
    is the latest instant, and the next run fetches the last 2 hours again without doubling."""
    orders = shop_orders()
    statuses = [customer_status(o["customer_id"]) for o in orders]
    gone = sum(status in (404, 410) for status in statuses)
    live = {o["customer_id"] for o, status in zip(orders, statuses, strict=True) if status == 200}
    assert 0 < gone < len(orders) and {404, 410} <= set(statuses)
    example = Path(__file__).parents[2] / "examples" / "orders.yaml"
    text = example.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{cli_fleet.port}")
    assert "on_status: {404: skip, 410: skip}" in text
    (tmp_path / "orders.yaml").write_text(text)
    proc = run_cli("run", "orders.yaml", "--json", "report.json", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    loaded = len(orders) - gone
    assert f"customers: ok, {loaded} pages, {loaded} records, {gone} skipped -> " in proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "source" in line)
    assert "skipped" in header
    report = json.loads((tmp_path / "report.json").read_text())
    skipped = {s["name"]: (s["status"], s["skipped"]) for s in report["sources"]}
    assert skipped == {"orders": ("ok", 0), "customers": ("ok", gone)}
    with duckdb.connect(str(tmp_path / "orders.duckdb"), read_only=True) as connection:
        ids = {row[0] for row in connection.execute("SELECT id FROM customers").fetchall()}
        assert connection.execute("SELECT count(*) FROM orders").fetchall() == [(len(orders),)]
    assert ids == live
    latest = max(orders, key=lambda o: datetime.fromisoformat(o["updated_at"]))["updated_at"]
    assert report["sources"][0]["cursor"] == latest

    # Again: the orders of the last 2 hours are fetched again (lookback) and merged.
    again = run_cli("run", "orders.yaml", "--json", "report.json", cwd=str(tmp_path))
    assert again.returncode == 0, again.stdout + again.stderr
    window = datetime.fromisoformat(latest) - timedelta(hours=2)
    recent = [o for o in orders if datetime.fromisoformat(o["updated_at"]) > window]
    assert f"orders: ok, 1 page, {len(recent)} records -> {len(recent)} rows" in again.stderr
    with duckdb.connect(str(tmp_path / "orders.duckdb"), read_only=True) as connection:
        counts = connection.execute("SELECT count(*), count(DISTINCT id) FROM orders").fetchall()
    assert counts == [(len(orders), len(orders))]


def test_a_refresh_token_run_warns_of_the_rotation_and_prints_no_secret(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    """The README's oauth2_refresh_token example against the shop's token endpoint."""
    config = {
        "name": "shop",
        "destination": f"duckdb:///{tmp_path / 'shop.duckdb'}",
        "sources": [
            {
                "name": "products",
                "url": cli_fleet.url("/shop-oauth/v1/cursor/products"),
                "auth": {
                    "type": "oauth2_refresh_token",
                    "token_url": cli_fleet.url("/shop/oauth/refresh"),
                    "client_id": SHOP_CLIENT_ID,
                    "client_secret": "${SHOP_CLIENT_SECRET}",
                    "refresh_token": "${SHOP_REFRESH_TOKEN}",
                },
                "records": "data.items",
                "paginate": {"type": "cursor", "cursor_path": "meta.next_cursor"},
            }
        ],
    }
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(config))
    env = {"SHOP_CLIENT_SECRET": SHOP_CLIENT_SECRET, "SHOP_REFRESH_TOKEN": SHOP_REFRESH_TOKEN}
    proc = run_cli("run", "shop.yaml", "--json", "report.json", env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "products: ok, 10 pages, 250 records -> 250 rows" in proc.stderr
    assert "warning: products: the token endpoint" in proc.stdout
    assert "rotated the refresh token" in proc.stdout
    written = proc.stdout + proc.stderr + (tmp_path / "report.json").read_text()
    assert SHOP_CLIENT_SECRET not in written and SHOP_REFRESH_TOKEN not in written
    with duckdb.connect(str(tmp_path / "shop.duckdb"), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM products").fetchall() == [
            (SHOP_PRODUCT_COUNT,)
        ]
