"""The published rate limits read from response headers: each form, and bad values ignored."""

from __future__ import annotations

import math
from email.utils import formatdate

from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from fetchpipe.engine.ratelimit_headers import (
    LEGACY,
    NOTHING,
    Published,
    Window,
    read_limits,
    reset_seconds,
)

NOW = 1_700_000_000.0


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def read(*pairs: tuple[str, str], cap: float = math.inf) -> Published:
    return read_limits(headers(*pairs), NOW, retry_after_max=cap)


# --- the IETF fields ------------------------------------------------------------------------


def test_policy_and_ratelimit_of_draft_10() -> None:
    got = read(("RateLimit-Policy", '"default";q=10;w=2'), ("RateLimit", '"default";r=4;t=1'))
    assert got.windows == (Window("default", limit=10, remaining=4, reset=1.0, window=2.0),)
    assert got.windows[0].per_second == 5.0
    assert got.rate_headers
    assert got.retry_after is None


def test_several_policies_each_with_its_own_window() -> None:
    got = read(
        ("RateLimit-Policy", '"burst";q=100;w=60, "day";q=1000;w=86400'),
        ("RateLimit", '"burst";r=50;t=30, "day";r=900;t=3600'),
    )
    assert got.windows == (
        Window("burst", 100, 50, 30.0, 60.0),
        Window("day", 1000, 900, 3600.0, 86400.0),
    )


def test_policies_on_two_header_lines_are_one_list() -> None:
    got = read(
        ("RateLimit-Policy", '"a";q=10;w=1'),
        ("RateLimit-Policy", '"b";q=100;w=60'),
        ("RateLimit", '"b";r=7;t=5'),
    )
    assert Window("b", 100, 7, 5.0, 60.0) in got.windows
    assert Window("a", 10, None, None, 1.0) in got.windows  # a policy with no count left


def test_a_token_name_and_unknown_parameters() -> None:
    got = read(("RateLimit", "default;r=3;t=2;pk=:cHJvamVjdDEyMw==:"))
    assert got.windows == (Window("default", None, 3, 2.0, None),)


def test_the_dictionary_form_of_draft_07() -> None:
    got = read(("RateLimit", "limit=10, remaining=5, reset=3"))
    assert got.windows == (Window("default", 10, 5, 3.0, None),)


def test_a_policy_alone_gives_a_rate_to_pace_by() -> None:
    got = read(("RateLimit-Policy", '"default";q=50;w=10'))
    assert got.windows == (Window("default", 50, None, None, 10.0),)
    assert got.windows[0].per_second == 5.0


def test_bad_structured_fields_are_ignored() -> None:
    for text in ('"default";r=-1;t=-2', '"default";r=?1;t=?0', '"default";r=2.5;t="x"'):
        got = read(("RateLimit", text))
        assert all(w.remaining is None and w.reset is None for w in got.windows), text
    assert read(("RateLimit", "default;;r=1")) is NOTHING  # not a list: nothing read
    assert read(("RateLimit", "défaut;r=1")) is NOTHING  # not ASCII
    assert read(("RateLimit-Policy", '"x";q=10;w=0')) is NOTHING  # no window: nothing to pace


# --- X-RateLimit-* ---------------------------------------------------------------------------


