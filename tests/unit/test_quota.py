"""Quotas without a network: calendar windows in UTC (properties), parsing, and the ledger's
blocks in a real SQLite file shared by two ledgers (as two processes would)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fetchpipe._exceptions import ConfigError
from fetchpipe._quota import Period, Quota, parse_quota, window_of
from fetchpipe.engine.quota_ledger import QuotaLedger
from fetchpipe.engine.quotas import BLOCK, QuotaBook, block_size

moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
periods: st.SearchStrategy[Period] = st.sampled_from(("hour", "day", "month"))
zones = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(moments, periods)
def test_a_moment_lies_in_its_window_which_the_reset_ends(when: datetime, per: Period) -> None:
    window = window_of(per, when)
    assert window.start <= when < window.reset
    assert window.start.tzinfo is not None and window.start.utcoffset() == timedelta(0)
    nxt = window_of(per, window.reset)
    assert nxt.start == window.reset and nxt.key > window.key  # the next window, in order
    assert window_of(per, window.reset - timedelta(microseconds=1)) == window
    lengths = {
        "hour": [timedelta(hours=1)],
        "day": [timedelta(days=1)],
        "month": [timedelta(days=d) for d in (28, 29, 30, 31)],
    }
    assert window.reset - window.start in lengths[per]


@given(moments, zones, periods)
def test_windows_are_utc_whatever_the_zone_of_the_moment(
    when: datetime, zone: timezone, per: Period
) -> None:
    assert window_of(per, when.astimezone(zone)) == window_of(per, when)


def test_window_keys_and_resets() -> None:
    at = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert window_of("hour", at).key == "2026-12-31T23"
    assert window_of("day", at).reset == datetime(2027, 1, 1, tzinfo=UTC)
    month = window_of("month", at)
    assert (month.key, month.reset) == ("2026-12", datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="aware"):
        window_of("day", datetime(2026, 1, 1))


def test_parse_quota() -> None:
    assert parse_quota("300/day") == Quota(300, "day")
    assert parse_quota(" 5 / Hour ") == Quota(5, "hour")
    assert parse_quota("1/month") == Quota(1, "month")
    for bad in ("300", "300/week", "x/day", "-1/day", "0/day"):
        with pytest.raises(ConfigError, match="HINT"):
            parse_quota(bad)


@given(st.integers(0, 10_000))
def test_a_block_is_what_the_host_will_send_within_one_block(waiting: int) -> None:
    size = block_size(waiting)
    assert 1 <= size <= BLOCK and size <= max(1, waiting)


def test_two_ledgers_on_one_file_never_grant_beyond_the_quota(tmp_path: Path) -> None:
    quota = Quota(120, "day")
    now = datetime.now(UTC)
    window = quota.window(now)
    a, b = QuotaLedger(tmp_path), QuotaLedger(tmp_path)
    granted = []
    for _ in range(10):
        granted.append(a.reserve("h", quota, window, 50)[0])
        granted.append(b.reserve("h", quota, window, 50)[0])
    assert sum(granted) == 120 and granted[:3] == [50, 50, 20] and set(granted[3:]) == {0}
    b.release("h", quota, window, 30)  # b sent 20 of its 50
    assert a.used("h", quota, now) == 90
    assert a.reserve("h", quota, window, 50) == (30, 120)
    assert a.reserve("other", quota, window, 5) == (5, 5)  # per host
    a.close()
    b.close()


def test_a_book_spends_blocks_and_gives_back_what_it_did_not_send(tmp_path: Path) -> None:
    quota = Quota(10, "hour")
    book = QuotaBook(tmp_path)
    host = book.for_host("h", quota)
    assert [host.spend(waiting=4) for _ in range(4)] == [True] * 4  # one block of 4
    assert host.spend(waiting=100)  # a new block: the 6 left
    assert host.left == 5
    book.close()  # 5 unspent go back
    again = QuotaBook(tmp_path)
    other = again.for_host("h", quota)
    assert [other.spend(waiting=1) for _ in range(6)] == [True] * 5 + [False]
    assert other.exhausted_until == quota.window(datetime.now(UTC)).reset.timestamp()
    message = other.message()
    assert "the quota of h (10 requests per hour) is spent" in message
    assert "it resets at" in message and ":00 UTC" in message and "HINT" in message
    again.close()
