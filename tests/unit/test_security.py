"""The transport's security rules as pure values and functions: no network."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Awaitable, Callable

import pytest
from yarl import URL

from fetchpipe import ConfigError, ErrorKind, TransportError
from fetchpipe._redact import CREDENTIAL_HEADERS
from fetchpipe.engine.security import (
    BlockedAddressError,
    SecurityPolicy,
    address_refusal,
    blocked_message,
    check_request_text,
    classify_address,
    find_control_char,
    guarded_resolve,
    host_refusal,
    origin,
    refused_addresses,
    url_path_prefix,
    verify_tls,
    without_params,
)

SECRET = "s3cr3t-CANARY-value"
MiB = 1024 * 1024

# --- the policy -------------------------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = SecurityPolicy()
    assert policy.max_redirects == 10 and policy.max_encodings == 2
    assert policy.block_private is False and policy.allow_addresses == ()
    assert policy.insecure_hosts == frozenset() and policy.credential_params == frozenset()
    # The credential headers of fetchpipe._redact (a change: X-Api-Key and the like joined the
    # three standard ones, so they stay behind on a redirect to another origin too).
    assert policy.credential_headers == CREDENTIAL_HEADERS
    assert {"authorization", "proxy-authorization", "cookie"} < policy.credential_headers
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_redirects = 3  # type: ignore[misc]


def test_policy_normalises_names_and_hosts() -> None:
    policy = SecurityPolicy(
        allow_addresses=["10.0.0.0/8", " 127.0.0.1 "],  # type: ignore[arg-type]
        insecure_hosts={"Dev.Internal.", "[::1]"},  # type: ignore[arg-type]
        credential_headers=frozenset({"X-Api-Key"}),
        credential_params=frozenset({"API_KEY"}),
    )
    assert policy.allow_addresses == ("10.0.0.0/8", " 127.0.0.1 ")
    assert policy.insecure_hosts == {"dev.internal", "::1"}
    assert policy.credential_headers == {"x-api-key"}
    assert policy.credential_params == {"api_key"}
    # The three standard credential headers always count, whatever the set says.
    assert {"authorization", "cookie", "x-api-key"} <= policy.all_credential_headers
    assert dataclasses.replace(policy, max_redirects=0).credential_params == {"api_key"}


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"max_redirects": -1}, "use 0 to not follow redirects"),
        ({"max_redirects": True}, "max_redirects must be a whole number"),
        ({"max_encodings": 0}, "1 refuses stacked encodings"),
        ({"block_private": "yes"}, "block_private must be True or False"),
        ({"allow_addresses": "127.0.0.1"}, "allow_addresses=('10.0.0.0/8',)"),
        ({"allow_addresses": ("localhost",)}, "no host names"),
        ({"allow_addresses": ("10.0.0.0/33",)}, "not an IP address or a CIDR network"),
        ({"insecure_hosts": frozenset({"https://dev.internal"})}, "without scheme"),
        ({"insecure_hosts": frozenset({"dev.internal:8443"})}, "without scheme, port"),
        ({"insecure_hosts": frozenset({""})}, "not a non-empty string"),
        ({"credential_headers": frozenset({"X-Key: v"})}, "write the bare name"),
        ({"credential_params": frozenset({"key=1"})}, "write the bare name"),
    ],
)
def test_policy_rejects_bad_settings_with_a_hint(options: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SecurityPolicy(**options)  # type: ignore[arg-type]
    assert says in str(caught.value)


# --- control characters -----------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\r", "\n", "\x00", "\x01", "\x1b", "\x7f", "\t"])
def test_control_characters_in_the_url_are_refused(char: str) -> None:
    with pytest.raises(TransportError) as caught:
        check_request_text(f"http://h/a{char}b?key={SECRET}", None, None)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    message = caught.value.message
    assert f"URL '/a\\x{ord(char):02x}b'" in message and SECRET not in message


def test_a_control_character_in_the_query_is_named_but_not_echoed() -> None:
    with pytest.raises(TransportError) as caught:
        check_request_text(f"http://u:{SECRET}@h/path?token={SECRET}\r\nX: y", None, None)
    message = caught.value.message
    assert "URL '/path'" in message and "in its query" in message
    assert SECRET not in message


def test_the_url_prefix_is_short_escaped_and_without_authority_or_query() -> None:
    assert url_path_prefix(f"https://user:{SECRET}@h/x\ny?q={SECRET}") == "/x\\x0ay"
    assert url_path_prefix("https://h") == "/"
    assert url_path_prefix("https://h/" + "a" * 100).endswith("a...")
    assert len(url_path_prefix("https://h/" + "a" * 100)) == 43


@pytest.mark.parametrize("char", ["\r", "\n", "\x00", "\x7f", "\x1f"])
def test_control_characters_in_a_header_value_are_refused_without_echo(char: str) -> None:
    headers = {"Authorization": f"Bearer {SECRET}{char}Injected: 1"}
    with pytest.raises(TransportError) as caught:
        check_request_text("http://h/", headers, None)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert "header 'Authorization' value" in caught.value.message
    assert SECRET not in caught.value.message and "Injected" not in caught.value.message


def test_a_tab_inside_a_header_value_is_allowed() -> None:
    check_request_text("http://h/", {"X-Note": "a\tb"}, None)  # RFC 9110 allows HTAB


@pytest.mark.parametrize("name", ["X-Foo\r\nX-Bar", "X\x00", "", "X Foo", "X:Foo"])
def test_bad_header_names_are_refused(name: str) -> None:
    with pytest.raises(TransportError, match="header name") as caught:
        check_request_text("http://h/", {name: "v"}, None)
    assert "\r" not in caught.value.message and "\x00" not in caught.value.message


def test_control_characters_in_query_params_are_refused_without_echo() -> None:
    with pytest.raises(TransportError) as caught:
        check_request_text("http://h/", None, {"api_key": f"{SECRET}\r\n", "page": 2})
    assert "query parameter 'api_key' value" in caught.value.message
    assert SECRET not in caught.value.message
    with pytest.raises(TransportError, match="query parameter name 'a\\\\x0ab'"):
        check_request_text("http://h/", None, {"a\nb": "1"})
    check_request_text("http://h/", None, {"page": 2, "ratio": 0.5, "q": "a b"})


def test_find_control_char() -> None:
    assert find_control_char("plain text") is None
    assert find_control_char("a\tb") == 1
    assert find_control_char("a\tb", allow_tab=True) is None
    assert find_control_char("ab\x7f") == 2


# --- origins and credential parameters -------------------------------------------------------


def test_an_origin_is_scheme_host_and_port_with_the_default_port_filled_in() -> None:
    assert origin("HTTPS://API.Example.com/v1?x=1") == ("https", "api.example.com", 443)
    assert origin("http://api.example.com:80/") == origin(URL("http://API.example.com/b"))
    assert origin("http://h:8080/") == ("http", "h", 8080)
    assert origin("http://[::1]:8080/") == ("http", "::1", 8080)
    assert origin("http://h/") != origin("https://h/") != origin("https://h:8443/")
    assert origin("http://h:port/") == ("http", "h", None)  # not a number: not port 80
    assert origin("/relative") == ("", None, None)


def test_without_params_drops_the_named_parameters_and_keeps_the_type() -> None:
    names = frozenset({"api_key"})
    url = f"https://h/a?page=2&API_KEY={SECRET}&api_key={SECRET}&q=x"
    dropped = without_params(url, names)
    assert isinstance(dropped, str) and SECRET not in dropped
    assert URL(dropped).query == {"page": "2", "q": "x"}
    assert without_params(URL(url), names) == URL("https://h/a?page=2&q=x")
    exact = without_params(url, names, any_case=False)
    assert URL(exact).query == {"page": "2", "API_KEY": SECRET, "q": "x"}


def test_without_params_leaves_a_url_without_them_untouched() -> None:
    untouched = "https://h/a?b=x%20y&c=%7E"
    assert without_params(untouched, frozenset({"api_key"})) is untouched
    assert without_params(untouched, frozenset()) is untouched
    assert without_params("https://h/a", frozenset({"api_key"})) == "https://h/a"


# --- private addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address"),
        ("127.255.0.9", "loopback address"),
        ("::1", "loopback address"),
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.1.1", "private address"),
        ("fc00::1", "private address"),
        ("fd12:3456::1", "private address"),
        ("169.254.169.254", "link-local address (cloud metadata)"),
        ("169.254.1.1", "link-local address"),
        ("fe80::1", "link-local address"),
        ("fe80::1%eth0", "link-local address"),
        ("fd00:ec2::254", "private address (cloud metadata)"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("100.64.0.1", "shared address (carrier-grade NAT)"),
        ("224.0.0.1", "multicast address"),
        ("ff02::1", "multicast address"),
        ("::ffff:127.0.0.1", "loopback address"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local address (cloud metadata)"),
        ("64:ff9b::7f00:1", "loopback address"),  # NAT64 of 127.0.0.1
        ("fec0::1", "site-local address"),
        ("240.0.0.1", "private address"),
        ("198.18.0.1", "private address"),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
    ],
)
def test_classify_address(address: str, reason: str | None) -> None:
    assert classify_address(address) == reason


def test_classify_address_rejects_names() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        classify_address("localhost")


def test_address_refusal_follows_the_policy() -> None:
    assert address_refusal(SecurityPolicy(), "127.0.0.1") is None  # guard off
    guard = SecurityPolicy(block_private=True)
    assert address_refusal(guard, "127.0.0.1") == "loopback address"
    assert address_refusal(guard, "93.184.215.14") is None
    assert address_refusal(guard, "localhost") == "address that cannot be checked"
    allowed = SecurityPolicy(block_private=True, allow_addresses=("127.0.0.1", "10.0.0.0/8"))
    assert address_refusal(allowed, "127.0.0.1") is None
    assert address_refusal(allowed, "10.200.3.4") is None
    assert address_refusal(allowed, "127.0.0.2") == "loopback address"
    assert address_refusal(allowed, "::1") == "loopback address"


def test_blocked_message_says_why_and_how_to_allow() -> None:
    message = blocked_message("metadata.internal", [("169.254.169.254", "link-local address")])
    assert message.startswith(
        "metadata.internal resolves to 169.254.169.254, a link-local address; "
        "refused (block_private). HINT: add it to allow_addresses"
    )
    assert "allow_addresses=('169.254.169.254',)" in message
    literal = blocked_message("127.0.0.1", [("127.0.0.1", "loopback address")])
    assert literal.startswith("127.0.0.1 is a loopback address; refused (block_private)")
    many = blocked_message("h", [(f"10.0.0.{i}", "private address") for i in range(5)])
    assert "(and 2 more)" in many


# --- a host's resolved addresses under the guard ---------------------------------------------

GUARD = SecurityPolicy(block_private=True)


class Resolver:
    """Answers from a table, and keeps the names it was asked for."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


