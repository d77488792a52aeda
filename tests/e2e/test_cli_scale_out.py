"""`fetch --shard K/N`, `fetchpipe merge` and `fetch --executor dask`, as whole processes."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest

from fetchpipe.distributed.sharding import ShardSelector
from fetchpipe.sim import Fleet
from tests.e2e.conftest import RunCli
from tests.e2e.without_dask import run_without_dask

pytestmark = pytest.mark.timeout(120)


def _input(fleet: Fleet, tmp_path: Path, count: int = 60) -> tuple[Path, list[str]]:
    urls = [fleet.url(f"/item/{n}?run={tmp_path.name}", host=n % fleet.hosts) for n in range(count)]
    path = tmp_path / "urls.txt"
    path.write_text("# the fleet's items\n" + "\n".join(urls) + "\n")
    return path, urls


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _table(path: Path) -> set[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        rows = connection.execute("SELECT url, status, body FROM responses").fetchall()
    assert len(rows) == len(set(rows))
    return set(rows)


def test_n_shard_runs_cover_the_input_once_and_merge_joins_them(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    source, urls = _input(cli_fleet, tmp_path)
    seen: list[str] = []
    for k in range(3):
        done = run_cli(
            "fetch", str(source), "--shard", f"{k}/3", "--out", str(tmp_path / f"{k}.jsonl")
        )
        assert done.returncode == 0, done.stderr
        assert f"shard {k}/3: " in done.stderr and "of 60 requests" in done.stderr
        records = _jsonl(tmp_path / f"{k}.jsonl")
        assert all(ShardSelector(k, 3).holds(str(r["url"])) for r in records)
        seen += [str(r["url"]) for r in records]
    assert sorted(seen) == sorted(urls)  # every request once, in exactly one shard's run
    merged = run_cli(
        "merge",
        *(str(tmp_path / f"{k}.jsonl") for k in range(3)),
        "--out",
        str(tmp_path / "all.duckdb"),
    )
    assert merged.returncode == 0, merged.stderr
    assert "merged 60 results from 3 files" in merged.stderr
    assert {row[0] for row in _table(tmp_path / "all.duckdb")} == set(urls)
    into_jsonl = run_cli(
        "merge",
        *(str(tmp_path / f"{k}.jsonl") for k in range(3)),
        "-o",
        str(tmp_path / "all.jsonl"),
    )
    assert into_jsonl.returncode == 0, into_jsonl.stderr
    assert sorted(str(r["url"]) for r in _jsonl(tmp_path / "all.jsonl")) == sorted(urls)


def test_merge_refuses_what_it_cannot_merge_with_exit_2(run_cli: RunCli, tmp_path: Path) -> None:
    missing = run_cli("merge", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.duckdb"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("merge", str(tmp_path / "empty"), "--out", str(tmp_path / "o.duckdb"))
    assert empty.returncode == 2 and "no part files" in empty.stderr
    assert not (tmp_path / "o.duckdb").exists()


def test_fetch_on_a_local_dask_cluster_lands_what_a_local_run_lands(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    source, urls = _input(cli_fleet, tmp_path, 200)
    local = run_cli("fetch", str(source), "--out", str(tmp_path / "local.duckdb"))
    assert local.returncode == 0, local.stderr
    cluster = run_cli(
        "fetch", str(source), "--out", str(tmp_path / "dask.duckdb"),
        "--executor", "dask", "--workers", "2", "--per-host-concurrency", "2",
    )  # fmt: skip
    assert cluster.returncode == 0, cluster.stderr
    assert "dask LocalCluster, 2 workers" in cluster.stderr
    assert "200 requests: 200 ok, 0 failed" in cluster.stderr
    assert _table(tmp_path / "dask.duckdb") == _table(tmp_path / "local.duckdb")
    assert {row[0] for row in _table(tmp_path / "dask.duckdb")} == set(urls)
    assert not (tmp_path / "dask.duckdb.parts").exists()  # merged, then removed
    jsonl = run_cli(
        "fetch", str(source), "--out", str(tmp_path / "dask.jsonl"), "--executor", "dask",
        "--shard", "1/2",
    )  # fmt: skip
    assert jsonl.returncode == 0, jsonl.stderr
    got = sorted(str(r["url"]) for r in _jsonl(tmp_path / "dask.jsonl"))
    assert got == sorted(u for u in urls if ShardSelector(1, 2).holds(u))


def test_without_dask_the_executor_exits_2_with_the_install_hint(
    cli_fleet: Fleet, tmp_path: Path
) -> None:
    source, _ = _input(cli_fleet, tmp_path, 3)
    before = cli_fleet.stats.requests()
    done = run_without_dask("fetch", str(source), "--executor", "dask")
    assert done.returncode == 2
    assert "HINT: pip install 'fetchpipe[dask]'" in done.stderr
    assert cli_fleet.stats.requests() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "spark"], "is not an executor"),
        (["--executor", "tcp://127.0.0.1:99999"], "the port must be 1..65535"),
        (["--workers", "3"], "--workers sizes the local cluster"),
        (["--shard", "3/3"], "shard 3/3 does not exist"),
        (["--executor", "dask", "--cache=FILE"], "--cache names a directory"),
    ],
)
def test_bad_scale_out_options_exit_2_before_any_request(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path, args: list[str], message: str
) -> None:
    source, _ = _input(cli_fleet, tmp_path, 3)
    (tmp_path / "FILE").write_bytes(b"")
    before = cli_fleet.stats.requests()
    done = run_cli(
        "fetch", str(source), "--out", str(tmp_path / "o.jsonl"), *args, cwd=str(tmp_path)
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "HINT" in done.stderr
    assert cli_fleet.stats.requests() == before
