"""Sinks on real files: JSONL and DuckDB write, append, and round-trip every body type."""

from __future__ import annotations

import asyncio
import base64
import json
import queue
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe import Source  # the public name of _models.Provenance
from fetchpipe._exceptions import ConfigError, SinkError
from fetchpipe._models import ErrorKind, Request, Result, Timings
from fetchpipe.destinations.fetch import COLUMNS, encode_record, record
from fetchpipe.destinations.fetch.duckdb import DuckDBSink, _ByteQueue
from fetchpipe.destinations.fetch.factory import open_sink
from fetchpipe.destinations.fetch.jsonl import JsonlSink

JSON_TYPE = {"Content-Type": "application/json; charset=utf-8"}
TEXT_TYPE = {"Content-Type": "text/plain"}


def _result(
    url: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    key: str | int | None = None,
    error: ErrorKind | None = None,
    status: int | None = 200,
    expect: Any = "auto",
    source: Source = Source.NETWORK,
    message: str | None = None,
) -> Result:
    return Result(
        Request(url, key=key, expect=expect),
        status=status,
        headers=headers or {},
        body=body,
        attempts=1 if error is None else 3,
        error=error,
        error_message=message or (None if error is None else f"{error.value} happened"),
        timings=Timings(queued=1.0, started=1.0, first_byte=1.1, done=1.25),
        source=source,
    )


