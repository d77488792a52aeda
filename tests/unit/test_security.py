"""The transport's security rules as pure values and functions: no network."""

from __future__ import annotations

import dataclasses
import gzip
import re
import subprocess
import sys
import tracemalloc
import zlib

import brotli
import pytest

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd
from yarl import URL

from fetchpipe import ConfigError, ErrorKind, TransportError
from fetchpipe._redact import CREDENTIAL_HEADERS
from fetchpipe.engine.security import (
    MAX_MEMBERS,
    BoundedDecoder,
    Hop,
    SecurityPolicy,
    accept_encoding,
    address_refusal,
    blocked_message,
    carries_credentials,
    check_request_text,
    classify_address,
    content_encodings,
    decodable_encodings,
    find_control_char,
    next_hop,
    too_many_redirects,
    url_path_prefix,
    verify_tls,
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


# --- redirects --------------------------------------------------------------------------------

POLICY = SecurityPolicy(
    credential_headers=frozenset({"x-api-key"}), credential_params=frozenset({"api_key"})
)


def hop(url: str, method: str = "GET", **fields: object) -> Hop:
    return Hop(method, URL(url), **fields)  # type: ignore[arg-type]


def test_a_relative_location_resolves_against_the_current_url() -> None:
    assert next_hop(POLICY, hop("http://h/a/b?x=1"), 302, "c?y=2").url == URL("http://h/a/c?y=2")
    assert next_hop(POLICY, hop("http://h/a/b"), 301, "/root").url == URL("http://h/root")
    assert next_hop(POLICY, hop("https://h/a"), 301, "//cdn.example/x").url == URL(
        "https://cdn.example/x"
    )
    assert next_hop(POLICY, hop("http://h/a"), 302, "/b#frag").url == URL("http://h/b")


def test_the_original_query_params_do_not_follow_a_redirect() -> None:
    first = hop("http://h/a", params={"page": 2})
    assert next_hop(POLICY, first, 302, "/b").params is None


@pytest.mark.parametrize(
    ("status", "method", "after"),
    [
        (303, "POST", "GET"),
        (303, "PUT", "GET"),
        (303, "HEAD", "HEAD"),
        (301, "POST", "GET"),
        (302, "POST", "GET"),
        (301, "PUT", "PUT"),
        (302, "DELETE", "DELETE"),
        (307, "POST", "POST"),
        (308, "POST", "POST"),
        (308, "PATCH", "PATCH"),
    ],
)
def test_method_and_body_after_a_redirect(status: int, method: str, after: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": "7", "X-Trace": "t"}
    first = hop("http://h/a", method, headers=headers, json={"a": 1}, body=None)
    nxt = next_hop(POLICY, first, status, "/b")
    assert nxt.method == after
    if after == method:
        assert nxt.json == {"a": 1} and nxt.headers == headers
    else:
        assert nxt.json is None and nxt.body is None
        assert nxt.headers == {"X-Trace": "t"}  # no content headers for a body that is gone


CREDENTIALS = {
    "Authorization": f"Bearer {SECRET}",
    "proxy-authorization": SECRET,
    "COOKIE": f"sid={SECRET}",
    "X-Api-Key": SECRET,
    "Host": "h",
    "Accept": "application/json",
}


@pytest.mark.parametrize(
    "location",
    [
        "https://other.example/b",  # host
        "http://h/b",  # scheme (http -> https on the same host is a change too)
        "https://h:8443/b",  # port
    ],
)
def test_credentials_stay_behind_on_any_change_of_origin(location: str) -> None:
    first = hop("https://h/a", headers=CREDENTIALS)
    loc = location + f"?api_key={SECRET}&API_KEY={SECRET}&page=2"
    if location.startswith("http:"):
        first = dataclasses.replace(first, url=URL("http://h:80/a"))
        loc = "https://h/b" + loc[len(location) :]
    nxt = next_hop(POLICY, first, 302, loc)
    assert nxt.headers == {"Accept": "application/json"}
    assert dict(nxt.url.query) == {"page": "2"}


def test_credentials_go_along_within_the_same_origin() -> None:
    first = hop("https://h/a", headers=CREDENTIALS)
    nxt = next_hop(POLICY, first, 307, f"https://H:443/b?api_key={SECRET}")
    assert nxt.headers == CREDENTIALS
    assert nxt.url.query["api_key"] == SECRET


def test_a_downgrade_to_plain_http_with_credentials_is_refused() -> None:
    for first in (
        hop("https://h/a", headers={"Authorization": f"Bearer {SECRET}"}, credentialed=True),
        hop(f"https://h/a?api_key={SECRET}", credentialed=True),
    ):
        with pytest.raises(TransportError, match="to plain HTTP") as caught:
            next_hop(POLICY, first, 301, f"http://h/a?api_key={SECRET}")
        assert caught.value.kind is ErrorKind.INVALID_REQUEST
        assert SECRET not in caught.value.message and SECRET not in repr(caught.value)
    # Without credentials there is nothing to leak: followed.
    assert next_hop(POLICY, hop("https://h/a"), 301, "http://h/a").url.scheme == "http"


@pytest.mark.parametrize(
    ("location", "says"),
    [
        ("file:///etc/passwd", "a 'file' URL"),
        ("ftp://h/x", "a 'ftp' URL"),
        ("javascript:alert(1)", "a 'javascript' URL"),
        ("data:text/plain,hi", "a 'data' URL"),
        ("http://", "a URL without a host"),
        ("http://[::1/", "something that is not a URL"),
        ("/a\r\nSet-Cookie: x=1", "control character"),
    ],
)
def test_locations_that_are_not_http_urls_are_refused(location: str, says: str) -> None:
    with pytest.raises(TransportError) as caught:
        next_hop(POLICY, hop("https://h/a?api_key=k"), 302, location)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert says in caught.value.message and "api_key" not in caught.value.message


def test_carries_credentials() -> None:
    url = URL("https://h/a")
    assert not carries_credentials(POLICY, url, {"Accept": "x"}, {"page": 1})
    assert carries_credentials(POLICY, url, {"cookie": "x"}, None)
    assert carries_credentials(POLICY, url, {"X-API-KEY": "x"}, None)
    assert carries_credentials(POLICY, url, None, {"Api_Key": "x"})
    assert carries_credentials(POLICY, URL("https://h/a?api_key=x"), None, None)
    assert carries_credentials(POLICY, URL("https://u:p@h/a"), None, None)
    assert not carries_credentials(SecurityPolicy(), URL("https://h/a?api_key=x"), None, None)


def test_too_many_redirects_lists_the_hops_without_queries() -> None:
    chain = [URL(f"https://h/loop/{i}?api_key={SECRET}") for i in range(3)]
    error = too_many_redirects(SecurityPolicy(max_redirects=2), chain)
    assert error.kind is ErrorKind.OTHER
    assert "https://h/loop/0 -> https://h/loop/1 -> https://h/loop/2" in error.message
    assert "max_redirects" in error.message and SECRET not in repr(error)


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


# --- TLS --------------------------------------------------------------------------------------


def test_tls_is_verified_except_for_insecure_hosts() -> None:
    policy = SecurityPolicy(insecure_hosts=frozenset({"dev.internal"}))
    assert verify_tls(policy, "api.example.com") is True
    assert verify_tls(policy, "dev.internal") is False
    assert verify_tls(policy, "DEV.internal.") is False
    assert verify_tls(policy, "sub.dev.internal") is True  # exact hosts, no wildcards
    assert verify_tls(SecurityPolicy(), "dev.internal") is True
    assert verify_tls(policy, None) is True


# --- content encodings ------------------------------------------------------------------------


def test_content_encodings_in_the_order_applied() -> None:
    assert content_encodings(["gzip"], 2) == ("gzip",)
    assert content_encodings(["X-GZIP"], 2) == ("gzip",)
    assert content_encodings(["deflate, gzip"], 2) == ("deflate", "gzip")
    assert content_encodings(["gzip", "deflate"], 2) == ("gzip", "deflate")  # two header lines
    assert content_encodings(["identity", " , identity"], 2) == ()
    assert content_encodings(["identity, gzip"], 1) == ("gzip",)


def test_stacked_encodings_beyond_the_bound_are_refused() -> None:
    with pytest.raises(TransportError) as caught:
        content_encodings(["gzip, gzip, gzip"], 2)
    assert caught.value.kind is ErrorKind.OTHER
    assert "3 stacked content encodings (gzip, gzip, gzip), over max_encodings=2" in str(
        caught.value
    )
    assert content_encodings(["gzip, gzip, gzip"], 3) == ("gzip",) * 3


@pytest.mark.parametrize("coding", ["compress", "snappy"])
def test_codings_we_cannot_decode_are_refused_not_passed_through(coding: str) -> None:
    with pytest.raises(TransportError, match=f"encoded with '{coding}'") as caught:
        content_encodings([coding], 2)
    assert caught.value.kind is ErrorKind.OTHER
    assert "(gzip, deflate, br, zstd only)" in str(caught.value)


def test_br_and_zstd_are_decodable_and_advertised() -> None:
    assert decodable_encodings() == ("gzip", "deflate", "br", "zstd")
    assert accept_encoding() == "gzip, deflate, br, zstd"
    assert content_encodings(["BR", "zstd"], 2) == ("br", "zstd")


@pytest.mark.parametrize(
    ("coding", "install"), [("br", "pip install 'brotli>=1.2'"), ("zstd", "backports.zstd")]
)
def test_a_coding_whose_library_is_missing_says_what_to_install(coding: str, install: str) -> None:
    with pytest.raises(TransportError, match=f"encoded with '{coding}', which needs a library"):
        content_encodings([coding], 2, decodable=("gzip", "deflate"))
    with pytest.raises(TransportError, match=f"HINT: .*{re.escape(install)}"):
        content_encodings([coding], 2, decodable=("gzip", "deflate"))


def test_without_brotli_br_is_neither_advertised_nor_decoded() -> None:
    """A Python where neither Brotli binding can be imported (as with one older than 1.2)."""
    script = (
        "import sys\n"
        "sys.modules['brotli'] = sys.modules['brotlicffi'] = None\n"
        "from fetchpipe.engine.security import accept_encoding, content_encodings\n"
        "print(accept_encoding())\n"
        "try:\n"
        "    content_encodings(['br'], 2)\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    advertised, error = done.stdout.splitlines()
    assert advertised == "gzip, deflate, zstd"
    assert error.startswith("response body is encoded with 'br', which needs a library")
    assert "(decodable: gzip, deflate, zstd)" in error


PAYLOAD = b'{"items": [' + b", ".join(b"%d" % i for i in range(20000)) + b"]}"


def br(data: bytes) -> bytes:
    return brotli.compress(data, quality=5)  # as servers compress on the fly (11 is slow)


def decode(body: bytes, codings: tuple[str, ...], *, step: int = 4096, cap: int = MiB) -> bytes:
    decoder = BoundedDecoder(codings, cap)
    for start in range(0, len(body), step):
        decoder.feed(body[start : start + step])
    return decoder.finish()


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("step", [1, 7, 4096, 10**6])
def test_decoder_round_trips_in_any_chunking(step: int) -> None:
    assert decode(gzip.compress(PAYLOAD), ("gzip",), step=step) == PAYLOAD
    assert decode(zlib.compress(PAYLOAD), ("deflate",), step=step) == PAYLOAD
    assert decode(raw_deflate(PAYLOAD), ("deflate",), step=step) == PAYLOAD  # headerless
    stacked = gzip.compress(zlib.compress(PAYLOAD))  # deflate applied first, then gzip
    assert decode(stacked, ("deflate", "gzip"), step=step) == PAYLOAD
    members = gzip.compress(PAYLOAD[:1000]) + gzip.compress(PAYLOAD[1000:])
    assert decode(members, ("gzip",), step=step) == PAYLOAD


@pytest.mark.parametrize("step", [1, 7, 4096, 10**6])
def test_br_and_zstd_round_trip_in_any_chunking(step: int) -> None:
    assert decode(br(PAYLOAD), ("br",), step=step) == PAYLOAD
    assert decode(zstd.compress(PAYLOAD), ("zstd",), step=step) == PAYLOAD
    frames = zstd.compress(PAYLOAD[:1000]) + zstd.compress(PAYLOAD[1000:])  # RFC 8878 3.1
    assert decode(frames, ("zstd",), step=step) == PAYLOAD
    stacked = gzip.compress(br(PAYLOAD))  # br applied first, then gzip
    assert decode(stacked, ("br", "gzip"), step=step) == PAYLOAD
    assert decode(br(zstd.compress(PAYLOAD)), ("zstd", "br"), step=step) == PAYLOAD


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_decoder_of_an_empty_body(coding: str) -> None:
    assert decode(b"", (coding,)) == b""


@pytest.mark.parametrize(
    ("body", "codings"),
    [
        (gzip.compress(PAYLOAD), ("gzip",)),
        (zlib.compress(PAYLOAD), ("deflate",)),
        (gzip.compress(gzip.compress(PAYLOAD)), ("gzip", "gzip")),
        (gzip.compress(PAYLOAD) + gzip.compress(PAYLOAD)[:50], ("gzip",)),  # second member cut
    ],
)
@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_a_cut_off_compressed_stream_is_truncated(
    body: bytes, codings: tuple[str, ...], cut: float
) -> None:
    with pytest.raises(TransportError, match="ends early") as caught:
        decode(body[: int(len(body) * cut)], codings)
    assert caught.value.kind is ErrorKind.TRUNCATED


@pytest.mark.parametrize(
    ("body", "codings"),
    [
        (br(PAYLOAD), ("br",)),
        (zstd.compress(PAYLOAD), ("zstd",)),
        (zstd.compress(PAYLOAD) + zstd.compress(PAYLOAD)[:50], ("zstd",)),  # second frame cut
        (gzip.compress(br(PAYLOAD)), ("br", "gzip")),
    ],
)
@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_a_cut_off_br_or_zstd_stream_is_truncated(
    body: bytes, codings: tuple[str, ...], cut: float
) -> None:
    with pytest.raises(TransportError, match="ends early") as caught:
        decode(body[: int(len(body) * cut)], codings)
    assert caught.value.kind is ErrorKind.TRUNCATED


def test_a_br_stream_without_its_last_byte_is_truncated() -> None:
    body = br(PAYLOAD)
    with pytest.raises(TransportError, match="the br stream of the response body ends early"):
        decode(body[:-1], ("br",))


def test_a_cut_off_gzip_trailer_is_truncated() -> None:
    body = gzip.compress(PAYLOAD)
    with pytest.raises(TransportError, match="ends early"):
        decode(body[:-4], ("gzip",))  # the data is all there, the length check is not


def test_corrupt_data_is_refused() -> None:
    with pytest.raises(TransportError, match="not valid gzip data") as caught:
        decode(b"this is not gzip at all", ("gzip",))
    assert caught.value.kind is ErrorKind.OTHER
    with pytest.raises(TransportError, match="not valid gzip data"):
        decode(gzip.compress(PAYLOAD) + b"trailing junk", ("gzip",))


@pytest.mark.parametrize(
    ("body", "coding", "detail"),
    [
        (b"this is not brotli at all", "br", "not valid br data"),
        (br(PAYLOAD) + b"trailing junk", "br", "not valid br data"),
        (br(PAYLOAD)[:20] + bytes(200), "br", "not valid br data"),
        (b"this is not zstd at all", "zstd", "not valid zstd data (Unable to decompress"),
        (zstd.compress(PAYLOAD) + b"trailing junk", "zstd", "not valid zstd data"),
    ],
)
def test_corrupt_br_or_zstd_data_is_refused(body: bytes, coding: str, detail: str) -> None:
    with pytest.raises(TransportError, match=re.escape(detail)) as caught:
        decode(body, (coding,))
    assert caught.value.kind is ErrorKind.OTHER


def test_a_zstd_frame_with_a_window_over_8_mib_is_refused() -> None:
    """RFC 9659: no zstd window over 8 MiB in HTTP (the library would allow 128 MiB)."""
    data = bytes(range(256)) * (40 * 4096)  # 40 MiB
    wide = {zstd.CompressionParameter.window_log: 24}
    with pytest.raises(TransportError, match="window over 8 MiB, more than RFC 9659") as caught:
        decode(zstd.compress(data, options=wide), ("zstd",), cap=64 * MiB)
    assert caught.value.kind is ErrorKind.OTHER
    narrow = {zstd.CompressionParameter.window_log: 23}
    assert decode(zstd.compress(data, options=narrow), ("zstd",), cap=64 * MiB) == data


def test_too_many_zstd_frames_are_refused() -> None:
    frame = zstd.compress(b"x")
    assert decode(frame * MAX_MEMBERS, ("zstd",)) == b"x" * MAX_MEMBERS
    with pytest.raises(TransportError, match="more than 1024 concatenated frames"):
        decode(frame * (MAX_MEMBERS + 1), ("zstd",))


def test_too_many_members_are_refused() -> None:
    member = gzip.compress(b"x")
    assert decode(member * MAX_MEMBERS, ("gzip",)) == b"x" * MAX_MEMBERS
    with pytest.raises(TransportError, match="concatenated members"):
        decode(member * (MAX_MEMBERS + 1), ("gzip",))


def zeros_gzip(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [compressor.compress(block) for _ in range(size // MiB)]
    return b"".join([*parts, compressor.flush()])


def test_a_bomb_stops_at_the_cap_with_bounded_memory() -> None:
    bomb = gzip.compress(gzip.compress(zeros_gzip(64 * MiB)))  # 64 MiB from about 1 KB
    assert len(bomb) < 4096
    tracemalloc.start()
    try:
        with pytest.raises(TransportError, match="over max_body_size") as caught:
            decode(bomb, ("gzip", "gzip", "gzip"), cap=8 * MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.kind is ErrorKind.BODY_TOO_LARGE
    assert peak < 8 * MiB + 2 * MiB  # the cap plus a few 64 KiB steps


def zeros(size: int, coding: str) -> bytes:
    """``size`` zero bytes in ``coding``, compressed a mebibyte at a time."""
    block = bytes(MiB)
    if coding == "br":
        br = brotli.Compressor(quality=5)
        return b"".join([*(br.process(block) for _ in range(size // MiB)), br.finish()])
    if coding == "zstd":
        zs = zstd.ZstdCompressor()
        return b"".join([*(zs.compress(block) for _ in range(size // MiB)), zs.flush()])
    return zeros_gzip(size)


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_br_or_zstd_bomb_stops_at_the_cap_with_bounded_memory(coding: str) -> None:
    bomb = zeros(256 * MiB, coding)
    assert len(bomb) < 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(TransportError, match="over max_body_size") as caught:
            decode(bomb, (coding,), cap=8 * MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.kind is ErrorKind.BODY_TOO_LARGE
    assert peak < 8 * MiB + 2 * MiB  # the cap plus a few steps


def test_a_bomb_fails_alike_whatever_its_coding() -> None:
    """The same kind and message for every coding, but for the coding's name."""
    messages = set()
    for coding in ("gzip", "br", "zstd"):
        with pytest.raises(TransportError) as caught:
            decode(zeros(16 * MiB, coding), (coding,), step=1 << 30, cap=4 * MiB)
        assert caught.value.kind is ErrorKind.BODY_TOO_LARGE
        message = str(caught.value)
        assert message.startswith("response body is over max_body_size (4194304 bytes; decoded ")
        assert f"; Content-Encoding {coding}). HINT: raise Limits.max_body_size" in message
        messages.add(re.sub(r"decoded \d+ bytes", "decoded N bytes", message).replace(coding, "C"))
    assert len(messages) == 1


def test_the_encoded_size_is_bounded_too() -> None:
    decoder = BoundedDecoder(("deflate",), 1000)
    with pytest.raises(TransportError, match="encoded body's Content-Length"):
        decoder.check_length(10 * MiB)
    stored = zlib.compressobj(0)  # level 0: no compression, the body never expands
    body = stored.compress(bytes(200_000)) + stored.flush()
    with pytest.raises(TransportError, match="over max_body_size") as caught:
        decode(body, ("deflate",), cap=100_000)
    assert caught.value.kind is ErrorKind.BODY_TOO_LARGE