async def test_a_host_resolving_to_a_private_address_is_refused_in_the_guard_s_words() -> None:
    resolve = Resolver({"metadata.internal": ["169.254.169.254"]})
    reason = await host_refusal(GUARD, "metadata.internal", resolve=resolve)
    assert reason == blocked_message(
        "metadata.internal", [("169.254.169.254", "link-local address (cloud metadata)")]
    )
    assert reason.startswith(
        "metadata.internal resolves to 169.254.169.254, a link-local address (cloud metadata); "
        "refused (block_private). HINT: add it to allow_addresses"
    )
    assert resolve.asked == ["metadata.internal"]


async def test_a_host_with_public_or_allowed_addresses_is_not_refused() -> None:
    resolve = Resolver({"api.example": ["93.184.215.14"], "dev.internal": ["10.1.2.3"]})
    assert await host_refusal(GUARD, "api.example", resolve=resolve) is None
    allowed = SecurityPolicy(block_private=True, allow_addresses=("10.0.0.0/8",))
    assert await host_refusal(allowed, "dev.internal", resolve=resolve) is None
    refused = await host_refusal(GUARD, "dev.internal", resolve=resolve)
    assert refused == blocked_message("dev.internal", [("10.1.2.3", "private address")])


async def test_a_mixed_answer_is_refused_only_when_every_address_must_pass() -> None:
    resolve = Resolver({"mixed.example": ["93.184.215.14", "127.0.0.1", "10.0.0.1"]})
    assert await host_refusal(GUARD, "mixed.example", resolve=resolve) is None
    reason = await host_refusal(GUARD, "mixed.example", resolve=resolve, every_address=True)
    assert reason == blocked_message(
        "mixed.example", [("127.0.0.1", "loopback address"), ("10.0.0.1", "private address")]
    )


