"""``fetchpipe run PIPELINE --shard K/N`` and ``fetchpipe merge --pipeline`` as real subprocesses
on the simulated shop, served on four loopback hosts (127.0.0.1 .. 127.0.0.4).

The pipeline's sources form three groups: products (127.0.0.1) with its child reviews
(127.0.0.4), orders with their unnest table order_items (127.0.0.2), and catalog (127.0.0.3).
By the sharding rule (BLAKE2b of the group's least host, mod N), with N = 2 shard 0 runs
products and reviews, shard 1 the other two; with N = 3 shard 0 has no source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from fetchpipe.distributed.sharding import ShardSelector
from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.pipeline.spec.shards import shard_sources
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_PRODUCT_COUNT
from fetchpipe.sim.shop_orders import SHOP_ORDER_COUNT
from tests.e2e.conftest import RunCli
from tests.e2e.shop_sources import shop_and_flaky_sources

TABLES = ["products", "reviews", "orders", "order_items", "catalog"]


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """A fleet of its own: the tests compare runs, which other tests' changes would upset."""
    with Fleet(minute=0.01, hosts=4).running_in_thread() as running:
        yield running


def shop_config(fleet: Fleet, destination: str) -> dict[str, Any]:
    return {
        "name": "shop",
        "destination": destination,
        "defaults": {"retry": {"attempts": 2, "wait_initial": 0.01}},
        "sources": [
            {
                "name": "products",
                "url": fleet.url("/shop/v1/page/products"),
                "params": {"per_page": 50},
                "records": "data.items",
                "primary_key": "id",
                "write": "merge",
                "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
            },
            {
                "name": "reviews",
                "url": fleet.url("/shop/v1/products/", host=3) + "{products.id}/reviews",
                "records": "reviews",
                "primary_key": ["product_id", "id"],
                "write": "merge",
                "include_parent": {"product_id": "id"},
            },
            {
                "name": "orders",
                "url": fleet.url("/shop/v1/orders", host=1),
                "params": {"per_page": 50},
                "records": "orders",
                "primary_key": "id",
                "write": "merge",
                "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
                "incremental": {
                    "cursor_field": "updated_at",
                    "param": "updated_since",
                    "initial": "2024-12-31T00:00:00Z",
                },
                "unnest": [
                    {"field": "items", "table": "order_items", "include_parent": {"order_id": "id"}}
                ],
            },
            {
                "name": "catalog",
                "url": fleet.url("/shop/v1/all/products", host=2),
                "records": "products",
            },
        ],
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def rows(database: Path, table: str) -> list[tuple[Any, ...]]:
    """The table's data rows, sorted, without the columns the loader adds."""
    with duckdb.connect(str(database), read_only=True) as connection:
        columns = [
            name
            for (name,) in connection.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY 1",
                [table],
            ).fetchall()
            if not name.startswith("_fetchpipe")
        ]
        select = ", ".join(f'"{c}"' for c in columns)
        found = connection.execute(f'SELECT {select} FROM "{table}"').fetchall()
    return sorted(found, key=repr)


def data_tables(database: Path) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as connection:
        names = connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    return {name for (name,) in names if not name.startswith("_fetchpipe")}


def announced(stderr: str) -> list[str]:
    """The sources a shard run said it runs (``shard K/N: n of m sources (a, b) -> ...``)."""
    found = re.search(r"^shard \d+/\d+: \d+ of \d+ sources \(([^)]*)\) -> ", stderr, re.M)
    assert found, stderr
    return [] if found.group(1) == "none" else found.group(1).split(", ")


