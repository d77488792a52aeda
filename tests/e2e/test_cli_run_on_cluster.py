"""``fetchpipe run PIPELINE --executor dask`` as a real subprocess against the simulated shop:
the tables of a local run, the report and metrics made here, bad options refused with exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_API_KEY, SHOP_CLIENT_SECRET, SHOP_PRODUCT_COUNT, shop_reviews
from tests.e2e.conftest import RunCli
from tests.e2e.shop_sources import shop_and_flaky_sources
from tests.e2e.without_dask import run_without_dask
from tests.table_rows import data_tables

pytestmark = pytest.mark.timeout(180)


def _write(path: Path, fleet: Fleet, db: Path, tag: str) -> Path:
    config = {
        "name": "shop",
        "destination": f"duckdb:///{db}",
        "defaults": {"retry": {"attempts": 3, "wait_initial": 0.01}},
        "hosts": {"127.0.0.1": {"max_concurrency": 4}, "127.0.0.2": {"max_concurrency": 1}},
        "sources": shop_and_flaky_sources(fleet, tag),
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _events(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute(
            "SELECT event, source, count(*) FROM _fetchpipe_events GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def test_the_shop_on_a_local_dask_cluster_leaves_the_tables_of_a_local_run(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    tag = tmp_path.name
    local = _write(tmp_path / "local.yaml", cli_fleet, tmp_path / "local.duckdb", f"l-{tag}")
    done = run_cli("run", str(local))
    assert done.returncode == 0, done.stdout + done.stderr

    dask = _write(tmp_path / "dask.yaml", cli_fleet, tmp_path / "dask.duckdb", f"d-{tag}")
    report, metrics = tmp_path / "report.html", tmp_path / "metrics.prom"
    done = run_cli(
        "run", str(dask), "--executor", "dask", "--workers", "2",
        "--report", str(report), "--metrics", str(metrics), timeout=150,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running on dask LocalCluster, 2 workers (2 shard engines" in done.stderr
    assert "products: ok, 5 pages, 250 records -> 250 rows" in done.stderr

    expected = data_tables(tmp_path / "local.duckdb")
    assert {name: len(rows) for name, rows in expected.items()}["products"] == SHOP_PRODUCT_COUNT
    assert set(expected) == {"products", "reviews", "flaky"}
    assert data_tables(tmp_path / "dask.duckdb") == expected
    # the report and the metrics come from the request log this process made of the results
    with duckdb.connect(str(tmp_path / "dask.duckdb"), read_only=True) as connection:
        logged = connection.execute("SELECT count(*) FROM _fetchpipe_requests").fetchall()[0][0]
    assert logged == 5 + SHOP_PRODUCT_COUNT + 1  # pages, a review page per product, flaky
    # the engine's events on the workers are recorded here too, with their sources
    assert _events(tmp_path / "dask.duckdb") == _events(tmp_path / "local.duckdb")
    assert ("request_retried", "flaky", 2) in _events(tmp_path / "dask.duckdb")
    assert report.stat().st_size > 0 and "<canvas" in report.read_text()
    assert "fetchpipe_requests_total{" in metrics.read_text()


def test_without_dask_run_executor_dask_exits_2_with_the_install_hint(
    cli_fleet: Fleet, tmp_path: Path
) -> None:
    pipeline = _write(tmp_path / "p.yaml", cli_fleet, tmp_path / "p.duckdb", tmp_path.name)
    before = cli_fleet.stats.requests()
    done = run_without_dask("run", str(pipeline), "--executor", "dask")
    assert done.returncode == 2
    assert "HINT: pip install 'fetchpipe[dask]'" in done.stderr
    assert cli_fleet.stats.requests() == before
    assert not (tmp_path / "p.duckdb").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "spark"], "is not an executor"),
        (["--executor", "dask://127.0.0.1:0"], "the port must be 1..65535"),
        (["--workers", "3"], "--workers sizes the local cluster"),
    ],
)
def test_bad_executor_options_of_run_exit_2_before_any_request(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path, args: list[str], message: str
) -> None:
    pipeline = _write(tmp_path / "p.yaml", cli_fleet, tmp_path / "p.duckdb", tmp_path.name)
    before = cli_fleet.stats.requests()
    done = run_cli("run", str(pipeline), *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "HINT" in done.stderr
    assert cli_fleet.stats.requests() == before
    assert not (tmp_path / "p.duckdb").exists()


def test_fetch_on_a_cluster_counts_a_quota_in_the_state_dir_it_was_given(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    """The workers get --state-dir (and the pacing settings) with the rest of the settings."""
    key = f"cluster-quota-{tmp_path.name}"
    host = cli_fleet.addresses[2]
    urls = [cli_fleet.url(f"/limited/quota/{i}?requests=1000&key={key}", host=2) for i in range(12)]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    state = tmp_path / "state"
    done = run_cli(
        "fetch", str(tmp_path / "urls.txt"), "--out", str(tmp_path / "out.jsonl"),
        "--executor", "dask", "--workers", "2", "--quota", f"{host}=5/day",
        "--state-dir", str(state), cwd=str(tmp_path), timeout=150,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # 12 requests for a quota of 5
    assert cli_fleet.limited_counts(key) == {"accepted": 5, "rejected": 0}
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    errors = sorted(str(json.loads(line)["error"]) for line in lines)
    assert errors == ["None"] * 5 + ["quota_exhausted"] * 7
    assert (state / "quotas.sqlite").is_file()
    assert not (tmp_path / ".fetchpipe").exists()  # not the default state directory


def test_the_readme_example_runs_on_a_local_dask_cluster(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    example = Path(__file__).parents[2] / "examples" / "shop.yaml"
    text = example.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{cli_fleet.port}")
    (tmp_path / "shop.yaml").write_text(text)
    env = {"SHOP_CLIENT_SECRET": SHOP_CLIENT_SECRET, "SHOP_API_KEY": SHOP_API_KEY}
    done = run_cli(
        "run", "shop.yaml", "--executor", "dask", "--workers", "2",
        env=env, cwd=str(tmp_path), timeout=150,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reviews: ok, 250 pages" in done.stderr
    assert list((tmp_path / ".fetchpipe").glob("cache.sqlite.shards/shard-*.sqlite"))
    with duckdb.connect(str(tmp_path / "shop.duckdb"), read_only=True) as connection:
        counts = connection.execute(
            "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM reviews)"
        ).fetchall()
    assert counts == [(SHOP_PRODUCT_COUNT, sum(len(r) for r in shop_reviews().values()))]
