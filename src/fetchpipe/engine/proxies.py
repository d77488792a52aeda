"""Which proxy a request goes through: the environment's, one given, or none.

* :class:`ProxyUrl`: a checked proxy URL whose credentials are never shown (``str()`` masks
  them; messages show :attr:`ProxyUrl.address`).
* :class:`ProxyPolicy`: the proxy for ``http://`` and for ``https://`` targets, and the
  ``NO_PROXY`` entries; :meth:`ProxyPolicy.proxy_for` chooses one for a URL.
  :func:`proxy_policy` makes one from a setting (``--proxy``, ``defaults.proxy``,
  ``Fetcher(proxy=...)``): ``"env"`` reads the environment as curl and requests do
  (:func:`environment_proxies`), ``"none"`` or ``None`` sends directly, a URL sends everything
  through that proxy (``NO_PROXY`` still applies, as with curl's ``--proxy``).
* :func:`parse_no_proxy` and :func:`bypasses`: the ``NO_PROXY`` rules, pure functions.

Only ``http://`` proxies are supported (HTTPS goes through them in a ``CONNECT`` tunnel, as it
does with almost every corporate proxy): both transports can reach them, and a proxy that one
transport cannot reach is refused before anything is sent, never skipped.

The ``NO_PROXY`` matching is written here rather than taken from
``urllib.request.proxy_bypass_environment``: the standard library's takes no CIDR networks,
reads ``*`` only as the whole list, matches IP addresses by text suffix (``0.1`` bypasses
``10.0.0.1``) and does not unbracket IPv6 hosts; and both transports must apply the same rules
(pyreqwest would otherwise apply reqwest's own). The rules are curl's and requests': an entry
is a host name that matches itself and its subdomains (a leading ``.`` or ``*.`` changes
nothing), an IP address or a CIDR network that matches IP-address hosts, optionally with a
``:port`` that the target's port (its scheme's default when none is written) must equal;
``*`` matches every host. Names are not resolved: ``localhost`` does not match ``127.0.0.1``.

No message made here contains a proxy's user name or password.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from yarl import URL

from fetchpipe._exceptions import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ProxySetting = str | None
"""``"env"`` (the environment's proxies), ``"none"`` or ``None`` (no proxy), or a proxy URL."""

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
"""The environment variables read (in lower or upper case; lower case wins)."""
_DEFAULT_PORTS = {"http": 80, "https": 443}
PROXY_AUTH_HINT = (
    "HINT: check the user name and password in the proxy's URL (--proxy, defaults.proxy, or "
    "the HTTP_PROXY, HTTPS_PROXY and ALL_PROXY variables; percent-encode @, : and / in them)"
)
"""What to do when a proxy refuses the credentials: every message about a 407 ends with it."""
PROXY_REFUSED = f"the proxy refused the credentials (none, or wrong ones). {PROXY_AUTH_HINT}"
"""Why a request got a 407 Proxy Authentication Required."""
_HINT = (
    "HINT: write http://host:port or http://user:password@host:port (HTTPS goes through it "
    "with CONNECT)"
)


@dataclass(frozen=True, slots=True)
class ProxyUrl:
    """An ``http://`` proxy. The credentials are left out of ``repr`` and masked in ``str``."""

    host: str
    port: int
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def address(self) -> str:
        """``http://host:port``, without credentials: what messages show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL with its credentials (percent-encoded), for the HTTP client only."""
        if not (self.username or self.password):
            return self.address
        userinfo = quote(self.username, safe="") + ":" + quote(self.password, safe="")
        return self.address.replace("http://", f"http://{userinfo}@", 1)

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value (Basic, UTF-8), or None without credentials."""
        if not (self.username or self.password):
            return None
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    @property
    def secrets(self) -> frozenset[str]:
        """The user name and the password (either may be a token)."""
        return frozenset(value for value in (self.username, self.password) if value)

    def __str__(self) -> str:
        if self.username or self.password:
            return self.address.replace("http://", "http://***@", 1)
        return self.address


def parse_proxy_url(text: str, source: str) -> ProxyUrl:
    """``text`` as a proxy URL (``http://`` when it has no scheme, as curl and requests read
    ``proxy:3128``; the port 80 when none is written, as requests does). ``source`` names where
    it came from in the ConfigError (``--proxy``, ``HTTPS_PROXY``, ...), which never quotes
    ``text``: it may hold a password."""
    written = text.strip()
    if not written:
        raise ConfigError(f"{source} is empty. {_HINT}")
    if not written.isprintable():
        raise ConfigError(f"{source} has a control character or a line break. {_HINT}")
    if "://" not in written:
        written = "http://" + written
    try:
        parts = urlsplit(written)
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"{source} is not a proxy URL (its host or port cannot be read). {_HINT}"
        ) from None
    scheme = parts.scheme.lower()
    if scheme != "http":
        what = "a SOCKS proxy" if scheme.startswith("socks") else f"a {scheme}:// proxy"
        raise ConfigError(
            f"{source} names {what}, which fetchpipe cannot use: only http:// proxies are "
            f"supported. {_HINT}, or send directly with --no-proxy (defaults.proxy: none)"
        )
    host = parts.hostname
    if not host:
        raise ConfigError(f"{source} names no host. {_HINT}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{source} has a path or a query, which a proxy URL has not. {_HINT}")
    return ProxyUrl(
        host=host.lower(),
        port=port if port is not None else 80,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


# --- NO_PROXY ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoProxyRule:
    """One ``NO_PROXY`` entry: every host (``everything``), a host name and its subdomains
    (``name``) or IP addresses (``network``), on any port or on ``port`` only."""

    name: str = ""
    network: IPNetwork | None = None
    port: int | None = None
    everything: bool = False


def parse_no_proxy(text: str) -> tuple[NoProxyRule, ...]:
    """The rules of a ``NO_PROXY`` value: entries separated by commas or spaces. An entry that
    is no host, address or network (``:80``, ``a b/c``) matches nothing and is dropped, as curl
    and requests ignore what they cannot match."""
    rules: list[NoProxyRule] = []
    for entry in text.replace(",", " ").split():
        rule = _rule(entry.strip().lower())
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _rule(entry: str) -> NoProxyRule | None:
    if entry == "*":
        return NoProxyRule(everything=True)
    network = _network(entry)
    if network is not None:
        return NoProxyRule(network=network)
    host, port = entry, None
    if entry.startswith("["):  # [::1] or [::1]:8080
        inside, _, rest = entry[1:].partition("]")
        host, port = inside, _port(rest[1:]) if rest.startswith(":") else None
        if rest and port is None:
            return None
    elif entry.count(":") == 1:  # host:port (a bare IPv6 address has more colons)
        host, _, written = entry.partition(":")
        port = _port(written)
        if port is None:
            return None
    network = _network(host)
    if network is not None:
        return NoProxyRule(network=network, port=port)
    name = host.removeprefix("*").lstrip(".").rstrip(".")
    if not name or any(c in name for c in "/*@?#[]:"):
        return None
    return NoProxyRule(name=name, port=port)


def _network(text: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def bypasses(rules: tuple[NoProxyRule, ...], host: str, port: int) -> bool:
    """Whether a request to ``host:port`` goes directly under ``rules`` (see the module's
    docstring for what an entry matches). ``host`` as in a URL: any case, an IPv6 address with
    or without brackets, a trailing dot or not."""
    if not rules:
        return False
    name = host.lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        address = None
    for rule in rules:
        if rule.everything:
            return True
        if rule.port is not None and rule.port != port:
            continue
        if rule.network is not None:
            if address is not None and _within(address, rule.network):
                return True
        elif address is None and (name == rule.name or name.endswith("." + rule.name)):
            return True
    return False


def _within(address: ipaddress.IPv4Address | ipaddress.IPv6Address, network: IPNetwork) -> bool:
    return address.version == network.version and address in network


# --- the policy -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """The proxy of ``http://`` targets and of ``https://`` targets (None: directly), and the
    ``NO_PROXY`` rules that send some hosts directly all the same. ``source`` says where the
    proxies came from, for messages (``--proxy``, ``HTTPS_PROXY``, ...)."""

    http: ProxyUrl | None = None
    https: ProxyUrl | None = None
    no_proxy: tuple[NoProxyRule, ...] = ()
    source: str = ""

    @property
    def active(self) -> bool:
        """Whether any request may go through a proxy."""
        return self.http is not None or self.https is not None

    @property
    def proxies(self) -> tuple[ProxyUrl, ...]:
        """The distinct proxies, the ``http://`` targets' first."""
        return tuple(dict.fromkeys(p for p in (self.http, self.https) if p is not None))

    @property
    def secrets(self) -> frozenset[str]:
        """The proxies' user names and passwords."""
        return frozenset(secret for proxy in self.proxies for secret in proxy.secrets)

    def route(self, scheme: str, host: str, port: int | None) -> ProxyUrl | None:
        """The proxy for a request to ``scheme://host:port``, or None to send it directly."""
        proxy = self.https if scheme == "https" else self.http if scheme == "http" else None
        if proxy is None:
            return None
        if port is None:
            port = _DEFAULT_PORTS.get(scheme, 0)
        return None if bypasses(self.no_proxy, host, port) else proxy

    def remembered(self, size: int = 4096) -> Callable[[str, str, int | None], ProxyUrl | None]:
        """:meth:`route` remembering its answers (up to ``size`` targets, then it starts
        again): what a transport asks for every request."""
        routes: dict[tuple[str, str, int | None], ProxyUrl | None] = {}

        def route(scheme: str, host: str, port: int | None) -> ProxyUrl | None:
            key = (scheme, host, port)
            try:
                return routes[key]
            except KeyError:
                if len(routes) >= size:
                    routes.clear()
                found = routes[key] = self.route(scheme, host, port)
                return found

        return route

    def proxy_for(self, url: str | URL) -> ProxyUrl | None:
        """The proxy for a request to ``url``, or None to send it directly."""
        parsed = URL(url) if isinstance(url, str) else url
        return self.route(parsed.scheme, parsed.raw_host or "", parsed.port)


DIRECT = ProxyPolicy()
"""No proxy: every request goes directly."""


def environment_proxies(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The ``*_proxy`` variables of ``environ`` as urllib reads them
    (``urllib.request.getproxies_environment``, over any mapping): scheme (``http``,
    ``https``, ``all``, ``no``) -> (variable name, value). A lower-case variable wins over its
    upper-case form, an empty one unsets it, and ``HTTP_PROXY`` is ignored when
    ``REQUEST_METHOD`` is set (a CGI script, where a client can set it: "httpoxy")."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy"):
            found[name.lower()[:-6]] = (name, value)
    if "REQUEST_METHOD" in environ:
        found.pop("http", None)
    for name, value in environ.items():
        if name.endswith("_proxy") and name == name.lower():
            if value:
                found[name[:-6]] = (name, value)
            else:
                found.pop(name[:-6], None)
    return found


def from_environment(environ: Mapping[str, str]) -> ProxyPolicy:
    """The proxies the environment sets, as curl and requests choose them: ``http_proxy`` for
    ``http://`` targets, ``https_proxy`` for ``https://`` ones, ``all_proxy`` for either when
    its own is not set; ``no_proxy`` sends hosts directly. ConfigError (naming the variable,
    never its value) for one that is not an ``http://`` proxy URL."""
    found = environment_proxies(environ)
    chosen: dict[str, ProxyUrl | None] = {}
    names: list[str] = []
    for scheme in ("http", "https"):
        entry = found.get(scheme) or found.get("all")
        chosen[scheme] = None if entry is None else parse_proxy_url(entry[1], entry[0])
        if entry is not None and entry[0] not in names:
            names.append(entry[0])
    no_proxy = parse_no_proxy(found["no"][1]) if "no" in found else ()
    return ProxyPolicy(chosen["http"], chosen["https"], no_proxy, " and ".join(names))


def proxy_policy(setting: ProxySetting, source: str, environ: Mapping[str, str]) -> ProxyPolicy:
    """The policy a setting asks for: ``"env"`` the environment's, ``"none"`` (any case) or
    ``None`` none, anything else a proxy URL that every request goes through but for the hosts
    of the environment's ``NO_PROXY``. ConfigError (naming ``source`` or the variable, never
    the value) for a proxy URL that cannot be used."""
    if setting is None or setting.strip().lower() == "none":
        return DIRECT
    if setting.strip().lower() == "env":
        return from_environment(environ)
    proxy = parse_proxy_url(setting, source)
    no_proxy = environment_proxies(environ).get("no")
    return ProxyPolicy(proxy, proxy, parse_no_proxy(no_proxy[1]) if no_proxy else (), source)
