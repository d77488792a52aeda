"""A real forward proxy for the tests, and the certificates of the TLS tests.

The proxy is proxy.py (PyPI ``proxy.py``: maintained, CONNECT tunnels, Basic auth, an access
log) run as a subprocess on 127.0.0.1 with one worker. The proxy alone resolves
:data:`PROXIED_HOST` (to 127.0.0.1, the :class:`ProxyOnlyName` plugin, loaded by proxy.py by
name): a target that answers a request for that name got it through the proxy, since the client
cannot resolve it (and, going through a proxy, never tries). proxy.py writes one access-log line
per client connection, when it closes: ``GET host:port/path`` for plain HTTP (and adds ``Via``
to the first request of a connection), ``CONNECT host:port`` for a tunnel.

The certificates come from ``trustme``: a test CA, a server certificate for 127.0.0.1 and
localhost, and client certificates, written as PEM files. :func:`threaded_target` serves
``/items`` on a thread (for the command line's tests), saying what it was asked.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from proxy.http.proxy import HttpProxyBasePlugin

ROOT = Path(__file__).resolve().parents[2]
PROXIED_HOST = "target.proxied.test"
"""A name only the proxy resolves (to 127.0.0.1)."""
START_TIMEOUT = 20.0


class ProxyOnlyName(HttpProxyBasePlugin):  # type: ignore[misc]
    """proxy.py resolves :data:`PROXIED_HOST` to 127.0.0.1, other names as usual."""

    def resolve_dns(self, host: str, port: int) -> tuple[str | None, tuple[str, int] | None]:
        return ("127.0.0.1" if host == PROXIED_HOST else None), None


@dataclass
class ForwardProxy:
    """A running proxy.py: its address, the credentials it asks for, its access log."""

    port: int
    log_path: Path
    username: str = ""
    password: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, username: str, password: str) -> str:
        return f"http://{username}:{password}@127.0.0.1:{self.port}"

    @property
    def authenticated_url(self) -> str:
        return self.url_with(self.username, self.password)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_lines(self) -> list[str]:
        return [line for line in self.log().splitlines() if "access_log" in line]

    def wait_for(self, *fragments: str, timeout: float = 10.0) -> list[str]:
        """The access-log lines, once each fragment is in one of them (the test fails after
        ``timeout`` seconds otherwise): the lines are written as connections close."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.access_lines()
            if all(any(f in line for line in lines) for f in fragments):
                return lines
            assert time.monotonic() < deadline, f"the proxy logged {lines}, not {fragments}"
            time.sleep(0.05)


@contextlib.contextmanager
def forward_proxy(
    folder: Path, credentials: tuple[str, str] | None = None
) -> Iterator[ForwardProxy]:
    """proxy.py on 127.0.0.1 (a free port), asking for ``credentials`` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    port_file, log_path = folder / "port", folder / "proxy.log"
    log_path.touch()
    command = [
        *(sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0"),
        *("--port-file", str(port_file), "--num-workers", "1", "--num-acceptors", "1"),
        *("--log-file", str(log_path), "--data-dir", str(folder / "data")),
        *("--plugins", f"{__name__}.ProxyOnlyName"),
    ]
    if credentials is not None:
        command += ["--basic-auth", ":".join(credentials)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip().isdigit()):
            if process.poll() is not None:
                raise AssertionError(f"proxy.py did not start: {process.stderr.read()!r}")
            assert time.monotonic() < deadline, "proxy.py did not start in time"
            time.sleep(0.05)
        username, password = credentials or ("", "")
        yield ForwardProxy(int(port_file.read_text()), log_path, username, password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


# --- certificates ---------------------------------------------------------------------------


@dataclass
class Certificates:
    """A test CA and what it signed, as PEM files: ``ca`` (the CA certificate), ``server``
    (key and chain of 127.0.0.1, localhost and :data:`PROXIED_HOST`), ``client_cert`` and
    ``client_key`` (a client certificate and its key apart), ``client_both`` (the key and the
    certificate in one)."""

    authority: trustme.CA
    ca: Path
    server: Path
    client_cert: Path
    client_key: Path
    client_both: Path

    def server_context(self, *, require_client: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server)
        if require_client:
            self.authority.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    paths = {name: folder / f"{name}.pem" for name in ("ca", "server", "cert", "key", "both")}
    authority.cert_pem.write_to_path(str(paths["ca"]))
    server = authority.issue_cert("127.0.0.1", "localhost", PROXIED_HOST)
    server.private_key_and_cert_chain_pem.write_to_path(str(paths["server"]))
    client = authority.issue_cert("client@fetchpipe.test")
    paths["cert"].write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(paths["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["both"]))
    return Certificates(
        authority, paths["ca"], paths["server"], paths["cert"], paths["key"], paths["both"]
    )


# --- a target on a thread -------------------------------------------------------------------


@dataclass
class ThreadedTarget:
    """A running :func:`threaded_target`: its port, scheme and what it was asked."""

    scheme: str
    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "/items") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def proxied(self, path: str = "/items") -> str:
        """The URL of ``path`` by the name only the proxy resolves."""
        return f"{self.scheme}://{PROXIED_HOST}:{self.port}{path}"


@contextlib.contextmanager
def threaded_target(context: ssl.SSLContext | None = None) -> Iterator[ThreadedTarget]:
    """A server on 127.0.0.1 (HTTPS with ``context``) whose every GET answers
    ``{"items": [{"id": 1}, {"id": 2}]}`` and is recorded (host asked for, ``Via``, whether a
    client certificate came, whether a ``Proxy-Authorization`` header reached it)."""
    target = ThreadedTarget("https" if context else "http", 0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            cert = getattr(self.connection, "getpeercert", lambda: None)()
            target.seen.append(
                {
                    "path": self.path,
                    "host": (self.headers.get("Host") or "").rsplit(":", 1)[0],
                    "via": self.headers.get("Via"),
                    "client_cert": bool(cert),
                    "proxy_authorization": "Proxy-Authorization" in self.headers,
                }
            )
            body = json.dumps({"items": [{"id": 1}, {"id": 2}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    target.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
