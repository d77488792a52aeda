"""redact_text masks values only: what a credential value is followed by survives unchanged.

The property tests build a text around a URL (and headers, JSON fields) whose credential places
hold a planted secret, work out by hand the text redaction must give (each planted value
replaced, nothing else touched), and compare. Secrets start with ``S3CR3T`` (upper case: no
other generated part can spell it) and may hold the characters a query value or a password may
hold unencoded, ``'``, ``;``, ``<``, ``@`` and ``/`` included (see each strategy).
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe._redact import (
    CREDENTIAL_HEADERS,
    CREDENTIAL_PARAMS,
    MASK,
    REDACTED,
    body_excerpt,
    is_credential_param,
    redact_text,
    redact_url,
)

_LOWER = string.ascii_lowercase + string.digits
_ALNUM = string.ascii_letters + string.digits

_query_secrets = st.tuples(
    st.text(_ALNUM + "-._~!$'()*+,;:@/?<%", max_size=16), st.sampled_from(_ALNUM)
).map(lambda parts: "S3CR3T" + parts[0] + parts[1])
"""A query value as a server may take it unencoded (but ``=``, which with ``;`` would start a
pair of the old ``;``-separated form, and ``&`` and ``#``, which end it), ending with a letter
or digit: a value's trailing punctuation is indistinguishable from the text's, and stays."""
_passwords = st.text(_ALNUM + "-._~!$'()*+,;:%@", max_size=16).map(lambda tail: "S3CR3T" + tail)
"""A password: its unencoded characters but ``=`` (the user info is read before the query), a
``'`` and an ``@`` included."""
_users = st.text(_ALNUM + "-._~!$()*+,;%", max_size=16).map(lambda tail: "S3CR3T" + tail)
"""A user name given alone, which may be a token: its unencoded characters but ``:``, ``=``
and ``'``."""
_any_secrets = st.text(string.printable, max_size=16).map(lambda tail: "S3CR3T" + tail)

_names = st.text(_LOWER + "_-", min_size=1, max_size=8).filter(lambda n: not is_credential_param(n))
_values = st.text(_LOWER + "-._~+/:", max_size=10)
_credential_names = st.sampled_from(sorted(CREDENTIAL_PARAMS)).flatmap(
    lambda name: st.sampled_from([name, name.upper(), name.capitalize()])
)
_before = st.sampled_from(["", "GET ", "see '", 'url="', "(", "<", "fetched: "])
_after = st.sampled_from(
    ["", " failed", "' failed", "', 'x': 1}", '" next', ").", ">", "\nnext line", ", then"]
)


@st.composite
def _texts(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    """``(text, expected, secrets)``: a message quoting a URL with secrets planted in its
    password and credential parameters, the message as redaction must leave it, the secrets."""
    secrets: list[str] = []
    user = draw(st.text(_LOWER, max_size=6))
    userinfo = expected_userinfo = ""
    which = draw(st.sampled_from(["none", "password", "user alone"]))
    if which == "password":
        password = draw(_passwords)
        secrets.append(password)
        userinfo, expected_userinfo = f"{user}:{password}@", f"{user}:{MASK}@"
    elif which == "user alone":
        token = draw(_users)
        secrets.append(token)
        userinfo, expected_userinfo = f"{token}@", f"{MASK}@"
    pairs: list[tuple[str, str, str]] = [
        (name, value, value)
        for name, value in draw(st.lists(st.tuples(_names, _values), max_size=3))
    ]
    for name in draw(st.lists(_credential_names, min_size=0 if secrets else 1, max_size=3)):
        secret = draw(_query_secrets)
        secrets.append(secret)
        pairs.insert(draw(st.integers(0, len(pairs))), (name, secret, REDACTED))
    fragment = draw(st.sampled_from(["", "#top", "#a=1"]))
    host = draw(st.sampled_from(["h.example", "127.0.0.1:8080", "api.test"]))
    path = draw(st.sampled_from(["", "/", "/v1/items", "/a;b/c"]))

    def url(shown_userinfo: str, which: int) -> str:
        query = "&".join(f"{name}={pair[which]}" for name, *pair in pairs)
        return f"https://{shown_userinfo}{host}{path}" + (f"?{query}" if query else "") + fragment

    before, after = draw(_before), draw(_after)
    text = before + url(userinfo, 0) + after
    expected = before + url(expected_userinfo, 1) + after
    return text, expected, secrets


@settings(max_examples=400, deadline=None)
@given(case=_texts())
def test_only_the_credential_values_go_and_the_rest_survives_unchanged(
    case: tuple[str, str, list[str]],
) -> None:
    text, expected, secrets = case
    redacted = redact_text(text)
    assert not any(secret in redacted for secret in secrets)
    assert redacted == expected
    assert redact_url(text) == expected  # the URL-only redaction does the same to a URL


@settings(max_examples=300, deadline=None)
@given(
    name=_credential_names,
    secret=_any_secrets,
    before=st.text(string.printable, max_size=12),
    after=st.text(string.printable, max_size=12),
)
def test_no_secret_survives_in_a_query_whatever_surrounds_it(
    name: str, secret: str, before: str, after: str
) -> None:
    """With any printable characters in the secret and around it, ``S3CR3T`` (its start) is
    gone: a value ends no earlier than white space, ``&``, ``#``, ``"``, ``>`` or a backtick."""
    text = f"{before} https://h.example/x?{name}={secret}{after}"
    assert "S3CR3T" not in redact_text(text) and "S3CR3T" not in redact_url(text)


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=120))
def test_redact_text_is_idempotent_on_any_text(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


@settings(max_examples=300, deadline=None)
@given(case=_texts())
def test_redact_text_is_idempotent_on_urls_with_secrets(case: tuple[str, str, list[str]]) -> None:
    once = redact_text(case[0])
    assert redact_text(once) == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The value alone goes: what follows it is kept (the next pair, the text after it).
        ("https://h/x?key=S3CR3T&after=1", f"https://h/x?key={REDACTED}&after=1"),
        ("https://h/x?key=S3C<R3T&after=1", f"https://h/x?key={REDACTED}&after=1"),
        ("https://h/x?token=ab;cd&z=1", f"https://h/x?token={REDACTED}&z=1"),
        ("https://h/x?key=S3C'R3T more", f"https://h/x?key={REDACTED} more"),
        ("GET 'https://h/x?key=S3CR3T' failed", f"GET 'https://h/x?key={REDACTED}' failed"),
        ("(see https://h/x?key=S3CR3T).", f"(see https://h/x?key={REDACTED})."),
        ("<https://h/x?key=S3CR3T>", f"<https://h/x?key={REDACTED}>"),
        # The old ;-separated pairs: each value on its own.
        ("https://h/x?key=A1;token=B2&n=1", f"https://h/x?key={REDACTED};token={REDACTED}&n=1"),
        ("https://h/a?tok%65n=S3;CR3T&z=2", f"https://h/a?tok%65n={REDACTED}&z=2"),
        # User info: the password goes, the user name beside it stays; a user name alone goes.
        ("https://user:S3CR3T@host/x?y=1", f"https://user:{MASK}@host/x?y=1"),
        ("https://user:S3C@R3T@host/x", f"https://user:{MASK}@host/x"),
        ("https://u:S3CR3T;key=x@host/x?n=1", f"https://u:{MASK}@host/x?n=1"),
        ("see 'https://u:S3C'R3T@host/x', then", f"see 'https://u:{MASK}@host/x', then"),
        ("https://u:S3CR3T'@host/x", f"https://u:{MASK}@host/x"),
        ("https://S3CR3T@api.example.com/x", f"https://{MASK}@api.example.com/x"),
        ("GET 'https://S3CR3T@host/x' failed", f"GET 'https://{MASK}@host/x' failed"),
        # Credential headers as a text shows them: the value goes, an Authorization's scheme stays.
        ("Authorization: Bearer S3CR3T", f"Authorization: Bearer {MASK}"),
        ("got Authorization: Bearer S3CR3T.", f"got Authorization: Bearer {MASK}."),
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {MASK}"),
        ("x-api-key: S3CR3T\nAccept: */*", f"x-api-key: {MASK}\nAccept: */*"),
        ("Cookie: a=S3CR3T; b=2\nnext", f"Cookie: {MASK}\nnext"),
        ("'Set-Cookie: sid=S3CR3T' was sent", f"'Set-Cookie: {MASK}' was sent"),
        # A mapping's repr and JSON: credential-named fields, either quote.
        ("{'Authorization': 'Bearer S3CR3T', 'n': 1}", f"{{'Authorization': '{MASK}', 'n': 1}}"),
        ('{"access_token": "S3CR3T", "expires": 9}', f'{{"access_token": "{MASK}", "expires": 9}}'),
        ('{"refresh_token":"S3\\"CR3T","id":"x"}', f'{{"refresh_token":"{MASK}","id":"x"}}'),
        ('{"db_password": "S3CR3T"}', f'{{"db_password": "{MASK}"}}'),
        # Left alone: no credential, or a hint's example in a credential's place.
        ('{"monkey": "banana", "keys": "3"}', '{"monkey": "banana", "keys": "3"}'),
        ("-H 'Authorization: Bearer ${TOKEN}'", "-H 'Authorization: Bearer ${TOKEN}'"),
        ("e.g. 'Authorization: Bearer ...'", "e.g. 'Authorization: Bearer ...'"),
        ("X-Api-Key: <key>", "X-Api-Key: <key>"),
        ("monkey: 1, key: 2", "monkey: 1, key: 2"),
    ],
)  # fmt: skip
def test_values_go_and_the_rest_stays(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected
    assert "S3CR3T" not in redact_text(text)


_header_names = st.sampled_from(sorted(CREDENTIAL_HEADERS)).flatmap(
    lambda name: st.sampled_from([name, name.title(), name.upper()])
)
_header_values = st.text(_ALNUM + "-._~+/=:;, ", max_size=20).map(lambda t: "S3CR3T" + t.strip())


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(_header_names, _header_values, min_size=1, max_size=3),
    others=st.dictionaries(st.sampled_from(["Accept", "User-Agent", "X-Page"]), _values),
)
def test_credential_headers_in_a_repr_in_json_and_as_lines(
    headers: dict[str, str], others: dict[str, str]
) -> None:
    every = {**others, **headers}
    masked = {**others, **dict.fromkeys(headers, MASK)}
    assert redact_text(repr(every)) == repr(masked)
    assert redact_text(json.dumps(every)) == json.dumps(masked)
    lines = "\n".join(f"{name}: {value}" for name, value in every.items())
    redacted = redact_text(lines)
    assert "S3CR3T" not in redacted
    for name, value in others.items():
        assert f"{name}: {value}" in redacted.splitlines()


def test_a_quoted_body_keeps_its_other_fields_and_its_excerpt_masks_the_same() -> None:
    body = {"error": "bad token", "access_token": "S3CR3T-value", "url": "https://h/?key=S3CR3T"}
    text = json.dumps(body)
    assert redact_text(text) == json.dumps(
        {**body, "access_token": MASK, "url": f"https://h/?key={REDACTED}"}
    )
    assert "S3CR3T" not in body_excerpt(body)
    assert '"error":"bad token"' in body_excerpt(body)


def test_every_credential_header_passes_the_quick_check_before_the_pattern() -> None:
    for name in CREDENTIAL_HEADERS | {"set-cookie"}:
        assert redact_text(f"{name.title()}: S3CR3T") == f"{name.title()}: {MASK}"
