"""RFC 9111 rules as pure functions: no clock, no network."""

from __future__ import annotations

import email.utils
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from fetchpipe.engine.cache import policy
from fetchpipe.engine.cache.keys import cache_key, vary_fingerprint
from fetchpipe.engine.cache.policy import Action

DATE = "Wed, 01 Jan 2025 00:00:00 GMT"
T0 = 1735689600.0  # DATE as Unix time


def h(**headers: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()})


def test_parse_cache_control() -> None:
    cc = policy.parse_cache_control('Max-Age=60, no-cache, s-maxage="120", private, foo=bar')
    assert cc.max_age == 60 and cc.s_maxage == 120 and cc.no_cache and cc.private
    assert not cc.no_store
    assert policy.parse_cache_control("max-age=abc").max_age is None
    assert policy.parse_cache_control(None) == policy.CacheControl()


@pytest.mark.parametrize(
    ("headers", "shared", "ttl", "expected"),
    [
        (h(Cache_Control="max-age=60"), False, None, 60.0),
        (h(Cache_Control="max-age=60, s-maxage=600"), False, None, 60.0),
        (h(Cache_Control="max-age=60, s-maxage=600"), True, None, 600.0),
        (h(Cache_Control="no-cache, max-age=60"), False, None, 0.0),
        (h(Expires="Wed, 01 Jan 2025 00:05:00 GMT", Date=DATE), False, None, 300.0),
        (h(Expires="garbage", Date=DATE), False, 999.0, 0.0),  # invalid Expires: expired
        (h(), False, 30.0, 30.0),  # no explicit freshness: the configured TTL
        (h(Cache_Control="max-age=5"), False, 30.0, 5.0),  # explicit beats the TTL
        (h(Last_Modified="Tue, 21 Dec 2024 00:00:00 GMT", Date=DATE), False, None, 86400.0),
        (h(Last_Modified="Tue, 31 Dec 2024 14:00:00 GMT", Date=DATE), False, None, 3600.0),
        (h(), False, None, 0.0),
    ],
)
def test_freshness_lifetime(
    headers: CIMultiDict[str], shared: bool, ttl: float | None, expected: float
) -> None:
    assert policy.freshness_lifetime(200, headers, shared=shared, default_ttl=ttl) == expected


def test_current_age_counts_age_header_delay_and_residence() -> None:
    headers = h(Date=DATE, Age="10")
    age = policy.current_age(headers, request_time=T0, response_time=T0 + 2, now=T0 + 100)
    assert age == pytest.approx(12 + 98)


def test_lookup_fresh_stale_and_validators() -> None:
    fresh = h(Cache_Control="max-age=60", Date=DATE, ETag='"x"')
    times = {"request_time": T0, "response_time": T0, "status": 200}
    assert policy.lookup_decision(fresh, now=T0 + 30, **times).action is Action.USE
    stale = policy.lookup_decision(fresh, now=T0 + 61, **times)
    assert stale.action is Action.REVALIDATE
    assert stale.conditional_headers == {"If-None-Match": '"x"'}
    both = h(Cache_Control="max-age=0", Date=DATE, ETag='"x"', Last_Modified=DATE)
    assert policy.lookup_decision(both, now=T0, **times).conditional_headers == {
        "If-None-Match": '"x"',
        "If-Modified-Since": DATE,
    }
    bare = h(Cache_Control="max-age=0", Date=DATE)
    assert policy.lookup_decision(bare, now=T0, **times).action is Action.FETCH


@pytest.mark.parametrize(
    ("method", "status", "headers", "storable"),
    [
        ("GET", 200, h(Cache_Control="max-age=60"), True),
        ("GET", 200, h(ETag='"x"'), True),
        ("GET", 200, h(), False),  # nothing to reuse it by
        ("GET", 200, h(Cache_Control="no-store, max-age=60"), False),
        ("GET", 404, h(Cache_Control="max-age=60"), False),  # errors are never stored
        ("GET", 500, h(Cache_Control="max-age=60"), False),
        ("GET", 206, h(Cache_Control="max-age=60"), False),
        ("POST", 200, h(Cache_Control="max-age=60"), False),
        ("GET", 200, h(Cache_Control="max-age=60", Vary="*"), False),
    ],
)
def test_storable(method: str, status: int, headers: CIMultiDict[str], storable: bool) -> None:
    assert policy.storable(method, status, headers) is storable


def test_private_is_stored_by_a_private_cache_only() -> None:
    headers = h(Cache_Control="private, max-age=60")
    assert policy.storable("GET", 200, headers)
    assert not policy.storable("GET", 200, headers, shared=True)


def test_a_configured_ttl_makes_header_less_responses_storable() -> None:
    assert policy.storable("GET", 200, h(), default_ttl=60)
    assert not policy.storable("GET", 200, h(Cache_Control="no-store"), default_ttl=60)


