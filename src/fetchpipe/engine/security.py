"""Security rules of the transports as values and functions ("nothing lost, nothing leaked").

Everything here is testable without a network: the transports ask these functions what to do
and enforce the answer (the redirect rules are :mod:`~fetchpipe.engine.transports.redirects`').

* :class:`SecurityPolicy`: the settings, validated up front.
* :func:`check_request_text`: no control characters in a URL, query parameter or header.
* :func:`origin` / :func:`without_params`: what credentials may not leave, and a URL without
  its credential parameters.
* :func:`classify_address` / :func:`address_refusal`: the private-address guard, and
  :func:`guarded_resolve` / :func:`host_refusal`: a host's resolved addresses under it (the
  transport's resolver, and any caller that must check a host before it is fetched).
* :func:`verify_tls`: per-host TLS verification.

No message made here contains a header value, a credential query parameter, a URL query or
URL user info: those may be secrets, and messages end up in logs and result files.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

from yarl import URL

from fetchpipe._exceptions import ConfigError, TransportError
from fetchpipe._models import ErrorKind
from fetchpipe._redact import CREDENTIAL_HEADERS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    """What the transport refuses to do. The defaults are safe for public APIs.

    ``max_redirects``: redirects followed per request (0: do not follow; the 3xx comes back).
    ``block_private``: refuse to connect to loopback, private, link-local and other non-global
    addresses (checked on the resolved address), except those in ``allow_addresses`` (IPs or
    CIDR networks). ``insecure_hosts``: hosts whose TLS certificate is not verified.
    ``max_encodings``: how many stacked ``Content-Encoding`` values a response may have.
    ``credential_headers`` / ``credential_params``: header and query parameter names (any case)
    that are secrets: never sent to another origin, never sent over a downgrade to plain HTTP.
    The headers of :data:`fetchpipe._redact.CREDENTIAL_HEADERS` (``Authorization``, ``Cookie``,
    ``X-Api-Key``, ...) are always credentials; no query parameter is unless named here (a
    redirect target's own signed query must survive).
    """

    max_redirects: int = 10
    block_private: bool = False
    allow_addresses: tuple[str, ...] = ()
    insecure_hosts: frozenset[str] = frozenset()
    max_encodings: int = 2
    credential_headers: frozenset[str] = CREDENTIAL_HEADERS
    credential_params: frozenset[str] = frozenset()
    _networks: tuple[IPNetwork, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_count("max_redirects", self.max_redirects, 0, "use 0 to not follow redirects")
        _check_count("max_encodings", self.max_encodings, 1, "1 refuses stacked encodings")
        if not isinstance(self.block_private, bool):
            raise ConfigError(f"block_private must be True or False, got {self.block_private!r}.")
        allow = _string_tuple("allow_addresses", self.allow_addresses, "('10.0.0.0/8',)")
        object.__setattr__(self, "allow_addresses", allow)
        object.__setattr__(self, "_networks", tuple(_network(entry) for entry in allow))
        hosts = _string_tuple("insecure_hosts", self.insecure_hosts, "{'dev.internal'}")
        object.__setattr__(self, "insecure_hosts", frozenset(_host(h) for h in hosts))
        names = _string_tuple("credential_headers", self.credential_headers, "{'x-api-key'}")
        object.__setattr__(self, "credential_headers", frozenset(_header_name(n) for n in names))
        params = _string_tuple("credential_params", self.credential_params, "{'api_key'}")
        object.__setattr__(self, "credential_params", frozenset(_param_name(p) for p in params))

    @property
    def all_credential_headers(self) -> frozenset[str]:
        """``credential_headers`` plus those that are always credentials (lower case)."""
        return self.credential_headers | CREDENTIAL_HEADERS


def _check_count(name: str, value: object, least: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(
            f"SecurityPolicy.{name} must be a whole number >= {least}, got {value!r}. HINT: {hint}."
        )


def _string_tuple(name: str, value: object, example: str) -> tuple[str, ...]:
    """Accept any collection of strings; a bare string is the classic mistake, refuse it."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(
            f"SecurityPolicy.{name} must be a collection of strings, got {value!r}. "
            f"HINT: write {name}={example}."
        )
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                f"SecurityPolicy.{name} holds {item!r}, which is not a non-empty string. "
                f"HINT: write {name}={example}."
            )
    return items


