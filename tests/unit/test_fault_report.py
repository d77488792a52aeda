"""The report the fault benchmarks share: per-kind counting, failures by error, the table."""

from __future__ import annotations

from fetchpipe.bench.fault_clients import ClientRun
from fetchpipe.bench.fault_report import LANDED, RETRIES, SECONDS, ClientsReport, Column


def _run(name: str, label: str) -> ClientRun:
    run = ClientRun(name, label, ("ok", "dead"))
    run.count("ok", 0, None)
    run.count("ok", 2, None)
    run.count("dead", 3, "http_status")
    run.count("dead", 0, "host_down")
    run.count("dead", 0, "host_down")
    run.count("ok", 1, "timeout")
    return run


def test_a_run_counts_each_request_under_its_kind() -> None:
    run = _run("fetchpipe", "fetchpipe (defaults)")
    assert (run.landed, run.failed, run.retries) == (2, 4, 6)
    assert run.landed_by_kind == {"ok": 2, "dead": 0}
    assert (run.failed_of["dead"], run.retries_of["dead"]) == (3, 3)


def test_failures_by_error_come_most_frequent_first_and_by_kind_on_request() -> None:
    run = _run("fetchpipe", "fetchpipe (defaults)")
    assert list(run.failed_by_error().items()) == [
        ("host_down", 2),
        ("http_status", 1),
        ("timeout", 1),
    ]
    assert run.failed_by_error("ok") == {"timeout": 1}


def test_the_table_aligns_a_row_per_client_under_its_header() -> None:
    report = ClientsReport(runs=[_run("gather", "gather"), _run("fetchpipe", "fetchpipe")])
    kinds = Column("kinds", 7, lambda r: len(r.kinds))
    lines = report.table((LANDED, RETRIES, kinds, SECONDS), label_width=12)
    assert lines[0] == "client        landed  retries  kinds  seconds"
    assert lines[2] == "fetchpipe          2        6      2    0.000"
    assert {len(line) for line in lines} == {len(lines[0])}


def test_error_lines_say_none_for_a_client_without_failures() -> None:
    clean = ClientRun("gather", "gather", ("ok",))
    clean.count("ok", 0, None)
    report = ClientsReport(runs=[clean, _run("fetchpipe", "fetchpipe")])
    lines = report.error_lines("failed by error", "dead", then=lambda r: f"; {r.landed} landed")
    assert lines == [
        "  failed by error, gather: none; 1 landed",
        "  failed by error, fetchpipe: host_down 2, http_status 1; 2 landed",
    ]
