"""``fetch`` and ``run`` through a real forward proxy (proxy.py) and with TLS settings, in real
subprocesses, on both transports: the proxy of the environment or of the options, NO_PROXY,
``--no-proxy``, ``--ca-bundle``, ``SSL_CERT_FILE``, client certificates; what cannot be used
exits 2 before anything is sent, and a proxy's password shows nowhere.

A request for ``PROXIED_HOST`` reaching its target came through the proxy: only the proxy
resolves that name (see ``tests/integration/forward_proxy.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import RunCli
from tests.integration.forward_proxy import (
    PROXIED_HOST,
    Certificates,
    ForwardProxy,
    ThreadedTarget,
    forward_proxy,
    make_certificates,
    threaded_target,
)

CANARY = "canary-cli-proxy-51c7"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with forward_proxy(tmp_path_factory.mktemp("proxy"), ("fetcher", CANARY)) as running:
        yield running


@pytest.fixture
def plain() -> Iterator[ThreadedTarget]:
    with threaded_target() as running:
        yield running


@pytest.fixture
def secure(certs: Certificates) -> Iterator[ThreadedTarget]:
    with threaded_target(certs.server_context()) as running:
        yield running


def urls_file(tmp_path: Path, *urls: str) -> Path:
    path = tmp_path / "urls.txt"
    path.write_text("\n".join(urls) + "\n")
    return path


def written_anywhere(folder: Path, *outputs: str) -> list[str]:
    """Where ``CANARY`` is: files under ``folder`` and the outputs given."""
    found = [str(p) for p in folder.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    return found + [f"output {n}" for n, text in enumerate(outputs) if CANARY in text]


@pytest.mark.parametrize("transport", ["aiohttp", "fast"])
def test_fetch_goes_through_the_proxy_it_is_given_and_shows_its_password_nowhere(
    run_cli: RunCli,
    proxy: ForwardProxy,
    certs: Certificates,
    plain: ThreadedTarget,
    secure: ThreadedTarget,
    tmp_path: Path,
    transport: str,
) -> None:
    pytest.importorskip("pyreqwest")
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
    urls = urls_file(tmp_path, plain.proxied(), secure.proxied())
    done = run_cli(
        *("fetch", str(urls), "--out", str(out), f"--cache={cache}", "--transport", transport),
        *("--proxy", proxy.authenticated_url, "--ca-bundle", str(certs.ca)),
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["status"] for r in results) == [200, 200]
    seen = plain.seen + secure.seen
    assert [s["host"] for s in seen] == [PROXIED_HOST] * 2
    assert not any(s["proxy_authorization"] for s in seen)
    proxy.wait_for(
        f"GET {PROXIED_HOST}:{plain.port}/items", f"CONNECT {PROXIED_HOST}:{secure.port}"
    )
    assert written_anywhere(tmp_path, done.stdout, done.stderr, proxy.log()) == []


def test_fetch_takes_the_environment_s_proxy_and_no_proxy_unless_told_otherwise(
    run_cli: RunCli, proxy: ForwardProxy, plain: ThreadedTarget, tmp_path: Path
) -> None:
    env = {"HTTP_PROXY": proxy.authenticated_url, "NO_PROXY": "localhost"}
    urls = urls_file(tmp_path, plain.proxied(), f"http://localhost:{plain.port}/items")
    done = run_cli("fetch", str(urls), "--out", str(tmp_path / "a.jsonl"), env=env)
    assert done.returncode == 0, done.stderr
    assert sorted((s["host"], bool(s["via"])) for s in plain.seen) == [
        ("localhost", False),  # NO_PROXY: directly
        (PROXIED_HOST, True),
    ]
    direct = urls_file(tmp_path, plain.url())
    again = run_cli("fetch", str(direct), "--out", str(tmp_path / "b.jsonl"), "--no-proxy", env=env)
    assert again.returncode == 0, again.stderr
    assert plain.seen[-1]["host"] == "127.0.0.1" and plain.seen[-1]["via"] is None
    lines = proxy.wait_for(f"{PROXIED_HOST}:{plain.port}/items")
    assert not any(f"127.0.0.1:{plain.port}" in line or "localhost" in line for line in lines)
    assert written_anywhere(tmp_path, done.stderr, again.stderr) == []


@pytest.mark.parametrize(
    ("options", "env", "words"),
    [
        (["--proxy", f"socks5://me:{CANARY}@127.0.0.1:1080"], {}, "--proxy names a SOCKS proxy"),
        (["--proxy", f"http://me:{CANARY}@127.0.0.1:port"], {}, "port cannot be read"),
        (["--proxy", "http://127.0.0.1:3128", "--no-proxy"], {}, "contradict each other"),
        ([], {"HTTPS_PROXY": f"ftp://me:{CANARY}@proxy"}, "HTTPS_PROXY names a ftp:// proxy"),
        (["--ca-bundle", "missing.pem"], {}, "--ca-bundle missing.pem does not exist"),
        (["--client-key", "key.pem"], {}, "--client-key needs --client-cert"),
        ([], {"SSL_CERT_FILE": "gone.pem"}, "SSL_CERT_FILE names gone.pem"),
    ],
)
def test_a_proxy_or_tls_setting_that_cannot_be_used_exits_2_before_sending(
    run_cli: RunCli,
    plain: ThreadedTarget,
    tmp_path: Path,
    options: list[str],
    env: dict[str, str],
    words: str,
) -> None:
    urls = urls_file(tmp_path, plain.url())
    done = run_cli("fetch", str(urls), "--out", str(tmp_path / "out.jsonl"), *options, env=env)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "HINT" in done.stderr
    assert CANARY not in done.stderr + done.stdout
    assert plain.seen == []


@pytest.mark.parametrize("transport", ["aiohttp", "fast"])
def test_ssl_cert_file_and_a_client_certificate_are_used(
    run_cli: RunCli, certs: Certificates, tmp_path: Path, transport: str
) -> None:
    pytest.importorskip("pyreqwest")
    with threaded_target(certs.server_context(require_client=True)) as server:
        urls = urls_file(tmp_path, server.url())
        base = ["fetch", str(urls), "--transport", transport, "--retries", "0"]
        client = ["--client-cert", str(certs.client_cert), "--client-key", str(certs.client_key)]
        trusted = {"SSL_CERT_FILE": str(certs.ca)}
        ok = run_cli(*base, "--out", str(tmp_path / "ok.jsonl"), *client, env=trusted)
        untrusted = run_cli(*base, "--out", str(tmp_path / "no-ca.jsonl"), *client)
        anonymous = run_cli(*base, "--out", str(tmp_path / "no-cert.jsonl"), env=trusted)
    assert ok.returncode == 0, ok.stderr
    assert (untrusted.returncode, anonymous.returncode) == (1, 1)
    untrusted_error = json.loads((tmp_path / "no-ca.jsonl").read_text())["error_message"]
    assert "certif" in untrusted_error.lower()
    assert json.loads((tmp_path / "no-cert.jsonl").read_text())["error"] in ("connect", "reset")
    assert [s["client_cert"] for s in server.seen] == [True]


# --- pipelines ------------------------------------------------------------------------------------


def write_pipeline(path: Path, defaults: dict[str, object], url: str, out: Path) -> Path:
    config = {
        "name": "through_proxy",
        "destination": f"jsonl:///{out}",
        "defaults": {"retry": {"attempts": 1}, **defaults},
        "sources": [{"name": "items", "url": url, "records": "items", "primary_key": "id"}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_bad_proxy_key_is_reported_with_its_line_and_no_password(
    run_cli: RunCli, tmp_path: Path
) -> None:
    defaults = {"proxy": f"socks5://me:{CANARY}@127.0.0.1:1080"}
    path = write_pipeline(tmp_path / "p.yaml", defaults, "http://127.0.0.1:9/items", tmp_path)
    done = run_cli("validate", str(path))
    assert done.returncode == 2
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "proxy:" in text)
    assert f"p.yaml:{line}: defaults.proxy: the URL names a SOCKS proxy" in done.stderr
    assert CANARY not in done.stderr + done.stdout


def test_a_missing_ca_bundle_stops_the_run_before_anything_is_sent(
    run_cli: RunCli, plain: ThreadedTarget, tmp_path: Path
) -> None:
    defaults = {"security": {"ca_bundle": str(tmp_path / "corp-ca.pem")}}
    path = write_pipeline(tmp_path / "p.yaml", defaults, plain.url(), tmp_path / "out")
    done = run_cli("run", str(path))
    assert done.returncode == 2
    line = next(
        n for n, text in enumerate(path.read_text().splitlines(), 1) if "ca_bundle:" in text
    )
    first, last = done.stderr.splitlines()
    assert first.startswith(
        f"{path}:{line}: defaults.security.ca_bundle: {tmp_path / 'corp-ca.pem'} does not exist. "
        "HINT: "
    )  # where it is written, as the file's other problems
    assert last == f"{path}: 1 problem; nothing was sent"
    assert plain.seen == []


def test_a_client_key_that_is_no_key_is_reported_at_its_line(
    run_cli: RunCli, plain: ThreadedTarget, certs: Certificates, tmp_path: Path
) -> None:
    client_cert = {"cert": str(certs.client_cert), "key": str(certs.ca)}  # a certificate
    defaults = {"security": {"client_cert": client_cert}}
    path = write_pipeline(tmp_path / "p.yaml", defaults, plain.url(), tmp_path / "out")
    done = run_cli("run", str(path))
    assert done.returncode == 2
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "key:" in text)
    assert f"{path}:{line}: defaults.security.client_cert.key: {certs.ca} holds no private key" in (
        done.stderr
    )
    assert plain.seen == []


def test_proxy_none_sends_directly_whatever_the_environment_says(
    run_cli: RunCli, plain: ThreadedTarget, tmp_path: Path
) -> None:
    path = write_pipeline(tmp_path / "p.yaml", {"proxy": "none"}, plain.url(), tmp_path / "out")
    done = run_cli("run", str(path), env={"HTTP_PROXY": "http://127.0.0.1:9"})
    assert done.returncode == 0, done.stderr
    assert [s["via"] for s in plain.seen] == [None]
    rows = [
        row
        for f in (tmp_path / "out" / "items").glob("*.jsonl")
        for row in f.read_text().splitlines()
    ]
    assert len(rows) == 2
