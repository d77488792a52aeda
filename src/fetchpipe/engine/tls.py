"""TLS beyond the defaults: more CAs to trust, a client certificate to present.

* :class:`TlsPolicy`: the paths (``ca_bundle``; ``client_cert`` and ``client_key``).
* :func:`load_tls`: the files read and checked before anything is sent (a SettingError with a
  HINT for a missing file, a file without a certificate or key, an encrypted key, a key that
  does not match its certificate), as :class:`TlsMaterial`: the PEM blocks pyreqwest takes and
  the ``ssl.SSLContext`` aiohttp takes.
* :func:`environment_problem`: ``SSL_CERT_FILE`` naming a file that is not there.
* :func:`certificate_refused`: the error of a server certificate the client cannot verify,
  the same on both transports.

Both transports start from the system's CAs, which both read as OpenSSL does: ``SSL_CERT_FILE``
(a PEM bundle) and ``SSL_CERT_DIR`` replace the system's store when set (aiohttp through
Python's ``ssl``, pyreqwest through rustls' platform verifier on Linux). ``ca_bundle`` adds its
certificates to those: pyreqwest can only add roots, never drop the built-in ones, so both
transports add (set ``SSL_CERT_FILE`` to trust a bundle alone).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fetchpipe._exceptions import ConfigError, SettingError, TransportError
from fetchpipe._models import ErrorKind

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)
_KEY_HINT = (
    "HINT: give the certificate's private key in PEM (-----BEGIN PRIVATE KEY-----, "
    "RSA PRIVATE KEY or EC PRIVATE KEY)"
)


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """``ca_bundle``: a PEM file of CA certificates trusted besides the system's.
    ``client_cert``: a PEM certificate (with its chain) presented to servers that ask for one;
    ``client_key``: its private key, when it is not in the same file."""

    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    def __post_init__(self) -> None:
        for name in ("ca_bundle", "client_cert", "client_key"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"TlsPolicy.{name} must be a file path, got {value!r}.")
        if self.client_key is not None and self.client_cert is None:
            raise ConfigError(
                "a client key without a client certificate. HINT: give the certificate too "
                "(--client-cert, defaults.security.client_cert.cert)"
            )

    @property
    def active(self) -> bool:
        """Whether anything differs from the defaults."""
        return self.ca_bundle is not None or self.client_cert is not None


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """What :func:`load_tls` read: the CA certificates (one PEM block each), the client's
    private key followed by its certificate chain (PEM), and an ``ssl.SSLContext`` holding
    both (with the system's CAs)."""

    authorities: tuple[bytes, ...]
    identity: bytes | None
    context: ssl.SSLContext


def load_tls(policy: TlsPolicy, names: Mapping[str, str] | None = None) -> TlsMaterial:
    """Read and check ``policy``'s files. SettingError (naming the setting and the path, with a
    HINT) when one is missing or unusable; ``names`` gives the settings' names as the user
    wrote them (``{"ca_bundle": "--ca-bundle"}``), the field names otherwise."""
    named = {"ca_bundle": "ca_bundle", "client_cert": "client_cert", "client_key": "client_key"}
    named.update(names or {})
    context = ssl.create_default_context()
    authorities: tuple[bytes, ...] = ()
    if policy.ca_bundle is not None:
        path, name = policy.ca_bundle, named["ca_bundle"]
        bundle = _read("ca_bundle", name, path)
        authorities = tuple(
            block[0] for block in _PEM.finditer(bundle) if block[1] == b"CERTIFICATE"
        )
        if not authorities:
            raise SettingError(
                "ca_bundle",
                name,
                f"{path} holds no PEM certificate. HINT: give a file of "
                "-----BEGIN CERTIFICATE----- blocks (convert a DER file with "
                "openssl x509 -inform der -in ca.der -out ca.pem)",
            )
        try:
            context.load_verify_locations(cadata=b"".join(authorities).decode("ascii"))
        except (ssl.SSLError, ValueError) as exc:
            raise SettingError(
                "ca_bundle",
                name,
                f"{path} cannot be loaded ({exc.__class__.__name__}). "
                "HINT: give a PEM file of CA certificates",
            ) from None
    identity = None
    if policy.client_cert is not None:
        identity = _identity(policy.client_cert, policy.client_key, context, named)
    return TlsMaterial(authorities, identity, context)


def _identity(
    cert_path: str, key_path: str | None, context: ssl.SSLContext, named: Mapping[str, str]
) -> bytes:
    """The client's key and certificate chain as one PEM text, loaded into ``context``."""
    cert_name, key_name = named["client_cert"], named["client_key"]
    cert = _read("client_cert", cert_name, cert_path)
    key = cert if key_path is None else _read("client_key", key_name, key_path)
    chain = [b[0] for b in _PEM.finditer(cert) if b[1] == b"CERTIFICATE"]
    keys = [b for b in _PEM.finditer(key) if b[1].endswith(b"PRIVATE KEY")]
    if not chain:
        raise SettingError(
            "client_cert",
            cert_name,
            f"{cert_path} holds no PEM certificate. HINT: give the client "
            "certificate in PEM (-----BEGIN CERTIFICATE-----), its chain after it",
        )
    # the key's own problems are the key setting's, or the certificate's when it holds both
    where = ("client_key", key_name, key_path) if key_path is not None else None
    setting, name, path = where or ("client_cert", cert_name, cert_path)
    if not keys:
        missing = "" if key_path is not None else f" and no {key_name} is given"
        raise SettingError(setting, name, f"{path} holds no private key{missing}. {_KEY_HINT}")
    if keys[0][1].startswith(b"ENCRYPTED"):
        raise SettingError(
            setting,
            name,
            f"{path} is encrypted (a passphrase protects it), which fetchpipe cannot read. "
            "HINT: write it decrypted to a file only you can read: openssl pkey -in KEY "
            "-out KEY.plain.pem",
        )
    try:
        context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise SettingError(
            "client_cert",
            cert_name,
            f"{cert_path} cannot be used with its key ({reason}). HINT: check that "
            "the key is the certificate's own",
        ) from None
    return keys[0][0] + b"".join(chain)


def _read(setting: str, name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        problem = "does not exist"
    except IsADirectoryError:
        problem = "is a directory"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc.__class__.__name__})"
    raise SettingError(
        setting,
        name,
        f"{path} {problem}. HINT: give the path of a PEM file (relative to the "
        "working directory, or absolute)",
    )