def _network(entry: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        raise ConfigError(
            f"allow_addresses entry {entry!r} is not an IP address or a CIDR network. "
            "HINT: write '10.0.0.5', '10.0.0.0/8' or 'fd00::/8' (no host names: the guard "
            "checks resolved addresses)."
        ) from None


def _host(host: str) -> str:
    cleaned = host.strip().lower().rstrip(".")
    if cleaned.startswith("[") and cleaned.endswith("]"):
        cleaned = cleaned[1:-1]
    bad = any(c in cleaned for c in "/ @?#") or (":" in cleaned and not _is_ip(cleaned))
    if not cleaned or bad:
        raise ConfigError(
            f"insecure_hosts entry {host!r} is not a host name. "
            "HINT: write 'dev.internal' or '10.0.0.5', without scheme, port or path."
        )
    return cleaned


def _bare_name(setting: str, what: str, forbidden: str, example: str) -> Callable[[str], str]:
    """A check of one entry of ``setting``: a ``what`` in lower case, without control
    characters or any of ``forbidden``."""

    def check(name: str) -> str:
        cleaned = name.strip().lower()
        if find_control_char(cleaned) is not None or any(c in cleaned for c in forbidden):
            raise ConfigError(
                f"{setting} entry '{escaped(name)}' is not a {what}. "
                f"HINT: write the bare name, e.g. '{example}'."
            )
        return cleaned

    return check


_header_name = _bare_name("credential_headers", "header name", ": ", "x-api-key")
_param_name = _bare_name("credential_params", "query parameter name", "=&?#", "api_key")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- control characters (CVE-2019-9740 style injection) -------------------------------------

# C0 controls and DEL. A header value may hold HTAB (RFC 9110 5.5 allows it between words);
# nothing else in a request may hold any of them. Precompiled: this runs on every request.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SHOWN = 40  # characters of a URL path echoed in a message


def find_control_char(text: str, *, allow_tab: bool = False) -> int | None:
    """Index of the first control character in ``text`` (C0 or DEL), or ``None``."""
    match = (_CONTROL_IN_VALUE if allow_tab else _CONTROL).search(text)
    return None if match is None else match.start()


def escaped(text: str) -> str:
    """``text`` with control characters as ``\\xNN``, cut to a short prefix, for messages."""
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text[:_SHOWN])
    return shown + ("..." if len(text) > _SHOWN else "")


def _char_name(text: str, index: int) -> str:
    return f"\\x{ord(text[index]):02x}"


def url_path_prefix(url: str) -> str:
    """A short, escaped prefix of ``url``'s path: no scheme, user info, host or query."""
    rest = url.split("://", 1)[1] if "://" in url else url
    slash = rest.find("/")
    path = rest[slash:] if slash >= 0 else ""
    path = re.split(r"[?#]", path, maxsplit=1)[0]
    return escaped(path or "/")


def check_request_text(
    url: str,
    headers: Mapping[str, str] | None,
    params: Mapping[str, Any] | None,
) -> None:
    """Refuse a request whose URL, query parameters or headers hold control characters.

    aiohttp would not let a CR/LF through to the wire (yarl strips them from URLs, which
    silently changes the URL; header values fail deep in the writer), but the request should
    fail early, explicitly and without echoing what may be a secret. Runs on every request:
    ``str.isprintable`` (false for every control character) settles the common case.
    """
    index = None if url.isprintable() else find_control_char(url)
    if index is not None:
        in_query = " in its query" if "?" in url and index > url.index("?") else ""
        raise _refused(
            f"URL '{url_path_prefix(url)}' has a control character "
            f"({_char_name(url, index)}){in_query}"
        )
    if params:
        for name, value in params.items():
            name = str(name)
            if _has_control(name):
                raise _refused(f"query parameter name '{escaped(name)}' has a control character")
            if isinstance(value, str) and _has_control(value):
                char = _char_name(value, find_control_char(value) or 0)
                raise _refused(
                    f"query parameter '{escaped(name)}' value has a control character ({char})"
                )
    if headers:
        for name, value in headers.items():
            problem = header_problem(name, value)
            if problem is not None:
                raise _refused(problem)


def _has_control(text: str, *, allow_tab: bool = False) -> bool:
    """``find_control_char`` with a fast path: printable text has no control character."""
    return not text.isprintable() and find_control_char(text, allow_tab=allow_tab) is not None