async def test_refused_addresses_gives_each_refused_address_with_why_for_the_caller_s_words() -> (
    None
):
    resolve = Resolver({"mixed.example": ["93.184.215.14", "127.0.0.1", "10.0.0.1"]})
    assert await refused_addresses(GUARD, "mixed.example", resolve=resolve) == []
    refused = await refused_addresses(GUARD, "mixed.example", resolve=resolve, every_address=True)
    assert refused == [("127.0.0.1", "loopback address"), ("10.0.0.1", "private address")]
    assert await refused_addresses(GUARD, "93.184.215.14", resolve=resolve) == []


async def test_an_ip_literal_is_its_own_address_and_is_not_resolved() -> None:
    resolve = Resolver({})
    reason = await host_refusal(GUARD, "127.0.0.1", resolve=resolve)
    assert reason is not None
    assert reason.startswith("127.0.0.1 is a loopback address; refused (block_private).")
    v6 = await host_refusal(GUARD, "[::1]", resolve=resolve)
    assert v6 is not None and v6.startswith("::1 is a loopback address; refused")
    assert await host_refusal(GUARD, "8.8.8.8", resolve=resolve) is None
    assert resolve.asked == []


async def test_without_block_private_nothing_is_resolved_or_refused() -> None:
    resolve = Resolver({"localhost": ["127.0.0.1"]})
    assert await host_refusal(SecurityPolicy(), "localhost", resolve=resolve) is None
    assert resolve.asked == []
    forced = dataclasses.replace(SecurityPolicy(), block_private=True)
    assert await host_refusal(forced, "localhost", resolve=resolve) is not None


