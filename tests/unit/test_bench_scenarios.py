"""The benchmark scenarios' code paths on tiny sizes, against real local servers.

These check what the scenarios count and report, never how fast anything is.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator

import pytest

from fetchpipe._fetcher import run
from fetchpipe.bench import faults, latency, seed, server, throughput
from fetchpipe.bench.fleet import RemoteFleet
from fetchpipe.sim import Fleet

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def fleet() -> Iterator[RemoteFleet]:
    """The 50-API fleet, 1 minute = 2 ms, in a thread, seen as the benchmarks see it."""
    with Fleet(minute=0.002).running_in_thread() as running:
        yield RemoteFleet(
            running.minute,
            running.port,
            running.api_urls,
            running.base_urls,
            list(running.latencies),
        )


@pytest.mark.parametrize("client", [seed.urllib_client(), seed.requests_client()])
def test_seed_methods_fetch_every_api(fleet: RemoteFleet, client: seed.BlockingClient) -> None:
    if client is None:
        pytest.skip("requests is not installed")
    report = seed.measure(fleet, rounds=2, client=client)
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


def test_seed_without_a_cache_says_so_and_has_no_figure() -> None:
    report = seed.SeedReport(0.1, 1, 50, 15.0, 1.51, "urllib.request", "uvloop")
    report.rows = [
        seed.Row("sequential", "sequential", [seed.Outcome(13.5, 50, 0)]),
        seed.Row("fetchpipe", "fetchpipe", [seed.Outcome(1.53, 50, 0)]),
        seed.Row("fetchpipe+cache", "fetchpipe+cache", note=seed.CACHE_UNAVAILABLE),
    ]
    lines = report.lines()
    assert any(
        line.startswith("fetchpipe+cache") and line.endswith("not available (no HTTP cache yet)")
        for line in lines
    )
    assert lines[-1].startswith("fetchpipe: +2.0% over the slowest API (within 5%), 8.8x")
    cache = report.to_json()["methods"][2]
    assert cache["seconds"] is None and cache["speedup"] is None and cache["ok"] is None
    root = ET.fromstring(report.chart("subtitle"))
    missing = [g for g in root.iter(f"{SVG}g") if g.get("class") == "bar missing"]
    assert [g.get("data-label") for g in missing] == ["fetchpipe+cache"]


def test_fault_plan_is_30_percent_on_every_host() -> None:
    bases = [f"http://127.0.0.{i + 1}:1" for i in range(50)]
    plan = faults.fault_plan(bases, 1000, "r", retry_after=1)
    assert plan == faults.fault_plan(bases, 1000, "r", retry_after=1)
    kinds = Counter(kind for kind, _ in plan)
    assert kinds == {
        faults.OK: 700,
        faults.BURST_503: 100,
        faults.RATE_LIMITED: 100,
        faults.RESET: 100,
    }
    per_host = Counter(url.split("/")[2] for kind, url in plan if kind != faults.OK)
    assert set(per_host.values()) == {6}
    assert len({url for _, url in plan}) == 1000
    small = Counter(kind for kind, _ in faults.fault_plan(bases, 30, "r", retry_after=1))
    assert small[faults.OK] == 21


def test_faults_fetchpipe_lands_every_record_gather_drops_the_faulty(fleet: RemoteFleet) -> None:
    report = faults.measure(fleet, 100, retry_after=0)
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


def test_throughput_clients() -> None:
    present, missing = throughput.available_clients([])
    assert [c.name for c in present] == ["raw_aiohttp", "fetchpipe"] and missing == []
    present, missing = throughput.available_clients()
    assert {c.name for c in present + missing} == {"raw_aiohttp", "fetchpipe", "aiometer", "httpx"}
    with pytest.raises(ValueError, match="unknown client"):
        throughput.available_clients(["curl"])
