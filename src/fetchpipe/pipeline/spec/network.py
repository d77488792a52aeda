"""A pipeline file's network keys: ``defaults.proxy`` and ``defaults.security`` (redirects,
addresses, TLS: :class:`SecurityConfig`), and the proxy and TLS settings they make.

The keys are checked with the file (a proxy URL's shape, with its line); the files they name
and the environment's proxy variables when a run starts (:func:`load_network`, before anything
is sent), so that a file can be validated where the certificates are not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, Field

from fetchpipe._exceptions import ConfigError
from fetchpipe.engine.proxies import ProxyPolicy, parse_proxy_url, proxy_policy
from fetchpipe.engine.tls import TlsPolicy, environment_problem, load_tls
from fetchpipe.pipeline.spec.base import FrozenModel, Text
from fetchpipe.pipeline.spec.errors import DataPath, format_path

SETTING_PATHS: dict[str, DataPath] = {
    "ca_bundle": ("defaults", "security", "ca_bundle"),
    "client_cert": ("defaults", "security", "client_cert", "cert"),
    "client_key": ("defaults", "security", "client_cert", "key"),
}
"""Where each TLS setting is in the file (the ``setting`` of a SettingError)."""
_NAMES = {setting: format_path(path) for setting, path in SETTING_PATHS.items()}


class ClientCertConfig(FrozenModel):
    """A client certificate for servers that ask for one: ``cert`` a PEM file (its chain
    after it), ``key`` its private key's PEM file when it is not in ``cert``."""

    cert: Text
    key: Text | None = None


class SecurityConfig(FrozenModel):
    """What requests may do: redirects, addresses, TLS.

    ``block_private`` refuses loopback, private, link-local and metadata addresses for every
    request; next-page links to another origin are checked that way whatever it says.
    ``allow_addresses`` (IPs or networks) are exempt. ``insecure_hosts`` skip TLS verification.
    ``ca_bundle``: CAs trusted besides the system's; ``client_cert``: see
    :class:`ClientCertConfig`.
    """

    block_private: bool = False
    allow_addresses: list[str] = Field(default_factory=list)
    insecure_hosts: list[str] = Field(default_factory=list)
    max_redirects: int = Field(default=10, ge=0)
    ca_bundle: Text | None = Field(
        default=None, description="A PEM file of CA certificates trusted besides the system's."
    )
    client_cert: ClientCertConfig | None = Field(
        default=None, description="{cert, key}: PEM files of a client certificate and its key."
    )


def _proxy_setting(value: str) -> str:
    """``env``, ``none`` (any case) or a proxy URL that can be used; the message of a bad one
    never quotes it (it may hold a password)."""
    if value.strip().lower() in ("env", "none"):
        return value.strip().lower()
    try:
        parse_proxy_url(value, "the URL")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


ProxySetting = Annotated[str, AfterValidator(_proxy_setting)]


def proxy_secrets(setting: str | None) -> frozenset[str]:
    """The user name and password written in ``defaults.proxy``, to mask wherever they show."""
    if setting is None or setting in ("env", "none"):
        return frozenset()
    try:
        return parse_proxy_url(setting, "defaults.proxy").secrets
    except ConfigError:  # not a valid pipeline: nothing to mask from a run
        return frozenset()


def load_network(
    proxy: str | None,
    ca_bundle: str | None,
    client_cert: ClientCertConfig | None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[ProxyPolicy, TlsPolicy | None]:
    """The proxy policy (``defaults.proxy`` over the environment's variables) and the TLS
    settings, their files read: ConfigError (naming the key or the variable, never a proxy's
    credentials) for what cannot be used; a SettingError for a file (its ``setting`` a key of
    :data:`SETTING_PATHS`)."""
    policy = proxy_policy(proxy or "env", "defaults.proxy", environ)
    problem = environment_problem(environ)
    if problem is not None:
        raise ConfigError(problem)
    tls = TlsPolicy(
        ca_bundle,
        client_cert.cert if client_cert is not None else None,
        client_cert.key if client_cert is not None else None,
    )
    if not tls.active:
        return policy, None
    load_tls(tls, _NAMES)
    return policy, tls
