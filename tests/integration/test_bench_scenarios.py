"""The benchmark scenarios' code paths on tiny sizes, against real local servers: the 50-API
fleet (1 minute = 2 ms), the bench's own servers, and a client run against a closed port.

These check what the scenarios count and report, never how fast anything is.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fetchpipe.bench import faults, latency, pages_server, pipeline, seed, server
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.engine.fetcher import run
from fetchpipe.sim import Fleet

pytestmark = pytest.mark.fleet(hosts=50, minute=0.002)


@pytest.fixture
def remote_fleet(fleet_in_thread: Fleet) -> RemoteFleet:
    """The fleet as the benchmarks see one that runs in another process."""
    return RemoteFleet(
        fleet_in_thread.minute,
        fleet_in_thread.port,
        fleet_in_thread.api_urls,
        fleet_in_thread.base_urls,
        list(fleet_in_thread.latencies),
    )


@pytest.mark.parametrize("client", [seed.urllib_client(), seed.requests_client()])
def test_seed_methods_fetch_every_api(
    remote_fleet: RemoteFleet, client: seed.BlockingClient
) -> None:
    if client is None:
        pytest.skip("requests is not installed")
    report = seed.measure(remote_fleet, rounds=2, client=client)
    assert [r.name for r in report.rows] == [
        "sequential",
        "threads",
        "gather",
        "fetchpipe",
        "fetchpipe+cache",
    ]
    for row in report.rows:
        assert len(row.samples) == 2 and row.ok == 50 and row.failed == 0
    assert report.clean and report.floor == pytest.approx(15 * 0.002)
    assert report.row("fetchpipe+cache").note == "50 of 50 from the cache"
    assert client.name.split()[0] in report.row("sequential").label
    data = report.to_json()
    assert data["slowest_api_seconds"] == pytest.approx(0.03)
    assert data["methods"][0]["speedup"] == 1.0
    text = "\n".join(report.lines())
    assert "floor: the slowest API, 0.030 s" in text


def test_faults_fetchpipe_lands_every_record_gather_drops_the_faulty(
    remote_fleet: RemoteFleet,
) -> None:
    report = faults.measure(remote_fleet, 100, retry_after=0)
    naive, fp = report.run("gather"), report.run("fetchpipe")
    assert (naive.landed, naive.failed, naive.retries) == (70, 30, 0)
    assert naive.landed_by_kind == {
        faults.OK: 70,
        faults.BURST_503: 0,
        faults.RATE_LIMITED: 0,
        faults.RESET: 0,
    }
    assert (fp.landed, fp.failed) == (100, 0)
    assert fp.retries == 10 * 2 + 10 + 10
    assert fp.server_requests >= 140 and naive.server_requests >= 100
    assert report.to_json()["ratio_landed"] == pytest.approx(100 / 70)


def test_bench_server_delay_path() -> None:
    with server.running_server() as base:
        start = time.perf_counter()
        with urllib.request.urlopen(server.delay_url(base, 50)) as resp:
            assert resp.read() == server.BODY
        assert time.perf_counter() - start >= 0.05
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/delay/soon")
        assert info.value.code == 400
        report = run(latency.measure(base, 120, 40, 20, 2))
    assert report.floor == pytest.approx(3 * 0.02)
    assert report.clean and len(report.rounds) == 2
    assert report.median_seconds("fetchpipe") >= report.floor
    assert "ratio raw / fetchpipe time" in report.lines()[-1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_pages_server_serves_pages_after_the_delay() -> None:
    with pages_server.running_pages_server(3, 4, 30) as base:
        assert base.startswith("http://127.0.0.1:")
        start = time.perf_counter()
        status, body = _get(f"{base}/products?page=2")
        assert time.perf_counter() - start >= 0.03
        assert status == 200
        page = json.loads(body)
        assert (page["page"], page["total_pages"]) == (2, 3)
        assert page["data"] == pages_server.page_records(2, 4)
        assert json.loads(_get(f"{base}/products?page=9")[1])["data"] == []
        assert _get(f"{base}/products?page=zero")[0] == 400
        assert _get(f"{base}/products?page=0")[0] == 400
        assert _get(f"{base}/orders")[0] == 404


def test_pipeline_client_that_fails_or_hangs_is_reported(tmp_path: Path) -> None:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    run_ = pipeline.run_client("floor", closed, 10, tmp_path / "a", timeout=60)
    assert run_.exit_code == 1 and run_.error == "exit code 1" and run_.rows is None
    assert "Connect" in run_.output_tail and not (tmp_path / "a").exists()
    run_ = pipeline.run_client("floor", closed, 10, tmp_path / "b", timeout=0.01)
    assert run_.exit_code is None and run_.error == "killed after the timeout of 0.01 s"
