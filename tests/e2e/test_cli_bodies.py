"""``fetchpipe run`` of a GraphQL source as a real subprocess: the Relay example loads every
product once, a mistake in the body exits 2 before any request, and a run killed with SIGKILL
mid-way resumes at the cursor it had reached."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_PRODUCT_COUNT, shop_products, shop_reviews
from tests.e2e.conftest import RunCli
from tests.e2e.test_kill_resume import run_until_killed

pytest.importorskip("graphql")  # the shop's GraphQL endpoint (the sim extra)

QUERY = (
    "query($after: String) { products(first: FIRST, after: $after) { "
    "nodes { id name price } pageInfo { endCursor hasNextPage } } }"
)


def relay_file(path: Path, fleet: Fleet, db: Path, first: int, url: str = "/shop/graphql") -> Path:
    source: dict[str, Any] = {
        "name": "products",
        "url": fleet.url(url, host=3),
        "method": "POST",
        "json": {"query": QUERY.replace("FIRST", str(first)), "variables": {"after": None}},
        "records": "data.products.nodes",
        "write": "append",  # a product loaded twice would show
        "paginate": {
            "type": "cursor",
            "cursor_path": "data.products.pageInfo.endCursor",
            "param": "variables.after",
            "location": "body",
            "has_more_path": "data.products.pageInfo.hasNextPage",
        },
    }
    config = {"name": "graphql", "destination": f"duckdb:///{db}", "sources": [source]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def products_in(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute("SELECT id, name, price FROM products").fetchall()


def graphql_requests(fleet: Fleet) -> int:
    return fleet.stats.requests(host=fleet.addresses[3], path="/shop/graphql")


def test_run_loads_a_graphql_relay_connection(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "graphql.duckdb"
    path = relay_file(tmp_path / "graphql.yaml", cli_fleet, db, first=50)
    before = graphql_requests(cli_fleet)
    done = run_cli("run", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = products_in(db)
    assert len(rows) == SHOP_PRODUCT_COUNT
    assert set(rows) == {(p["id"], p["name"], p["price"]) for p in shop_products()}
    assert graphql_requests(cli_fleet) - before == 5


def test_a_mistake_in_the_body_exits_2_before_any_request(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "graphql.duckdb"
    path = relay_file(tmp_path / "graphql.yaml", cli_fleet, db, first=50)
    path.write_text(path.read_text().replace("param: variables.after", "param: variables.afer"))
    before = graphql_requests(cli_fleet)
    for command in ("validate", "run"):
        done = run_cli(command, str(path))
        assert done.returncode == 2, done.stdout + done.stderr
        line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "afer" in text)
        assert (
            f"graphql.yaml:{line}: sources[0].paginate.param: 'variables.afer' is not in the "
            "json body: json.variables has no 'afer'. HINT: did you mean `after`?"
        ) in done.stderr
    assert graphql_requests(cli_fleet) == before
    assert not db.exists()


def test_a_run_killed_mid_way_resumes_at_the_cursor_it_had_reached(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "graphql.duckdb"
    # 25 pages of 10, one after another, each answered after 20 ms.
    path = relay_file(tmp_path / "graphql.yaml", cli_fleet, db, 10, "/shop/graphql?delay_ms=20")
    args = [sys.executable, "-m", "fetchpipe", "run", str(path), "--commit-every", "0.02", "-q"]
    killed = run_until_killed(args, lambda: graphql_requests(cli_fleet), requests=12)
    assert killed, "the run ended before the kill"
    with duckdb.connect(str(db)) as connection:  # replays the killed process's WAL
        committed = connection.execute("SELECT count(*) FROM _fetchpipe_pages").fetchall()[0][0]
        status = connection.execute("SELECT status FROM _fetchpipe_runs").fetchall()
    assert status == [("running",)]
    assert 1 <= committed < 25

    before = graphql_requests(cli_fleet)
    final = run_cli("run", str(path))
    assert final.returncode == 0, final.stdout + final.stderr
    assert "(resumed)" in final.stdout
    rows = products_in(db)
    assert len(rows) == len(set(rows)) == SHOP_PRODUCT_COUNT  # none twice, none missing
    # The committed pages are not fetched again: the resumed run starts at the cursor of the
    # first page that was not committed.
    assert graphql_requests(cli_fleet) - before == 25 - committed


def test_the_graphql_example_of_the_readme_runs(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    example = Path(__file__).parents[2] / "examples" / "graphql.yaml"
    base = cli_fleet.url("/", host=3).rstrip("/")
    path = tmp_path / "graphql.yaml"
    path.write_text(example.read_text().replace("http://127.0.0.1:8080", base))
    done = run_cli("run", str(path), cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    reviews = sum(len(r) for r in shop_reviews().values())
    on_sale = [p["id"] for p in shop_products() if "sale" in p["tags"] and p["in_stock"]]
    with duckdb.connect(str(tmp_path / "graphql.duckdb"), read_only=True) as connection:
        counts = [
            connection.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}").fetchone()
            for table in ("products", "on_sale")
        ]
        review_count = connection.execute("SELECT count(*) FROM reviews").fetchone()
        sale_ids = connection.execute("SELECT id FROM on_sale ORDER BY id").fetchall()
    assert counts == [(SHOP_PRODUCT_COUNT, SHOP_PRODUCT_COUNT), (len(on_sale), len(on_sale))]
    assert review_count == (reviews,)
    assert [r[0] for r in sale_ids] == on_sale


ISSUE_EXAMPLE = """\
name: relay
destination: duckdb:///{db}
sources:
  - name: products
    url: {url}
    method: POST
    json: {{query: "query($after: String) {{ products(first: 50, after: $after) {{ edges {{ node {{ id name }} }} pageInfo {{ endCursor hasNextPage }} }} }}", variables: {{after: null}}}}
    records: $.data.products.edges[*].node
    paginate: {{type: cursor, cursor_path: data.products.pageInfo.endCursor, param: variables.after, location: body, has_more_path: data.products.pageInfo.hasNextPage}}
"""  # noqa: E501 - the source block as the pipelines documentation gives it


def test_the_relay_example_as_documented_with_a_jsonpath_records(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    db = tmp_path / "relay.duckdb"
    path = tmp_path / "relay.yaml"
    path.write_text(ISSUE_EXAMPLE.format(db=db, url=cli_fleet.url("/shop/graphql", host=3)))
    before = graphql_requests(cli_fleet)
    done = run_cli("run", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(db), read_only=True) as connection:
        rows = connection.execute("SELECT id, name FROM products").fetchall()
    assert sorted(rows) == [(p["id"], p["name"]) for p in shop_products()]
    assert graphql_requests(cli_fleet) - before == 5
