"""Several credentials per source through the command line: ``fetchpipe run`` as a real
process on the simulated shop, with ``tokens:`` (bearer) and ``values:`` (API key) from the
environment. Every credential carries requests, the quota file counts them per credential
under its label, and no output of the run (the DuckDB file, the quota file, the HTML report,
the JSON logs, stdout) holds a token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import yaml

from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import (
    SHOP_API_KEY,
    SHOP_PRODUCT_COUNT,
    SHOP_SECOND_API_KEY,
    SHOP_SECOND_TOKEN,
    SHOP_TOKEN,
    shop_reviews,
)
from tests.e2e.conftest import RunCli

REVIEW_COUNT = sum(len(r) for r in shop_reviews().values())
SECRETS = {
    "KEY_A": SHOP_API_KEY,
    "KEY_B": SHOP_SECOND_API_KEY,
    "TOKEN_A": SHOP_TOKEN,
    "TOKEN_B": SHOP_SECOND_TOKEN,
}


def _pipeline(path: Path, fleet: Fleet, destination: Path) -> Path:
    host = fleet.addresses[0]
    config = {
        "name": "lanes",
        "destination": f"duckdb:///{destination}",
        "hosts": {host: {"max_concurrency": 4, "quota": {"requests": 100000, "per": "day"}}},
        "sources": [
            {
                "name": "products",
                "url": fleet.url("/shop-key/v1/page/products"),
                "params": {"per_page": 25},
                "auth": {
                    "type": "api_key",
                    "name": "X-API-Key",
                    "values": ["${KEY_A}", "${KEY_B}"],
                },
                "records": "data.items",
                "primary_key": "id",
                "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
            },
            {
                "name": "reviews",
                "url": fleet.url("/shop-bearer/v1/products/") + "{products.id}/reviews",
                "auth": {"type": "bearer", "tokens": ["${TOKEN_A}", "${TOKEN_B}"]},
                "records": "reviews",
                "primary_key": ["product_id", "id"],
                "include_parent": {"product_id": "id"},
            },
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_a_run_with_several_credentials_uses_each_and_writes_none(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "lanes.duckdb"
    pipeline = _pipeline(tmp_path / "lanes.yaml", cli_fleet, db)
    state = tmp_path / "state"
    report = tmp_path / "report.html"
    done = run_cli(
        *("run", str(pipeline), "--state-dir", str(state), "--report", str(report)),
        *("--log-level", "debug", "--log-format", "json"),
        env=SECRETS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from products").fetchone() == (SHOP_PRODUCT_COUNT,)
        assert con.execute("select count(*) from reviews").fetchone() == (REVIEW_COUNT,)
    with sqlite3.connect(state / "quotas.sqlite") as ledger:
        used = dict(ledger.execute("select host, used from quota_use").fetchall())
    host = cli_fleet.addresses[0]
    labels = ("values[0]", "values[1]", "tokens[0]", "tokens[1]")
    assert set(used) == {f"{host} {label}" for label in labels}, used
    # Every credential carried requests: the 10 product pages shared
    # by the two keys, a review request per product by the two tokens.
    assert all(count > 0 for count in used.values()), used
    assert used[f"{host} values[0]"] + used[f"{host} values[1]"] == 10
    assert used[f"{host} tokens[0]"] + used[f"{host} tokens[1]"] == SHOP_PRODUCT_COUNT
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    written += (done.stdout + done.stderr).encode()
    assert b"values[0]" in written  # the labels show...
    for secret in SECRETS.values():
        assert secret.encode() not in written  # ...never a credential
