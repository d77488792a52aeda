"""Redaction as pure functions: credential names, URLs in any position, messages, journal tokens.

The property tests plant a secret (upper case, so nothing else generated can spell it) in every
place of a URL where a credential goes, and check that no redaction lets it through.
"""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from fetchpipe import Request
from fetchpipe._redact import (
    CREDENTIAL_HEADERS,
    CREDENTIAL_PARAMS,
    SecretTokens,
    is_credential_header,
    is_credential_param,
    public_url,
    redact_text,
    redact_url,
    url_shape,
    with_public_urls,
)
from fetchpipe.cli.input import shown_url
from fetchpipe.engine.cache.keys import cache_key
from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.transports.redirects import Hop, carries_credentials, next_hop
from fetchpipe.pipeline import Pipeline
from fetchpipe.pipeline.spec.errors import PipelineError, Problem

SECRET = "s3cr3t-CANARY-value"


# --- the names --------------------------------------------------------------------------------


def test_names_are_lower_case_and_matched_in_any_case() -> None:
    assert all(name == name.lower() for name in CREDENTIAL_HEADERS | CREDENTIAL_PARAMS)
    assert is_credential_header("Authorization") and is_credential_header(" X-API-KEY ")
    assert not is_credential_header("Accept") and not is_credential_header("X-Api-Keys")
    assert is_credential_param("API_KEY") and is_credential_param("Access_Token")
    assert is_credential_param("api%5Fkey") and is_credential_param("X-Amz-Signature")
    assert not is_credential_param("page") and not is_credential_param("monkey")


# --- redact_url: what is stored and printed ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://h/a?api_key=s3cr3t-value&n=1", "http://h/a?api_key=REDACTED&n=1"),
        ("http://h/a?n=1&ACCESS_TOKEN=s3cr3t-value#top", "http://h/a?n=1&ACCESS_TOKEN=REDACTED#top"),
        ("http://h/a?key=s3cr3t-value&token=s3cr3t-value", "http://h/a?key=REDACTED&token=REDACTED"),
        ("http://u:s3cr3t-value@h/a", "http://u:***@h/a"),
        ("GET 'http://h/?secret=s3cr3t-value' failed", "GET 'http://h/?secret=REDACTED' failed"),
        ("http://h/a?monkey=1&keys=2&key=", "http://h/a?monkey=1&keys=2&key="),
        # A user name given alone may be a token (Basic auth with the token as user name).
        ("https://s3cr3t@api.example.com/x", "https://***@api.example.com/x"),
        ("http://u@h/a?monkey=1&key=", "http://***@h/a?monkey=1&key="),
        ("https://@h/a", "https://@h/a"),
        # A password with a ' in it goes whole.
        ("https://u:s3c'r3t@h/a", "https://u:***@h/a"),
        ("GET 'https://u:s3c'r3t@h/a' failed", "GET 'https://u:***@h/a' failed"),
        ("no URL here; key=value is not a query", "no URL here; key=value is not a query"),
    ],
)  # fmt: skip
def test_redact(text: str, expected: str) -> None:
    assert redact_url(text) == expected
    assert redact_url(expected) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Names that joined the list when the copies were merged: redacted now.
        ("https://acct.blob/c/b?sv=1&sig=s3cr3t", "https://acct.blob/c/b?sv=1&sig=REDACTED"),
        ("https://b.s3/k?X-Amz-Signature=s3cr3t", "https://b.s3/k?X-Amz-Signature=REDACTED"),
        ("https://b.s3/k?x-amz-security-token=s3cr3t", "https://b.s3/k?x-amz-security-token=REDACTED"),
        ("https://gcs/o?X-Goog-Signature=s3cr3t", "https://gcs/o?X-Goog-Signature=REDACTED"),
        ("https://h/t?client_secret=s3cr3t&x=1", "https://h/t?client_secret=REDACTED&x=1"),
        ("https://h/login?password=s3cr3t", "https://h/login?password=REDACTED"),
        # A percent-encoded name is the same parameter to the server.
        ("https://h/a?api%5Fkey=s3cr3t&%6Bey=s3cr3t", "https://h/a?api%5Fkey=REDACTED&%6Bey=REDACTED"),
        ("https://h/a?x%20y=1?token=s3cr3t", "https://h/a?x%20y=1?token=REDACTED"),
        # An OAuth 2 implicit-flow redirect carries the token in the fragment.
        ("https://h/cb#access_token=s3cr3t&type=bearer", "https://h/cb#access_token=REDACTED&type=bearer"),
        # A password with an unencoded @ in it goes whole.
        ("http://u:p@ss@h/a", "http://u:***@h/a"),
    ],
)  # fmt: skip
def test_redact_url_is_stricter_than_the_copies_it_replaced(text: str, expected: str) -> None:
    assert redact_url(text) == expected
    assert redact_url(expected) == expected


