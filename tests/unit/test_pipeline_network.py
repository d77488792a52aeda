"""A pipeline file's proxy and TLS keys: checked with the file (line numbers, no password
shown), their files and the environment read when a run starts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import trustme

from fetchpipe import ConfigError, Pipeline
from fetchpipe.engine.proxies import DIRECT, ProxyUrl
from fetchpipe.pipeline import PipelineError
from fetchpipe.pipeline.spec.network import load_network

PASSWORD = "pr0xy-5ecret"


def pipeline_file(tmp_path: Path, defaults: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\n"
        "defaults:\n" + textwrap.indent(textwrap.dedent(defaults), "  ") + "sources:\n"
        "  - name: items\n"
        "    url: https://api.example.test/items\n"
    )
    return path


def test_the_keys_are_read_and_the_proxy_password_is_a_secret(tmp_path: Path) -> None:
    path = pipeline_file(
        tmp_path,
        """\
        proxy: http://corp-user:${PROXY_PASSWORD}@proxy.corp:3128
        security:
          ca_bundle: corp-ca.pem
          client_cert: {cert: client.pem, key: client.key}
        """,
    )
    pipeline = Pipeline.from_file(path, env={"PROXY_PASSWORD": PASSWORD})
    assert pipeline.defaults.proxy == f"http://corp-user:{PASSWORD}@proxy.corp:3128"
    client = pipeline.defaults.security.client_cert
    assert client is not None and (client.cert, client.key) == ("client.pem", "client.key")
    assert pipeline.redact(f"went through {pipeline.defaults.proxy}") == (
        "went through http://***:***@proxy.corp:3128"
    )
    literal = Pipeline.from_file(pipeline_file(tmp_path, f"proxy: http://me:{PASSWORD}@p:1\n"))
    assert PASSWORD in literal.secret_values()  # written in the file: masked all the same


@pytest.mark.parametrize(
    ("defaults", "words"),
    [
        (f"proxy: socks5://me:{PASSWORD}@proxy:1080\n", "defaults.proxy: the URL names a SOCKS"),
        (f"proxy: http://me:{PASSWORD}@proxy:port\n", "defaults.proxy: the URL is not a proxy"),
        ("security: {ca_bundle: ''}\n", "defaults.security.ca_bundle: "),
        (
            "security: {client_cert: {cert: c.pem, kye: k.pem}}\n",
            "defaults.security.client_cert.kye: unknown key. HINT: did you mean `key`",
        ),
        ("security: {client_cert: {key: k.pem}}\n", "defaults.security.client_cert.cert: field"),
    ],
)
def test_a_bad_key_is_reported_on_its_line_without_the_password(
    tmp_path: Path, defaults: str, words: str
) -> None:
    path = pipeline_file(tmp_path, defaults)
    with pytest.raises(PipelineError) as caught:
        Pipeline.from_file(path)
    message = str(caught.value)
    assert f"{path.name}:3: {words}" in message, message
    assert PASSWORD not in message


def test_a_run_reads_the_environment_and_the_files(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    environ = {"HTTPS_PROXY": "http://env-proxy:3128", "NO_PROXY": "internal.test"}
    policy, tls = load_network(None, str(tmp_path / "ca.pem"), None, environ)
    assert (
        policy.https == ProxyUrl("env-proxy", 3128)
        and policy.proxy_for("https://a.internal.test") is None
    )
    assert tls is not None and tls.ca_bundle == str(tmp_path / "ca.pem")
    assert load_network("none", None, None, environ) == (DIRECT, None)
    given, _ = load_network("http://given:1", None, None, environ)
    assert given.http == given.https == ProxyUrl("given", 1)
    with pytest.raises(
        ConfigError, match=r"defaults\.security\.ca_bundle .*gone\.pem does not exist"
    ):
        load_network(None, str(tmp_path / "gone.pem"), None, environ)
    with pytest.raises(ConfigError, match=r"^HTTPS_PROXY names a SOCKS proxy"):
        load_network(None, None, None, {"HTTPS_PROXY": f"socks5://me:{PASSWORD}@p:1"})
    with pytest.raises(ConfigError, match="SSL_CERT_FILE names"):
        load_network(None, None, None, {"SSL_CERT_FILE": str(tmp_path / "gone.pem")})


def test_the_proxy_is_left_out_of_the_hash_an_interrupted_run_is_resumed_by(
    tmp_path: Path,
) -> None:
    """Its password, in the journal's hash, could be guessed offline; a new password, or
    another proxy, resumes the same run."""
    hashes = {
        Pipeline.from_file(pipeline_file(tmp_path, f"proxy: {proxy}\n")).config_hash()
        for proxy in ("http://me:one@p:1", "http://me:two@p:1", "none")
    }
    assert len(hashes) == 1
    other = Pipeline.from_file(pipeline_file(tmp_path, "max_concurrency: 3\n")).config_hash()
    assert other not in hashes
