"""The proxy rules as pure values: proxy URLs, the environment's variables, NO_PROXY matching."""

from __future__ import annotations

import base64
import ipaddress
import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fetchpipe import ConfigError
from fetchpipe.engine.proxies import (
    DIRECT,
    ProxyUrl,
    bypasses,
    environment_proxies,
    from_environment,
    parse_no_proxy,
    parse_proxy_url,
    proxy_policy,
)

SECRET = "s3cr3t-9f3e"

# --- proxy URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("http://proxy.corp:3128", "proxy.corp", 3128),
        ("proxy.corp:3128", "proxy.corp", 3128),  # no scheme: http, as curl and requests read it
        ("http://PROXY.corp/", "proxy.corp", 80),  # no port: the scheme's, as requests does
        ("http://[::1]:8080", "::1", 8080),
        ("  http://10.0.0.5:3128  ", "10.0.0.5", 3128),
    ],
)
def test_a_proxy_url_is_read_as_curl_and_requests_read_it(text: str, host: str, port: int) -> None:
    proxy = parse_proxy_url(text, "--proxy")
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (host, port, "", "")
    assert proxy.authorization is None
    assert proxy.address.startswith("http://") and str(proxy) == proxy.address == proxy.url


def test_proxy_credentials_are_decoded_used_and_never_shown() -> None:
    written = "http://corp%5Cme:pa%3Ass%2Fw%40rd@proxy:3128"
    proxy = parse_proxy_url(written, "HTTPS_PROXY")
    assert (proxy.username, proxy.password) == ("corp\\me", "pa:ss/w@rd")
    assert proxy.secrets == {"corp\\me", "pa:ss/w@rd"}
    assert str(proxy) == "http://***@proxy:3128" and proxy.address == "http://proxy:3128"
    assert "pa:ss" not in repr(proxy) and "corp" not in repr(proxy)
    assert parse_proxy_url(proxy.url, "again") == proxy  # the client's URL reads back the same
    assert proxy.authorization == "Basic " + base64.b64encode(b"corp\\me:pa:ss/w@rd").decode()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("socks5://user:" + SECRET + "@proxy:1080", "SOCKS proxy"),
        ("https://user:" + SECRET + "@proxy:443", "https:// proxy"),
        ("http://user:" + SECRET + "@proxy:port", "port cannot be read"),
        ("http://user:" + SECRET + "@proxy:3128/path", "path or a query"),
        ("http://user:" + SECRET + "@:3128", "names no host"),
        ("http://proxy:3128\r\nX: " + SECRET, "control character"),
        ("   ", "is empty"),
    ],
)
def test_a_proxy_url_that_cannot_be_used_is_refused_without_quoting_it(
    text: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        parse_proxy_url(text, "HTTPS_PROXY")
    message = str(caught.value)
    assert message.startswith("HTTPS_PROXY ") and "HINT" in message
    assert SECRET not in message and "someone" not in message


# --- the environment ------------------------------------------------------------------------------


def test_the_environment_is_read_as_urllib_reads_it() -> None:
    environ = {
        "HTTP_PROXY": "http://upper:1",
        "http_proxy": "http://lower:1",  # lower case wins
        "HTTPS_PROXY": "http://secure:1",
        "https_proxy": "",  # an empty lower-case variable unsets the upper-case one
        "ALL_PROXY": "http://all:1",
        "NO_PROXY": "internal",
        "PATH": "/bin",
    }
    found = {scheme: value for scheme, (_, value) in environment_proxies(environ).items()}
    assert found == {"http": "http://lower:1", "all": "http://all:1", "no": "internal"}
    policy = from_environment(environ)
    assert policy.http is not None and policy.http.host == "lower"
    assert policy.https is not None and policy.https.host == "all"  # ALL_PROXY for the rest
    assert policy.proxy_for("https://api.internal/x") is None
    assert policy.source == "http_proxy and ALL_PROXY"


def test_http_proxy_in_upper_case_is_ignored_in_a_cgi_script() -> None:
    cgi = {"REQUEST_METHOD": "GET", "HTTP_PROXY": "http://from-a-client-header:1"}
    assert from_environment(cgi) == DIRECT  # "httpoxy": a client sets HTTP_PROXY there
    assert from_environment({**cgi, "http_proxy": "http://mine:1"}).http == ProxyUrl("mine", 1)


def test_our_environment_reading_agrees_with_urllib(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"HTTP_PROXY": "http://a:1", "https_proxy": "http://b:2", "No_Proxy": "c"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    ours = {scheme: value for scheme, (_, value) in environment_proxies(environ).items()}
    assert ours == urllib.request.getproxies_environment()


def test_a_bad_environment_proxy_names_its_variable_not_its_value() -> None:
    with pytest.raises(ConfigError) as caught:
        from_environment({"ALL_PROXY": f"socks5h://me:{SECRET}@proxy:1080"})
    assert str(caught.value).startswith("ALL_PROXY names a SOCKS proxy")
    assert SECRET not in str(caught.value) and "--no-proxy" in str(caught.value)


def test_settings_choose_the_environment_none_or_a_proxy_for_everything() -> None:
    environ = {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "skip.me"}
    assert proxy_policy("env", "--proxy", environ) == from_environment(environ)
    assert proxy_policy(None, "--proxy", environ) == DIRECT
    assert proxy_policy("None", "--proxy", environ) == DIRECT
    given = proxy_policy("http://given:2", "--proxy", environ)
    assert given.http == given.https == ProxyUrl("given", 2)
    assert given.proxy_for("http://a.skip.me/") is None  # NO_PROXY applies, as with curl -x
    assert given.proxy_for("ftp://a.example/") is None  # only http(s) goes through a proxy
    assert not DIRECT.active and given.active


# --- NO_PROXY ------------------------------------------------------------------------------------

CASES = [
    # entries, host, port, bypassed?  (curl's and requests' documented examples among them)
    ("example.com", "example.com", 443, True),
    ("example.com", "www.example.com", 443, True),
    ("example.com", "notexample.com", 443, False),
    (".example.com", "example.com", 80, True),  # a leading dot changes nothing
    ("*.example.com", "api.example.com", 80, True),
    ("Example.COM.", "API.example.com.", 80, True),  # any case, trailing dots
    ("example.com:8080", "example.com", 8080, True),
    ("example.com:8080", "example.com", 443, False),  # a port in the entry must match
    ("*", "anything.at.all", 1, True),
    ("a.test, *", "anything.at.all", 1, True),  # * anywhere in the list
    ("a.test b.test", "b.test", 80, True),  # spaces separate too
    ("10.0.0.1", "10.0.0.1", 80, True),
    ("10.0.0.0/8", "10.20.30.40", 80, True),
    ("10.0.0.0/8", "11.0.0.1", 80, False),
    ("0.1", "10.0.0.1", 80, False),  # no text suffix on addresses (urllib would bypass)
    ("10.0.0.1:8080", "10.0.0.1", 80, False),
    ("::1", "[::1]", 80, True),
    ("[::1]:8080", "::1", 8080, True),
    ("fd00::/8", "[fd12::5]", 80, True),
    ("localhost", "127.0.0.1", 80, False),  # names are not resolved
    ("127.0.0.1", "localhost", 80, False),
    ("", "example.com", 80, False),
    (":80, /x, a b/c", "example.com", 80, False),  # entries that match nothing
]


@pytest.mark.parametrize(("entries", "host", "port", "expected"), CASES)
def test_no_proxy_entries_match_as_curl_and_requests_match_them(
    entries: str, host: str, port: int, expected: bool
) -> None:
    assert bypasses(parse_no_proxy(entries), host, port) is expected


labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
top_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)
names = st.builds(
    lambda parts, top: ".".join([*parts, top]), st.lists(labels, max_size=3), top_labels
)
"""Host names (a top label of letters, as RFC 1123 has it: never an IP address, which names
do not match)."""
ports = st.integers(min_value=1, max_value=65535)


@given(names, st.lists(labels, max_size=3), ports)
def test_a_name_bypasses_for_itself_and_every_subdomain(
    name: str, prefix: list[str], port: int
) -> None:
    host = ".".join([*prefix, name])
    assert bypasses(parse_no_proxy(name), host, port)
    assert bypasses(parse_no_proxy("." + name), host, port)


@given(names, labels, ports)
def test_a_name_does_not_bypass_a_host_that_only_ends_with_its_text(
    name: str, glued: str, port: int
) -> None:
    assert not bypasses(parse_no_proxy(name), glued + name, port)


@given(names, ports, ports)
def test_an_entry_with_a_port_bypasses_that_port_only(name: str, port: int, other: int) -> None:
    rules = parse_no_proxy(f"{name}:{port}")
    assert bypasses(rules, name, port)
    assert bypasses(rules, name, other) is (other == port)


@given(st.ip_addresses(v=4), st.integers(min_value=8, max_value=32), st.ip_addresses(v=4))
def test_a_network_bypasses_exactly_its_addresses(
    base: ipaddress.IPv4Address, prefix: int, host: ipaddress.IPv4Address
) -> None:
    network = ipaddress.ip_network(f"{base}/{prefix}", strict=False)
    assert bypasses(parse_no_proxy(str(network)), str(host), 80) is (host in network)


@given(st.lists(names, min_size=1, max_size=4), names)
def test_names_bypass_as_the_standard_library_says(entries: list[str], host: str) -> None:
    """On plain names (no port, no address), the rules agree with urllib's
    ``proxy_bypass_environment``: the one it reads wrongly are addresses and ports."""
    no_proxy = ",".join(entries)
    expected = urllib.request.proxy_bypass_environment(host, {"no": no_proxy})
    assert bypasses(parse_no_proxy(no_proxy), host, 80) is bool(expected)


def test_remembered_routes_answer_as_the_policy_does() -> None:
    policy = proxy_policy("http://p:1", "--proxy", {"NO_PROXY": "direct.test"})
    route = policy.remembered(size=2)
    for _ in range(2):  # the second time from memory, past its size too
        for scheme, host, expected in [
            ("http", "a.test", policy.http),
            ("https", "direct.test", None),
            ("https", "b.test", policy.https),
        ]:
            assert route(scheme, host, None) == expected
