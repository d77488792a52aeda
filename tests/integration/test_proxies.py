"""Proxies and TLS on both transports, against a real forward proxy (proxy.py) on 127.0.0.1.

"Came through the proxy" is checked on the target's side: a request for ``PROXIED_HOST``, a
name only the proxy resolves (see ``forward_proxy``), reached the target, which records the
``Host`` it was asked for; and the proxy's access log says what it carried (``GET
host:port/...`` for HTTP, ``CONNECT host:port`` for HTTPS). Certificates come from a test CA
(trustme).
"""

from __future__ import annotations

import contextlib
import gc
import ssl
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe import ConfigError, ErrorKind, Fetcher, Request, Result, RetryPolicy
from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.tls import TlsPolicy
from fetchpipe.pipeline import Pipeline
from tests.integration.forward_proxy import (
    PROXIED_HOST,
    Certificates,
    ForwardProxy,
    forward_proxy,
    make_certificates,
)
from tests.integration.transports import (
    both_transports,
    on_fast,
    on_transport,
    only_on,
    with_transport,
)

pytestmark = both_transports

CANARY = "canary-proxy-6d2a"
Seen = list[dict[str, Any]]


def target_app(seen: Seen) -> web.Application:
    """``/echo``: records the host asked for, the headers and whether a client certificate
    came."""

    async def echo(request: web.Request) -> web.Response:
        transport = request.transport
        record = {
            "path": request.path_qs,
            "host": request.host.rsplit(":", 1)[0],
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "client_cert": bool(transport and transport.get_extra_info("peercert")),
        }
        seen.append(record)
        return web.json_response(record)

    app = web.Application()
    app.router.add_get("/echo", echo)
    return app


@dataclass
class Target:
    """A running target: its scheme, host and port (kept after it stops), what it saw."""

    scheme: str
    host: str
    port: int
    seen: Seen

    def url(self, path: str = "/echo") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def proxied(self, path: str = "/echo") -> str:
        """The URL of ``path`` by the name only the proxy resolves."""
        return f"{self.scheme}://{PROXIED_HOST}:{self.port}{path}"


@contextlib.asynccontextmanager
async def target(host: str = "127.0.0.1", ssl_context: Any = None) -> AsyncIterator[Target]:
    seen: Seen = []
    server = TestServer(target_app(seen), host=host)
    await server.start_server(ssl=ssl_context)
    try:
        assert server.port is not None
        yield Target(server.scheme, host, server.port, seen)
    finally:
        await server.close()
        if (
            ssl_context is not None
        ):  # a TLS connection pyreqwest dropped (see test_transport_security)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ForwardProxy]:
    with forward_proxy(tmp_path / "proxy") as running:
        yield running


@pytest.fixture
def auth_proxy(tmp_path: Path) -> Iterator[ForwardProxy]:
    with forward_proxy(tmp_path / "auth-proxy", ("fetcher", CANARY)) as running:
        yield running


async def fetch(urls: list[str], **options: Any) -> list[Result]:
    async with Fetcher(**with_transport(options)) as fetcher:
        requests = [Request(url, key=n) for n, url in enumerate(urls)]
        results = [result async for result in fetcher.stream(requests)]
    return sorted(results, key=lambda r: r.request.key)


# --- through the proxy --------------------------------------------------------------------------


async def test_http_and_https_go_through_the_proxy(
    proxy: ForwardProxy, certs: Certificates
) -> None:
    async with target() as plain, target(ssl_context=certs.server_context()) as tls:
        urls = [plain.proxied(f"/echo?n={n}") for n in range(3)]
        urls += [tls.proxied(f"/echo?n={n}") for n in range(3)]
        results = await fetch(urls, proxy=proxy.url, tls=TlsPolicy(ca_bundle=str(certs.ca)))
    assert [r.status for r in results] == [200] * 6, [r.error_message for r in results]
    seen = plain.seen + tls.seen
    assert [s["host"] for s in seen] == [PROXIED_HOST] * 6
    assert sorted(s["path"] for s in tls.seen) == [f"/echo?n={n}" for n in range(3)]
    assert plain.seen[0]["headers"]["via"].startswith("1.1 proxy.py")  # proxy.py says so
    lines = proxy.wait_for(
        f"GET {PROXIED_HOST}:{plain.port}/echo", f"CONNECT {PROXIED_HOST}:{tls.port}"
    )
    assert all(PROXIED_HOST in line for line in lines)


async def test_https_without_the_ca_bundle_is_not_trusted_through_the_proxy(
    proxy: ForwardProxy, certs: Certificates
) -> None:
    async with target(ssl_context=certs.server_context()) as tls:
        [result] = await fetch([tls.proxied()], proxy=proxy.url)  # retries on, as by default
    assert result.error is not None and result.error is ErrorKind.TLS
    assert result.attempts == 1  # another attempt gets the same certificate
    assert "certificate" in str(result.error_message).lower()
    assert "--ca-bundle" in str(result.error_message)
    assert tls.seen == []
    proxy.wait_for(f"CONNECT {PROXIED_HOST}:{tls.port}")  # the tunnel was made, TLS refused


