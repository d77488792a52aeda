"""The loggers' events (fetchpipe._log), the command line's formatters, and the request log's rows
(destinations.run_log), without a network."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from fetchpipe._log import FIELDS, RunContext, emit, host_of, logger, run_context
from fetchpipe._models import ErrorKind, Provenance, Request, Result, Timings
from fetchpipe.cli.log_output import JsonFormatter, TextFormatter, level_for
from fetchpipe.destinations.run_log import REQUEST_COLUMNS, RequestRecorder, outcome

SECRET = "canary-unit-9d1f"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    root = logging.getLogger("fetchpipe")
    handler, level = Collect(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_the_package_logger_is_quiet_for_a_library_user() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("fetchpipe").handlers)


def test_nothing_is_built_when_the_level_is_off() -> None:
    """Off, emit asks the logger and returns: no redaction, no lookup of the source."""
    root = logging.getLogger("fetchpipe")
    level = root.level
    root.setLevel(logging.WARNING)

    def boom(_: object) -> str:
        raise AssertionError("built a record that nobody logs")

    try:
        with run_context(RunContext("r1", redact=boom, source_of=boom)):
            emit(logger("engine"), logging.INFO, "request_retried", "m", url="http://a/x", key=1)
    finally:
        root.setLevel(level)


def test_emit_redacts_the_url_and_the_message_and_names_the_run(collected: Collect) -> None:
    def redact(text: str) -> str:
        return text.replace(SECRET, "***").replace("api_key=k1", "api_key=REDACTED")

    context = RunContext("run-7", redact=redact, source_of=lambda key: f"source-{key}")
    with run_context(context):
        emit(
            logger("engine"),
            logging.INFO,
            "request_retried",
            f"attempt 1 failed (HTTP 503 for {SECRET})",
            url="https://api.example.com/v1/items?api_key=k1",
            params={"q": SECRET},
            key=3,
            attempt=1,
            status=503,
            error="http_status",
            wait=0.5,
        )
    (record,) = collected.records
    fields: dict[str, Any] = record.fetchpipe  # type: ignore[attr-defined]
    assert SECRET not in record.getMessage() and SECRET not in json.dumps(fields)
    assert fields["url"] == "https://api.example.com/v1/items?api_key=REDACTED&q=***"
    assert (fields["run_id"], fields["source"], fields["host"]) == (
        "run-7",
        "source-3",
        "api.example.com",
    )
    assert (fields["attempt"], fields["status"], fields["error"], fields["wait"]) == (
        1,
        503,
        "http_status",
        0.5,
    )


def test_outside_a_run_credential_params_are_still_redacted(collected: Collect) -> None:
    emit(
        logger("engine"),
        logging.WARNING,
        "host_down",
        "down",
        url="https://user:pw-secret@h.example/x?token=t0ken-value",
    )
    (record,) = collected.records
    assert "t0ken-value" not in record.fetchpipe["url"]  # type: ignore[attr-defined]
    assert "pw-secret" not in record.fetchpipe["url"]  # type: ignore[attr-defined]
    assert record.fetchpipe["run_id"] is None  # type: ignore[attr-defined]


def test_recorded_events_reach_the_run_whatever_the_level() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    root = logging.getLogger("fetchpipe")
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        with run_context(RunContext("r", on_event=lambda e, f: seen.append((e, dict(f))))):
            emit(logger("engine"), logging.INFO, "host_paused", "paused", host="h", wait=2.0)
            emit(logger("engine"), logging.INFO, "run_started", "not an engine event")
    finally:
        root.setLevel(level)
    assert [(e, f["host"], f["wait"]) for e, f in seen] == [("host_paused", "h", 2.0)]


@pytest.mark.parametrize(
    "url",
    [
        "http://a.B.com/x",
        "https://u:p@h:80/x?y=1#f",
        "http://[::1]:8080/x",
        "http://h?x=a/b",
        "http://h#x/y",
        "HTTP://X.com:8/",
        "http://user@host",
        "http://",
        "not a url",
        "http://[oops/x",
    ],
)
def test_host_of_reads_as_urlsplit(url: str) -> None:
    try:
        expected = urlsplit(url).hostname
    except ValueError:
        expected = None
    assert host_of(url) == expected


def _record(**fields: Any) -> logging.LogRecord:
    record = logging.LogRecord("fetchpipe.engine", logging.INFO, "x.py", 1, "%s", ("hi",), None)
    record.fetchpipe = fields
    return record


def test_json_lines_carry_every_field() -> None:
    line = JsonFormatter().format(_record(event="host_down", host="h", wait=5.0))
    data = json.loads(line)
    assert "\n" not in line
    assert {"ts", "level", "logger", "message", *FIELDS} <= set(data)
    assert (data["event"], data["host"], data["wait"], data["level"]) == (
        "host_down",
        "h",
        5.0,
        "info",
    )
    assert data["ts"].endswith("+00:00")
    plain = json.loads(JsonFormatter().format(_record()))
    assert plain["event"] == "log" and plain["source"] is None


def test_text_lines_are_one_line_with_the_fields_that_are_set() -> None:
    record = _record(event="request_retried", source="products", url="http://h/x", status=503)
    record.msg, record.args = "two\nlines", ()
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert " INFO request_retried: two | lines source=products url=http://h/x status=503" in line
    assert "attempt=" not in line


@pytest.mark.parametrize(
    ("name", "verbose", "level"),
    [
        (None, 0, 30),
        ("error", 0, 40),
        (None, 1, 20),
        (None, 2, 10),
        ("error", 1, 20),
        ("debug", 1, 10),
    ],
)
def test_the_level_of_the_options(name: str | None, verbose: int, level: int) -> None:
    assert level_for(name, verbose) == level


# --- the request log's rows ---------------------------------------------------------------------


def _result(
    *,
    attempts: int = 1,
    error: ErrorKind | None = None,
    source: Provenance = Provenance.NETWORK,
    elapsed: float = 0.01,
) -> Result:
    timings = Timings(queued=10.0, started=10.5, first_byte=10.5 + elapsed / 2, done=10.5 + elapsed)
    request = Request("https://api.example.com/v1?api_key=k", params={"page": 2})
    return Result(
        request,
        200 if error is None else 503,
        {},
        b"{}",
        attempts,
        error,
        None if error is None else f"HTTP 503 {SECRET}",
        timings,
        source,
    )


def test_a_row_says_where_the_time_went_without_a_secret() -> None:
    recorder = RequestRecorder(
        "r", 9.0, lambda: 12.0, redact=lambda text: text.replace(SECRET, "***")
    )
    row = recorder.row(_result(error=ErrorKind.HTTP_STATUS, attempts=3), "items")
    assert row is not None and set(row) == set(REQUEST_COLUMNS)
    assert row["url"] == "https://api.example.com/v1?api_key=REDACTED&page=2"
    assert SECRET not in str(row)
    assert (row["outcome"], row["attempts"], row["status"], row["error"]) == (
        "failed",
        3,
        503,
        "http_status",
    )
    assert (row["queued_at"], row["start_offset"], row["queue_wait"]) == (1.0, 1.5, 0.5)
    assert (row["time_to_headers"], row["total_time"], row["bytes"]) == (0.005, 0.01, 2)


@pytest.mark.parametrize(
    ("result", "skipped", "expected"),
    [
        (_result(), False, "ok"),
        (_result(attempts=2), False, "retried"),
        (_result(error=ErrorKind.TIMEOUT), False, "failed"),
        (_result(source=Provenance.CACHE), False, "cache"),
        (_result(source=Provenance.REVALIDATED), False, "revalidated"),
        (_result(source=Provenance.STALE), False, "stale"),
        (_result(error=ErrorKind.HTTP_STATUS), True, "skipped"),
    ],
)
def test_outcomes(result: Result, skipped: bool, expected: str) -> None:
    assert outcome(result, skipped) == expected


def test_a_sample_keeps_every_failure_and_slow_request_and_weighs_the_rest() -> None:
    recorder = RequestRecorder("run-sampled", 0.0, lambda: 0.0, sample=0.1, slow=1.0)
    rows = [recorder.row(_result(), "s") for _ in range(2000)]
    kept = [row for row in rows if row is not None]
    assert 100 < len(kept) < 300  # about a tenth (seeded by the run id: the same each time)
    assert all(row["weight"] == pytest.approx(10.0) for row in kept)
    assert sum(row["weight"] for row in kept) == pytest.approx(2000, rel=0.25)
    always = [
        _result(error=ErrorKind.TIMEOUT),
        _result(attempts=2),
        _result(elapsed=1.5),
        _result(source=Provenance.STALE),
    ]
    for result in always * 50:
        row = recorder.row(result, "s")
        assert row is not None and row["weight"] == 1.0
    again = RequestRecorder("run-sampled", 0.0, lambda: 0.0, sample=0.1, slow=1.0)
    assert [again.row(_result(), "s") is not None for _ in range(2000)] == [
        row is not None for row in rows
    ]


def test_every_row_is_kept_by_default() -> None:
    recorder = RequestRecorder("r", 0.0, lambda: 0.0)
    assert all(recorder.row(_result(elapsed=random.random() / 10), None) for _ in range(500))


def test_events_are_taken_once_with_their_time_from_the_run_start() -> None:
    clock = iter([3.5, 4.0])
    recorder = RequestRecorder("r", 1.0, lambda: next(clock))
    recorder.event("host_down", {"host": "h", "wait": 5.0, "message": "down"})
    recorder.event("host_up", {"host": "h", "wait": "not a number"})
    first = recorder.take_events()
    assert [(e["event"], e["start_offset"], e["wait"]) for e in first] == [
        ("host_down", 2.5, 5.0),
        ("host_up", 3.0, None),
    ]
    assert recorder.take_events() == []


def test_a_sample_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="sample"):
        RequestRecorder("r", 0.0, lambda: 0.0, sample=0)
