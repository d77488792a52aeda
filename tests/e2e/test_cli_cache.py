"""``fetchpipe fetch --cache`` and ``fetchpipe cache ...``, as real subprocesses against the fleet.

The fleet's counters are shared by the whole session: every test uses ``key=`` values of its
own (prefixed ``clic-``). ``key`` is also a credential parameter name, so result URLs show it as
``REDACTED``: rows are told apart by the input's own ``"key"`` field.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe.sim import Fleet

RunCli = Callable[..., subprocess.CompletedProcess[str]]
HEADER_SECRET = "hdr-s3cr3t-0000"
PARAM_SECRET = "param-s3cr3t-1111"


def _requests(path: Path, **urls: str) -> str:
    """An input file of JSON lines, one per ``key=url``; the path as a string."""
    lines = [json.dumps({"url": url, "key": key}) for key, url in urls.items()]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    """The JSONL results of the last run by input key (later runs replace earlier ones)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {row["key"]: row for row in map(json.loads, lines)}


def _cached(fleet: Fleet, key: str, query: str = "", host: int = 0) -> str:
    return fleet.url(f"/cached?key={key}{query}", host=host)


def _hits(fleet: Fleet, key: str) -> int:
    return fleet.stats.requests(path="/cached", key=key)


def _summary_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if " requests: " in line)


