"""Redirects under our rules: each hop's target, method, headers and credentials. No network."""

from __future__ import annotations

import dataclasses

import pytest
from yarl import URL

from fetchpipe import ErrorKind, TransportError
from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.transports.redirects import (
    Hop,
    carries_credentials,
    next_hop,
    too_many_redirects,
)

SECRET = "s3cr3t-CANARY-value"

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
