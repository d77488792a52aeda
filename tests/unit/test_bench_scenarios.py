"""The benchmark scenarios' parts that need no server: request plans, reports and their
figures, charts, the pipeline file, client choices and the start-up command runner.

These check what the scenarios count and report, never how fast anything is. The scenarios
run against local servers in tests/integration/test_bench_scenarios.py.
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fetchpipe.bench import (
    failing_apis,
    faults,
    pages_server,
    pipeline,
    pipeline_baselines,
    seed,
    startup,
    throughput,
)

SVG = "{http://www.w3.org/2000/svg}"


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


def test_dead_api_plan_interleaves_the_healthy_requests() -> None:
    bases = [f"http://127.0.0.{i + 1}:1" for i in range(3)]
    plan = failing_apis.dead_plan(bases, 1000, 100, "r")
    assert Counter(kind for kind, _ in plan) == {failing_apis.DEAD: 1000, failing_apis.HEALTHY: 100}
    assert len({url for _, url in plan}) == 1100
    assert {url.split("/")[2] for kind, url in plan if kind == failing_apis.DEAD} == {"127.0.0.1:1"}
    assert {url.split("/")[2] for kind, url in plan if kind == failing_apis.HEALTHY} == {
        "127.0.0.2:1",
        "127.0.0.3:1",
    }
    assert [kind for kind, _ in plan[:11]] == [failing_apis.DEAD] * 10 + [failing_apis.HEALTHY]
    assert plan == failing_apis.dead_plan(bases, 1000, 100, "r")


def test_flaky_api_plan_is_40_percent_of_eight_faults() -> None:
    plan = failing_apis.flaky_plan("http://127.0.0.1:1", 160, "r")
    assert plan == failing_apis.flaky_plan("http://127.0.0.1:1", 160, "r")
    kinds = Counter(kind.label for kind, _ in plan)
    assert kinds.pop("ok") == 96
    assert len(kinds) == 8 and set(kinds.values()) == {8}
    assert {kind.toxic.times for kind, _ in plan if kind.toxic is not None} == {1, 2}
    assert len({url for _, url in plan}) == 160


def test_throughput_clients() -> None:
    present, missing = throughput.available_clients([], ["aiohttp"])
    assert [c.name for c in present] == ["raw_aiohttp", "fetchpipe"] and missing == []
    present, missing = throughput.available_clients()
    assert {c.name for c in present + missing} == {
        "raw_aiohttp",
        "fetchpipe",
        "aiometer",
        "httpx",
        "fetchpipe_fast",
    }
    present, missing = throughput.available_clients([], ["fast"])
    assert [c.name for c in present + missing] == ["raw_aiohttp", "fetchpipe_fast"]
    with pytest.raises(ValueError, match="unknown client"):
        throughput.available_clients(["curl"])
    with pytest.raises(ValueError, match="unknown transport"):
        throughput.available_clients([], ["curl"])
    with pytest.raises(ValueError, match="unknown transport"):
        throughput.available_clients([], [])


# --- bench pipeline ----------------------------------------------------------------------------


def test_pages_records_are_deterministic_product_like_and_unique() -> None:
    first = pages_server.page_records(2, 5)
    assert first == pages_server.page_records(2, 5)
    assert [r["id"] for r in first] == [6, 7, 8, 9, 10]
    record = first[0]
    assert set(record) >= {"id", "name", "price", "updated_at", "tags", "supplier"}
    assert isinstance(record["price"], float) and isinstance(record["tags"], list)
    assert isinstance(record["supplier"], dict) and record["updated_at"].endswith("Z")
    ids = [r["id"] for page in (1, 2, 3) for r in pages_server.page_records(page, 50)]
    assert sorted(ids) == list(range(1, 151))
    past = json.loads(pages_server.page_body(4, 3, 50))
    assert past == {"data": [], "page": 4, "total_pages": 3}


def test_pipeline_clients_are_parsed_and_checked() -> None:
    assert pipeline.parse_clients(" floor, fetchpipe,floor,") == ["floor", "fetchpipe"]
    with pytest.raises(ValueError, match=r"unknown client\(s\): curl"):
        pipeline.parse_clients("floor,curl")
    with pytest.raises(ValueError, match="at least one client"):
        pipeline.parse_clients(" , ")


def test_pipeline_ratio_text() -> None:
    assert pipeline.ratio_text(1.234, 2.0) == "1.23x (target <= 2x, met)"
    assert pipeline.ratio_text(2.5, 2.0) == "2.50x (target <= 2x, missed)"
    assert pipeline.ratio_text(None, 2.0, "fetchpipe failed") == "n/a (fetchpipe failed)"


def test_pipeline_file_is_a_valid_pipeline_merging_into_an_absolute_duckdb_file(
    tmp_path: Path,
) -> None:
    from fetchpipe.pipeline import Pipeline

    database = tmp_path / "bench.duckdb"
    text = pipeline.pipeline_file("http://127.0.0.1:8123", database)
    data = yaml.safe_load(text)
    assert data["destination"] == f"duckdb:///{database}" and database.is_absolute()
    source = data["sources"][0]
    assert (source["write"], source["primary_key"], source["records"]) == ("merge", "id", "data")
    assert source["paginate"]["total_pages_path"] == "total_pages"
    assert Pipeline.from_dict(data).sources[0].name == "products"


def test_dlt_config_pages_by_number_and_merges_on_id() -> None:
    config = pipeline_baselines.dlt_config("http://127.0.0.1:8123")
    assert config["client"]["paginator"] == {
        "type": "page_number",
        "base_page": 1,
        "page_param": "page",
        "total_path": "total_pages",
    }
    assert config["resource_defaults"] == {"primary_key": "id", "write_disposition": "merge"}
    assert config["resources"][0]["endpoint"] == {"path": "products", "data_selector": "data"}


def _run(
    client: str, seconds: float, peak: float = 100.0, rows: int = 150, missing: int = 0
) -> pipeline.ClientRun:
    """A finished run with its counts (no duplicates)."""
    return pipeline.ClientRun(client, seconds, 0, peak, rows, 0, missing)


def test_pipeline_report_figures_and_targets() -> None:
    report = pipeline.PipelineReport(3, 50, 0, 2, "uvloop", ["fetchpipe", "floor"], ["dlt"])
    report.runs = [
        _run("fetchpipe", 1.5, 120.0),
        _run("floor", 1.0, 90.0),
        _run("floor", 1.2, 95.0),
        _run("fetchpipe", 1.7, 130.0),
    ]
    assert report.clean and report.ratio("fetchpipe") == pytest.approx(1.6 / 1.1)
    text = "\n".join(report.lines())
    assert "ratio fetchpipe / floor: 1.45x (target <= 2x, met)" in text
    assert "fetchpipe peak RSS: 125 MB (target < 250 MB, met)" in text
    assert "round 2: floor 1.200 s, fetchpipe 1.700 s" in text
    assert "dlt rest_api" in text and "not installed" in text
    data = report.to_json()
    assert data["summary"]["floor"]["seconds"] == pytest.approx(1.1)
    assert data["targets_met"] == {"ratio": True, "peak_rss": True}
    assert data["not_installed"] == ["dlt"] and len(data["runs"]) == 4
    root = ET.fromstring(report.chart("subtitle"))
    labels = [g.get("data-label") for g in root.iter(f"{SVG}g") if "bar" in g.get("class", "")]
    assert labels == ["fetchpipe run", "floor (aiohttp + read_json)", "dlt rest_api"]


def test_pipeline_report_a_failed_or_incomplete_client() -> None:
    report = pipeline.PipelineReport(3, 50, 0, 1, "uvloop", ["fetchpipe", "floor"])
    failed = pipeline.ClientRun(
        "fetchpipe", 0.4, 2, 50.0, error="exit code 2", output_tail="Error: No such command"
    )
    report.runs = [failed, _run("floor", 1.0, rows=149, missing=1)]
    assert not report.clean
    text = "\n".join(report.lines())
    assert "failed: exit code 2" in text and "    Error: No such command" in text
    assert "ratio fetchpipe / floor: n/a (fetchpipe failed)" in text
    assert "fetchpipe peak RSS: n/a (fetchpipe failed)" in text
    assert "INCOMPLETE: expected 150 rows, 1 ids missing" in text
    assert report.to_json()["targets_met"] == {"ratio": None, "peak_rss": None}


def _python(name: str, code: str) -> startup.Command:
    return startup.Command(name, name, [sys.executable, "-c", code], name)


def test_startup_commands_take_turns_and_a_failing_run_is_reported(tmp_path: Path) -> None:
    log = tmp_path / "order.txt"
    append = f"open({str(log)!r}, 'a').write('{{}}\\n')"
    commands = [
        _python("baseline", append.format("baseline")),
        _python("version", append.format("version") + "; raise SystemExit('boom')"),
    ]
    rows = startup.run_group(commands, 2, tmp_path, dict(os.environ))
    # One warm-up round, then two rounds, the order rotating.
    assert log.read_text().split() == ["baseline", "version"] * 2 + ["version", "baseline"]
    assert [len(r.samples) for r in rows] == [2, 2]
    assert rows[0].failures == [] and rows[1].failures == ["exit code 1: boom"] * 2
    report = startup.StartupReport(2, rows)
    assert not report.clean
    assert "  failed: exit code 1: boom" in report.lines()


def test_startup_targets() -> None:
    def row(name: str, *samples: float) -> startup.Row:
        return startup.Row(startup.Command(name, name, [], name), list(samples))

    report = startup.StartupReport(
        3,
        [row("baseline", 0.2, 0.3, 0.25), row("version", 0.29, 0.31, 0.2), row("fetch_help", 0.4)],
        [row("seed_gather", 2.0), row("seed_fetch", 2.2)],
    )
    assert report.startup_limit == pytest.approx(0.25 + startup.STARTUP_MARGIN)
    assert (report.holds("version"), report.holds("fetch_help")) == (True, False)
    assert report.seed_ratio == pytest.approx(1.1) and report.holds("seed_fetch") is False
    assert report.holds("baseline") is None and report.clean
    assert report.target_text("fetch_help") == "target <= baseline + 0.05 s: does NOT hold"