def test_x_ratelimit_with_an_epoch_reset() -> None:
    got = read(
        ("X-RateLimit-Limit", "60"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", str(int(NOW) + 42)),
    )
    assert got.windows == (Window(LEGACY, 60, 0, 42.0, None),)


def test_x_ratelimit_with_a_delta_reset_and_decimals() -> None:
    got = read(
        ("x-ratelimit-limit", "60"), ("x-ratelimit-remaining", "7"), ("x-ratelimit-reset", "2.5")
    )
    assert got.windows == (Window(LEGACY, 60, 7, 2.5, None),)


def test_reset_forms_are_told_apart_by_size() -> None:
    assert reset_seconds("30", NOW) == 30.0
    assert reset_seconds(str(int(NOW) + 30), NOW) == 30.0
    assert reset_seconds(str(int(NOW * 1000) + 30_000), NOW) == 30.0  # milliseconds
    assert reset_seconds(str(int(NOW) - 100), NOW) == 0.0  # already past
    # A server clock 1 h ahead: its epoch reset is read against its own Date.
    assert reset_seconds(str(int(NOW) + 3630), NOW, server_now=NOW + 3600) == 30.0
    for bad in ("-5", "soon", "", "1e3", "١٢", "9" * 50):
        assert reset_seconds(bad, NOW) is None, bad


def test_the_date_header_corrects_a_skewed_epoch_reset() -> None:
    got = read(
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", str(int(NOW) + 3610)),
        ("Date", formatdate(NOW + 3600, usegmt=True)),
    )
    assert got.windows[0].reset == 10.0


def test_both_forms_of_one_limit_are_one_window_with_the_sooner_reset() -> None:
    got = read(
        ("RateLimit-Policy", '"default";q=10;w=2'),
        ("RateLimit", '"default";r=3;t=2'),  # whole seconds, rounded up
        ("X-RateLimit-Limit", "10"),
        ("X-RateLimit-Remaining", "3"),
        ("X-RateLimit-Reset", str(NOW + 1.25)),
    )
    assert got.windows == (Window("default", 10, 3, 1.25, 2.0),)


def test_a_reset_beyond_the_cap_is_not_waited_for() -> None:
    spent = read(
        ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", str(int(NOW) + 3600)), cap=300
    )
    assert spent is NOTHING
    left = read(("X-RateLimit-Remaining", "9"), ("X-RateLimit-Reset", "3600"), cap=300)
    assert left.windows == (Window(LEGACY, None, 9, None, None),)
    assert read(("RateLimit", '"d";r=0;t=3600'), cap=300) is NOTHING


# --- Retry-After -----------------------------------------------------------------------------


def test_retry_after_on_any_answer_within_the_cap() -> None:
    assert read(("Retry-After", "7")).retry_after == 7.0
    assert read(("Retry-After", formatdate(NOW + 20, usegmt=True))).retry_after == 20.0
    assert read(("Retry-After", "7")).rate_headers is False
    assert read(("Retry-After", "600"), cap=300) is NOTHING
    assert read(("Retry-After", "whenever")) is NOTHING


def test_no_headers_read_as_nothing() -> None:
    assert read(("Content-Type", "application/json")) is NOTHING
    assert read_limits({"content-type": "x"}, NOW) is NOTHING
    # A plain mapping is read without regard to case, as HTTP names are.
    assert read_limits({"retry-after": "3"}, NOW).retry_after == 3.0


# --- robustness ------------------------------------------------------------------------------

NAMES = st.sampled_from(
    [
        "RateLimit",
        "RateLimit-Policy",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
        "Date",
    ]
)
VALUES = st.one_of(
    st.text(max_size=60),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.builds(
        lambda name, r, t: f'"{name}";r={r};t={t}',
        st.text(alphabet="abc", min_size=1, max_size=3),
        st.integers(-5, 10**12),
        st.integers(-5, 10**12),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(NAMES, VALUES), max_size=8),
    st.floats(min_value=0, max_value=10**6),
)
def test_any_headers_never_raise_nor_ask_for_a_wait_beyond_the_cap(
    pairs: list[tuple[str, str]], cap: float
) -> None:
    got = read_limits(headers(*pairs), NOW, retry_after_max=cap)
    if got.retry_after is not None:
        assert 0 <= got.retry_after <= cap
    for window in got.windows:
        if window.reset is not None:
            assert 0 <= window.reset <= cap
        for count in (window.limit, window.remaining):
            assert count is None or count >= 0
        assert window.window is None or window.window > 0
