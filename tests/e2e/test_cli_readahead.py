"""``fetchpipe fetch`` of a file sorted by host, as a real subprocess: every host busy at once."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fetchpipe.sim import Fleet

RunCli = Callable[..., subprocess.CompletedProcess[str]]
HOSTS = 8
PER_HOST = 400  # 3,200 URLs: the buffer of 1,100 that --concurrency 100 gives holds 3 hosts


@pytest.fixture
def sorted_fleet() -> Iterator[Fleet]:
    with Fleet(minute=0.01, hosts=HOSTS).running_in_thread() as running:
        yield running


def _sorted_file(fleet: Fleet, path: Path) -> list[str]:
    urls = [
        f"{fleet.base_url(h)}/delay?seconds=0.01&n={i}"
        for h in range(HOSTS)
        for i in range(PER_HOST)
    ]
    path.write_text("\n".join(urls) + "\n")
    return urls


def _first_host_sent_before_the_last_started(fleet: Fleet) -> int:
    """Requests the first host of the file had received when the last one got its first."""
    last_started = fleet.stats.arrivals(fleet.address(HOSTS - 1))[0]
    return sum(1 for t in fleet.stats.arrivals(fleet.address(0)) if t < last_started)


def test_fetch_of_a_sorted_file_keeps_every_host_busy(
    sorted_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    urls = _sorted_file(sorted_fleet, tmp_path / "urls.txt")
    out = tmp_path / "out.jsonl"
    done = run_cli(
        "fetch", str(tmp_path / "urls.txt"), "--out", str(out), "--per-host-concurrency", "2"
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["url"] for row in rows) == sorted(urls)
    assert all(row["ok"] for row in rows)
    assert sorted_fleet.stats.max_busy_hosts() == HOSTS
    # the last host of the file started long before the first one was done
    assert _first_host_sent_before_the_last_started(sorted_fleet) < PER_HOST // 4
    assert max(sorted_fleet.stats.max_in_flight(a) for a in sorted_fleet.addresses) <= 2


def test_readahead_0_reads_no_further_than_the_buffer(
    sorted_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    _sorted_file(sorted_fleet, tmp_path / "urls.txt")
    out = tmp_path / "out.jsonl"
    done = run_cli(
        "fetch",
        str(tmp_path / "urls.txt"),
        "--out",
        str(out),
        "--per-host-concurrency",
        "2",
        "--readahead",
        "0",
    )
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == HOSTS * PER_HOST
    # the buffer (1,100 requests) spans 3 hosts of 400: the last host waits for them
    assert _first_host_sent_before_the_last_started(sorted_fleet) > PER_HOST // 2


def test_a_negative_readahead_exits_2_before_any_request(
    sorted_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    _sorted_file(sorted_fleet, tmp_path / "urls.txt")
    done = run_cli("fetch", str(tmp_path / "urls.txt"), "--readahead", "-1")
    assert done.returncode == 2
    assert "--readahead" in done.stderr
    assert sorted_fleet.stats.requests() == 0


def test_bench_readahead_writes_its_figures(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "readahead.json"
    done = run_cli(
        "bench",
        "readahead",
        *("--hosts", "3", "--per-host", "20", "--delay-ms", "10", "--memory-urls", "0"),
        *("--json", str(out), "--chart", str(tmp_path / "readahead.svg")),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["scenario"] == "readahead" and data["floor_seconds"] == 0.07  # ceil(60 / 9) x 10 ms
    assert data["ratio_to_floor"]["sorted"] >= 0.9
    assert data["machine"]["cores"]
    assert "median sorted" in done.stdout
    assert (tmp_path / "readahead.svg").read_text().startswith("<svg")