_LOWER = string.ascii_lowercase + string.digits
_names = st.text(_LOWER + "_-", min_size=1, max_size=8).filter(lambda n: not is_credential_param(n))
_values = st.text(_LOWER + "-._~%+/=", max_size=10)
_secrets = st.text(string.ascii_letters + string.digits + "-._~%+=", min_size=1, max_size=24).map(
    lambda tail: "S3CR3T" + tail
)
_hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,6}){0,2}", fullmatch=True)
_paths = st.lists(st.text(_LOWER + "-._~@:", max_size=8), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
_credential_names = st.sampled_from(sorted(CREDENTIAL_PARAMS)).flatmap(
    lambda name: st.sampled_from([name, name.upper(), name.capitalize()])
)


@st.composite
def _urls(draw: st.DrawFn, secret: str | None) -> str:
    """A URL: its own non-secret parts, and ``secret`` (when given) in every credential place
    hypothesis picks (the password, the user name given alone, credential query parameters, a
    fragment's parameter)."""
    scheme = draw(st.sampled_from(["http", "https", "HTTPS"]))
    userinfo = ""
    if secret is not None and draw(st.booleans()):
        user = draw(st.text(_LOWER, max_size=6))
        userinfo = draw(st.sampled_from([f"{user}:{secret}@", f"{secret}@"]))
    port = draw(st.sampled_from(["", ":8080", ":443"]))
    pairs = draw(st.lists(st.tuples(_names, _values), max_size=4))
    fragment = draw(st.sampled_from(["", "#top", "#a=1"]))
    if secret is not None:
        planted = draw(st.lists(_credential_names, min_size=0 if userinfo else 1, max_size=3))
        for name in planted:
            pairs.insert(draw(st.integers(0, len(pairs))), (name, secret))
        if draw(st.booleans()):
            fragment = f"#access_token={secret}"
    query = "&".join(f"{name}={value}" for name, value in pairs)
    return (
        f"{scheme}://{userinfo}{draw(_hosts)}{port}{draw(_paths)}"
        + (f"?{query}" if query else "")
        + fragment
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secret=_secrets)
def test_redact_url_lets_no_planted_secret_through(data: st.DataObject, secret: str) -> None:
    url = data.draw(_urls(secret))
    assert secret in url
    redacted = redact_url(url)
    assert secret not in redacted
    assert secret not in redact_text(f"GET {url!r} failed: HTTP 500")


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secret=st.none() | _secrets)
def test_redact_url_is_idempotent(data: st.DataObject, secret: str | None) -> None:
    once = redact_url(data.draw(_urls(secret)))
    assert redact_url(once) == once


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80))
def test_redact_url_is_idempotent_on_any_text(text: str) -> None:
    once = redact_url(text)
    assert redact_url(once) == once


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_redact_url_leaves_a_url_without_secrets_as_it_is(data: st.DataObject) -> None:
    url = data.draw(_urls(None))
    assert redact_url(url) == url


@settings(max_examples=200, deadline=None)
@given(
    secrets=st.lists(st.text(string.ascii_uppercase, min_size=4, max_size=12), max_size=4),
    pieces=st.lists(st.text(string.ascii_letters + " /?=&", max_size=10), max_size=6),
)
def test_redact_text_masks_every_known_secret(secrets: list[str], pieces: list[str]) -> None:
    text = "".join(
        piece + (secrets[i % len(secrets)] if secrets else "") for i, piece in enumerate(pieces)
    )
    redacted = redact_text(text, secrets)
    assert not any(secret in redacted for secret in secrets)


