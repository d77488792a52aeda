"""The read-ahead benchmark on tiny sizes against its real server: what it counts and reports,
never how fast anything is."""

from __future__ import annotations

import math
from collections import Counter

from fetchpipe.bench import readahead, server


def test_both_orders_hold_the_same_urls_and_only_the_sorted_one_is_grouped() -> None:
    bases = [f"http://127.0.0.{i}:1" for i in range(1, 6)]
    by_order = {o: list(readahead.urls(bases, 12, 30, o)) for o in ("sorted", "shuffled")}
    assert Counter(by_order["sorted"]) == Counter(by_order["shuffled"])
    assert len(set(by_order["sorted"])) == 60
    hosts = {o: [u.split("/delay")[0] for u in urls] for o, urls in by_order.items()}
    assert hosts["sorted"] == [b for b in bases for _ in range(12)]
    changes = sum(a != b for a, b in zip(hosts["shuffled"], hosts["shuffled"][1:], strict=False))
    assert changes > 40  # spread: the host changes at most steps
    assert by_order["sorted"][0].endswith("/delay/30?n=0")


def test_the_scenario_reports_both_orders_against_the_floor() -> None:
    with server.running_servers(4) as base_urls:
        assert base_urls[3].startswith("http://127.0.0.4:")
        report = readahead.measure(
            base_urls,
            per_host=30,
            per_host_concurrency=2,
            concurrency=20,
            delay_ms=20,
            rounds=2,
            memory_urls=400,
        )
    assert report.clean
    assert report.floor == math.ceil(120 / 8) * 0.02
    assert len(report.rounds) == 2
    for round_ in report.rounds:
        for order, run in round_.items():
            assert run.ok == run.urls == 120
            assert run.max_host_in_flight <= 2  # the per-host limit, as the server saw it
            assert run.max_busy_hosts >= 1
            assert run.peak_rss_mb > 0
            assert run.seconds >= report.floor * 0.9, order
    assert [r.order for r in report.memory] == ["sorted", "shuffled", "sorted_buffer_only"]
    assert all(r.ok == r.urls == 400 for r in report.memory)
    data = report.to_json()
    assert data["floor_seconds"] == report.floor
    assert set(data["ratio_to_floor"]) == {"sorted", "shuffled", "sorted_buffer_only"}
    assert data["ratio_buffer_only_over_sorted"] == report.speedup > 0
    assert set(data["peak_rss_mb"]) == set(readahead.ORDERS)
    assert data["ratio_to_floor"]["sorted"] == report.median_seconds("sorted") / report.floor
    text = "\n".join(report.lines())
    assert "x the floor" in text and "peak RSS" in text
    assert "<svg" in report.chart("subtitle")
