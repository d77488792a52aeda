"""The benchmark commands run end to end (small sizes: these check the plumbing, not speed)."""

from __future__ import annotations

import json
import os
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fetchpipe.bench.report import optional_module
from tests.e2e.conftest import RunCli

SVG = "{http://www.w3.org/2000/svg}"
SEED_METHODS = ["sequential", "threads", "gather", "fetchpipe", "fetchpipe+cache"]


def _bars(path: Path) -> dict[str, ET.Element]:
    """The chart's rows by label; each must carry a label text."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    rows = {}
    for group in root.iter(f"{SVG}g"):
        if "bar" in group.get("class", "").split():
            label = group.find(f"{SVG}text[@class='label']")
            assert label is not None and label.text == group.get("data-label")
            rows[label.text] = group
    return rows


def test_bench_throughput_runs_both_transports_beside_the_raw_loop(
    run_cli: RunCli, tmp_path: Path
) -> None:
    pytest.importorskip("pyreqwest")
    out = tmp_path / "throughput.json"
    proc = run_cli(
        *("bench", "throughput", "--requests", "300", "--rounds", "2", "--extras", ""),
        *("--json", str(out)),
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        r"ratio fetchpipe / raw: \d+\.\d\d .*aiohttp transport, target 1.2x", proc.stdout
    )
    assert re.search(
        r"ratio fetchpipe --transport fast / raw: \d+\.\d\d .*fast transport, target 2x",
        proc.stdout,
    )
    assert "event loop uvloop for every client" in proc.stdout
    assert "gen-0 GC threshold to 5000" in proc.stdout
    report = json.loads(out.read_text())
    assert report["requests"] == 300 and len(report["rounds"]) == 2
    assert list(report["clients"]) == ["raw_aiohttp", "fetchpipe", "fetchpipe_fast"]
    for round_ in report["rounds"]:
        assert {name: run["ok"] for name, run in round_.items()} == dict.fromkeys(
            report["clients"], 300
        )
    rates = report["median_rate"]
    assert report["ratio"] == rates["fetchpipe"] / rates["raw_aiohttp"]
    fast = report["ratios_to_raw"]["fetchpipe_fast"]
    assert fast == rates["fetchpipe_fast"] / rates["raw_aiohttp"]
    assert report["targets"] == {"fetchpipe": 1.2, "fetchpipe_fast": 2.0}
    assert report["machine"]["cores"] >= 1


def test_bench_throughput_on_one_transport_and_a_bad_one(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    proc = run_cli(
        *("bench", "throughput", "--requests", "200", "--rounds", "1", "--extras", ""),
        *("--transport", "aiohttp", "--json", str(out)),
    )
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(out.read_text())["clients"]) == ["raw_aiohttp", "fetchpipe"]
    bad = run_cli("bench", "throughput", "--transport", "curl")
    assert bad.returncode == 2 and "unknown transport(s) curl" in bad.stderr


def test_bench_memory_measures_a_child_process(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    proc = run_cli("bench", "memory", "--urls", "2000", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["urls"] == 2000 and report["ok"] == 2000
    assert 10 < report["peak_rss_mb"] < 500
    assert f"peak RSS {report['peak_rss_mb']:.1f} MB" in proc.stdout
    assert [(r["client"], r["ok"]) for r in report["runs"]] == [
        ("fetchpipe", 2000),
        ("gather", 2000),
    ]
    assert "ratio gather / fetchpipe peak RSS at 2000 URLs" in proc.stdout


def test_bench_seed_prints_the_table_and_writes_json_and_svg(
    run_cli: RunCli, tmp_path: Path
) -> None:
    out, chart = tmp_path / "seed.json", tmp_path / "seed.svg"
    proc = run_cli("bench", "seed", "--scale", "0.002", "--json", str(out), "--chart", str(chart))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [m["name"] for m in report["methods"]] == SEED_METHODS
    assert report["slowest_api_seconds"] == 15 * 0.002
    for method in report["methods"]:
        assert (method["ok"], method["failed"]) == (50, 0)
        assert method["seconds"] > 0 and method["speedup"] > 0
        assert re.search(rf"^{re.escape(method['label'])} +\d+\.\d{{3}} ", proc.stdout, re.M)
    assert set(report["machine"]) >= {"cores", "python", "packages", "date", "system"}
    assert re.search(r"^fetchpipe: [+-]\d+\.\d% over the slowest API", proc.stdout, re.M)
    bars = _bars(chart)
    assert list(bars) == [m["label"] for m in report["methods"]]
    for method in report["methods"]:
        group = bars[method["label"]]
        assert group.find(f"{SVG}rect") is not None
        value = group.find(f"{SVG}text[@class='value']")
        assert value is not None and f"{method['seconds']:.3f} s" in (value.text or "")


def test_bench_reaches_its_local_servers_directly_whatever_proxy_the_shell_names(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # A proxy that refuses every connection: any client sent through it would fail.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    proxies = {name: dead for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY")}
    out = tmp_path / "seed.json"
    proc = run_cli("bench", "seed", "--scale", "0.002", "--json", str(out), env=proxies)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [(m["name"], m["ok"], m["failed"]) for m in report["methods"]] == [
        (name, 50, 0) for name in SEED_METHODS
    ]


def test_bench_all_writes_a_json_and_an_svg_per_scenario(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = run_cli(
        "bench",
        "all",
        "--out-dir",
        str(out),
        "--scale",
        "0.002",
        "--throughput-requests",
        "100",
        "--rounds",
        "1",
        "--latency-requests",
        "300",
        "--memory-sizes",
        "500,1000",
        "--ceiling-mb",
        "1",
        "--faults-requests",
        "100",
    )
    assert proc.returncode == 0, proc.stderr
    names = ["seed", "throughput", "latency", "memory", "faults"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.{ext}" for n in names for ext in ("json", "svg")
    )
    reports = {n: json.loads((out / f"{n}.json").read_text()) for n in names}
    for name, report in reports.items():
        assert report["scenario"] == name
        assert report["machine"]["cores"] >= 1 and report["machine"]["date"]
        assert _bars(out / f"{name}.svg")
    latency = reports["latency"]
    assert latency["floor_seconds"] == 0.1 and latency["concurrency"] == 1000
    assert latency["rounds"][0]["fetchpipe"]["ok"] == 300
    memory = reports["memory"]
    assert [(r["client"], r["urls"], r["stopped_at_ceiling"]) for r in memory["runs"]] == [
        ("fetchpipe", 500, False),
        ("gather", 500, True),
        ("fetchpipe", 1000, False),
    ]
    assert "stopped at ceiling" in proc.stdout and "not run" in proc.stdout
    assert len(_bars(out / "memory.svg")) == 4
    throughput = reports["throughput"]
    for extra in ("aiometer", "httpx"):
        if optional_module(extra) is None:
            assert extra in throughput["not_installed"]
            assert f"not installed ({extra})" in proc.stdout
        else:
            assert throughput["rounds"][0][extra]["ok"] == 100
            assert re.search(rf"ratio {extra} [^:]*/ raw: \d+\.\d\d", proc.stdout)
    runs = {r["name"]: r for r in reports["faults"]["runs"]}
    assert runs["fetchpipe"]["landed"] == 100 and runs["gather"]["landed"] == 70
    assert reports["faults"]["faulty"] == 30


PIPELINE_SMALL = ("--pages", "3", "--records", "50", "--delay-ms", "0")


def _pipeline_row(stdout: str, label: str) -> list[str]:
    """The printed figures of one client: seconds, rows, duplicates, peak RSS (MB)."""
    match = re.search(
        rf"^  {re.escape(label)} +(\d+\.\d{{3}}) +(\d+) +(\d+) +(\d+\.\d) MB$", stdout, re.M
    )
    assert match, stdout
    return list(match.groups())


def test_bench_pipeline_floor_lands_every_record_once(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    proc = run_cli("bench", "pipeline", *PIPELINE_SMALL, "--clients", "floor", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["scenario"] == "pipeline" and report["expected_rows"] == 150
    assert list(report["clients"]) == ["floor"] and report["clean"] is True
    [run] = report["runs"]
    assert (run["client"], run["exit_code"], run["error"]) == ("floor", 0, None)
    assert (run["rows"], run["duplicates"], run["missing"]) == (150, 0, 0)
    assert 0 < run["seconds"] < 60 and 10 < run["peak_rss_mb"] < 1000
    floor = report["summary"]["floor"]
    assert _pipeline_row(proc.stdout, "floor (aiohttp + read_json)") == [
        f"{floor['seconds']:.3f}",
        "150",
        "0",
        f"{floor['peak_rss_mb']:.1f}",
    ]
    assert report["ratio_fetchpipe_over_floor"] is None
    assert "ratio fetchpipe" not in proc.stdout  # fetchpipe was not asked for
    assert re.search(r"^Python 3\.\d+\.\d+ · event loop \w+ · ", proc.stdout, re.M)
    assert report["machine"]["cores"] >= 1


def test_bench_pipeline_unknown_client_is_a_usage_error(run_cli: RunCli) -> None:
    proc = run_cli("bench", "pipeline", *PIPELINE_SMALL, "--clients", "floor,airbyte")
    assert proc.returncode == 2
    assert "unknown client(s): airbyte" in proc.stderr and "--clients" in proc.stderr
    assert proc.stdout == ""


def test_bench_pipeline_runs_fetchpipe_against_the_floor(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    proc = run_cli(
        "bench", "pipeline", *PIPELINE_SMALL, "--clients", "fetchpipe,floor", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    for client in ("fetchpipe", "floor"):
        summary = report["summary"][client]
        assert (summary["rows"], summary["duplicates"], summary["missing"]) == (150, 0, 0)
    fetchpipe = report["summary"]["fetchpipe"]
    assert _pipeline_row(proc.stdout, "fetchpipe run")[1:3] == ["150", "0"]
    ratio = report["ratio_fetchpipe_over_floor"]
    assert ratio == fetchpipe["seconds"] / report["summary"]["floor"]["seconds"]
    assert f"ratio fetchpipe / floor: {ratio:.2f}x (target <= 2x, " in proc.stdout
    assert f"fetchpipe peak RSS: {fetchpipe['peak_rss_mb']:.0f} MB (target < 250 MB, " in (
        proc.stdout
    )


def test_bench_faults_with_toxics_lands_everything_that_can_land(
    run_cli: RunCli, tmp_path: Path
) -> None:
    out, chart = tmp_path / "toxics.json", tmp_path / "toxics.svg"
    proc = run_cli(
        "bench",
        "faults",
        "--toxics",
        "--requests",
        "200",
        "--retry-after",
        "0",
        "--json",
        str(out),
        "--chart",
        str(chart),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert (report["scenario"], report["mode"], report["requests"]) == ("faults", "toxics", 200)
    assert report["faulty"] == 60 and report["hosts"] == 50
    kinds = [k["label"] for k in report["kinds"]]
    assert len(kinds) == 20 and sum(report["planned"].values()) == 200
    unlandable = [k["label"] for k in report["kinds"] if not k["landable"]]
    assert unlandable == ["429 huge"]
    assert report["landable"] == 200 - report["planned"]["429 huge"]
    runs = {r["name"]: r for r in report["runs"]}
    fp, naive = runs["fetchpipe"], runs["gather"]
    assert fp["landed"] == report["landable"] and fp["failed"] == 200 - report["landable"]
    assert fp["failed_by_error"] == {"rate_limited": fp["failed"]}
    assert naive["landed"] < fp["landed"] and naive["retries"] == 0
    assert fp["retries"] > 0 and fp["server_requests"] >= 200 + fp["retries"]
    assert report["retries_per_request"] == fp["retries"] / 200
    assert f"fetchpipe retries / first attempts: {fp['retries'] / 200:.3f}" in proc.stdout
    assert re.search(r"^  5xx burst +of \d+ +0 +\d+$", proc.stdout, re.M)
    assert list(_bars(chart)) == [r["label"] for r in report["runs"]]


def test_bench_faults_default_run_keeps_its_three_faults(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    proc = run_cli("bench", "faults", "--requests", "100", "--retry-after", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert "mode" not in report and report["faulty"] == 30
    runs = {r["name"]: r for r in report["runs"]}
    assert (runs["fetchpipe"]["landed"], runs["gather"]["landed"]) == (100, 70)
    assert "x 503,503 then 200" in proc.stdout


def test_bench_faults_dead_api_ends_fast_and_spares_the_dead_host(
    run_cli: RunCli, tmp_path: Path
) -> None:
    out, chart = tmp_path / "dead.json", tmp_path / "dead.svg"
    proc = run_cli(
        "bench",
        "faults",
        "--dead-api",
        "--requests",
        "100",
        "--json",
        str(out),
        "--chart",
        str(chart),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert (report["mode"], report["dead"], report["healthy"]) == ("dead-api", 100, 10)
    runs = {r["name"]: r for r in report["runs"]}
    assert [r["healthy_landed"] for r in runs.values()] == [10, 10, 10]
    naive, fp, alone = runs["gather"], runs["fetchpipe"], runs["no-breaker"]
    assert (naive["dead_received"], naive["dead_retries"]) == (100, 0)
    assert fp["dead_errors"] == {"host_down": 100} and fp["hosts_down"] == [report["dead_host"]]
    # Without the breaker, the budget alone: its 50 failed retries, then none.
    assert alone["dead_retries"] == 50 and alone["dead_received"] == 150
    assert alone["dead_errors"] == {"http_status": 100}
    assert report["ratio_dead_received"] == fp["dead_received"] / 100
    assert "dead API: 100 requests to" in proc.stdout
    assert list(_bars(chart)) == [r["label"] for r in report["runs"]]


def test_bench_faults_flaky_api_lands_everything(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "flaky.json"
    proc = run_cli("bench", "faults", "--flaky-api", "--retry-after", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert (report["mode"], report["requests"], report["faulty"]) == ("flaky-api", 160, 64)
    runs = {r["name"]: r for r in report["runs"]}
    fp, naive = runs["fetchpipe"], runs["gather"]
    assert (fp["landed"], fp["retries_refused"], fp["hosts_down"]) == (160, 0, [])
    assert fp["retries"] == 96 and fp["server_requests"] == 256
    assert (naive["landed"], naive["server_requests"]) == (96, 160)
    assert "fetchpipe landed 160 of 160 (0 retries refused" in proc.stdout


def test_bench_faults_takes_one_scenario_at_a_time(run_cli: RunCli) -> None:
    proc = run_cli("bench", "faults", "--dead-api", "--toxics")
    assert proc.returncode == 2 and "at most one of" in proc.stderr


def test_bench_latency_on_the_fast_transport(run_cli: RunCli, tmp_path: Path) -> None:
    pytest.importorskip("pyreqwest")  # the fast transport is an optional extra
    out = tmp_path / "latency.json"
    proc = run_cli(
        "bench",
        "latency",
        "--transport",
        "fast",
        "--requests",
        "200",
        "--concurrency",
        "50",
        "--delay-ms",
        "10",
        "--rounds",
        "1",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "fetchpipe on its fast transport" in proc.stdout
    report = json.loads(out.read_text())
    assert report["transport"] == "fast" and report["floor_seconds"] == 0.04
    assert all(r["ok"] == 200 for round_ in report["rounds"] for r in round_.values())


STARTUP_ROWS = ["baseline", "version", "fetch_help"]
SEED_ROWS = ["seed_gather", "seed_fetch"]


def test_bench_startup_reports_every_row_with_its_target(run_cli: RunCli, tmp_path: Path) -> None:
    out, chart = tmp_path / "startup.json", tmp_path / "startup.svg"
    proc = run_cli(
        *("bench", "startup", "--runs", "1", "--scale", "0.002"),
        *("--json", str(out), "--chart", str(chart)),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["scenario"] == "startup" and report["runs"] == 1
    assert report["baseline"] == 'python -c "import aiohttp, orjson, uvloop"'
    no_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    assert report["pythondontwritebytecode"] is no_bytecode
    assert ("note: PYTHONDONTWRITEBYTECODE is set" in proc.stdout) is no_bytecode
    seed = report["seed"]
    assert (seed["apis"], seed["slowest_api_seconds"]) == (50, 15 * 0.002)
    rows = report["rows"] + seed["rows"]
    assert [r["name"] for r in rows] == STARTUP_ROWS + SEED_ROWS
    base = report["rows"][0]["seconds"]
    assert report["startup_limit_seconds"] == base + 0.05
    for row in rows:
        assert len(row["samples"]) == 1 and row["seconds"] == row["samples"][0] > 0
        assert row["failures"] == []
        line = re.search(rf"^{re.escape(row['label'])} +{row['seconds']:.3f} ", proc.stdout, re.M)
        assert line, (row["label"], proc.stdout)
    for row in report["rows"][1:]:
        assert row["holds"] is (row["seconds"] <= base + 0.05)
        assert row["target"].startswith("target <= baseline + 0.05 s: ")
    gather, fetch = seed["rows"]
    assert seed["ratio"] == fetch["seconds"] / gather["seconds"]
    assert fetch["holds"] is (seed["ratio"] <= 1.05) and gather["holds"] is None
    assert fetch["command"] == "fetchpipe fetch urls.txt --out run.jsonl"
    assert list(_bars(chart)) == [r["label"] for r in rows]


def test_bench_startup_without_the_seed_rows(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    proc = run_cli("bench", "startup", "--runs", "2", "--no-seed", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert [r["name"] for r in report["rows"]] == STARTUP_ROWS and report["seed"] is None
    assert all(len(r["samples"]) == 2 for r in report["rows"])
    assert "seed:" not in proc.stdout


def test_bench_report_measures_a_large_run_s_report_beside_a_small_one(
    run_cli: RunCli, tmp_path: Path
) -> None:
    from tests.e2e.browser import chromium

    chromium()  # skips, saying why, without a browser: the drawing time is half the figures
    out, chart = tmp_path / "report.json", tmp_path / "report.svg"
    proc = run_cli(
        *("bench", "report", "--requests", "120", "--baseline", "30", "--loads", "1"),
        *("--json", str(out), "--chart", str(chart)),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HTML report: a run of 120 requests beside one of 30" in proc.stdout
    report = json.loads(out.read_text())
    assert (report["baseline"]["requests"], report["large"]["requests"]) == (30, 120)
    for run in (report["baseline"], report["large"]):
        assert run["marks"] == run["requests"]  # drawn in the browser, one mark each
        assert run["bytes"] > 0 and run["draw_ms"] > 0 and run["write_seconds"] > 0
    assert report["ratios"]["size"] == pytest.approx(
        report["large"]["bytes"] / report["baseline"]["bytes"], rel=0.01
    )
    assert set(_bars(chart)) == {"30 requests", "120 requests"}