def test_stale_if_error_bounds() -> None:
    headers = h(Cache_Control="max-age=10", Date=DATE)
    times = {"request_time": T0, "response_time": T0, "status": 200}
    assert policy.stale_usable_on_error(headers, now=T0 + 100, max_stale=100, **times)
    assert not policy.stale_usable_on_error(headers, now=T0 + 200, max_stale=100, **times)
    own = h(Cache_Control="max-age=10, stale-if-error=1000", Date=DATE)
    assert policy.stale_usable_on_error(own, now=T0 + 500, max_stale=0, **times)
    strict = h(Cache_Control="max-age=10, must-revalidate", Date=DATE)
    assert not policy.stale_usable_on_error(strict, now=T0 + 11, max_stale=1e9, **times)


def test_merge_304_updates_headers_and_keeps_length() -> None:
    stored = [("Content-Type", "application/json"), ("ETag", '"a"'), ("Content-Length", "5")]
    merged = policy.merge_304(stored, {"ETag": '"b"', "Content-Length": "0", "Date": DATE})
    assert dict(merged) == {
        "Content-Type": "application/json",
        "ETag": '"b"',
        "Content-Length": "5",
        "Date": DATE,
    }


def test_keys_separate_credentials_and_redact_them() -> None:
    base = "https://api.test/items?page=2"
    a = cache_key("GET", base + "&api_key=SECRET1", None, {})
    b = cache_key("GET", base + "&api_key=SECRET2", None, {})
    assert a.key != b.key and a.url == b.url == "https://api.test/items?page=2&api_key=REDACTED"
    c = cache_key("GET", base, None, {"authorization": "Bearer one"})
    d = cache_key("GET", base, None, {"authorization": "Bearer two"})
    e = cache_key("GET", base, None, {"accept": "application/json"})
    assert len({c.key, d.key, e.key}) == 3
    assert "one" not in c.url and c.url == base
    assert cache_key("GET", base, {"page": 2}, {}).url == base + "&page=2"
    assert cache_key("GET", base + "#frag", None, {}).key == cache_key("GET", base, None, {}).key
    assert cache_key("HEAD", base, None, {}).key != cache_key("GET", base, None, {}).key
    u1 = cache_key("GET", "https://me:pw1@api.test/x", None, {})
    u2 = cache_key("GET", "https://me:pw2@api.test/x", None, {})
    assert u1.key != u2.key and u1.url == u2.url == "https://api.test/x"


def test_vary_fingerprint_hashes_values() -> None:
    en = vary_fingerprint("Accept-Language, Authorization", {"accept-language": "en"})
    es = vary_fingerprint("authorization,accept-language", {"accept-language": "es"})
    assert en != es and "en" not in en
    assert vary_fingerprint(None, {"accept-language": "en"}) == ""


# --- properties ---------------------------------------------------------------------------------

_DELTA = st.integers(min_value=0, max_value=10**12)
_DIRECTIVE = st.one_of(
    st.sampled_from(
        [
            "no-cache",
            "no-store",
            "private",
            "public",
            "must-revalidate",
            "proxy-revalidate",
            "immutable",
            "foo=bar",
            "max-age=abc",
            "max-age=-5",
            "max-age=1.5",
            "",
        ]
    ),
    _DELTA.map("max-age={}".format),
    _DELTA.map('max-age="{}"'.format),
    _DELTA.map("s-maxage={}".format),
    _DELTA.map("stale-if-error={}".format),
)
_UNIX = st.integers(min_value=0, max_value=2**33)
_HTTP_DATE = st.one_of(
    _UNIX.map(lambda t: email.utils.formatdate(t, usegmt=True)),
    st.sampled_from(["garbage", "0", "-1", "", "Wed, 01 Jan 2025 00:00:00"]),  # the last: no zone
)
_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Cache-Control": st.lists(_DIRECTIVE, max_size=4).map(", ".join),
        "Expires": _HTTP_DATE,
        "Date": _HTTP_DATE,
        "Last-Modified": _HTTP_DATE,
        "Age": st.one_of(_DELTA.map(str), st.just("soon")),
        "ETag": st.just('"v1"'),
        "Vary": st.sampled_from(["Accept", "*"]),
    },
).map(lambda headers: CIMultiDict(headers))
_STATUS = st.sampled_from([200, 203, 204, 206, 300, 301, 302, 304, 308, 404, 410, 500, 503])
_TTL = st.one_of(st.none(), st.floats(min_value=0, max_value=1e9))
_TIMES = st.tuples(_UNIX, st.integers(0, 3600), st.integers(0, 10**9)).map(
    lambda t: (float(t[0]), float(t[0] + t[1]), float(t[0] + t[1] + t[2]))
)
"""(request_time, response_time, now), in that order."""


@settings(max_examples=200, deadline=None)
@given(status=_STATUS, headers=_HEADERS, shared=st.booleans(), ttl=_TTL)
def test_a_freshness_lifetime_is_never_negative(
    status: int, headers: CIMultiDict[str], shared: bool, ttl: float | None
) -> None:
    lifetime = policy.freshness_lifetime(status, headers, shared=shared, default_ttl=ttl)
    assert 0.0 <= lifetime < math.inf
    if policy.parse_cache_control(headers.get("Cache-Control")).no_cache:
        assert lifetime == 0.0


