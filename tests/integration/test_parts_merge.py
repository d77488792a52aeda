"""Part files (complete or absent) and merging them, and other runs' outputs, into one output."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest

from fetchpipe import ConfigError, Request, Result
from fetchpipe.destinations.fetch import COLUMNS
from fetchpipe.destinations.fetch.duckdb import DuckDBSink
from fetchpipe.destinations.fetch.jsonl import JsonlSink
from fetchpipe.destinations.fetch.merge import gather, merge
from fetchpipe.destinations.fetch.parts import PartWriter, list_parts, part_format, part_name

pytestmark = pytest.mark.timeout(60)


def _result(n: int) -> Result:
    return Result(
        Request(f"http://h{n % 3}.test/item/{n}?api_key=secret", key=n),
        status=200,
        headers={"Content-Type": "application/json"},
        body={"id": n, "tags": ["a", n]},
        attempts=1,
    )


def _write(directory: Path, task: int, batch: int, numbers: range, fmt: str) -> Path:
    writer = PartWriter(directory, part_name(task, batch, fmt))  # type: ignore[arg-type]
    for n in numbers:
        writer.write(_result(n))
    return writer.commit()


def _rows(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(
            "SELECT key, url, status, body, source FROM responses ORDER BY CAST(key AS INTEGER)"
        ).fetchall()


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_part_is_hidden_until_committed_and_a_second_try_replaces_it(
    tmp_path: Path, fmt: str
) -> None:
    writer = PartWriter(tmp_path, part_name(1, 0, fmt))  # type: ignore[arg-type]
    writer.write(_result(1))
    assert list_parts(tmp_path) == []  # a killed task leaves only a hidden temporary file
    assert [p.name.startswith(".") for p in tmp_path.iterdir()] == [True]
    _write(tmp_path, 1, 0, range(5), fmt)  # the task ran again on another worker
    writer.discard()
    assert [p.name for p in list_parts(tmp_path)] == [part_name(1, 0, fmt)]  # type: ignore[arg-type]
    assert len(list(tmp_path.iterdir())) == 1
    merged = merge(list_parts(tmp_path), tmp_path / "out.duckdb")
    assert merged.rows == 5


def test_parts_are_listed_by_task_then_batch(tmp_path: Path) -> None:
    for task, batch in [(2, 0), (0, 11), (0, 2), (10, 1)]:
        _write(tmp_path, task, batch, range(1), "jsonl")
    (tmp_path / "notes.txt").write_text("x")
    names = [p.name for p in list_parts(tmp_path)]
    assert names == [
        part_name(0, 2, "jsonl"),
        part_name(0, 11, "jsonl"),
        part_name(2, 0, "jsonl"),
        part_name(10, 1, "jsonl"),
    ]
    assert part_format("x.JSONL") == "jsonl" and part_format("x.duckdb") == "parquet"


def test_parquet_parts_land_in_duckdb_as_the_sink_writes_them(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    _write(parts, 0, 0, range(0, 4), "parquet")
    _write(parts, 1, 0, range(4, 7), "parquet")
    merged = merge(list_parts(parts), tmp_path / "merged.duckdb")
    assert (merged.rows, merged.files) == (7, 2)
    with DuckDBSink(tmp_path / "direct.duckdb") as sink:
        for n in range(7):
            sink.write(_result(n))
    assert _rows(tmp_path / "merged.duckdb") == _rows(tmp_path / "direct.duckdb")
    assert "secret" not in str(_rows(tmp_path / "merged.duckdb"))


def test_jsonl_parquet_and_duckdb_outputs_merge_into_one_duckdb_in_one_go(tmp_path: Path) -> None:
    _write(tmp_path, 0, 0, range(0, 3), "parquet")
    with JsonlSink(tmp_path / "shard-1.jsonl") as jsonl:
        for n in range(3, 6):
            jsonl.write(_result(n))
    with DuckDBSink(tmp_path / "shard-2.duckdb") as sink:
        for n in range(6, 9):
            sink.write(_result(n))
    files = gather([tmp_path, tmp_path / "shard-1.jsonl", tmp_path / "shard-2.duckdb"])
    out = tmp_path / "all" / "merged.duckdb"
    out.parent.mkdir()
    assert merge(files, out).rows == 9
    assert [row[0] for row in _rows(out)] == [str(n) for n in range(9)]
    assert merge(files, out).rows == 9  # appends, as fetch does: merged twice, twice there
    assert len(_rows(out)) == 18


def test_jsonl_parts_concatenate_and_a_torn_tail_is_left_out(tmp_path: Path) -> None:
    first = _write(tmp_path, 0, 0, range(0, 2), "jsonl")
    torn = tmp_path / "killed.jsonl"
    torn.write_bytes(first.read_bytes() + b'{"url": "http://h0.test/it')
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"url": "http://earlier.test/", "ok": true}\n{"url": "torn')
    merged = merge([first, torn], out)
    assert (merged.rows, merged.torn) == (4, 1)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines[0]["url"] == "http://earlier.test/"
    assert len(lines) == 5 and all(set(COLUMNS) <= set(line) for line in lines[1:])


def test_what_cannot_be_merged_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    part = _write(tmp_path, 0, 0, range(2), "parquet")
    with pytest.raises(ConfigError, match=r"HINT: merge into a \.duckdb file"):
        merge([part], tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        gather([tmp_path / "nope.jsonl"])
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(ConfigError, match="unknown extension"):
        gather([tmp_path / "x.csv"])
    with pytest.raises(ConfigError, match="among the parts"):
        merge([part], part)
    with pytest.raises(ConfigError, match="unknown extension"):
        merge([part], tmp_path / "out.csv")
