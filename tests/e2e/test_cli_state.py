"""``fetchpipe state show|set|reset`` as real subprocesses on examples/orders.yaml, against the
simulated shop: what is shown, what the next run sends after a change, and every refusal."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from fetchpipe.destinations.pipelines.duckdb import DuckDBLoader
from fetchpipe.destinations.pipelines.journal import RunRecord
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop_orders import SHOP_ORDER_COUNT, shop_orders
from tests.e2e.conftest import RunCli

EXAMPLE = Path(__file__).parents[2] / "examples" / "orders.yaml"
LATEST = max(shop_orders(), key=lambda o: datetime.fromisoformat(o["updated_at"]))["updated_at"]


def in_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def orders(cli_fleet: Fleet, tmp_path: Path) -> Path:
    """examples/orders.yaml in a directory of its own, pointing at the test's fleet."""
    text = EXAMPLE.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{cli_fleet.port}")
    path = tmp_path / "orders.yaml"
    path.write_text(text)
    return path


def state_rows(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute(
            "SELECT source, state->>'cursor', run_id FROM _fetchpipe_state ORDER BY source"
        ).fetchall()


def since_received(fleet: Fleet) -> list[str]:
    with urllib.request.urlopen(fleet.url("/shop/__orders/since"), timeout=10) as response:
        return list(json.load(response)["updated_since"])


def test_show_set_and_reset_change_what_the_next_run_sends(
    run_cli: RunCli, cli_fleet: Fleet, orders: Path
) -> None:
    folder, db = orders.parent, orders.parent / "orders.duckdb"
    initial = yaml.safe_load(orders.read_text())["sources"][0]["incremental"]["initial"]

    before = run_cli("state", "show", "orders.yaml", cwd=str(folder))
    assert before.returncode == 0, before.stderr
    assert before.stdout.splitlines() == [
        "pipeline orders -> duckdb:///orders.duckdb",
        f"orders (datetime): no cursor stored; the next run sends updated_since={initial}",
        "customers: no incremental state (no incremental block)",
    ]
    assert not db.exists()  # shown without creating the destination

    first = run_cli("run", "orders.yaml", "-q", "--json", "report.json", cwd=str(folder))
    assert first.returncode == 0, first.stdout + first.stderr
    run_id = json.loads((folder / "report.json").read_text())["run_id"]
    shown = run_cli("state", "show", "orders.yaml", "--json", cwd=str(folder))
    assert shown.returncode == 0, shown.stderr
    row = json.loads(shown.stdout)["sources"][0]
    back = (in_utc(LATEST) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {k: row[k] for k in ("source", "type", "cursor", "by", "sends")} == {
        "source": "orders",
        "type": "datetime",
        "cursor": LATEST,
        "by": run_id,
        "sends": f"updated_since={back}",
    }
    assert datetime.fromisoformat(row["updated_at"]).tzinfo is not None

    value = "2025-01-02T12:00:00+05:00"  # 07:00Z
    changed = run_cli("state", "set", "orders.yaml", "orders", value, cwd=str(folder))
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout == (
        f"orders: cursor set to {value} (was {LATEST}); the next run sends "
        "updated_since=2025-01-02T05:00:00Z\n"
    )
    assert state_rows(db) == [("orders", value, "set by hand")]
    assert "set by hand" in run_cli("state", "show", "orders.yaml", cwd=str(folder)).stdout

    sent_before = len(since_received(cli_fleet))
    second = run_cli("run", "orders.yaml", "-q", "--json", "report.json", cwd=str(folder))
    assert second.returncode == 0, second.stdout + second.stderr
    assert set(since_received(cli_fleet)[sent_before:]) == {"2025-01-02T05:00:00Z"}
    since = in_utc("2025-01-02T05:00:00Z")
    expected = sum(in_utc(o["updated_at"]) > since for o in shop_orders())
    report = json.loads((folder / "report.json").read_text())
    assert report["sources"][0]["records"] == expected < SHOP_ORDER_COUNT
    assert report["sources"][0]["cursor"] == LATEST  # the run moved it on again

    forgot = run_cli("state", "reset", "orders.yaml", "orders", cwd=str(folder))
    assert forgot.returncode == 0, forgot.stderr
    assert forgot.stdout == (
        f"orders: cursor {LATEST} forgotten; the next run sends updated_since={initial} (initial)\n"
    )
    assert state_rows(db) == []
    third = run_cli("run", "orders.yaml", "-q", "--json", "report.json", cwd=str(folder))
    assert third.returncode == 0, third.stdout + third.stderr
    assert json.loads((folder / "report.json").read_text())["sources"][0]["records"] == (
        SHOP_ORDER_COUNT
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("set", "orders.yaml", "order", "2025-01-01"),
            "Error: no source 'order' in pipeline orders (its sources: orders, customers). "
            "HINT: did you mean `orders`?",
        ),
        (
            ("reset", "orders.yaml", "customers"),
            "Error: source 'customers' keeps no cursor: it has no incremental block (those with "
            "one: orders). HINT: add one to the source in orders.yaml, as `incremental: "
            "{cursor_field: updated_at, param: updated_since, initial: '2024-01-01T00:00:00Z'}` "
            "(a field of its records that grows, the query parameter that sends the greatest "
            "value seen, the value of the first run), then run it",
        ),
        (
            ("set", "orders.yaml", "customers", "2025-01-01"),
            "Error: source 'customers' keeps no cursor: it has no incremental block (those with "
            "one: orders). HINT: add one to the source in orders.yaml, as `incremental: "
            "{cursor_field: updated_at, param: updated_since, initial: '2024-01-01T00:00:00Z'}` "
            "(a field of its records that grows, the query parameter that sends the greatest "
            "value seen, the value of the first run), then run it",
        ),
        (
            ("show", "order.yaml"),
            "Error: no pipeline file 'order.yaml'. HINT: did you mean `orders.yaml`?",
        ),
        (
            ("show", "orders.yaml", "--shard", "2/2"),
            "Error: --shard: shard 2/2 does not exist. HINT: write --shard K/N with 0 <= K < N <= "
            "256, e.g. --shard 0/4 .. --shard 3/4 (K counts from 0, as a Kubernetes job's "
            "completion index or an Airflow map index); nothing was changed",
        ),
        (
            ("reset", "orders.yaml", "orders", "--shard", "one/two"),
            "Error: --shard: 'one/two' is not K/N. HINT: write --shard K/N with 0 <= K < N <= "
            "256, e.g. --shard 0/4 .. --shard 3/4 (K counts from 0, as a Kubernetes job's "
            "completion index or an Airflow map index); nothing was changed",
        ),
        (
            ("set", "orders.yaml", "orders", "yesterday"),
            "Error: orders: 'yesterday' is not an ISO 8601 date-time; nothing was changed. "
            "HINT: give a datetime, as 2025-01-01T09:00:00Z",
        ),
    ],
)
def test_unknown_names_and_wrong_values_exit_2_and_change_nothing(
    run_cli: RunCli, orders: Path, args: tuple[str, ...], message: str
) -> None:
    done = run_cli("state", *args, cwd=str(orders.parent))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [message]
    assert not (orders.parent / "orders.duckdb").exists()


