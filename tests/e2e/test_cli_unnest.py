"""``unnest`` through ``fetchpipe`` as real subprocesses: the README's example
(examples/orders.yaml) run twice with an order's list shrinking in between, a bad block refused
(exit 2) before any request, and a run killed mid-way then resumed without a child row twice.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml

from fetchpipe.sim import Fleet
from fetchpipe.sim.shop_orders import SHOP_ORDER_COUNT, order_items
from tests.e2e.conftest import CountingServer, RunCli
from tests.e2e.test_kill_resume import run_until_killed

EXAMPLE = Path(__file__).parents[2] / "examples" / "orders.yaml"
ITEMS = {oid: len(order_items(oid)) for oid in range(1, SHOP_ORDER_COUNT + 1)}


@pytest.fixture
def shop() -> Iterator[Fleet]:
    """A fleet of its own: these tests change orders, which the shared fleet's users expect as
    they were."""
    with Fleet(minute=0.01, hosts=1).running_in_thread() as running:
        yield running


def counts(db: Path) -> tuple[int, int, int, dict[int, int]]:
    """Orders, order items, distinct (order_id, _index), and items per order."""
    with duckdb.connect(str(db), read_only=True) as connection:
        orders = connection.execute("SELECT count(*) FROM orders").fetchall()[0][0]
        items = connection.execute(
            "SELECT count(*), count(DISTINCT (order_id, _index)) FROM order_items"
        ).fetchall()[0]
        per_order = connection.execute(
            "SELECT order_id, count(*) FROM order_items GROUP BY 1"
        ).fetchall()
    return orders, items[0], items[1], {int(o): int(n) for o, n in per_order}


def test_the_readme_example_unnests_the_items_and_a_shrunk_list_loses_its_rows(
    run_cli: RunCli, shop: Fleet, tmp_path: Path
) -> None:
    base = shop.url("/").rstrip("/")
    path = tmp_path / "orders.yaml"
    path.write_text(EXAMPLE.read_text().replace("http://127.0.0.1:8080", base))
    db = tmp_path / "orders.duckdb"

    checked = run_cli("validate", "orders.yaml", cwd=str(tmp_path))
    assert checked.returncode == 0, checked.stderr
    assert "unnest tables order_items (from orders.items)" in checked.stdout
    plan = run_cli("plan", "orders.yaml", cwd=str(tmp_path))
    assert "   unnest: items -> order_items (order_id: id, position in _index)" in plan.stdout

    first = run_cli("run", "orders.yaml", cwd=str(tmp_path))
    assert first.returncode == 0, first.stdout + first.stderr
    total = sum(ITEMS.values())
    assert f"-> {SHOP_ORDER_COUNT} rows, order_items: {total} rows" in first.stderr
    assert "order_items" in first.stdout  # a line of the summary table
    assert counts(db) == (SHOP_ORDER_COUNT, total, total, {o: n for o, n in ITEMS.items() if n})

    # An order loses items: its update is fetched again (incremental), its list replaced.
    shrunk = next(o for o, n in ITEMS.items() if n == 4)
    request = urllib.request.Request(
        f"{base}/shop/__order?id={shrunk}&total=9.5&items=2&minutes=1", method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    second = run_cli("run", "orders.yaml", cwd=str(tmp_path))
    assert second.returncode == 0, second.stdout + second.stderr
    expected = {**ITEMS, shrunk: 2}
    total = sum(expected.values())
    assert counts(db) == (SHOP_ORDER_COUNT, total, total, {o: n for o, n in expected.items() if n})


def test_a_bad_unnest_block_exits_2_before_any_request(
    run_cli: RunCli, server: CountingServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/orders"
    text = (
        "name: shop\n"
        "sources:\n"
        "  - name: orders\n"
        f"    url: {url}\n"
        "    records: orders\n"
        "    primary_key: id\n"
        "    write: merge\n"
        "    unnest:\n"
        "      - {field: items, table: order_items}\n"
        "  - name: customers\n"
        f"    url: {url}\n"
        "    unnest:\n"
        "      - {field: $.lines, table: _fetchpipe_lines}\n"
    )
    (tmp_path / "shop.yaml").write_text(text)
    for command in ("validate", "run"):
        done = run_cli(command, "shop.yaml", cwd=str(tmp_path))
        assert done.returncode == 2, done.stdout + done.stderr
        assert (
            "shop.yaml:9: sources[0].unnest[0].include_parent: must carry the parent's primary "
            "key (id) under write: merge, so that the child rows of a re-loaded record replace "
            "its earlier ones. HINT: add {orders_id: id}"
        ) in done.stderr
        assert "shop.yaml:13: sources[1].unnest[0].field: is a JSONPath query" in done.stderr
        assert "shop.yaml:13: sources[1].unnest[0].table: '_fetchpipe_lines' is a name" in (
            done.stderr
        )
    assert server.hits == 0
    assert not (tmp_path / "shop.duckdb").exists()


def orders_requests(fleet: Fleet) -> int:
    return fleet.stats.requests(host=fleet.addresses[0])


def test_a_run_killed_mid_way_resumes_without_a_child_row_twice(
    run_cli: RunCli, shop: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "orders.duckdb"
    config = {
        "name": "orders",
        "destination": f"duckdb:///{db}",
        "hosts": {shop.addresses[0]: {"max_concurrency": 2}},
        "sources": [
            {
                "name": "orders",
                "url": shop.url("/shop/v1/orders"),
                # 60 pages of 2, each answered after 20 ms, two at a time.
                "params": {"per_page": 2, "delay_ms": 20},
                "records": "orders",
                "write": "append",  # anything staged twice would show as a duplicate
                "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
                "unnest": [
                    {"field": "items", "table": "order_items", "include_parent": {"order_id": "id"}}
                ],
            }
        ],
    }
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(config))
    args = [sys.executable, "-m", "fetchpipe", "run", str(path), "--commit-every", "0.02", "-q"]
    killed = run_until_killed(args, lambda: orders_requests(shop), requests=30)
    assert killed, "the run ended before the kill"
    with duckdb.connect(str(db)) as connection:  # replays the killed process's WAL
        pages = connection.execute("SELECT count(*) FROM _fetchpipe_pages").fetchall()[0][0]
        staged = connection.execute("SELECT count(*) FROM _fetchpipe_stage_order_items").fetchall()[
            0
        ][0]
    assert 1 <= pages < SHOP_ORDER_COUNT // 2
    assert staged > 0  # child rows were committed with their pages before the kill

    before = orders_requests(shop)
    final = run_cli("run", str(path))
    assert final.returncode == 0, final.stdout + final.stderr
    assert "(resumed)" in final.stdout
    assert orders_requests(shop) - before == SHOP_ORDER_COUNT // 2 - pages
    total = sum(ITEMS.values())
    assert counts(db) == (SHOP_ORDER_COUNT, total, total, {o: n for o, n in ITEMS.items() if n})
