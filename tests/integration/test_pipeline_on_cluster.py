"""Pipelines whose requests go out from a Dask LocalCluster of two worker processes, against
the fleet: the runner stays in this process, each host's requests in one shard engine.

Limits are measured at the server (the fleet counts what arrives per Host header), tables are
compared with a local run's, and a worker process is killed in the middle of a run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe._exceptions import ConfigError
from fetchpipe.distributed import DaskExecutor, cluster_engine
from fetchpipe.distributed.sharding import virtual_shard
from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.runtime.report import RunReport
from fetchpipe.pipeline.runtime.runner import PipelineRunner
from fetchpipe.sim import Fleet
from fetchpipe.sim.shop import SHOP_PRODUCT_COUNT
from tests.table_rows import data_tables

pytestmark = pytest.mark.timeout(180)

HOSTS = 4
LIMIT = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    """Two worker processes, one thread each, on 127.0.0.1, shared by the module's tests."""
    with DaskExecutor.local(2) as executor:
        yield executor


def _hosts(fleet: Fleet) -> list[str]:
    return [f"127.0.0.{i + 1}" for i in range(HOSTS)]


def _pipeline(fleet: Fleet, db: Path, *, delay: float = 0.02) -> Pipeline:
    """On every host: the shop's products (5 pages, fetched at once) and a slow child request
    per product, each host limited to ``LIMIT`` requests at once."""
    sources: list[dict[str, Any]] = []
    for i in range(HOSTS):
        sources += [
            {
                "name": f"products_{i}",
                "url": fleet.url("/shop/v1/page/products", host=i),
                "params": {"per_page": 50},
                "records": "data.items",
                "primary_key": "id",
                "write": "merge",
                "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
            },
            {
                "name": f"slow_{i}",
                "url": fleet.url(f"/delay?seconds={delay}&product=", host=i)
                + f"{{products_{i}.id}}",
                "records": "",
                "include_parent": {"product_id": "id"},
            },
        ]
    return Pipeline.from_dict(
        {
            "name": "cluster",
            "destination": f"duckdb:///{db}",
            "hosts": {host: {"max_concurrency": LIMIT} for host in _hosts(fleet)},
            "defaults": {"retry": {"attempts": 3, "wait_initial": 0.01}},
            "sources": sources,
        }
    )


def _on_cluster(pipeline: Pipeline, executor: DaskExecutor, **options: Any) -> RunReport:
    from fetchpipe.engine.fetcher import run

    runner = PipelineRunner(pipeline, engine=cluster_engine(executor, **options))
    return run(runner.run())