def test_a_number_cursor_is_stored_as_a_number_beside_jsonl_files(
    run_cli: RunCli, tmp_path: Path
) -> None:
    config = {
        "name": "events",
        "destination": "jsonl:///out",  # its state is in out/_fetchpipe.duckdb
        "sources": [
            {
                "name": "events",
                "url": "http://127.0.0.1:9/events",
                "primary_key": "id",
                "write": "merge",
                "incremental": {
                    "cursor_field": "id",
                    "param": "after",
                    "initial": 0,
                    "lookback": 5,
                },
            }
        ],
    }
    (tmp_path / "events.yaml").write_text(yaml.safe_dump(config))
    wrong = run_cli("state", "set", "events.yaml", "events", "12a", cwd=str(tmp_path))
    assert wrong.returncode == 2
    assert "'12a' is not a number; nothing was changed. HINT: give a number, as 1200" in (
        wrong.stderr
    )
    done = run_cli("state", "set", "events.yaml", "events", "1200", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "events: cursor set to 1200; the next run sends after=1195\n"
    with duckdb.connect(str(tmp_path / "out" / "_fetchpipe.duckdb"), read_only=True) as connection:
        stored = connection.execute("SELECT state->'cursor' FROM _fetchpipe_state").fetchall()
    assert stored == [("1200",)]  # a JSON number, not the text "1200"


def test_nothing_changes_while_a_run_is_unfinished(run_cli: RunCli, orders: Path) -> None:
    db = orders.parent / "orders.duckdb"
    loader = DuckDBLoader(db)  # a run that began and never ended, as an interrupted one
    loader.open()
    try:
        loader.begin_run(RunRecord("20250101T000000.000000Z-abcdef", "orders", "x", None, False))
    finally:
        loader.close()
    for args in (
        ("set", "orders.yaml", "orders", "2025-01-02"),
        ("reset", "orders.yaml", "orders"),
    ):
        done = run_cli("state", *args, cwd=str(orders.parent))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "run 20250101T000000.000000Z-abcdef of pipeline orders did not finish" in done.stderr
        assert "HINT: finish it with `fetchpipe run`, or drop it with" in done.stderr
    assert state_rows(db) == []


def test_the_state_needs_no_secret_but_the_variables_that_say_where_it_is(
    run_cli: RunCli, tmp_path: Path
) -> None:
    source = {
        "name": "products",
        "url": "http://127.0.0.1:9/shop-oauth/v1/all/products",
        "auth": {
            "type": "oauth2_refresh_token",
            "token_url": "http://127.0.0.1:9/token",
            "client_id": "c",
            "refresh_token": "${STATE_TEST_REFRESH_TOKEN}",  # unset: not needed here
        },
        "incremental": {"cursor_field": "at", "param": "since", "initial": "2024-01-01"},
    }
    config = {"name": "p", "sources": [source]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("state", "set", "p.yaml", "products", "2024-05-01", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == "products: cursor set to 2024-05-01; the next run sends since=2024-05-01\n"
    )

    config["destination"] = "duckdb:///${STATE_TEST_DIR}/p.duckdb"
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("state", "show", "q.yaml", cwd=str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "q.yaml:1: destination: not checked: environment variable STATE_TEST_DIR is not set",
        "q.yaml: the state needs these values: set the variables; nothing was changed",
    ]