def test_the_shards_of_2_and_of_3_cover_every_source_once_and_merge_into_a_local_runs_tables(
    run_cli: RunCli, fleet: Fleet, tmp_path: Path
) -> None:
    local = write(tmp_path / "local.yaml", shop_config(fleet, "duckdb:///local.duckdb"))
    done = run_cli("run", str(local), "-q", cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    expected = {table: rows(tmp_path / "local.duckdb", table) for table in TABLES}
    assert len(expected["products"]) == len(expected["catalog"]) == SHOP_PRODUCT_COUNT
    assert len(expected["orders"]) == SHOP_ORDER_COUNT
    assert expected["reviews"] and expected["order_items"]

    for count in (2, 3):
        pipeline = write(
            tmp_path / f"shop{count}.yaml", shop_config(fleet, "duckdb:///shop.duckdb")
        )
        folder = tmp_path / f"n{count}"
        folder.mkdir()
        ran: list[str] = []
        touched: list[set[str]] = []  # the hosts each shard run sent requests to
        for index in range(count):
            sent = {host: fleet.stats.requests(host=host) for host in fleet.addresses}
            shard = run_cli("run", str(pipeline), "--shard", f"{index}/{count}", cwd=str(folder))
            touched.append({h for h, n in sent.items() if fleet.stats.requests(host=h) > n})
            assert shard.returncode == 0, shard.stdout + shard.stderr
            names = announced(shard.stderr)
            file = folder / f"shop.shard-{index}-of-{count}.duckdb"
            assert f"-> duckdb:///{file.name}" in shard.stderr
            if names:
                written = data_tables(file)
                children = {"orders": {"order_items"}}
                assert written == {t for n in names for t in {n, *children.get(n, set())}}
            else:  # an empty shard: said, an empty summary, no file
                assert "nothing to run in this shard" in shard.stderr
                assert "pipeline shop" in shard.stdout
                assert not file.exists()
            ran += names
        assert sorted(ran) == sorted(["products", "reviews", "orders", "catalog"])  # once each
        assert sum(len(hosts) for hosts in touched) == len(set().union(*touched)) == 4
        assert not (folder / "shop.duckdb").exists()

        merged = run_cli(
            "merge", "--pipeline", str(pipeline), "--shards", str(count), cwd=str(folder)
        )
        assert merged.returncode == 0, merged.stdout + merged.stderr
        assert f"merged 5 tables from {count - (count == 3)} shards" in merged.stderr
        for table in TABLES:
            assert rows(folder / "shop.duckdb", table) == expected[table], (count, table)
    # Which shard runs what is the rule's, in this process as in the runs.
    spec = PipelineSpec.from_file(tmp_path / "shop2.yaml")
    assert shard_sources(spec, ShardSelector(0, 2)) == ["products", "reviews"]
    assert shard_sources(spec, ShardSelector(0, 3)) == []


def test_each_shard_increments_from_its_own_state_and_a_merge_again_takes_the_new_tables(
    run_cli: RunCli, fleet: Fleet, tmp_path: Path
) -> None:
    write(tmp_path / "shop.yaml", shop_config(fleet, "duckdb:///shop.duckdb"))
    reports = []
    for attempt in range(2):
        for index in range(2):
            report = tmp_path / f"run{attempt}-{index}.json"
            html = tmp_path / f"run{attempt}-{index}.html"
            done = run_cli(
                "run", "shop.yaml", "--shard", f"{index}/2", "--json", str(report), "-q",
                "--report", str(html), cwd=str(tmp_path),
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"report written to {html}" in done.stderr  # from the shard's request log
            assert ("orders" in html.read_text()) == (index == 1)
            reports.append(json.loads(report.read_text()))
        merged = run_cli("merge", "--pipeline", "shop.yaml", "--shards", "2", cwd=str(tmp_path))
        assert merged.returncode == 0, merged.stdout + merged.stderr
    by_source = [{s["name"]: s for s in r["sources"]} for r in reports]
    first, second = by_source[1]["orders"], by_source[3]["orders"]  # shard 1 holds orders
    assert first["records"] == SHOP_ORDER_COUNT
    assert second["cursor"] == first["cursor"] is not None
    assert second["records"] < first["records"]  # asked only for what changed since the cursor
    with duckdb.connect(str(tmp_path / "shop.shard-1-of-2.duckdb"), read_only=True) as db:
        state = db.execute("SELECT source FROM _fetchpipe_state").fetchall()
        runs = db.execute("SELECT count(*) FROM _fetchpipe_runs").fetchall()[0][0]
    assert state == [("orders",)]
    assert runs == 2
    assert len(rows(tmp_path / "shop.duckdb", "orders")) == SHOP_ORDER_COUNT  # merged, no dupes
    assert "products" in by_source[2] and "orders" not in by_source[2]

    # The state by hand, in a shard's destination: shown there, moved there, refused elsewhere.
    shown = run_cli("state", "show", "shop.yaml", "--shard", "1/2", cwd=str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "pipeline shop -> duckdb:///shop.shard-1-of-2.duckdb" in shown.stdout
    assert f"orders (datetime): cursor {second['cursor']}" in shown.stdout
    assert "products" not in shown.stdout
    wrong = run_cli("state", "reset", "shop.yaml", "orders", "--shard", "0/2", cwd=str(tmp_path))
    assert wrong.returncode == 2
    assert "source 'orders' runs in shard 1/2, not 0/2" in wrong.stderr
    assert "HINT: --shard 1/2" in wrong.stderr
    reset = run_cli("state", "reset", "shop.yaml", "orders", "--shard", "1/2", cwd=str(tmp_path))
    assert reset.returncode == 0, reset.stderr
    assert f"orders: cursor {second['cursor']} forgotten" in reset.stdout
    report = tmp_path / "after-reset.json"
    again = run_cli(
        "run", "shop.yaml", "--shard", "1/2", "--json", str(report), "-q", cwd=str(tmp_path)
    )
    assert again.returncode == 0, again.stderr
    orders = {s["name"]: s for s in json.loads(report.read_text())["sources"]}["orders"]
    assert orders["records"] == SHOP_ORDER_COUNT  # from the initial value again


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_the_shop_pipeline_in_file_shards_merges_into_its_directory(
    run_cli: RunCli, fleet: Fleet, tmp_path: Path, kind: str
) -> None:
    config = {
        "name": "shop",
        "destination": f"{kind}://out/shop",
        "defaults": {"retry": {"attempts": 3, "wait_initial": 0.01}},
        "sources": shop_and_flaky_sources(fleet, tag=tmp_path.name),
    }
    write(tmp_path / "shop.yaml", config)
    held = []
    for index in range(2):
        done = run_cli("run", "shop.yaml", "--shard", f"{index}/2", "-q", cwd=str(tmp_path))
        assert done.returncode == 0, done.stdout + done.stderr
        held.append(announced(done.stderr))
        assert f"-> {kind}:///out/shop.shard-{index}-of-2" in done.stderr
    assert held == [["products", "reviews"], ["flaky"]]
    merged = run_cli("merge", "--pipeline", "shop.yaml", "--shards", "2", cwd=str(tmp_path))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    out = tmp_path / "out" / "shop"
    for table, shard in (("products", 0), ("reviews", 0), ("flaky", 1)):
        copied = sorted(p.name for p in (out / table).iterdir())
        origin = tmp_path / "out" / f"shop.shard-{shard}-of-2" / table
        assert copied == sorted(p.name for p in origin.glob(f"*.{kind}")), table
        assert copied
    products = (out / "products").joinpath(copied_name(out / "products"))
    reader = "read_json_auto" if kind == "jsonl" else "read_parquet"
    with duckdb.connect() as connection:
        count = connection.execute(f"SELECT count(*) FROM {reader}(?)", [str(products)]).fetchall()
    assert count[0][0] == SHOP_PRODUCT_COUNT
    assert not (out / "_fetchpipe.duckdb").exists()  # the shards' bookkeeping stays theirs


def copied_name(folder: Path) -> str:
    (only,) = [p.name for p in folder.iterdir()]
    return only


def test_bad_shards_and_merges_exit_2_before_anything_is_sent_or_written(
    run_cli: RunCli, fleet: Fleet, tmp_path: Path
) -> None:
    before = fleet.stats.requests()
    write(tmp_path / "shop.yaml", shop_config(fleet, "duckdb:///shop.duckdb"))
    for bad in ("2/2", "x", "1/0", "-1/3", "0/257"):
        done = run_cli("run", "shop.yaml", "--shard", bad, cwd=str(tmp_path))
        assert done.returncode == 2, (bad, done.stderr)
        assert "HINT: write --shard K/N" in done.stderr
        assert "nothing was sent" in done.stderr
    done = run_cli("run", "shop.yaml", "--shard", "0/2", "--select", "prodcts", cwd=str(tmp_path))
    assert done.returncode == 2
    assert "shop.yaml: --select 'prodcts': no such source" in done.stderr
    assert "did you mean `products`" in done.stderr
    # A selection with nothing in this shard: said, exit 0.
    done = run_cli("run", "shop.yaml", "--shard", "1/2", "--select", "reviews", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "nothing to run in this shard" in done.stderr
    assert list(tmp_path.glob("*.duckdb")) == []
    assert fleet.stats.requests() == before

    missing = run_cli("merge", "--pipeline", "shop.yaml", "--shards", "2", cwd=str(tmp_path))
    assert missing.returncode == 2
    assert "shard 0/2's destination shop.shard-0-of-2.duckdb is missing" in missing.stderr
    assert "HINT: run `fetchpipe run shop.yaml --shard 0/2` first" in missing.stderr
    assert not (tmp_path / "shop.duckdb").exists()

    for args in (["--pipeline", "shop.yaml"], ["--shards", "2"], []):
        usage = run_cli("merge", *args, cwd=str(tmp_path))
        assert usage.returncode == 2, args
        assert "HINT: fetchpipe merge" in usage.stderr


def test_a_table_in_two_shards_or_in_another_shard_than_its_source_exits_2(
    run_cli: RunCli, fleet: Fleet, tmp_path: Path
) -> None:
    config = shop_config(fleet, "duckdb:///shop.duckdb")
    config["sources"] = [s for s in config["sources"] if s["name"] in ("products", "catalog")]
    write(tmp_path / "shop.yaml", config)
    for index in range(2):
        done = run_cli("run", "shop.yaml", "--shard", f"{index}/2", "-q", cwd=str(tmp_path))
        assert done.returncode == 0, done.stdout + done.stderr
    # Shard 1's file gets a products table too (as if written before the sources changed).
    with duckdb.connect(str(tmp_path / "shop.shard-1-of-2.duckdb")) as connection:
        connection.execute("CREATE TABLE products AS SELECT 1 AS id")
    twice = run_cli("merge", "--pipeline", "shop.yaml", "--shards", "2", cwd=str(tmp_path))
    assert twice.returncode == 2
    assert "table 'products' is in shop.shard-0-of-2.duckdb and shop.shard-1-of-2.duckdb" in (
        twice.stderr
    )
    assert not (tmp_path / "shop.duckdb").exists()
    (tmp_path / "shop.shard-0-of-2.duckdb").unlink()  # present again, but without products
    with duckdb.connect(str(tmp_path / "shop.shard-0-of-2.duckdb")) as connection:
        connection.execute("CREATE TABLE unrelated AS SELECT 1 AS id")
    elsewhere = run_cli("merge", "--pipeline", "shop.yaml", "--shards", "2", cwd=str(tmp_path))
    assert elsewhere.returncode == 2
    assert "table 'products' is in shop.shard-1-of-2.duckdb, but its source runs in shard 0/2" in (
        elsewhere.stderr
    )
    assert not (tmp_path / "shop.duckdb").exists()


def test_a_merge_needs_no_secret_but_the_values_that_place_the_tables(
    run_cli: RunCli, fleet: Fleet, tmp_path: Path
) -> None:
    config = shop_config(fleet, "duckdb:///shop.duckdb")
    config["sources"] = [s for s in config["sources"] if s["name"] in ("products", "catalog")]
    config["sources"][1]["headers"] = {"Authorization": "Bearer ${SHARD_TOKEN}"}
    write(tmp_path / "shop.yaml", config)
    for index in range(2):
        done = run_cli(
            "run", "shop.yaml", "--shard", f"{index}/2", "-q",
            cwd=str(tmp_path), env={"SHARD_TOKEN": "t0ken-5eb1"},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    merged = run_cli("merge", "--pipeline", "shop.yaml", "--shards", "2", cwd=str(tmp_path))
    assert merged.returncode == 0, merged.stderr  # the token is for requests: none is sent
    assert "merged 2 tables from 2 shards" in merged.stderr
    assert len(rows(tmp_path / "shop.duckdb", "catalog")) == SHOP_PRODUCT_COUNT

    base = fleet.url("/", host=2).rstrip("/")
    config["sources"][1]["url"] = "${SHARD_BASE}/shop/v1/all/products"
    write(tmp_path / "shop.yaml", config)
    unset = run_cli("merge", "--pipeline", "shop.yaml", "--shards", "2", cwd=str(tmp_path))
    assert unset.returncode == 2
    assert "SHARD_BASE" in unset.stderr
    assert "the merge needs these values" in unset.stderr
    fine = run_cli(
        "merge", "--pipeline", "shop.yaml", "--shards", "2",
        cwd=str(tmp_path), env={"SHARD_BASE": base},
    )  # fmt: skip
    assert fine.returncode == 0, fine.stderr


def test_a_table_whose_source_has_loaded_nothing_yet_is_named_and_left_as_it_is(
    run_cli: RunCli, fleet: Fleet, tmp_path: Path
) -> None:
    config = shop_config(fleet, "duckdb:///shop.duckdb")
    broken = {"name": "broken", "url": fleet.url("/status/404", host=3), "records": ""}
    config["sources"] = [config["sources"][0], broken]
    write(tmp_path / "shop.yaml", config)
    ran = [
        run_cli("run", "shop.yaml", "--shard", f"{k}/2", "-q", cwd=str(tmp_path)) for k in (0, 1)
    ]
    assert ran[0].returncode == 0, ran[0].stderr
    assert ran[1].returncode == 1  # broken failed: its shard's file has no table of it
    merged = run_cli("merge", "--pipeline", "shop.yaml", "--shards", "2", cwd=str(tmp_path))
    assert merged.returncode == 0, merged.stderr
    assert "not in their shard's destination yet" in merged.stderr
    assert "broken; left as they are" in merged.stderr
    assert "merged 1 table from 1 shard" in merged.stderr
    assert data_tables(tmp_path / "shop.duckdb") == {"products"}