def test_redact_text_masks_the_longest_secret_first_and_leaves_short_values() -> None:
    assert redact_text("token abcdefgh here", ["abcd", "abcdefgh"]) == "token *** here"
    assert redact_text("id=abc", ["abc"]) == "id=abc"  # under MIN_SECRET: would garble text
    assert redact_text(f"see http://h/?key={SECRET}", ["unrelated"]) == "see http://h/?key=REDACTED"


# --- the callers that used to have a copy of their own ----------------------------------------


def test_shown_url_redacts_credential_parameters_now() -> None:
    assert (
        shown_url(f"https://h.example/x?api_key={SECRET}") == "https://h.example/x?api_key=REDACTED"
    )
    assert shown_url("https://user:pw@host.example/x") == "https://user:***@host.example/x"


def test_a_request_repr_masks_a_user_name_given_alone() -> None:
    assert (
        url_shape(f"https://{SECRET}@api.example.com/v1?page=2")
        == "https://…@api.example.com/v1?page=…"
    )
    assert SECRET not in repr(Request(f"https://{SECRET}@api.example.com/"))
    assert url_shape("https://u:p@h/a?x=1#frag") == "https://u:…@h/a?x=…"
    assert url_shape("http://[::1/") == "<unparsable URL>"


def test_pipeline_errors_redact_credential_parameters_they_quote() -> None:
    problem = Problem(("sources", 0, "url"), f"'https://h/a?token={SECRET}' is not reachable")
    error = PipelineError([problem], "p.yaml", secrets=["unrelated-value"])
    assert SECRET not in str(error) and "token=REDACTED" in str(error)


def test_a_pipeline_redacts_its_secrets_and_credential_parameters() -> None:
    pipeline = Pipeline.from_dict(
        {
            "name": "p",
            "sources": [
                {
                    "name": "a",
                    "url": "https://h.test/a",
                    "auth": {"type": "bearer", "token": "${TOKEN}"},
                }
            ],
        },
        env={"TOKEN": SECRET},
    )
    text = pipeline.redact(f"Bearer {SECRET} at https://h.test/a?access_token=other-value")
    assert text == "Bearer *** at https://h.test/a?access_token=REDACTED"


def test_a_pipeline_cache_keys_by_the_sources_own_api_key_names() -> None:
    pipeline = Pipeline.from_dict(
        {
            "name": "p",
            "defaults": {"cache": {"enabled": True}},
            "sources": [
                {
                    "name": "a",
                    "url": "https://h.test/a",
                    "auth": {"type": "api_key", "name": "partner", "in": "query", "value": "v1234"},
                },
                {
                    "name": "b",
                    "url": "https://h.test/b",
                    "auth": {"type": "api_key", "name": "X-Partner", "value": "v5678"},
                },
            ],
        }
    )
    cache = pipeline.http_cache()
    assert cache is not None
    assert cache.credential_params == CREDENTIAL_PARAMS | {"partner"}
    assert cache.credential_headers == CREDENTIAL_HEADERS | {"x-partner"}


def test_cache_keys_separate_the_credential_headers_that_joined_the_list() -> None:
    base = "https://api.test/items"
    for name in ("X-Goog-Api-Key", "Private-Token", "X-Amz-Security-Token"):
        one = cache_key("GET", base, None, {name: "one"})
        two = cache_key("GET", base, None, {name: "two"})
        assert one.key != two.key and one.url == two.url == base


def test_credential_headers_stay_home_by_default() -> None:
    """Before the lists were merged, X-Api-Key and the like followed a redirect to another
    origin unless configured; now every credential header of the list stays behind."""
    headers = {"X-Api-Key": SECRET, "Private-Token": SECRET, "Accept": "application/json"}
    first = Hop("GET", URL("https://h/a"), headers)
    assert next_hop(SecurityPolicy(), first, 302, "https://other.example/b").headers == {
        "Accept": "application/json"
    }
    assert carries_credentials(SecurityPolicy(), URL("https://h/a"), {"api-key": "x"}, None)


# --- public_url: engine messages --------------------------------------------------------------


