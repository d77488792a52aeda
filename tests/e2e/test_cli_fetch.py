"""The ``fetchpipe`` command, run as a real subprocess against the simulated fleet."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe.sim import Fleet

RunCli = Callable[..., subprocess.CompletedProcess[str]]
SECRET = "s3cr3t-token-value"
RECORD_FIELDS = {
    "url",
    "method",
    "key",
    "status",
    "ok",
    "attempts",
    "error",
    "error_message",
    "elapsed",
    "body",
    "body_encoding",
    "fetched_at",
    "source",
}


def _write(path: Path, *lines: str) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _by_url(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["url"]: row for row in rows}


def test_fetch_to_jsonl(cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path) -> None:
    echo = cli_fleet.url("/echo", host=2)
    urls = _write(
        tmp_path / "urls.txt",
        "# a comment, then a blank line",
        "",
        cli_fleet.url("/item/1", host=0),
        cli_fleet.url("/text", host=1),
        cli_fleet.url("/bytes", host=1),
        json.dumps({"url": echo, "method": "post", "key": 7, "json": {"a": 1}, "params": {"q": 2}}),
    )
    out = tmp_path / "out.jsonl"

    started = datetime.now(UTC)
    proc = run_cli("fetch", urls, "--out", str(out), "--header", f"Authorization: Bearer {SECRET}")
    ended = datetime.now(UTC)

    assert proc.returncode == 0, proc.stderr
    rows = _by_url(_jsonl(out))
    assert len(rows) == 4
    assert all(set(row) == RECORD_FIELDS for row in rows.values())
    item = rows[cli_fleet.url("/item/1", host=0)]
    assert item["ok"] is True
    assert item["status"] == 200
    assert item["error"] is None
    assert item["attempts"] == 1
    assert item["body_encoding"] == "json"
    assert isinstance(item["body"], dict)
    # The request's own time and the moment it landed, both within the command's run.
    assert 0 < item["elapsed"] < (ended - started).total_seconds()
    assert item["fetched_at"].endswith("+00:00")
    fetched_at = datetime.fromisoformat(item["fetched_at"])
    assert started - timedelta(milliseconds=1) <= fetched_at <= ended  # kept to the millisecond
    assert rows[cli_fleet.url("/text", host=1)]["body"] == "hello from the fetchpipe sim\n"
    raw = rows[cli_fleet.url("/bytes", host=1)]
    assert raw["body_encoding"] == "base64"
    assert base64.b64decode(raw["body"]) == bytes(range(256))
    posted = rows[echo]
    assert posted["key"] == 7
    assert posted["method"] == "POST"
    assert posted["body"]["method"] == "POST"
    assert posted["body"]["query"] == {"q": "2"}
    assert json.loads(posted["body"]["body"]) == {"a": 1}
    sent = {name.lower(): value for name, value in posted["body"]["headers"].items()}
    assert sent["authorization"] == f"Bearer {SECRET}"
    assert "4 requests: 4 ok, 0 failed" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_fetch_to_duckdb_appends(cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path) -> None:
    urls = _write(
        tmp_path / "urls.txt", *(cli_fleet.url(f"/item/{i}", host=i % 4) for i in range(5))
    )
    out = tmp_path / "out.duckdb"

    first = run_cli("fetch", urls, "--out", str(out))
    second = run_cli("fetch", urls, "-o", str(out), "--concurrency", "2", "--retries", "0")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    with duckdb.connect(str(out), read_only=True) as db:
        columns = {row[0]: row[1] for row in db.execute("DESCRIBE responses").fetchall()}
        rows = db.execute(
            "SELECT url, ok, status, error, body->>'$.id' FROM responses ORDER BY url"
        ).fetchall()
    assert set(columns) == RECORD_FIELDS
    assert columns["body"] == "JSON"
    assert len(rows) == 10
    assert all(ok and status == 200 and error is None for _, ok, status, error, _ in rows)
    assert sorted({int(item_id) for *_, item_id in rows}) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("transport", ["aiohttp", "fast"])
def test_every_encoding_the_client_accepts_lands_decoded(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path, transport: str
) -> None:
    """Bodies in gzip, deflate, br and zstd (as httpbin's /brotli) land as JSON records."""
    if transport == "fast":
        pytest.importorskip("pyreqwest")
    codings = ["gzip", "deflate", "br", "zstd"]
    urls = _write(tmp_path / "urls.txt", *(cli_fleet.url(f"/encoded/{c}") for c in codings))
    out = tmp_path / "out.duckdb"

    proc = run_cli("fetch", urls, "--out", str(out), "--transport", transport)

    assert proc.returncode == 0, proc.stderr
    with duckdb.connect(str(out), read_only=True) as db:
        rows = db.execute(
            "SELECT ok, error, body->>'$.coding', body->>'$.accept_encoding', "
            "json_array_length(body->'$.items') FROM responses ORDER BY url"
        ).fetchall()
    assert rows == [(True, None, c, "gzip, deflate, br, zstd", 50) for c in sorted(codings)]


def test_failures_exit_1_and_successes_are_written(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    good = [cli_fleet.url("/item/10"), cli_fleet.url("/item/11", host=1)]
    missing = cli_fleet.url("/status/404", host=3)
    flaky = cli_fleet.url("/status/503,200?key=e2e-flaky", host=2)
    urls = _write(tmp_path / "urls.txt", good[0], missing, flaky, good[1])
    out = tmp_path / "out.jsonl"

    proc = run_cli("fetch", urls, "--out", str(out), "--retries", "2")

    assert proc.returncode == 1, proc.stderr
    rows = _by_url(_jsonl(out))
    assert len(rows) == 4
    assert all(rows[url]["ok"] for url in good)
    flaky = flaky.replace("e2e-flaky", "REDACTED")  # 'key' may hold an API key: redacted
    assert rows[flaky]["ok"] is True
    assert rows[flaky]["attempts"] == 2
    assert rows[missing]["ok"] is False
    assert rows[missing]["status"] == 404
    assert rows[missing]["error"] == "http_status"
    assert rows[missing]["error_message"]
    line = proc.stderr.strip().splitlines()
    summary = next(text for text in line if text.startswith("4 requests:"))
    assert "3 ok, 1 failed (http_status 1)" in summary
    assert "| 1 retries |" in summary
    assert re.search(r"p50 \d+\.\d{3} s, p95 \d+\.\d{3} s", summary)
    assert re.search(r"\d+\.\d req/s \| wall \d+\.\d{3} s", summary)


def test_a_host_that_keeps_failing_is_shown_as_down(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    """25 requests to a host answering 503: its circuit opens after 20 and the requests not
    yet done end as host_down (testing mode has no backoff, so the first ones may already have
    used their retry); the summary lists the host as down."""
    down = [cli_fleet.url(f"/status/503?key=down-{i}", host=3) for i in range(25)]
    urls = _write(tmp_path / "urls.txt", cli_fleet.url("/item/1"), *down)
    out = tmp_path / "out.jsonl"
    proc = run_cli("fetch", urls, "--out", str(out), "--retries", "1")
    assert proc.returncode == 1, proc.stderr
    summary = next(t for t in proc.stderr.splitlines() if t.startswith("26 requests:"))
    assert "1 ok, 25 failed (" in summary and "host_down" in summary
    assert summary.endswith(f"| hosts down: {cli_fleet.addresses[3]}")
    assert re.search(
        rf"host down {re.escape(cli_fleet.addresses[3])} +\S* *breaker opened", proc.stderr
    )
    rows = [row for row in _jsonl(out) if not row["ok"]]
    assert {row["error"] for row in rows} == {"http_status", "host_down"}
    down = [row for row in rows if row["error"] == "host_down"]
    assert all("--on-host-down wait" in row["error_message"] for row in down)


def test_on_host_down_wait_holds_the_requests_and_the_budget_flag(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    """--on-host-down wait: the same host's requests wait for it instead (testing mode has no
    cool-down) and end as the host answered; --retry-budget 3 lets it three failed retries."""
    down = [cli_fleet.url(f"/status/503?key=wait-{i}", host=3) for i in range(25)]
    urls = _write(tmp_path / "urls.txt", *down)
    out = tmp_path / "out.jsonl"
    before = cli_fleet.stats.requests(host=cli_fleet.addresses[3])
    proc = run_cli(
        "fetch", urls, "--out", str(out), "--on-host-down", "wait", "--retry-budget", "3"
    )
    assert proc.returncode == 1, proc.stderr
    rows = _jsonl(out)
    assert {row["error"] for row in rows} == {"http_status"}
    assert cli_fleet.stats.requests(host=cli_fleet.addresses[3]) - before == 25 + 3
    refused = [row for row in rows if "retry budget" in row["error_message"]]
    assert len(refused) == 25 and "--retry-budget" in refused[0]["error_message"]
    assert "hosts down:" in proc.stderr

    out = tmp_path / "off.jsonl"
    proc = run_cli("fetch", urls, "--out", str(out), "--retry-budget", "off", "--retries", "1")
    assert proc.returncode == 1, proc.stderr
    assert len(_jsonl(out)) == 25 and "retry budget" not in out.read_text()


def test_stdin(cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    lines = [
        cli_fleet.url("/json"),
        json.dumps({"url": cli_fleet.url("/item/3", host=1), "key": "k3"}),
    ]

    proc = run_cli("fetch", "-", "--out", str(out), stdin="\n".join(lines) + "\n")

    assert proc.returncode == 0, proc.stderr
    rows = _by_url(_jsonl(out))
    assert set(rows) == {cli_fleet.url("/json"), cli_fleet.url("/item/3", host=1)}
    assert rows[cli_fleet.url("/item/3", host=1)]["key"] == "k3"


BAD_INPUTS = [
    pytest.param(
        ["{url}", "ftp://example.com/file"],
        [],
        r"urls\.txt:2: 'ftp://example\.com/file' is not an http\(s\) URL\. HINT:",
        id="bad-url-line",
    ),
    pytest.param(
        ["{url}", "{url}", '{"url": "{url}", '],
        [],
        r"urls\.txt:3: invalid JSON .*HINT:",
        id="bad-json-line",
    ),
    pytest.param(["{url}"], ["--rate", "127.0.0.1"], r"--rate.*HINT:", id="rate-without-equals"),
    pytest.param(
        ["{url}"],
        ["--header", f"Authorization {SECRET}"],
        r"--header.*'Name: value'",
        id="bad-header",
    ),
    pytest.param(["{url}"], ["--out", "results.csv"], r"\.csv.*HINT:", id="unknown-extension"),
    pytest.param(
        ["{url}"], ["--retry-budget", "many"], r"retry-budget.*HINT:.*'off'", id="retry-budget"
    ),
    pytest.param(
        ["{url}"], ["--retry-budget", "0.5"], r"retry-budget.*at least 1", id="retry-budget-low"
    ),
    pytest.param(["{url}"], ["--on-host-down", "drop"], r"on-host-down", id="on-host-down"),
]


@pytest.mark.parametrize(("lines", "options", "message"), BAD_INPUTS)
def test_bad_input_exits_2_before_any_request(
    cli_fleet: Fleet,
    run_cli: RunCli,
    tmp_path: Path,
    lines: list[str],
    options: list[str],
    message: str,
) -> None:
    url = cli_fleet.url("/item/99", host=3)
    urls = _write(tmp_path / "urls.txt", *(line.replace("{url}", url) for line in lines))
    before = cli_fleet.stats.requests()
    options = [option.replace("results.csv", str(tmp_path / "results.csv")) for option in options]
    if "--out" not in options:
        options += ["--out", str(tmp_path / "out.jsonl")]

    proc = run_cli("fetch", urls, *options)

    assert proc.returncode == 2, proc.stderr
    assert re.search(message, proc.stderr, re.DOTALL), proc.stderr
    assert SECRET not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli_fleet.stats.requests() == before
    assert not (tmp_path / "out.jsonl").exists()


def test_demo(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "demo.duckdb"

    proc = run_cli("demo", "--out", str(out), "--minute", "0.01")

    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(
        r"slowest API \d+\.\d{3} s \(configured 0\.150 s\) \| all 50 APIs \d+\.\d{3} s "
        r"\([+-]\d+\.\d% vs slowest, [+-]\d+\.\d% vs configured\)\n",
        proc.stdout,
    ), proc.stdout
    assert "50 requests: 50 ok, 0 failed" in proc.stderr
    with duckdb.connect(str(out), read_only=True) as db:
        assert db.execute("SELECT count(*), count(DISTINCT key) FROM responses").fetchone() == (
            50,
            50,
        )


def test_help_lists_commands(run_cli: RunCli) -> None:
    proc = run_cli("--help")

    assert proc.returncode == 0
    for command in ("fetch", "demo", "bench", "sim"):
        assert command in proc.stdout


def test_block_private_refuses_loopback_unless_allowed(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    urls = _write(tmp_path / "urls.txt", cli_fleet.url("/item/1"))
    out = tmp_path / "out.jsonl"
    before = cli_fleet.stats.requests()
    proc = run_cli("fetch", urls, "--out", str(out), "--block-private")
    assert proc.returncode == 1
    [row] = _jsonl(out)
    assert row["error"] == "invalid_request" and "loopback address" in row["error_message"]
    assert cli_fleet.stats.requests() == before  # refused before connecting
    proc = run_cli(
        "fetch", urls, "--out", str(out), "--block-private", "--allow-address", "127.0.0.0/8"
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("fetch", urls, "--out", str(out), "--allow-address", "not-an-ip")
    assert proc.returncode == 2 and "allow_addresses" in proc.stderr


def test_the_fast_transport_fetches_the_same(
    cli_fleet: Fleet, run_cli: RunCli, tmp_path: Path
) -> None:
    pytest.importorskip("pyreqwest")
    urls = _write(tmp_path / "urls.txt", *(cli_fleet.url(f"/item/{i}") for i in range(20)))
    out = tmp_path / "out.jsonl"
    proc = run_cli("fetch", urls, "--out", str(out), "--transport", "fast")
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["url"] for r in _jsonl(out) if r["ok"]) == sorted(
        cli_fleet.url(f"/item/{i}") for i in range(20)
    )
    refused = run_cli("fetch", urls, "--out", str(out), "--transport", "fast", "--block-private")
    assert refused.returncode == 2 and "cannot apply block_private" in refused.stderr