def header_problem(name: str, value: str) -> str | None:
    """What is wrong with one header (never quoting the value), or ``None``."""
    if not isinstance(name, str) or not isinstance(value, str):
        return f"header '{escaped(str(name))}' is not a string name with a string value"
    if not name or ":" in name or " " in name or _has_control(name):
        return f"header name '{escaped(name)}' is empty or has a control character, ':' or space"
    if _has_control(value, allow_tab=True):
        char = _char_name(value, find_control_char(value, allow_tab=True) or 0)
        return f"header '{name}' value has a control character ({char})"
    return None


def _refused(problem: str) -> TransportError:
    return TransportError(
        ErrorKind.INVALID_REQUEST,
        f"{problem}; refused before sending (CR, LF, NUL and other control characters can "
        "inject headers or requests). HINT: strip line breaks and control characters from "
        "the input.",
    )


# --- origins and credential parameters -------------------------------------------------------


def origin(url: URL | str) -> tuple[str, str | None, int | None]:
    """Scheme, host and port of a URL (lower case; the scheme's default port when none is
    written): what must not change for credentials to go along.

    A string is read as yarl reads it, so that a string and its ``URL`` have one origin; one
    whose port is not a number has the port None.
    """
    if isinstance(url, str):
        try:
            parsed = URL(url)
        except ValueError:  # the port is not a number
            parts = urlsplit(url)
            return parts.scheme.lower(), parts.hostname, None
        return parsed.scheme, parsed.host, parsed.port
    return url.scheme, url.host, url.port


@overload
def without_params(url: URL, names: Collection[str], *, any_case: bool = True) -> URL: ...


@overload
def without_params(url: str, names: Collection[str], *, any_case: bool = True) -> str: ...


def without_params(url: URL | str, names: Collection[str], *, any_case: bool = True) -> URL | str:
    """``url`` without the query parameters named in ``names`` (credentials that must not go
    along, or be kept), of the type it came as; untouched when it has none of them.

    ``any_case``: a parameter is named whatever the case of its name (``names`` in lower case,
    as ``SecurityPolicy.credential_params`` holds them); otherwise only as written.
    """
    parsed = URL(url) if isinstance(url, str) else url
    if not names or not parsed.query_string:
        return url
    drop = [key for key in parsed.query if (key.lower() if any_case else key) in names]
    if not drop:
        return url
    kept = parsed.without_query_params(*drop)
    return str(kept) if isinstance(url, str) else kept


# --- private addresses (SSRF guard) ----------------------------------------------------------

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SPECIAL: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.IPv4Network("169.254.169.254/32"), "link-local address (cloud metadata)"),
    (ipaddress.IPv6Network("fd00:ec2::254/128"), "private address (cloud metadata)"),
    (ipaddress.IPv4Network("100.64.0.0/10"), "shared address (carrier-grade NAT)"),
)


