"""A canary secret given to every kind of auth never appears in anything a run writes.

The canary goes in a bearer token, an API key in a header and in the query, a Basic password,
a source parameter and an OAuth2 client secret, all through ``${VAR}``. The run meets a 401, a
500, timeouts, a success, a SIGKILL in the middle (so the journal holds pages), and a resume.
Then every byte under the run's directory (destination, its WAL, journal, request log, cache
files, JSON and HTML reports) and everything printed, logs at DEBUG included, is searched for
the canary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import yaml

from fetchpipe.sim import Fleet
from tests.e2e.conftest import RunCli
from tests.integration.forward_proxy import (
    PROXIED_HOST,
    forward_proxy,
    make_certificates,
    threaded_target,
)

CANARY = "canary-3e1f0b7d-rotate-me"


def canary_pipeline(path: Path, fleet: Fleet, tmp_path: Path) -> Path:
    def url(p: str) -> str:
        return fleet.url(p, host=1)

    config = {
        "name": "canary",
        "destination": f"duckdb:///{tmp_path / 'canary.duckdb'}",
        "defaults": {
            "retry": {"attempts": 2, "wait_initial": 0.01},
            "timeout": {"read": 0.3, "total": 1},
            "cache": {"enabled": True, "path": str(tmp_path / "cache" / "http.sqlite")},
        },
        "hosts": {fleet.addresses[1]: {"max_concurrency": 2}},
        "sources": [
            {  # succeeds: the API ignores the credential, the engine sends it anyway
                "name": "days",
                "url": url("/shop/v1/days"),
                "params": {"count": 40, "token": "${CANARY}"},
                "auth": {"type": "api_key", "name": "api_key", "in": "query", "value": "${CANARY}"},
                "records": "days",
                "primary_key": "id",
                "write": "merge",
            },
            {  # many pages, slow: the run is killed while these are committed
                "name": "events",
                "url": url("/shop/v1/days/") + "{days.id}/events",
                "params": {"per_page": 50, "per_day": 100, "delay_ms": 15, "sig": "${CANARY}"},
                "auth": {"type": "bearer", "token": "${CANARY}"},
                "records": "events",
                "write": "append",
                "paginate": {"type": "page"},
            },
            {
                "name": "unauthorized",
                "url": url("/shop-basic/v1/all/products"),
                "auth": {"type": "basic", "username": "shop", "password": "${CANARY}"},
            },
            {
                "name": "server_error",
                "url": url("/status/500"),
                "auth": {"type": "api_key", "name": "X-Api-Key", "value": "${CANARY}"},
            },
            {
                "name": "too_slow",
                "url": url("/delay?seconds=2"),
                "auth": {"type": "api_key", "name": "key", "in": "query", "value": "${CANARY}"},
            },
            {
                "name": "oauth",
                "url": url("/shop-oauth/v1/all/products"),
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": url("/shop/oauth/token"),
                    "client_id": "shop-client",
                    "client_secret": "${CANARY}",
                },
            },
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_canary_secret_is_written_nowhere(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    work = tmp_path / "run"
    work.mkdir()
    path = canary_pipeline(tmp_path / "canary.yaml", cli_fleet, work)
    env = {"CANARY": CANARY}
    printed: list[bytes] = []

    # 1. Killed with SIGKILL while the events pages are being committed.
    host = cli_fleet.addresses[1]
    start = cli_fleet.stats.requests(host=host)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fetchpipe", "run", str(path), "--commit-every", "0.02", "-vv"],
        env={**os.environ, "FETCHPIPE_TESTING": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while cli_fleet.stats.requests(host=host) - start < 30 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=10)
    printed += [out, err]
    journal = list(work.glob("canary.duckdb*"))
    assert journal, "the killed run left its journal"
    after_kill = [
        str(p) for p in work.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()
    ]
    assert after_kill == []

    # 2. Resumed: 401, 500 and timeouts are met, the rest lands.
    report = tmp_path / "report.json"
    done = run_cli(
        "run",
        str(path),
        "--json",
        str(report),
        "--log-level",
        "debug",
        "--log-format",
        "json",
        "--report",
        str(tmp_path / "report.html"),
        env=env,
    )
    printed += [done.stdout.encode(), done.stderr.encode()]
    again = run_cli("report", str(path), "-o", str(tmp_path / "again.html"))  # drawn again
    assert again.returncode == 0, again.stderr
    printed += [again.stdout.encode(), again.stderr.encode()]
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert {"request_retried", "request_done", "source_ended"} <= {r["event"] for r in logged}
    assert done.returncode == 1, done.stderr
    text = report.read_text()
    for name, why in (
        ("unauthorized", "HTTP 401"),
        ("server_error", "HTTP 500"),
        ("too_slow", "timed out"),
    ):
        assert f'"name": "{name}"' in text and why in text
    assert '"resumed": true' in text

    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "canary.yaml"]
    assert any(p.name.startswith("http.sqlite") for p in files)
    assert {"report.html", "again.html"} <= {p.name for p in files}
    leaks = [str(p) for p in files if CANARY.encode() in p.read_bytes()]
    leaks += [f"output {i}" for i, data in enumerate(printed) if CANARY.encode() in data]
    assert leaks == []


def test_a_proxy_password_is_written_nowhere(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    """The canary is the password of the proxy every request goes through (the OAuth2 token
    requests too), over HTTPS with a client certificate: a run that succeeds, then one whose
    password the proxy refuses (407s: the wrong password holds the canary too)."""
    certs = make_certificates(tmp_path / "certs")
    work = tmp_path / "run"
    with (
        forward_proxy(tmp_path / "proxy", ("fetcher", CANARY)) as proxy,
        threaded_target(certs.server_context(require_client=True)) as secure,
    ):
        config = {
            "name": "behind_proxy",
            "destination": f"duckdb:///{work / 'proxied.duckdb'}",
            "defaults": {
                "proxy": f"http://fetcher:${{PROXY_PASSWORD}}@127.0.0.1:{proxy.port}",
                "retry": {"attempts": 1},
                "cache": {"enabled": True, "path": str(work / "cache" / "http.sqlite")},
                "security": {
                    "ca_bundle": str(certs.ca),
                    "client_cert": {"cert": str(certs.client_cert), "key": str(certs.client_key)},
                },
            },
            "sources": [
                {
                    "name": "items",
                    "url": secure.proxied(),
                    "records": "items",
                    "primary_key": "id",
                    "write": "merge",
                },
                {
                    "name": "oauth",
                    "url": cli_fleet.url("/shop-oauth/v1/all/products", host=2),
                    "auth": {
                        "type": "oauth2_client_credentials",
                        "token_url": cli_fleet.url("/shop/oauth/token", host=2),
                        "client_id": "shop-client",
                        "client_secret": "shop-secret",
                    },
                },
            ],
        }
        path = tmp_path / "proxied.yaml"
        path.write_text(yaml.safe_dump(config))
        work.mkdir()
        report = tmp_path / "report.json"
        good = run_cli(
            "run", str(path), "--json", str(report), "-vv", env={"PROXY_PASSWORD": CANARY}
        )
        assert good.returncode == 0, good.stderr
        assert [s["host"] for s in secure.seen] == [PROXIED_HOST]
        assert secure.seen[0]["client_cert"] and not secure.seen[0]["proxy_authorization"]
        proxy.wait_for("/shop/oauth/token", "/shop-oauth/v1/all/products")
        wrong = {"PROXY_PASSWORD": "wrong-" + CANARY}
        bad = run_cli("run", str(path), "--json", str(tmp_path / "bad.json"), "-vv", env=wrong)
        assert bad.returncode == 1
        assert "407" in (tmp_path / "bad.json").read_text()
        proxy_log = proxy.log()
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "proxied.yaml"]
    assert any(p.name.startswith("http.sqlite") for p in files)
    leaks = [str(p) for p in files if CANARY.encode() in p.read_bytes()]
    outputs = [good.stdout, good.stderr, bad.stdout, bad.stderr, proxy_log]
    leaks += [f"output {i}" for i, text in enumerate(outputs) if CANARY in text]
    assert leaks == []


def test_a_token_given_as_a_url_s_user_name_is_written_nowhere(
    run_cli: RunCli, cli_fleet: Fleet, tmp_path: Path
) -> None:
    """Many APIs take a token as the user name of Basic auth (``https://TOKEN@host/``), and a
    password may hold a ``'``: fetch masks both in its output, its request log, its HTML report
    and its logs (at DEBUG, as JSON), after a success, a 500 and a timeout alike, and ``fetch
    --resume`` still knows the URLs fetched."""
    quoted = f"pa'ss-{CANARY}"

    def url(path: str, userinfo: str) -> str:
        return cli_fleet.url(path, host=2).replace("://", f"://{userinfo}@", 1)

    urls = tmp_path / "urls.txt"
    urls.write_text(
        "\n".join(
            [
                url("/item/1", CANARY),
                url("/item/2", f"me:{quoted}"),
                url("/status/500", CANARY),
                url("/delay?seconds=2", CANARY),
            ]
        )
        + "\n"
    )
    out, report = tmp_path / "out.duckdb", tmp_path / "report.html"
    common = ("--out", str(out), "--retries", "0", "--timeout", "0.5")
    done = run_cli(
        *("fetch", str(urls), *common, "--report", str(report)),
        *("--log-level", "debug", "--log-format", "json"),
    )
    assert done.returncode == 1, done.stderr
    again = run_cli("fetch", str(urls), *common, "--resume")  # the failed two only
    assert again.returncode == 1, again.stderr

    host = cli_fleet.url("", host=2).removeprefix("http://").rstrip("/")
    with duckdb.connect(str(out), read_only=True) as db:
        rows = db.execute("SELECT url, ok FROM responses ORDER BY url, ok").fetchall()
        logged = db.execute("SELECT DISTINCT url FROM _fetchpipe_requests ORDER BY url").fetchall()
    assert rows == [
        (f"http://***@{host}/delay?seconds=2", False),
        (f"http://***@{host}/delay?seconds=2", False),
        (f"http://***@{host}/item/1", True),
        (f"http://***@{host}/status/500", False),
        (f"http://***@{host}/status/500", False),
        (f"http://me:***@{host}/item/2", True),
    ]
    assert logged == [(url,) for url in sorted({url for url, _ in rows})]
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert f"http://***@{host}/status/500" in {e["url"] for e in events}
    printed = [p.stdout + p.stderr for p in (done, again)]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != urls]
    assert {"out.duckdb", "report.html"} <= {p.name for p in files}
    leaks = [str(p) for p in files if CANARY.encode() in p.read_bytes()]
    leaks += [str(p) for p in files if b"pa'ss" in p.read_bytes()]
    leaks += [f"output {i}" for i, text in enumerate(printed) if CANARY in text or "pa'ss" in text]
    assert leaks == []