async def test_a_host_that_does_not_resolve_raises_the_resolver_s_error() -> None:
    with pytest.raises(socket.gaierror):
        await host_refusal(GUARD, "nowhere.invalid", resolve=Resolver({}))


async def test_guarded_resolve_keeps_the_allowed_answers_of_any_shape() -> None:
    answers: list[dict[str, object]] = [
        {"host": "127.0.0.1", "port": 80},
        {"host": "93.184.215.14", "port": 80},
    ]

    def resolving(
        found: list[dict[str, object]],
    ) -> Callable[[str], Awaitable[list[dict[str, object]]]]:
        async def resolve(host: str) -> list[dict[str, object]]:
            return found

        return resolve

    def address(answer: dict[str, object]) -> str:
        return str(answer["host"])

    assert await guarded_resolve(GUARD, "mixed.example", resolving(answers), address) == [
        answers[1]
    ]
    with pytest.raises(BlockedAddressError, match=r"^mixed\.example resolves to 127\.0\.0\.1, a "):
        await guarded_resolve(
            GUARD, "mixed.example", resolving(answers), address, every_address=True
        )
    with pytest.raises(BlockedAddressError, match=r"^local\.example resolves to 127\.0\.0\.1, a "):
        await guarded_resolve(GUARD, "local.example", resolving(answers[:1]), address)
    assert await guarded_resolve(GUARD, "gone.example", resolving([]), address) == []


# --- TLS --------------------------------------------------------------------------------------


def test_tls_is_verified_except_for_insecure_hosts() -> None:
    policy = SecurityPolicy(insecure_hosts=frozenset({"dev.internal"}))
    assert verify_tls(policy, "api.example.com") is True
    assert verify_tls(policy, "dev.internal") is False
    assert verify_tls(policy, "DEV.internal.") is False
    assert verify_tls(policy, "sub.dev.internal") is True  # exact hosts, no wildcards
    assert verify_tls(SecurityPolicy(), "dev.internal") is True
    assert verify_tls(policy, None) is True
