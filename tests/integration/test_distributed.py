"""Distributed fetches on a Dask LocalCluster of two worker processes, against the fleet.

Limits are measured at the server (the fleet counts what arrives per host), the output is read
back from the merged file, and a worker process is killed in the middle of a run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson
import pytest

from fetchpipe import HostLimits, Limits, Request, RetryPolicy, fetch_all
from fetchpipe._exceptions import ExecutorError
from fetchpipe.destinations.fetch.parts import list_parts
from fetchpipe.distributed import DaskExecutor, FetchSettings, fetch_sharded
from fetchpipe.distributed.batch import BatchReport, cache_file
from fetchpipe.distributed.sharding import count_hosts, virtual_shard
from fetchpipe.engine.cache.http_cache import HttpCache
from fetchpipe.engine.limits import host_of
from fetchpipe.sim import Fleet

pytestmark = pytest.mark.timeout(120)

NO_RETRIES = RetryPolicy(attempts=1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    """Two worker processes, one thread each, on 127.0.0.1, shared by the module's tests."""
    with DaskExecutor.local(2) as executor:
        yield executor


def _part_urls(parts: Path) -> dict[str, list[str]]:
    """Each part file's URLs, by file name."""
    found = {}
    for part in list_parts(parts):
        with duckdb.connect() as connection:
            rows = connection.execute(f"SELECT url FROM read_parquet('{part}')").fetchall()
        found[part.name] = [str(row[0]) for row in rows]
    return found