def classify_address(address: str | IPAddress) -> str | None:
    """Why ``address`` is not a public one ("loopback", "private", ...), or ``None`` if global.

    IPv4-mapped (``::ffff:127.0.0.1``) and NAT64 (``64:ff9b::7f00:1``) IPv6 addresses are
    judged by the IPv4 address they carry. Raises ``ValueError`` for a non-address.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        if ip.ipv4_mapped is not None:
            return classify_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return classify_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    for network, reason in _SPECIAL:
        if ip in network:
            return reason
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local address"
    if ip.is_private:
        return "private address"
    if ip.is_reserved:
        return "reserved address"
    if not ip.is_global:
        return "non-global address"
    return None


def address_refusal(policy: SecurityPolicy, address: str) -> str | None:
    """Why ``policy`` refuses to connect to ``address``, or ``None`` when it may.

    A string that is not an IP address is refused under ``block_private``: it cannot be
    checked, and only resolved addresses reach this function.
    """
    if not policy.block_private:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "address that cannot be checked"
    if any(ip in network for network in policy._networks):
        return None
    return classify_address(ip)


def blocked_message(host: str, addresses: list[tuple[str, str]]) -> str:
    """The refusal message: which host, which address(es), why, and how to allow it."""
    first = addresses[0][0]
    if len(addresses) == 1 and first == host:  # an IP literal in the URL
        what = f"{escaped(host)} is a {addresses[0][1]}"
    else:
        shown = ", ".join(f"{ip}, a {reason}" for ip, reason in addresses[:3])
        more = f" (and {len(addresses) - 3} more)" if len(addresses) > 3 else ""
        what = f"{escaped(host)} resolves to {shown}{more}"
    return (
        f"{what}; refused (block_private). "
        f"HINT: add it to allow_addresses (e.g. SecurityPolicy(allow_addresses=('{first}',))) "
        "if this host is meant to be reached."
    )


class BlockedAddressError(OSError):
    """A host whose addresses the policy refuses; the message (:func:`blocked_message`) says
    which, why, and how to allow them. An ``OSError``: raised in a resolver, aiohttp hands it
    on as a failed connection (in ``ClientConnectorDNSError``)."""

    def __init__(self, host: str, addresses: list[tuple[str, str]]) -> None:
        super().__init__(blocked_message(host, addresses))
        self.host = host
        self.addresses = addresses
        """The refused addresses, each with why (``"loopback address"``, ...)."""


async def guarded_resolve(
    policy: SecurityPolicy,
    host: str,
    resolve: Callable[[str], Awaitable[Sequence[A]]],
    address: Callable[[A], str],
    *,
    every_address: bool = False,
) -> list[A]:
    """Resolve ``host`` with ``resolve`` and keep the answers whose ``address`` the policy lets
    a connection go to.

    Raises :class:`BlockedAddressError` when none is left (a mixed answer keeps the allowed
    addresses, as the connection will only go to those) or, with ``every_address``, when any
    address is refused: for a caller that checks a host ahead of a fetch that may not go
    through this guard. Checking resolved addresses, not names, defeats DNS tricks (a
    public-looking name that resolves to 127.0.0.1 or 169.254.169.254).
    """
    found = await resolve(host)
    allowed: list[A] = []
    refused: list[tuple[str, str]] = []
    for answer in found:
        ip = address(answer)
        reason = address_refusal(policy, ip)
        if reason is None:
            allowed.append(answer)
        else:
            refused.append((ip, reason))
    if refused and (every_address or not allowed):
        raise BlockedAddressError(host, refused)
    return allowed


async def refused_addresses(
    policy: SecurityPolicy,
    host: str,
    *,
    every_address: bool = False,
    resolve: Callable[[str], Awaitable[Sequence[str]]] | None = None,
) -> list[tuple[str, str]]:
    """The addresses of ``host`` for which ``policy`` refuses it, each with why; empty when
    connections to it are allowed. The check of the transport's guarded resolver
    (:func:`guarded_resolve`), for a caller that words its own message.

    ``host`` is resolved by ``resolve`` (default: the system resolver, every address once); an
    IP literal is its own address. Nothing is resolved when ``block_private`` is off: the
    policy refuses no address then (``dataclasses.replace(policy, block_private=True)`` checks
    a host whatever the settings say). A host that does not resolve raises the resolver's
    ``OSError`` (``socket.gaierror``), for the caller to word.
    """
    if not policy.block_private:
        return []
    name = _unbracketed(host)
    lookup = _itself if _is_ip(name) else (resolve or system_addresses)
    try:
        await guarded_resolve(policy, name, lookup, str, every_address=every_address)
    except BlockedAddressError as exc:
        return exc.addresses
    return []


async def host_refusal(
    policy: SecurityPolicy,
    host: str,
    *,
    every_address: bool = False,
    resolve: Callable[[str], Awaitable[Sequence[str]]] | None = None,
) -> str | None:
    """Why ``policy`` refuses connections to ``host`` in the transport's words
    (:func:`blocked_message`), or ``None``; see :func:`refused_addresses`."""
    refused = await refused_addresses(policy, host, every_address=every_address, resolve=resolve)
    return blocked_message(_unbracketed(host), refused) if refused else None


def _unbracketed(host: str) -> str:
    """An IPv6 literal as written in a URL (``[::1]``) without its brackets."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


async def system_addresses(host: str) -> list[str]:
    """The addresses the system resolver gives for ``host``, each once, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _itself(address: str) -> list[str]:
    return [address]


# --- TLS --------------------------------------------------------------------------------------


def verify_tls(policy: SecurityPolicy, host: str | None) -> bool:
    """Whether to verify the TLS certificate of ``host``: always, but for ``insecure_hosts``."""
    return host is None or host.lower().rstrip(".") not in policy.insecure_hosts


# Built last: validating a policy uses the helpers above.
DEFAULT_POLICY = SecurityPolicy()