BYTES = bytes(range(256))
# (result, body as stored, body_encoding)
SAMPLES: list[tuple[Result, Any, str | None]] = [
    (
        _result("http://h/obj", {"a": [1, 2.5, None]}, headers=JSON_TYPE, key=1),
        {"a": [1, 2.5, None]},
        "json",
    ),
    (
        _result("http://h/list", [1, "two", {"3": True}], headers=JSON_TYPE, key="k2"),
        [1, "two", {"3": True}],
        "json",
    ),
    (_result("http://h/json-string", "a string", headers=JSON_TYPE), "a string", "json"),
    (_result("http://h/number", 12.5, headers=JSON_TYPE, source=Source.CACHE), 12.5, "json"),
    (_result("http://h/text", "héllo ✓\n2", headers=TEXT_TYPE), "héllo ✓\n2", "text"),
    (_result("http://h/expect-text", '{"a": 1}', expect="text"), '{"a": 1}', "text"),
    (
        _result("http://h/bytes", BYTES, headers={"content-type": "x/y"}),
        base64.b64encode(BYTES).decode(),
        "base64",
    ),
    (_result("http://h/none", None, key=0, error=ErrorKind.TIMEOUT, status=None), None, None),
]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _read_duckdb(path: Path, table: str = "responses") -> list[dict[str, Any]]:
    with duckdb.connect(str(path), read_only=True) as db:
        cursor = db.execute(f"SELECT * FROM {table}")
        names = [column[0] for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_open_sink_picks_by_extension(tmp_path: Path) -> None:
    assert isinstance(open_sink(tmp_path / "a.jsonl"), JsonlSink)
    assert isinstance(open_sink(str(tmp_path / "a.JSONL")), JsonlSink)
    assert isinstance(open_sink(tmp_path / "a.duckdb"), DuckDBSink)


@pytest.mark.parametrize("name", ["a.csv", "a", "a.parquet", "a.db"])
def test_open_sink_rejects_other_extensions(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown extension .*HINT: .*\.duckdb.*\.jsonl"):
        open_sink(tmp_path / name)

    assert not (tmp_path / name).exists()


def test_jsonl_writes_every_body_type_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"

    for _ in range(2):
        with JsonlSink(path) as sink:
            for result, _, _ in SAMPLES:
                sink.write(result)
        assert sink.written == len(SAMPLES)

    rows = _read_jsonl(path)
    assert len(rows) == 2 * len(SAMPLES)
    for row, (result, body, encoding) in zip(rows, SAMPLES * 2, strict=True):
        assert list(row) == list(COLUMNS)
        assert row["url"] == result.url
        assert row["key"] == result.key
        assert row["body"] == body
        assert row["body_encoding"] == encoding
        assert row["ok"] is result.ok
        assert row["status"] == result.status
        assert row["attempts"] == result.attempts
        assert row["error"] == (None if result.error is None else result.error.value)
        assert row["error_message"] == result.error_message
        assert row["elapsed"] == pytest.approx(0.25)
        assert datetime.fromisoformat(row["fetched_at"]).utcoffset() is not None
        assert row["source"] == result.source.value
    assert base64.b64decode(rows[6]["body"]) == BYTES


def test_duckdb_writes_every_body_type_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "out.duckdb"

    for _ in range(2):
        with DuckDBSink(path) as sink:
            for result, _, _ in SAMPLES:
                sink.write(result)
        assert sink.written == len(SAMPLES)

    rows = _read_duckdb(path)
    assert len(rows) == 2 * len(SAMPLES)
    by_url: dict[str, dict[str, Any]] = {row["url"]: row for row in rows}
    for result, body, encoding in SAMPLES:
        row = by_url[result.url]
        assert list(row) == list(COLUMNS)
        stored = row["body"]
        assert (None if stored is None else json.loads(stored)) == body
        assert row["body_encoding"] == encoding
        assert row["key"] == (None if result.key is None else str(result.key))
        assert row["ok"] is result.ok
        assert row["status"] == result.status
        assert row["error"] == (None if result.error is None else result.error.value)
        assert row["elapsed"] == pytest.approx(0.25)
        assert row["fetched_at"].utcoffset() is not None
        assert row["source"] == result.source.value
    with duckdb.connect(str(path), read_only=True) as db:
        types = dict(db.execute("SELECT column_name, data_type FROM duckdb_columns()").fetchall())
        nested = db.execute(
            "SELECT body->>'$.a[1]' FROM responses WHERE url = 'http://h/obj' LIMIT 1"
        ).fetchone()
    assert types["body"] == "JSON"
    assert types["source"] == "VARCHAR"
    assert nested == ("2.5",)


def test_duckdb_batches_under_back_pressure(tmp_path: Path) -> None:
    path = tmp_path / "many.duckdb"
    count = 2500

    with DuckDBSink(path, batch_rows=300, batch_seconds=0.05, queue_bytes=4096) as sink:
        for i in range(count):
            sink.write(_result(f"http://h/item/{i}", {"i": i}, headers=JSON_TYPE, key=i))

    assert sink.written == count
    with duckdb.connect(str(path), read_only=True) as db:
        row = db.execute(
            "SELECT count(*), count(DISTINCT key), sum((body->>'$.i')::INTEGER) FROM responses"
        ).fetchone()
    assert row == (count, count, sum(range(count)))


def test_duckdb_body_larger_than_16_mib(tmp_path: Path) -> None:
    path = tmp_path / "big.duckdb"
    text = "x" * (20 * 1024 * 1024)

    with DuckDBSink(path) as sink:
        sink.write(_result("http://h/big", text, headers=TEXT_TYPE))

    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT length(body->>'$') FROM responses").fetchone() == (len(text),)


def test_duckdb_existing_table_without_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE responses (url VARCHAR, payload VARCHAR)")

    sink = DuckDBSink(path)
    with pytest.raises(SinkError, match=r"exists without the column\(s\) method, key, .*HINT"):
        sink.open()


OLD_COLUMNS = (
    "url VARCHAR, method VARCHAR, key VARCHAR, status INTEGER, ok BOOLEAN, attempts INTEGER, "
    "error VARCHAR, error_message VARCHAR, elapsed DOUBLE, body JSON, body_encoding VARCHAR, "
    "fetched_at TIMESTAMPTZ"
)


def test_duckdb_adds_the_source_column_to_an_older_table(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute(f"CREATE TABLE responses ({OLD_COLUMNS})")
        db.execute(
            "INSERT INTO responses VALUES ('http://h/before', 'GET', NULL, 200, true, 1, NULL, "
            "NULL, 0.1, '{}', 'json', now())"
        )

    with DuckDBSink(path) as sink:
        sink.write(_result("http://h/after", {"a": 1}, headers=JSON_TYPE, source=Source.STALE))

    rows = {row["url"]: row for row in _read_duckdb(path)}
    assert list(rows["http://h/after"]) == list(COLUMNS)
    assert rows["http://h/before"]["source"] == "network"  # before the cache, all were
    assert rows["http://h/after"]["source"] == "stale"


def test_duckdb_insert_failure_raises_sink_error(tmp_path: Path) -> None:
    path = tmp_path / "strict.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute(
            "CREATE TABLE responses (url VARCHAR, method VARCHAR, key VARCHAR, "
            "status INTEGER CHECK (status < 500), ok BOOLEAN, attempts INTEGER, error VARCHAR, "
            "error_message VARCHAR, elapsed DOUBLE, body JSON, body_encoding VARCHAR, "
            "fetched_at TIMESTAMPTZ)"
        )
    sink = DuckDBSink(path)
    sink.open()
    sink.write(_result("http://h/503", None, status=503, error=ErrorKind.HTTP_STATUS))

    with pytest.raises(SinkError, match=r"cannot insert 1 row\(s\) into 'responses'"):
        sink.close()
    with pytest.raises(SinkError):
        sink.write(_result("http://h/after", None))
    sink.close()


@pytest.mark.parametrize("name", ["out.jsonl", "out.duckdb"])
def test_unwritable_destination(tmp_path: Path, name: str) -> None:
    sink = open_sink(tmp_path / "missing-dir" / name)

    with pytest.raises(SinkError, match="missing-dir"):
        sink.open()


@pytest.mark.parametrize("name", ["out.jsonl", "out.duckdb"])
def test_write_before_open(tmp_path: Path, name: str) -> None:
    sink = open_sink(tmp_path / name)

    with pytest.raises(SinkError, match="is not open"):
        sink.write(_result("http://h/x", None))


def test_text_that_is_not_valid_unicode_is_still_written(tmp_path: Path) -> None:
    result = _result("http://h/surrogate", "bad \udcff end", headers=TEXT_TYPE)

    line = encode_record(result)
    path = tmp_path / "s.duckdb"
    with DuckDBSink(path) as sink:
        sink.write(result)

    assert json.loads(line)["body"] == "bad ? end"
    assert _read_duckdb(path)[0]["body"] == '"bad ? end"'


def test_duckdb_queue_is_bounded_in_bytes() -> None:
    buffer = _ByteQueue(100)
    buffer.put(b"a" * 60)
    buffer.put(b"b" * 60)

    with pytest.raises(queue.Full):
        buffer.put(b"c", timeout=0.01)
    assert buffer.get_batch(10, 1_000, timeout=0) == [b"a" * 60, b"b" * 60]
    buffer.put(b"c" * 500)  # one item larger than the bound still fits an empty queue
    assert buffer.get_batch(10, 1_000, timeout=0) == [b"c" * 500]
    buffer.put(b"d")
    buffer.put(None)
    buffer.put(b"e")
    assert buffer.get_batch(10, 1_000, timeout=0) == [b"d", None]
    assert buffer.get_batch(10, 1_000, timeout=0) == [b"e"]
    assert buffer.get_batch(10, 1_000, timeout=0.01) == []


SECRET = "s3cr3t-value"


def test_records_hold_no_credential_from_the_url() -> None:
    result = _result(
        f"http://user:{SECRET}@h/a?apikey={SECRET}&page=2",
        None,
        status=None,
        error=ErrorKind.CONNECT,
        message=f"cannot connect to http://h/a?apikey={SECRET}",
    )

    stored = record(result)

    assert stored["url"] == "http://user:***@h/a?apikey=REDACTED&page=2"
    assert stored["error_message"] == "cannot connect to http://h/a?apikey=REDACTED"
    assert SECRET.encode() not in encode_record(result)


# --- JSONL durability: flushed within a second, whole lines only, torn tails cut ---------------


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


async def test_jsonl_a_quiet_period_still_flushes_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(path, flush_interval=0.05)
    sink.open()
    try:
        for i in range(3):
            sink.write(_result(f"http://h/{i}", {"i": i}, headers=JSON_TYPE))
        assert path.read_bytes() == b""  # buffered: not one write per result

        for _ in range(500):  # no more writes: only the loop's timer can flush (5 s at most)
            await asyncio.sleep(0.01)
            if len(_lines(path)) >= 3:
                break

        assert [json.loads(line)["url"] for line in _lines(path)] == [
            f"http://h/{i}" for i in range(3)
        ]
    finally:
        sink.close()


def test_jsonl_a_write_after_the_interval_flushes_without_an_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with JsonlSink(path, flush_interval=0.05) as sink:
        sink.write(_result("http://h/0", None))
        assert path.read_bytes() == b""
        time.sleep(0.06)
        sink.write(_result("http://h/1", None))

        assert [json.loads(line)["url"] for line in _lines(path)] == ["http://h/0", "http://h/1"]


def test_jsonl_a_full_buffer_is_written_as_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with JsonlSink(path, buffer_size=1000, flush_interval=3600) as sink:
        for i in range(20):
            sink.write(_result(f"http://h/{i}", {"pad": "x" * 150}, headers=JSON_TYPE))
            data = path.read_bytes()
            assert data == b"" or data.endswith(b"\n")  # a flush never ends mid-record
        flushed = len(_lines(path))

    assert 0 < flushed < 20
    assert len(_lines(path)) == 20


TORN = b'{"url": "http://h/torn", "method": "GET", "bo'


def test_jsonl_appending_cuts_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with JsonlSink(path) as sink:
        sink.write(_result("http://h/0", {"i": 0}, headers=JSON_TYPE))
    path.write_bytes(path.read_bytes() + TORN)

    sink = JsonlSink(path)
    with sink:
        sink.write(_result("http://h/1", {"i": 1}, headers=JSON_TYPE))

    assert sink.note is not None and f"torn line ({len(TORN)} bytes" in sink.note
    assert [row["url"] for row in _read_jsonl(path)] == ["http://h/0", "http://h/1"]
    with duckdb.connect() as db:  # a strict reader: no ignore_errors
        count = db.execute(
            "SELECT count(*) FROM read_json(?, format = 'newline_delimited')", [str(path)]
        ).fetchone()
    assert count == (2,)


def test_jsonl_a_file_of_only_a_torn_line_is_emptied_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(TORN)

    with JsonlSink(path) as sink:
        sink.write(_result("http://h/1", None))

    assert [row["url"] for row in _read_jsonl(path)] == ["http://h/1"]


def test_jsonl_a_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"url": "http://h/mine", "ok": true}')

    sink = JsonlSink(path)
    with sink:
        sink.write(_result("http://h/1", None))

    assert sink.note is not None and "without a newline: one was added" in sink.note
    assert [row["url"] for row in _read_jsonl(path)] == ["http://h/mine", "http://h/1"]


def test_jsonl_refuses_to_append_to_another_kind_of_file(tmp_path: Path) -> None:
    database = tmp_path / "results.jsonl"
    with duckdb.connect(str(database)) as db:
        db.execute("CREATE TABLE t AS SELECT 1 AS x")
    text = tmp_path / "notes.jsonl"
    text.write_bytes(b"just some notes, no newline at the end")
    before = {path: path.read_bytes() for path in (database, text)}

    with pytest.raises(SinkError, match=r"is a DuckDB database, not JSON Lines.*HINT"):
        JsonlSink(database).open()
    with pytest.raises(SinkError, match=r"not JSON Lines of results.*HINT"):
        JsonlSink(text).open()

    assert {path: path.read_bytes() for path in before} == before


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
async def test_jsonl_a_failed_timed_flush_is_raised_by_the_next_write() -> None:
    sink = JsonlSink("/dev/full", flush_interval=0.01)  # every write: ENOSPC
    sink.open()
    sink.write(_result("http://h/0", None))

    for _ in range(200):  # the loop's timer flushes, fails, and keeps the error
        await asyncio.sleep(0.01)
        if sink._error is not None:
            break

    with pytest.raises(SinkError, match="cannot write to '/dev/full'"):
        sink.write(_result("http://h/1", None))
    sink.close()  # already raised: not again
