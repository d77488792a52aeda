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


def _readme_block(first_line: str) -> str:
    """The README's YAML block that starts with ``first_line``."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```yaml\n" + first_line) + len("```yaml\n")
    return readme[start : readme.index("```", start)]


def test_the_readme_examples_run_on_the_fleet(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    """The README's two examples of several credentials, as written but for the port: the
    published limit per token is kept (no 429), each token named in the summary by its label;
    the shop's reviews with its two API keys."""
    base = cli_fleet.url("/").rstrip("/")
    tokens = _readme_block("name: tokens").replace("http://127.0.0.1:8080", base)
    tokens = tokens.replace("key: readme", f"key: readme-{tmp_path.name}")
    (tmp_path / "tokens.yaml").write_text(tokens, encoding="utf-8")
    secrets = {"TOKEN_A": "token-a", "TOKEN_B": "token-b"}
    planned = run_cli("plan", "tokens.yaml", cwd=str(tmp_path), env=secrets)
    assert "auth bearer, 2 credentials (the host's limits apply to each)" in planned.stdout
    done = run_cli(
        "run", "tokens.yaml", cwd=str(tmp_path), env={"TOKEN_A": "token-a", "TOKEN_B": "token-b"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli_fleet.limited_counts(f"readme-{tmp_path.name}") == {"accepted": 60, "rejected": 0}
    for label in ("tokens[0]", "tokens[1]"):
        limit = "published 10 per 2 s (RateLimit-Policy)"
        assert f"rate limit: 127.0.0.1 {label}: {limit}, 0 429s" in done.stdout
    shop = _readme_block("name: shop_keys").replace("http://127.0.0.1:8080", base)
    (tmp_path / "shop_keys.yaml").write_text(shop, encoding="utf-8")
    env = {"SHOP_API_KEY": SHOP_API_KEY, "SHOP_API_KEY_2": SHOP_SECOND_API_KEY}
    done = run_cli("run", "shop_keys.yaml", cwd=str(tmp_path), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(tmp_path / "shop_keys.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from reviews").fetchone() == (REVIEW_COUNT,)