@settings(max_examples=200, deadline=None)
@given(status=_STATUS, date=_HTTP_DATE, last_modified=_HTTP_DATE)
def test_a_heuristic_lifetime_is_at_most_a_day_and_only_for_cacheable_statuses(
    status: int, date: str, last_modified: str
) -> None:
    headers = CIMultiDict({"Date": date, "Last-Modified": last_modified})
    lifetime = policy.freshness_lifetime(status, headers)
    assert 0.0 <= lifetime <= policy.HEURISTIC_MAX
    if status not in policy.HEURISTIC_STATUSES:
        assert lifetime == 0.0


_METHOD = st.sampled_from(["GET", "HEAD", "POST", "PUT"])


@settings(max_examples=200, deadline=None)
@given(
    method=_METHOD,
    status=_STATUS,
    headers=_HEADERS,
    request_no_store=st.booleans(),
    shared=st.booleans(),
    ttl=_TTL,
)
def test_only_successful_gets_are_stored(
    method: str,
    status: int,
    headers: CIMultiDict[str],
    request_no_store: bool,
    shared: bool,
    ttl: float | None,
) -> None:
    stored = policy.storable(
        method, status, headers, request_no_store=request_no_store, shared=shared, default_ttl=ttl
    )
    if stored:
        assert method == "GET" and status in policy.STORABLE_STATUSES and not request_no_store
        assert headers.get("Vary") != "*"
        cc = policy.parse_cache_control(headers.get("Cache-Control"))
        assert not (shared and cc.private)


@settings(max_examples=150, deadline=None)
@given(
    directives=st.lists(_DIRECTIVE, max_size=4),
    where=st.integers(0, 4),
    spelling=st.sampled_from(["no-store", "No-Store", " no-store ", "NO-STORE"]),
    headers=_HEADERS,
    shared=st.booleans(),
    ttl=_TTL,
)
def test_a_no_store_response_is_never_stored(
    directives: list[str],
    where: int,
    spelling: str,
    headers: CIMultiDict[str],
    shared: bool,
    ttl: float | None,
) -> None:
    directives.insert(where, spelling)
    headers["Cache-Control"] = ",".join(directives)
    assert not policy.storable("GET", 200, headers, shared=shared, default_ttl=ttl)


@settings(max_examples=150, deadline=None)
@given(headers=_HEADERS, times=_TIMES, later=st.integers(0, 10**9))
def test_an_entry_ages_as_time_passes_and_once_stale_stays_stale(
    headers: CIMultiDict[str], times: tuple[float, float, float], later: int
) -> None:
    request_time, response_time, now = times
    when = {"request_time": request_time, "response_time": response_time}
    age = policy.current_age(headers, now=now, **when)
    older = policy.current_age(headers, now=now + later, **when)
    assert 0.0 <= age <= older
    assert older - age == pytest.approx(later)  # residence time counts one for one
    first = policy.lookup_decision(headers, status=200, now=now, **when)
    then = policy.lookup_decision(headers, status=200, now=now + later, **when)
    if first.action is not Action.USE:
        assert then.action is not Action.USE


@settings(max_examples=150, deadline=None)
@given(max_age=st.integers(0, 10**9), received=_UNIX, elapsed=st.integers(0, 2 * 10**9))
def test_max_age_is_fresh_for_exactly_that_many_seconds(
    max_age: int, received: int, elapsed: int
) -> None:
    headers = CIMultiDict(
        {
            "Cache-Control": f"max-age={max_age}",
            "Date": email.utils.formatdate(received, usegmt=True),
            "ETag": '"v1"',
        }
    )
    t = float(received)
    lookup = policy.lookup_decision(
        headers, status=200, request_time=t, response_time=t, now=t + elapsed
    )
    if elapsed < max_age:
        assert lookup == policy.Lookup(Action.USE)
    else:
        assert lookup == policy.Lookup(Action.REVALIDATE, {"If-None-Match": '"v1"'})


@settings(max_examples=150, deadline=None)
@given(
    headers=_HEADERS,
    times=_TIMES,
    bounds=st.tuples(st.floats(0, 1e9), st.floats(0, 1e9)).map(sorted),
)
def test_a_stale_entry_usable_on_error_stays_usable_with_a_longer_bound(
    headers: CIMultiDict[str], times: tuple[float, float, float], bounds: list[float]
) -> None:
    request_time, response_time, now = times
    when = {"request_time": request_time, "response_time": response_time, "now": now}
    short, long = (
        policy.stale_usable_on_error(headers, status=200, max_stale=bound, **when)
        for bound in bounds
    )
    assert short <= long
    if policy.parse_cache_control(headers.get("Cache-Control")).must_revalidate:
        assert not long