def test_public_url_drops_user_info_query_and_fragment() -> None:
    url = URL(f"https://me:{SECRET}@api.example.com:8443/v1/items?api_key={SECRET}#top")
    assert public_url(url) == "https://api.example.com:8443/v1/items"


def test_redact_urls_cuts_queries_and_user_info_out_of_any_text() -> None:
    text = (
        f"400, message='x', url='https://u:{SECRET}@h.example/a/b?api_key={SECRET}&p=1' "
        f"and http://other/x#frag{SECRET} (http://plain/path)"
    )
    redacted = with_public_urls(text)
    assert SECRET not in redacted
    assert "url='https://h.example/a/b'" in redacted and "http://plain/path)" in redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A password with an @ or a ' in it, a user name alone: the whole user info goes.
        (f"url='https://u:p@{SECRET}@h/a?x=1' failed", "url='https://h/a' failed"),
        (f"url='https://u:p'{SECRET}@h/a?x=1' failed", "url='https://h/a' failed"),
        (f"GET https://{SECRET}@h/a: refused", "GET https://h/a: refused"),
        # A ' inside a query value is the value's; one that closes the URL is the text's.
        (f"url='https://h/a?key=ab'{SECRET}&p=1', next", "url='https://h/a', next"),
        ("['https://h/a?x=1','https://g/b?y=2']", "['https://h/a','https://g/b']"),
    ],
)  # fmt: skip
def test_public_urls_in_a_text_keep_no_part_of_a_credential(text: str, expected: str) -> None:
    assert with_public_urls(text) == expected
    assert with_public_urls(expected) == expected


@settings(max_examples=300, deadline=None)
@given(data=st.data(), secret=_secrets, quote=st.sampled_from(["", "'", '"']))
def test_public_urls_let_no_planted_secret_through(
    data: st.DataObject, secret: str, quote: str
) -> None:
    """The URL's user info, query and fragment go, and nothing else of the text (a secret ends
    with a letter here: punctuation that ends a query or fragment is taken for the text's, and
    stays, as in "see https://h/a?q=1.")."""
    secret += "z"
    url = data.draw(_urls(secret))
    shown = with_public_urls(f"failed: url={quote}{url}{quote}, then")
    assert secret not in shown
    scheme, _, rest = public_url(url).partition("://")  # public_url writes it in lower case
    tail = ""
    if "?" in url or "#" in url:
        tail = url[len(url.rstrip("),.;:!]}")) :]
    assert shown == f"failed: url={quote}{url[: len(scheme)]}://{rest}{tail}{quote}, then"
    assert with_public_urls(shown) == shown


def test_public_url_of_a_string_and_of_an_invalid_url() -> None:
    assert public_url(f"https://u:{SECRET}@h.example/a?key={SECRET}") == "https://h.example/a"
    assert public_url("http://[::1/") == "(an invalid URL)"


# --- SecretTokens: the journal ----------------------------------------------------------------


def test_a_token_names_the_secret_s_hash_in_the_journal_s_format() -> None:
    tokens = SecretTokens.of([SECRET, "abc"])
    token = "{fetchpipe-secret-" + hashlib.sha256(SECRET.encode()).hexdigest()[:12] + "}"
    assert tokens.secrets == {token: SECRET}  # "abc" is under MIN_SECRET
    assert tokens.hide(f"https://h/a?sig={SECRET}") == f"https://h/a?sig={token}"
    assert tokens.reveal(f"https://h/a?sig={token}") == f"https://h/a?sig={SECRET}"


@settings(max_examples=200, deadline=None)
@given(
    secrets=st.lists(st.text(string.ascii_uppercase, min_size=4, max_size=10), max_size=4),
    pieces=st.lists(st.text(string.ascii_uppercase + "/?=&", max_size=12), max_size=6),
)
def test_tokens_hide_every_secret_and_reveal_the_text_again(
    secrets: list[str], pieces: list[str]
) -> None:
    text = "".join(
        piece + (secrets[i % len(secrets)] if secrets else "") for i, piece in enumerate(pieces)
    )
    tokens = SecretTokens.of(secrets)
    hidden = tokens.hide(text)
    assert not any(secret in hidden for secret in secrets)
    assert tokens.reveal(hidden) == text