@pytest.mark.fleet(hosts=HOSTS, minute=0.01)
def test_tables_equal_a_local_run_and_each_hosts_concurrency_holds_across_workers(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    engines = {virtual_shard(host) % cluster.slots for host in _hosts(fleet)}
    assert engines == {0, 1}  # the hosts are spread over both shard engines: both workers fetch
    local = _pipeline(fleet, tmp_path / "local.duckdb").run()
    assert local.ok
    fleet.reset()

    report = _on_cluster(_pipeline(fleet, tmp_path / "dask.duckdb"), cluster)
    assert report.ok and not report.warnings
    expected = data_tables(tmp_path / "local.duckdb")
    assert set(expected) == {f"{kind}_{i}" for kind in ("products", "slow") for i in range(4)}
    assert all(len(expected[f"slow_{i}"]) == SHOP_PRODUCT_COUNT for i in range(HOSTS))
    assert data_tables(tmp_path / "dask.duckdb") == expected
    # at the server: each host got LIMIT at once (the limit reached), never more
    assert [fleet.stats.max_in_flight(host) for host in _hosts(fleet)] == [LIMIT] * HOSTS
    # the request log was made here from the workers' results, on this process's clock
    with duckdb.connect(str(tmp_path / "dask.duckdb"), read_only=True) as connection:
        count, earliest, longest = connection.execute(
            "SELECT count(*), min(start_offset), max(total_time) FROM _fetchpipe_requests"
        ).fetchall()[0]
    assert count == HOSTS * (5 + SHOP_PRODUCT_COUNT)
    assert earliest >= 0 and 0.02 <= longest < report.seconds


@pytest.mark.fleet(hosts=HOSTS, minute=0.01)
def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    assert _pipeline(fleet, tmp_path / "local.duckdb", delay=0.03).run().ok
    fleet.reset()
    pids = list(cluster.worker_pids().values())

    runner = PipelineRunner(
        _pipeline(fleet, tmp_path / "dask.duckdb", delay=0.03), engine=cluster_engine(cluster)
    )
    report = _run_and_kill(runner, fleet, pids[0])
    assert report.ok, [s.reason for s in report.sources]
    assert any("its worker was lost" in warning for warning in report.warnings)
    assert data_tables(tmp_path / "dask.duckdb") == data_tables(tmp_path / "local.duckdb")
    _wait_for_workers(cluster, 2)


@pytest.mark.fleet(hosts=HOSTS, minute=0.01)
def test_a_shard_engine_lost_for_good_suspends_its_sources_and_the_next_run_resumes(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    assert _pipeline(fleet, tmp_path / "local.duckdb", delay=0.03).run().ok
    fleet.reset()
    db = tmp_path / "dask.duckdb"
    pids = list(cluster.worker_pids().values())

    runner = PipelineRunner(
        _pipeline(fleet, db, delay=0.03), engine=cluster_engine(cluster, restarts=0)
    )
    report = _run_and_kill(runner, fleet, pids[0])
    assert report.unfinished and not report.ok
    suspended = [s for s in report.sources if s.status == "failed"]  # kept for the next run
    assert suspended, [(s.name, s.status) for s in report.sources]
    for source in suspended:
        assert "lost this host's shard engine 1 time " in (source.reason or "")
        assert "committed pages are kept: the next run" in (source.reason or "")
    assert any("given up" in warning for warning in report.warnings)
    _wait_for_workers(cluster, 2)

    again = _pipeline(fleet, db, delay=0.03).run()  # resumes the suspended sources, here
    assert again.resumed and again.ok
    assert data_tables(db) == data_tables(tmp_path / "local.duckdb")


def _run_and_kill(runner: PipelineRunner, fleet: Fleet, pid: int) -> RunReport:
    """``runner``'s run, with the worker process ``pid`` killed once the fleet has answered
    300 requests (of the 4 x 255 of a run): mid-run."""
    from fetchpipe.engine.fetcher import run

    async def run_and_kill() -> RunReport:
        running = asyncio.ensure_future(runner.run())
        for _ in range(6000):  # 60 s at most
            if fleet.stats.requests() >= 300 or running.done():
                break
            await asyncio.sleep(0.01)
        assert not running.done()
        os.kill(pid, signal.SIGKILL)
        return await asyncio.wait_for(running, 120)

    return run(run_and_kill())


def _wait_for_workers(executor: DaskExecutor, count: int) -> None:
    """Until the nanny has started the killed worker again (the next test needs both)."""
    deadline = time.monotonic() + 30
    while len(executor.worker_pids()) < count and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.fleet(hosts=HOSTS, minute=0.01)
def test_the_workers_events_are_recorded_here_without_the_runs_secrets(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"not-a-real-token-{tmp_path.name}"
    monkeypatch.setenv("TOKEN", secret)
    db = tmp_path / "events.duckdb"
    pipeline = Pipeline.from_dict(
        {
            "name": "events",
            "destination": f"duckdb:///{db}",
            "defaults": {"retry": {"attempts": 3, "wait_initial": 0.01}},
            "sources": [
                {
                    "name": "flaky",
                    "url": fleet_in_thread.url(f"/status/503,503,200?key=ev-{tmp_path.name}"),
                    "auth": {"type": "api_key", "name": "acct", "in": "query", "value": "${TOKEN}"},
                    "records": "",
                }
            ],
        }
    )
    report = _on_cluster(pipeline, cluster)
    assert report.ok
    with duckdb.connect(str(db), read_only=True) as connection:
        events = connection.execute(
            "SELECT event, source, url FROM _fetchpipe_events ORDER BY start_offset"
        ).fetchall()
    assert [(event, source) for event, source, _ in events] == [("request_retried", "flaky")] * 2
    assert all("acct=" in url and secret not in url for _, _, url in events)
    assert secret.encode() not in db.read_bytes()


@pytest.mark.fleet(hosts=HOSTS, minute=0.01)
def test_a_cache_is_one_file_per_virtual_shard_and_answers_the_next_run(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    cache = tmp_path / "cache.sqlite"
    sources = [
        {
            "name": f"products_{i}",
            "url": fleet.url("/shop/v1/page/products", host=i),
            "params": {"per_page": 50},
            "records": "data.items",
            "primary_key": "id",
            "write": "merge",
            "paginate": {"type": "page", "total_pages_path": "meta.total_pages"},
        }
        for i in range(HOSTS)
    ]
    config = {
        "name": "cached",
        "destination": f"duckdb:///{tmp_path / 'cached.duckdb'}",
        "defaults": {"cache": {"enabled": True, "path": str(cache), "ttl": 3600}},
        "sources": sources,
    }
    first = _on_cluster(Pipeline.from_dict(config), cluster)
    assert first.ok
    files = sorted(p.name for p in (tmp_path / "cache.sqlite.shards").glob("shard-*.sqlite"))
    assert files == sorted(
        {f"shard-{virtual_shard(f'127.0.0.{i + 1}'):03d}.sqlite" for i in range(HOSTS)}
    )
    assert not cache.exists()  # no file that two workers would share
    fleet.reset()
    second = _on_cluster(Pipeline.from_dict(config), cluster)
    assert second.ok and fleet.stats.requests() == 0  # every page from the workers' caches
    assert {s.status for s in second.sources} == {"unchanged"}


def _products(fleet: Fleet, db: Path) -> dict[str, Any]:
    """The shop's products, in pages of 100, into ``db``."""
    return {
        "name": db.stem,
        "destination": f"duckdb:///{db}",
        "sources": [
            {
                "name": "products",
                "url": fleet.url("/shop/v1/offset/products"),
                "records": "items",
                "paginate": {"type": "offset", "limit": 100, "total_path": "total"},
            }
        ],
    }


@pytest.mark.fleet(hosts=HOSTS, minute=0.01)
def test_pipeline_run_starts_and_closes_a_cluster_it_names(
    fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    config = _products(fleet_in_thread, tmp_path / "named.duckdb")
    report = Pipeline.from_dict(config).run(executor="dask", workers=1)
    assert report.ok and report.source("products").rows == SHOP_PRODUCT_COUNT
    with pytest.raises(ConfigError, match="is not an executor"):
        Pipeline.from_dict(config).run(executor="spark")


@pytest.mark.fleet(hosts=HOSTS, minute=0.01)
def test_pipeline_run_leaves_a_cluster_it_is_given_open(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    config = _products(fleet_in_thread, tmp_path / "given.duckdb")
    report = Pipeline.from_dict(config).run(executor=cluster)
    assert report.ok and report.source("products").rows == SHOP_PRODUCT_COUNT
    assert cluster.client.status == "running" and cluster.slots == 2
