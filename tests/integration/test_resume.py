"""``fetch --resume``'s reading of an output: which requests already have a successful result.

Real JSONL and DuckDB files written by the sinks themselves.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from fetchpipe._exceptions import ConfigError
from fetchpipe._models import ErrorKind, Request, Result, Timings
from fetchpipe.destinations.fetch import resume
from fetchpipe.destinations.fetch.factory import open_sink

SECRET = "s3cr3t-api-key"


def _result(request: Request, error: ErrorKind | None = None) -> Result:
    return Result(
        request,
        status=200 if error is None else 503,
        body={"ok": error is None},
        attempts=1,
        error=error,
        error_message=None if error is None else "HTTP 503",
        timings=Timings(queued=1.0, started=1.0, first_byte=1.1, done=1.2),
    )


STORED = [
    _result(Request("http://h/a")),
    _result(Request("http://h/b"), ErrorKind.HTTP_STATUS),
    _result(Request("http://h/c", method="POST")),
    _result(Request(f"http://h/d?api_key={SECRET}&page=2")),
    _result(Request("http://h/e", key=42)),
    _result(Request("http://h/f", key="user-7", params={"page": 3})),
    _result(Request("http://h/g", params={"page": 1})),
]


@pytest.fixture(params=["out.jsonl", "out.duckdb"])
def output(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / str(request.param)
    sink = open_sink(path)
    sink.open()
    for result in STORED:
        sink.write(result)
    sink.close()
    return path


@pytest.mark.parametrize(
    ("request_", "done"),
    [
        (Request("http://h/a"), True),
        (Request("http://h/a", method="get"), True),
        (Request("http://h/a", method="POST"), False),
        (Request("http://h/b"), False),  # its result failed: fetched again
        (Request("http://h/c", method="POST"), True),
        (Request(f"http://h/d?api_key={SECRET}&page=2"), True),  # matched on the redaction
        (Request("http://h/d?api_key=REDACTED&page=2"), True),
        (Request("http://h/d?api_key=another&page=3"), False),
        (Request("http://h/e", key=42), True),
        (Request("http://h/e", key="42"), True),  # DuckDB keeps keys as text
        (Request("http://h/elsewhere", key=42), True),  # a key is the identity
        (Request("http://h/e"), False),  # stored with a key, asked without
        (Request("http://h/f", key="user-7", params={"page": 3}), True),
        (Request("http://h/g", params={"page": 1}), False),  # params, no key: never matched
        (Request("http://h/a", json={"x": 1}), False),
        (Request("http://h/new"), False),
    ],
)
def test_only_successes_count_as_done(output: Path, request_: Request, done: bool) -> None:
    stored = resume.load(output)

    assert stored.exists
    assert stored.successes == 6
    assert resume.is_done(request_, stored) is done


def test_a_user_name_alone_is_matched_on_its_redaction_as_older_outputs_stored_it(
    tmp_path: Path,
) -> None:
    """A URL's user name given alone is masked when stored now (it may be a token); an older
    output stored it as it was, and still counts as done for the same request."""
    path = tmp_path / "out.jsonl"
    sink = open_sink(path)
    sink.open()
    sink.write(_result(Request(f"https://{SECRET}@h/now")))
    sink.close()
    assert SECRET not in path.read_text() and "https://***@h/now" in path.read_text()
    with path.open("ab") as file:  # as an older version wrote it
        file.write(b'{"url": "https://token-9@h/then", "method": "GET", "key": null, "ok": true}\n')

    stored = resume.load(path)

    assert resume.is_done(Request(f"https://{SECRET}@h/now"), stored)
    assert resume.is_done(Request("https://token-9@h/then"), stored)
    assert not resume.is_done(Request("https://h/then"), stored)


def test_the_plan_counts_what_is_skipped_and_fetched(output: Path) -> None:
    stored = resume.load(output)
    requests = [
        Request("http://h/a"),
        Request("http://h/b"),
        Request("http://h/e", key=42),
        Request("http://h/g", params={"page": 1}),
        Request("http://h/new"),
    ]

    plan = resume.plan(requests, stored)

    assert plan == resume.Plan(skipped=2, to_fetch=3, unmatchable=1)
    assert [r.url for r in resume.remaining(requests, stored)] == [
        "http://h/b",
        "http://h/g",
        "http://h/new",
    ]


def test_no_file_and_an_empty_file_hold_nothing(tmp_path: Path) -> None:
    missing = resume.load(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").touch()
    empty = resume.load(tmp_path / "empty.jsonl")

    assert (missing.exists, missing.successes) == (False, 0)
    assert (empty.exists, empty.successes) == (True, 0)
    assert not resume.is_done(Request("http://h/a"), missing)


def test_a_duckdb_file_without_the_table_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE t AS SELECT 1 AS x")

    stored = resume.load(path)

    assert (stored.exists, stored.successes) == (True, 0)


def test_torn_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = open_sink(path)
    sink.open()
    sink.write(_result(Request("http://h/a")))
    sink.close()
    with path.open("ab") as file:
        file.write(b'{"url": "http://h/glued", "ok": tr{"url": "http://h/x"}\n')  # torn, appended
        file.write(b'{"note": "not a result"}\n[1, 2]\n\n')
        file.write(b'{"url": "http://h/b", "method": "GET", "key": null, "ok": true}\n')
        file.write(b'{"url": "http://h/c", "method": "GET", "key": null, "o')  # torn last line

    stored = resume.load(path)

    assert stored.successes == 2
    assert stored.unreadable == 3  # the torn last line is not counted: the sink cuts it
    assert resume.is_done(Request("http://h/b"), stored)
    assert not resume.is_done(Request("http://h/c"), stored)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("out.jsonl", None, r"is a DuckDB database, but its name ends in \.jsonl\. HINT: rename"),
        ("out.jsonl", b"url,status\n", r"not JSON Lines of results .*HINT"),
        ("out.duckdb", b'{"url": "http://h/a"}\n', r"not a DuckDB database \(it looks like JSON"),
        ("out.duckdb", b"SQLite format 3\x00" + bytes(100), r"not a DuckDB database \(nor JSON"),
        ("out.parquet", b"PAR1", r"unknown extension '\.parquet'"),
    ],
)
def test_a_file_of_another_format_is_refused(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is None:
        with duckdb.connect(str(path)) as db:
            db.execute("CREATE TABLE responses AS SELECT 1 AS x")
    else:
        path.write_bytes(content)

    with pytest.raises(ConfigError, match=message):
        resume.load(path)