async def test_the_environment_chooses_the_proxy_and_no_proxy_sends_hosts_directly(
    proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # lower case wins over upper case
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.org, 127.0.0.2")
    async with target() as far, target("127.0.0.2") as near:
        results = await fetch([far.proxied(), near.url()])  # proxy="env", the default
    assert [r.status for r in results] == [200, 200], [r.error_message for r in results]
    assert far.seen[0]["host"] == PROXIED_HOST and "via" in far.seen[0]["headers"]
    assert near.seen[0]["host"] == "127.0.0.2" and "via" not in near.seen[0]["headers"]
    lines = proxy.wait_for(f"{PROXIED_HOST}:{far.port}/echo")
    assert not any("127.0.0.2" in line for line in lines)


async def test_no_proxy_sends_directly_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    async with target() as server:
        [direct] = await fetch([server.url()], proxy=None, retry=_no_retry())
        [through] = await fetch([server.url()], retry=_no_retry())
    assert direct.status == 200 and "via" not in server.seen[0]["headers"]
    assert through.error is not None and through.error is ErrorKind.CONNECT
    assert "proxy" in str(through.error_message).lower() or on_fast()
    assert len(server.seen) == 1


def _no_retry() -> RetryPolicy:
    return RetryPolicy(attempts=1)


# --- proxy credentials ----------------------------------------------------------------------------


async def test_proxy_credentials_go_to_the_proxy_and_are_shown_nowhere(
    auth_proxy: ForwardProxy, certs: Certificates
) -> None:
    tls_policy = TlsPolicy(ca_bundle=str(certs.ca))
    async with target() as plain, target(ssl_context=certs.server_context()) as tls:
        urls = [plain.proxied(), tls.proxied()]
        good = await fetch(urls, proxy=auth_proxy.authenticated_url, tls=tls_policy)
        wrong = auth_proxy.url_with("fetcher", "not-" + CANARY)
        bad = await fetch(urls, proxy=wrong, tls=tls_policy, retry=_no_retry())
        none = await fetch(urls, proxy=auth_proxy.url, tls=tls_policy, retry=_no_retry())
    assert [r.status for r in good] == [200, 200], [r.error_message for r in good]
    seen = plain.seen + tls.seen
    assert [s["host"] for s in seen] == [PROXIED_HOST] * 2
    assert all("proxy-authorization" not in s["headers"] for s in seen)
    for plain_result, tls_result in (bad, none):
        assert plain_result.status == 407  # the proxy's own answer to a plain HTTP request
        assert tls_result.error is not None and tls_result.error is ErrorKind.OTHER
        assert "407" in str(tls_result.error_message)
        assert "HINT" in str(tls_result.error_message)
    shown = "".join(repr(r) + str(r.error_message) + str(r.body) for r in good + bad + none)
    assert CANARY not in shown
    auth_proxy.wait_for(f"CONNECT {PROXIED_HOST}:{tls.port}")
    assert CANARY not in auth_proxy.log()


REFUSED_HINT = "HINT: check the user name and password in the proxy's URL"


async def test_a_proxy_refusing_the_credentials_says_so_with_a_hint_for_http_and_https(
    auth_proxy: ForwardProxy, certs: Certificates
) -> None:
    tls_policy = TlsPolicy(ca_bundle=str(certs.ca))
    wrong = auth_proxy.url_with("fetcher", "not-" + CANARY)
    async with target() as plain, target(ssl_context=certs.server_context()) as tls:
        urls = [plain.proxied(), tls.proxied()]
        for proxy_url in (wrong, auth_proxy.url):  # wrong credentials, then none
            plain_result, tls_result = await fetch(
                urls, proxy=proxy_url, tls=tls_policy, retry=_no_retry()
            )
            assert plain_result.status == 407 and plain_result.error is ErrorKind.HTTP_STATUS
            for result in (plain_result, tls_result):
                message = str(result.error_message)
                assert "407" in message and "the proxy refused the credentials" in message
                assert REFUSED_HINT in message and "HTTPS_PROXY" in message
                assert CANARY not in message
    assert plain.seen == tls.seen == []


async def test_a_token_request_the_proxy_refuses_says_so_with_a_hint(
    auth_proxy: ForwardProxy, certs: Certificates, tmp_path: Path
) -> None:
    wrong = auth_proxy.url_with("fetcher", "not-" + CANARY)
    async with target() as plain, target(ssl_context=certs.server_context()) as tls:
        sources = [
            {
                "name": name,
                "url": server.proxied(),
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": server.proxied("/token"),
                    "client_id": "me",
                    "client_secret": "not-the-point-8d1e",
                },
            }
            for name, server in (("plain", plain), ("tls", tls))
        ]
        config = {
            "name": "p",
            "destination": f"duckdb:///{tmp_path / 'p.duckdb'}",
            "defaults": {
                "proxy": wrong,
                "security": {"ca_bundle": str(certs.ca)},
                "retry": {"attempts": 1},
            },
            "sources": sources,
        }
        report = await Pipeline.from_dict(on_transport(config), env={}).arun()
    for name in ("plain", "tls"):
        reason = str(report.source(name).reason)
        assert "OAuth2 token request" in reason and "407" in reason, reason
        assert "the proxy refused the credentials" in reason and REFUSED_HINT in reason
        assert CANARY not in reason
    assert plain.seen == tls.seen == []


