"""TLS settings: the files are read and checked before anything is sent, each problem named."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from fetchpipe import ConfigError
from fetchpipe.engine.tls import TlsPolicy, environment_problem, load_tls


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pem")
    first, second = trustme.CA(), trustme.CA()
    client = first.issue_cert("client@fetchpipe.test")
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    files = {
        "bundle": first.cert_pem.bytes() + b"# a comment between\n" + second.cert_pem.bytes(),
        "cert": b"".join(blob.bytes() for blob in client.cert_chain_pems),
        "key": client.private_key_pem.bytes(),
        "both": client.private_key_and_cert_chain_pem.bytes(),
        "encrypted": encrypted,
        "other_key": second.issue_cert("x@fetchpipe.test").private_key_pem.bytes(),
        "text": b"not a certificate\n",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(content)
    return paths


def test_every_certificate_of_a_bundle_is_trusted(pem: dict[str, Path]) -> None:
    material = load_tls(TlsPolicy(ca_bundle=str(pem["bundle"])))
    assert len(material.authorities) == 2
    assert all(block.startswith(b"-----BEGIN CERTIFICATE-----") for block in material.authorities)
    assert material.identity is None
    stores = material.context.get_ca_certs()  # the system's CAs and the bundle's
    assert len(stores) >= 2 and material.context.verify_mode is ssl.CERT_REQUIRED


@pytest.mark.parametrize(("cert", "key"), [("cert", "key"), ("both", None)])
def test_a_client_identity_is_its_key_then_its_chain(
    pem: dict[str, Path], cert: str, key: str | None
) -> None:
    policy = TlsPolicy(client_cert=str(pem[cert]), client_key=str(pem[key]) if key else None)
    material = load_tls(policy)
    assert material.identity is not None
    assert (
        material.identity.startswith(b"-----BEGIN ")
        and b"PRIVATE KEY-----" in (material.identity.split(b"\n", 1)[0])
    )
    assert material.identity.count(b"-----BEGIN CERTIFICATE-----") >= 1


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"ca_bundle": "missing"}, "--ca-bundle .*missing.pem does not exist"),
        ({"ca_bundle": "text"}, "--ca-bundle .* holds no PEM certificate"),
        ({"client_cert": "key"}, "--client-cert .* holds no PEM certificate"),
        ({"client_cert": "cert"}, "holds no private key and no --client-key is given"),
        ({"client_cert": "cert", "client_key": "text"}, "--client-key .* holds no private key"),
        ({"client_cert": "cert", "client_key": "encrypted"}, "is encrypted"),
        ({"client_cert": "cert", "client_key": "other_key"}, "cannot be used with its key"),
    ],
)
def test_a_tls_file_that_cannot_be_used_is_named_with_a_hint(
    pem: dict[str, Path], settings: dict[str, str], words: str
) -> None:
    folder = pem["cert"].parent
    paths = {name: str(folder / f"{value}.pem") for name, value in settings.items()}
    names = {
        "ca_bundle": "--ca-bundle",
        "client_cert": "--client-cert",
        "client_key": "--client-key",
    }
    with pytest.raises(ConfigError, match=words) as caught:
        load_tls(TlsPolicy(**paths), names)
    assert "HINT" in str(caught.value)


def test_a_client_key_needs_its_certificate() -> None:
    with pytest.raises(ConfigError, match="without a client certificate"):
        TlsPolicy(client_key="key.pem")
    assert not TlsPolicy().active and TlsPolicy(ca_bundle="ca.pem").active


def test_ssl_cert_file_naming_nothing_is_a_problem(pem: dict[str, Path], tmp_path: Path) -> None:
    assert environment_problem({}) is None
    assert environment_problem({"SSL_CERT_FILE": str(pem["bundle"])}) is None
    problem = environment_problem({"SSL_CERT_FILE": str(tmp_path / "gone.pem")})
    assert problem is not None and "gone.pem" in problem and "HINT" in problem