def test_second_run_is_served_from_the_cache(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    urls = _requests(
        tmp_path / "urls.jsonl",
        fresh=_cached(cli_fleet, "clic-fresh", "&cc=max-age%3D600"),
        etag=_cached(cli_fleet, "clic-etag", "&cc=max-age%3D0&etag=1", host=1),
    )
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "c" / "cache.sqlite"

    first = run_cli("fetch", urls, "-o", str(out), f"--cache={cache}")
    after_first = {key: _rows(out)[key]["source"] for key in ("fresh", "etag")}
    second = run_cli("fetch", urls, "-o", str(out), "--cache", str(cache))

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert after_first == {"fresh": "network", "etag": "network"}
    rows = _rows(out)
    assert rows["fresh"]["source"] == "cache"
    assert rows["fresh"]["attempts"] == 0
    assert rows["etag"]["source"] == "revalidated"
    assert rows["fresh"]["body"] == {"n": 1, "key": "clic-fresh", "lang": None}
    assert _hits(cli_fleet, "clic-fresh") == 1  # nothing new reached the server
    assert _hits(cli_fleet, "clic-etag") == 2  # a conditional request, answered 304
    assert _summary_line(first.stderr).endswith("| cache 0, revalidated 0, stale 0, network 2")
    assert _summary_line(second.stderr).endswith("| cache 1, revalidated 1, stale 0, network 0")


def test_duckdb_gets_a_source_column_even_in_an_older_table(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    out = tmp_path / "old.duckdb"
    with duckdb.connect(str(out)) as db:  # the table as written before the cache existed
        db.execute(
            "CREATE TABLE responses (url VARCHAR, method VARCHAR, key VARCHAR, status INTEGER, "
            "ok BOOLEAN, attempts INTEGER, error VARCHAR, error_message VARCHAR, elapsed DOUBLE, "
            "body JSON, body_encoding VARCHAR, fetched_at TIMESTAMPTZ)"
        )
        db.execute(
            "INSERT INTO responses VALUES ('http://h/old', 'GET', 'old', 200, true, 1, NULL, "
            "NULL, 0.1, '{}', 'json', now())"
        )
    urls = _requests(
        tmp_path / "urls.jsonl", new=_cached(cli_fleet, "clic-duck", "&cc=max-age%3D60")
    )

    for _ in range(2):
        proc = run_cli("fetch", urls, "-o", str(out), f"--cache={tmp_path / 'c.sqlite'}")
        assert proc.returncode == 0, proc.stderr

    with duckdb.connect(str(out), read_only=True) as db:
        types = dict(db.execute("SELECT column_name, data_type FROM duckdb_columns()").fetchall())
        rows = db.execute("SELECT key, source FROM responses ORDER BY fetched_at").fetchall()
    assert types["source"] == "VARCHAR"
    assert rows == [("old", "network"), ("new", "network"), ("new", "cache")]
    assert _hits(cli_fleet, "clic-duck") == 1


def test_offline_answers_from_the_cache_and_fails_the_missing(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    cache = f"--cache={tmp_path / 'c.sqlite'}"
    known = _cached(cli_fleet, "clic-off-known", "&cc=max-age%3D600")
    unknown = _cached(cli_fleet, "clic-off-unknown", "&cc=max-age%3D600")
    out = tmp_path / "out.jsonl"
    primed = run_cli("fetch", _requests(tmp_path / "a.jsonl", known=known), "-o", str(out), cache)
    assert primed.returncode == 0, primed.stderr
    before = cli_fleet.stats.requests()

    both = _requests(tmp_path / "b.jsonl", known=known, unknown=unknown)
    proc = run_cli("fetch", both, "-o", str(out), cache, "--offline")

    assert proc.returncode == 1, proc.stderr
    assert cli_fleet.stats.requests() == before  # nothing was sent
    rows = _rows(out)
    assert rows["known"]["ok"] is True
    assert rows["known"]["source"] == "cache"
    assert rows["unknown"]["ok"] is False
    assert rows["unknown"]["error"] == "not_cached"
    assert "offline" in rows["unknown"]["error_message"]
    summary = _summary_line(proc.stderr)
    assert "1 ok, 1 failed (not_cached 1)" in summary
    assert summary.endswith("| cache 1, revalidated 0, stale 0, network 0, not cached 1")
    assert "1 request had no cache entry (--offline)" in proc.stderr
    assert "HINT: run without --offline" in proc.stderr


def test_offline_without_a_cache_file_exits_2(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    urls = _requests(tmp_path / "urls.jsonl", a=_cached(cli_fleet, "clic-off-none"))
    missing = tmp_path / "missing.sqlite"

    proc = run_cli(
        "fetch", urls, "-o", str(tmp_path / "o.jsonl"), f"--cache={missing}", "--offline"
    )

    assert proc.returncode == 2, proc.stderr
    assert f"no cache at {missing}" in proc.stderr and "HINT" in proc.stderr
    assert not missing.exists()
    assert _hits(cli_fleet, "clic-off-none") == 0


def test_cache_ttl_per_host_caches_an_api_without_cache_headers(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    # No cache headers at all: only the TTL given to host 127.0.0.2 makes it cacheable.
    urls = _requests(
        tmp_path / "urls.jsonl",
        ttl=_cached(cli_fleet, "clic-ttl", host=1),
        other=_cached(cli_fleet, "clic-ttl-other", host=0),
    )
    out = tmp_path / "out.jsonl"
    host = cli_fleet.address(1)
    options = ["-o", str(out), f"--cache={tmp_path / 'c.sqlite'}", "--cache-ttl", f"{host}=10m"]

    for _ in range(2):
        proc = run_cli("fetch", urls, *options)
        assert proc.returncode == 0, proc.stderr

    rows = _rows(out)
    assert rows["ttl"]["source"] == "cache"
    assert rows["other"]["source"] == "network"
    assert _hits(cli_fleet, "clic-ttl") == 1
    assert _hits(cli_fleet, "clic-ttl-other") == 2


C = "--cache={cache}"
BAD_OPTIONS = [
    pytest.param([C, "--cache-ttl", "soon"], r"'soon' is not a duration.*HINT", id="ttl-word"),
    pytest.param([C, "--cache-ttl", "-5"], r"--cache-ttl.*'-5' is not a duration", id="ttl-neg"),
    pytest.param(
        [C, "--cache-ttl", "api.x.test:8080=60"], r"not a host pattern.*HINT", id="ttl-port"
    ),
    pytest.param([C, "--cache-ttl", "v1/*=60"], r"URL glob .* matches no URL.*HINT", id="ttl-glob"),
    pytest.param([C, "--stale-if-error", "often"], r"--stale-if-error.*HINT", id="stale-if-error"),
    pytest.param(["--cache-ttl", "60"], r"needs a cache.*HINT: add --cache", id="ttl-no-cache"),
    pytest.param(
        ["--cache={urls}"], r"not a fetchpipe cache.*left as it is.*HINT", id="cache-input"
    ),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_cache_options_exit_2_before_any_request(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path, options: list[str], message: str
) -> None:
    urls = _requests(tmp_path / "urls.jsonl", a=_cached(cli_fleet, "clic-bad", "&cc=max-age%3D60"))
    original = Path(urls).read_bytes()
    cache = tmp_path / "c.sqlite"
    options = [o.replace("{cache}", str(cache)).replace("{urls}", urls) for o in options]
    before = cli_fleet.stats.requests()

    proc = run_cli("fetch", urls, "-o", str(tmp_path / "out.jsonl"), *options)

    assert proc.returncode == 2, proc.stderr
    assert re.search(message, proc.stderr, re.DOTALL), proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli_fleet.stats.requests() == before
    assert not (tmp_path / "out.jsonl").exists()
    assert not cache.exists()
    assert Path(urls).read_bytes() == original  # not renamed aside, not touched


def test_cache_stats_prune_and_clear(cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    urls = _requests(
        tmp_path / "urls.jsonl",
        a=_cached(cli_fleet, "clic-cmd-a", "&cc=max-age%3D600&tag=clear-me"),
        b=_cached(cli_fleet, "clic-cmd-b", "&cc=max-age%3D600&tag=clear-me"),
        c=_cached(cli_fleet, "clic-cmd-c", "&cc=max-age%3D600&tag=keep"),
    )
    fetched = run_cli("fetch", urls, "-o", str(tmp_path / "o.jsonl"), f"--cache={cache}")
    assert fetched.returncode == 0, fetched.stderr

    def cache_cmd(*args: str) -> str:
        proc = run_cli("cache", *args, "--cache", str(cache))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    stats = cache_cmd("stats")
    as_json = json.loads(cache_cmd("stats", "--json"))
    cleared = cache_cmd("clear", "--url", "*tag=clear-me*")
    kept = cache_cmd("prune", "--older-than", "1h")
    pruned = cache_cmd("prune", "--older-than", "0")
    emptied = cache_cmd("clear")

    assert f"path     {cache}" in stats
    assert "entries  3\n" in stats
    assert "oldest   20" in stats and "newest   20" in stats  # ISO dates
    assert as_json["entries"] == 3 and as_json["bytes"] > 0 and as_json["path"] == str(cache)
    assert as_json["oldest"] <= as_json["newest"]
    assert cleared == "removed 2 entries matching '*tag=clear-me*'\n"
    assert kept.startswith("removed 0 entries; 1 entry left, ")
    assert pruned.startswith("removed 1 entry; 0 entries left, 0 bytes")
    assert emptied == "removed 0 entries\n"
    assert json.loads(cache_cmd("stats", "--json"))["entries"] == 0


@pytest.mark.parametrize("command", ["stats", "prune", "clear"])
def test_cache_commands_without_a_cache_file(run_cli: RunCli, tmp_path: Path, command: str) -> None:
    missing = tmp_path / "none.sqlite"
    not_a_cache = tmp_path / "results.jsonl"
    not_a_cache.write_text('{"url": "x"}\n', encoding="utf-8")

    absent = run_cli("cache", command, "--cache", str(missing))
    refused = run_cli("cache", command, "--cache", str(not_a_cache))

    assert absent.returncode == 0, absent.stderr
    assert absent.stdout == f"no cache at {missing}\n"
    assert not missing.exists()
    assert refused.returncode == 2
    assert "is not a fetchpipe cache" in refused.stderr and "HINT" in refused.stderr
    assert not_a_cache.read_text(encoding="utf-8") == '{"url": "x"}\n'


def test_secrets_reach_neither_the_cache_file_nor_any_output(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    url = _cached(cli_fleet, "clic-secret", f"&cc=max-age%3D600&api_key={PARAM_SECRET}", host=2)
    urls = _requests(tmp_path / "urls.jsonl", s=url)
    out = tmp_path / "out.jsonl"
    options = ["-o", str(out), f"--cache={cache_dir / 'c.sqlite'}"]
    header = ["--header", f"Authorization: Bearer {HEADER_SECRET}"]

    runs = [run_cli("fetch", urls, *options, *header) for _ in range(2)]
    stats = run_cli("cache", "stats", "--cache", str(cache_dir / "c.sqlite"))

    assert [proc.returncode for proc in runs] == [0, 0], runs[-1].stderr
    assert _rows(out)["s"]["source"] == "cache"  # the credential was part of the key
    raw = b"".join(p.read_bytes() for p in cache_dir.iterdir() if p.is_file())
    assert b"REDACTED" in raw
    printed = "".join(proc.stdout + proc.stderr for proc in [*runs, stats])
    written = out.read_text(encoding="utf-8")
    for secret in (HEADER_SECRET, PARAM_SECRET):
        assert secret.encode() not in raw
        assert secret not in printed
        assert secret not in written
    assert "api_key=REDACTED" in written


def test_an_unreadable_cache_is_set_aside_with_one_note(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    cache = tmp_path / "c.sqlite"
    cache.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)  # a damaged database
    urls = _requests(
        tmp_path / "urls.jsonl", a=_cached(cli_fleet, "clic-corrupt", "&cc=max-age%3D60")
    )

    proc = run_cli("fetch", urls, "-o", str(tmp_path / "o.jsonl"), f"--cache={cache}")

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("note: the cache file was unreadable") == 1
    assert "set aside as c.sqlite.corrupt-" in proc.stderr
    assert any(p.name.startswith("c.sqlite.corrupt-") for p in tmp_path.iterdir())


def test_bare_cache_uses_the_default_path(cli_fleet: Fleet, tmp_path: Path) -> None:
    """``--cache`` with no value (last, after URLS) means .fetchpipe/cache.sqlite in the cwd."""
    urls = _requests(tmp_path / "urls.jsonl", a=_cached(cli_fleet, "clic-bare", "&cc=max-age%3D60"))
    env = {**os.environ, "FETCHPIPE_TESTING": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fetchpipe", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    fetched = run("fetch", urls, "-o", "out.jsonl", "--cache")
    stats = run("cache", "stats")

    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / ".fetchpipe" / "cache.sqlite").is_file()
    assert "path     .fetchpipe/cache.sqlite" in stats.stdout
    assert "entries  1\n" in stats.stdout