# --- the private-address guard with a proxy -------------------------------------------------------


async def test_block_private_checks_the_target_before_it_goes_to_the_proxy(
    proxy: ForwardProxy,
) -> None:
    only_on("aiohttp", "the fast transport refuses block_private at start-up")
    guard = SecurityPolicy(block_private=True)
    async with target() as server:
        named = f"http://localhost:{server.port}/echo"
        refused = await fetch([server.url(), named], proxy=proxy.url, security=guard)
        allowed = SecurityPolicy(block_private=True, allow_addresses=("127.0.0.0/8", "::1"))
        [through] = await fetch([named], proxy=proxy.url, security=allowed)
    for result in refused:
        assert result.error is not None and result.error is ErrorKind.INVALID_REQUEST
        assert "block_private" in result.error_message
    assert "localhost resolves to" in str(refused[1].error_message)
    # The proxy (127.0.0.1, not allowed) is a configured hop: the guard lets it through.
    assert through.status == 200 and [s["host"] for s in server.seen] == ["localhost"]
    assert "via" in server.seen[0]["headers"]
    lines = proxy.wait_for(f"localhost:{server.port}/echo")
    assert len(lines) == 1


async def test_the_fast_transport_still_refuses_block_private_with_a_proxy(
    proxy: ForwardProxy,
) -> None:
    only_on("fast", "the aiohttp transport applies it")
    guard = SecurityPolicy(block_private=True)
    with pytest.raises(ConfigError, match="block_private"):
        await fetch(["http://127.0.0.1:9/"], proxy=proxy.url, security=guard)


# --- certificates the client cannot verify ------------------------------------------------------


async def test_a_certificate_from_an_unknown_ca_fails_once_as_tls_with_a_hint(
    certs: Certificates,
) -> None:
    async with target(ssl_context=certs.server_context()) as server:
        [result] = await fetch([server.url()], proxy=None)  # no ca_bundle; retries on
    assert result.error is ErrorKind.TLS, result.error_message
    assert result.attempts == 1
    message = str(result.error_message)
    assert message.startswith("the server's TLS certificate cannot be verified (")
    for fix in ("--ca-bundle", "defaults.security.ca_bundle", "SSL_CERT_FILE"):
        assert fix in message
    assert "Operation not permitted" not in message
    assert server.seen == []


async def test_a_certificate_for_another_name_fails_as_tls_saying_so(
    certs: Certificates, tmp_path: Path
) -> None:
    other = certs.authority.issue_cert("elsewhere.test")  # signed by the trusted CA
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(context)
    async with target(ssl_context=context) as server:
        [result] = await fetch([server.url()], proxy=None, tls=TlsPolicy(ca_bundle=str(certs.ca)))
    assert result.error is ErrorKind.TLS and result.attempts == 1, result.error_message
    assert "HINT: the certificate is for other host names" in str(result.error_message)


# --- client certificates --------------------------------------------------------------------------


async def test_a_client_certificate_is_presented_directly_and_through_the_proxy(
    proxy: ForwardProxy, certs: Certificates
) -> None:
    ca = str(certs.ca)
    pair = TlsPolicy(ca, client_cert=str(certs.client_cert), client_key=str(certs.client_key))
    one_file = TlsPolicy(ca, client_cert=str(certs.client_both))
    async with target(ssl_context=certs.server_context(require_client=True)) as server:
        [without] = await fetch([server.url()], proxy=None, tls=TlsPolicy(ca), retry=_no_retry())
        [apart] = await fetch([server.url()], proxy=None, tls=pair)
        [tunnelled] = await fetch([server.proxied()], proxy=proxy.url, tls=one_file)
    assert without.error is not None, "the server asks for a client certificate"
    assert apart.status == 200 and tunnelled.status == 200, (
        apart.error_message,
        tunnelled.error_message,
    )
    assert [(s["client_cert"], s["host"]) for s in server.seen] == [
        (True, "127.0.0.1"),
        (True, PROXIED_HOST),
    ]


async def test_unusable_tls_files_stop_the_fetcher_before_anything_is_sent(
    certs: Certificates, tmp_path: Path
) -> None:
    other = make_certificates(tmp_path / "other")
    cases = [
        (TlsPolicy(ca_bundle=str(tmp_path / "missing.pem")), "does not exist"),
        (TlsPolicy(ca_bundle=str(certs.client_key)), "holds no PEM certificate"),
        (TlsPolicy(client_cert=str(certs.client_cert)), "holds no private key"),
        (
            TlsPolicy(client_cert=str(certs.client_cert), client_key=str(other.client_key)),
            "cannot be used with its key",
        ),
    ]
    async with target() as server:
        for policy, message in cases:
            with pytest.raises(ConfigError, match=message) as caught:
                await fetch([server.url()], tls=policy, proxy=None)
            assert "HINT" in str(caught.value)
    assert server.seen == []