def environment_problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """What is wrong with ``SSL_CERT_FILE``, or None: set to a path that is not a file, it
    leaves both transports without a CA (every HTTPS request fails) instead of failing."""
    path = environ.get("SSL_CERT_FILE")
    if path and not os.path.isfile(path):
        return (
            f"SSL_CERT_FILE names {path}, which is not a file, so no HTTPS server could be "
            "verified. HINT: point it at a PEM bundle of CA certificates, or unset it to use "
            "the system's"
        )
    return None


CA_HINT = (
    "HINT: if a private CA signed it (a company's, a proxy's that inspects TLS), trust that CA: "
    "fetch --ca-bundle CA.pem, defaults.security.ca_bundle in a pipeline, or SSL_CERT_FILE "
    "naming a bundle that holds it"
)
_NAME_HINT = (
    "HINT: the certificate is for other host names: use a name it was issued for, or have it "
    "issued for this one"
)
_EXPIRED_HINT = "HINT: its owner must renew it; check this machine's clock too"


def certificate_refused(reason: str) -> TransportError:
    """The error of a server certificate that cannot be verified (``reason``: the TLS
    library's words): kind ``tls``, which is not retried (another attempt gets the same
    certificate), with what to do about it."""
    lowered = reason.lower()
    if "hostname" in lowered or "notvalidforname" in lowered or "not valid for" in lowered:
        hint = _NAME_HINT
    elif "expired" in lowered:
        hint = _EXPIRED_HINT
    else:
        hint = CA_HINT
    return TransportError(
        ErrorKind.TLS, f"the server's TLS certificate cannot be verified ({reason}). {hint}"
    )