def _stored(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute("SELECT url, status, body, source FROM responses").fetchall()


@pytest.mark.fleet(hosts=8, minute=0.01)
def test_every_host_runs_in_one_task_and_its_concurrency_holds_across_workers(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    urls = [fleet.url(f"/delay?seconds=0.02&n={n}", host=n % 8) for n in range(320)]
    settings = FetchSettings(limits=Limits(per_host=HostLimits(max_concurrency=2)))
    report = fetch_sharded(
        urls,
        tmp_path / "out.duckdb",
        cluster,
        settings,
        host_counts=count_hosts(urls),
        batch_size=15,  # many batches per task: they must never overlap
        keep_parts=True,
    )
    assert (report.results, report.ok, report.rows_merged) == (320, 320, 320)
    assert report.plan.tasks == 2 and not report.plan.splits
    assert len(report.workers) == 2  # both worker processes fetched
    tasks_of: dict[str, set[str]] = defaultdict(set)
    assert report.parts is not None
    for name, part_urls in _part_urls(report.parts).items():
        for url in part_urls:
            tasks_of[host_of(url) or ""].add(name.split("-")[1])
    assert set(tasks_of) == set(fleet.addresses)
    assert all(len(tasks) == 1 for tasks in tasks_of.values())  # each host in one task
    assert {task for tasks in tasks_of.values() for task in tasks} == {"t00000", "t00001"}
    # at the server: every host got 2 at once (the limit reached), never more
    assert [fleet.stats.max_in_flight(host) for host in fleet.addresses] == [2] * 8
    assert sorted(url for url, *_ in _stored(tmp_path / "out.duckdb")) == sorted(urls)


@pytest.mark.fleet(hosts=3, minute=0.01)
def test_a_hosts_rate_holds_across_the_batches_and_workers(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    urls = [fleet.url(f"/item/{n}", host=n % 3) for n in range(90)]
    limits = Limits(per_host=HostLimits(max_concurrency=4, max_per_second=25.0))
    report = fetch_sharded(
        urls, tmp_path / "out.jsonl", cluster, FetchSettings(limits=limits), batch_size=8
    )
    assert report.ok == 90 and report.batches >= 12
    for host in fleet.addresses:
        arrivals = fleet.stats.arrivals(host)
        assert len(arrivals) == 30
        # GCRA may start a request up to 10 ms early after a late one (LATENESS_CREDIT), and
        # arrival times at a busy server jitter: no ten intervals (batches and workers apart)
        # shorter than ten periods less that slack; two engines at once would take half
        spans = [b - a for a, b in zip(arrivals, arrivals[10:], strict=False)]
        assert min(spans) >= 10 / 25 - 0.05
        assert 29 / (arrivals[-1] - arrivals[0]) <= 25 * 1.02


@pytest.mark.fleet(hosts=4, minute=0.01)
def test_the_results_are_those_of_a_local_run(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    paths = ["/json", "/text", "/bytes", "/status/404", "/status/500", "/invalid-json"]
    requests = [
        Request(fleet.url(f"{path}?n={n}", host=n % 4), key=n)
        for n in range(48)
        for path in [paths[n % len(paths)]]
    ]
    local = fetch_all(requests, retry=NO_RETRIES)
    report = fetch_sharded(
        requests,
        tmp_path / "out.jsonl",
        cluster,
        FetchSettings(retry=NO_RETRIES),
        batch_size=7,
    )
    assert (report.results, report.ok) == (48, sum(r.ok for r in local))
    stored = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    here = sorted((r.url, r.status, r.key, r.ok) for r in local)
    there = sorted((s["url"], s["status"], s["key"], s["ok"]) for s in stored)
    assert there == here
    bodies = {s["key"]: (s["body"], s["body_encoding"]) for s in stored}
    assert bodies[0] == ({"id": 0, "ok": True}, "json")  # /json
    assert bodies[1][1] == "text" and bodies[2][1] == "base64"


@pytest.mark.fleet(hosts=5, minute=0.01)
def test_memory_stays_flat_the_driver_reads_ahead_only_so_far(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    pulled = 0
    ahead: list[int] = []
    done = 0

    def requests() -> Iterator[str]:
        nonlocal pulled
        for n in range(400):
            pulled += 1
            yield fleet.url(f"/item/{n}", host=n % 5)

    def on_batch(batch: BatchReport) -> None:
        nonlocal done
        done += batch.results
        ahead.append(pulled - done)

    report = fetch_sharded(
        requests(), tmp_path / "o.jsonl", cluster, batch_size=10, max_buffered=30, on_batch=on_batch
    )
    assert report.results == 400 and report.batches >= 40
    # never more than the buffer bound plus what the two running batches hold
    assert max(ahead) <= 30 + 2 * 10


@pytest.mark.fleet(hosts=4, minute=0.01)
def test_a_cache_is_one_sqlite_file_per_virtual_shard(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    urls = [fleet.url(f"/item/{n}", host=n % 4) for n in range(40)]
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    settings = FetchSettings(cache=HttpCache(cache_dir, ttl=3600), cache_dir=str(cache_dir))
    first = fetch_sharded(urls, tmp_path / "out.duckdb", cluster, settings, batch_size=8)
    assert dict(first.by_source) == {"network": 40}
    expected = {cache_file(cache_dir, virtual_shard(host)).name for host in fleet.addresses}
    assert {path.name for path in cache_dir.iterdir() if path.suffix == ".sqlite"} == expected
    hits = fleet.stats.requests()
    second = fetch_sharded(urls, tmp_path / "out.duckdb", cluster, settings, batch_size=8)
    assert dict(second.by_source) == {"cache": 40}
    assert fleet.stats.requests() == hits  # nothing was sent
    assert (
        sorted(row[3] for row in _stored(tmp_path / "out.duckdb"))
        == ["cache"] * 40 + ["network"] * 40
    )


@pytest.mark.fleet(hosts=5, minute=0.01)
def test_a_heavy_host_is_split_and_its_limit_still_holds_at_the_server(
    cluster: DaskExecutor, fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    heavy = [fleet.url(f"/delay?seconds=0.02&n={n}", host=0) for n in range(120)]
    light = [fleet.url(f"/item/{n}", host=1 + n % 4) for n in range(8)]
    urls = heavy + light
    settings = FetchSettings(limits=Limits(per_host=HostLimits(max_concurrency=4)))
    report = fetch_sharded(
        urls, tmp_path / "o.duckdb", cluster, settings, host_counts=count_hosts(urls)
    )
    assert report.ok == 128
    split = report.plan.splits[fleet.address(0)]
    assert sorted(split.tasks) == [0, 1]  # both tasks fetch it, 2 at a time each
    assert fleet.stats.max_in_flight(fleet.address(0)) == 4


def test_a_task_that_fails_stops_the_run_and_keeps_the_finished_parts(
    cluster: DaskExecutor, tmp_path: Path
) -> None:
    broken = FetchSettings(transport="carrier-pigeon")  # refused by the Fetcher on the worker
    with pytest.raises(ExecutorError, match="fetchpipe merge") as failed:
        fetch_sharded(["http://127.0.0.1:9/x"], tmp_path / "o.jsonl", cluster, broken)
    assert "unknown transport" in str(failed.value)
    assert [p.name for p in (tmp_path / "o.jsonl.parts").iterdir()]  # the run's directory
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.fleet(hosts=4, minute=0.01)
def test_a_killed_workers_batch_runs_again_without_duplicates_or_gaps(
    fleet_in_thread: Fleet, tmp_path: Path
) -> None:
    fleet = fleet_in_thread
    urls = [fleet.url(f"/delay?seconds=0.03&n={n}", host=n % 4) for n in range(240)]
    settings = FetchSettings(limits=Limits(per_host=HostLimits(max_concurrency=1)))
    outcome: dict[str, object] = {}
    with DaskExecutor.local(2) as executor:
        pids = list(executor.worker_pids().values())

        def run() -> None:
            try:
                outcome["report"] = fetch_sharded(
                    urls, tmp_path / "out.duckdb", executor, settings, batch_size=40
                )
            except BaseException as exc:
                outcome["error"] = exc

        runner = threading.Thread(target=run)
        runner.start()
        deadline = time.monotonic() + 30
        while fleet.stats.requests() < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pids[0], signal.SIGKILL)  # mid-batch: both tasks are fetching
        runner.join(90)
        assert not runner.is_alive()
    assert "error" not in outcome, outcome.get("error")
    stored = sorted(url for url, *_ in _stored(tmp_path / "out.duckdb"))
    assert stored == sorted(urls)  # each request once: no duplicate, no gap
    assert fleet.stats.requests() > len(urls)  # the killed batch was fetched again
