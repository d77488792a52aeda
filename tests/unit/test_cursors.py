"""Typed incremental cursors as pure values: comparison, inference, lookback, formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe.pipeline import PipelineError
from fetchpipe.pipeline.runtime.records import RecordsError, latest_cursor
from fetchpipe.pipeline.spec.config import PipelineSpec, _build
from fetchpipe.pipeline.spec.cursors import (
    CursorError,
    CursorRule,
    cursor_key,
    infer_type,
    iso_utc,
    parse_datetime,
    parse_duration,
)
from fetchpipe.pipeline.spec.loading import load_yaml

INSTANTS = st.datetimes(
    min_value=datetime(1971, 1, 2), max_value=datetime(2999, 12, 30), timezones=st.just(UTC)
)
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@st.composite
def written(draw: st.DrawFn) -> tuple[datetime, str]:
    """An instant and the ISO 8601 text of it in some UTC offset (``Z`` for UTC, sometimes)."""
    instant = draw(INSTANTS)
    zone = draw(OFFSETS)
    text = instant.astimezone(zone).isoformat()
    if zone.utcoffset(None) == timedelta(0) and draw(st.booleans()):
        text = text.replace("+00:00", "Z")
    return instant, text


DATETIME = CursorRule("at", "datetime")
NUMBER = CursorRule("n", "number")


def test_the_example_of_the_issue_compares_as_instants() -> None:
    earlier, later = "2025-01-01T10:00:00+02:00", "2025-01-01T09:00:00Z"
    assert earlier > later  # as text, the earlier one sorts after
    assert DATETIME.greater(earlier, later) == later
    assert DATETIME.greater(later, earlier) == later
    assert latest_cursor([{"at": later}, {"at": earlier}], DATETIME, None) == later


@settings(max_examples=300, deadline=None)
@given(a=written(), b=written())
def test_datetimes_compare_as_the_instants_they_name(
    a: tuple[datetime, str], b: tuple[datetime, str]
) -> None:
    (instant_a, text_a), (instant_b, text_b) = a, b
    assert parse_datetime(text_a) == instant_a
    kept = DATETIME.greater(text_a, text_b)
    assert kept in (text_a, text_b)  # kept as written
    assert parse_datetime(kept) == max(instant_a, instant_b)
    if instant_a == instant_b:
        assert kept == text_a  # a tie keeps the current value


@settings(max_examples=200, deadline=None)
@given(values=st.lists(written(), min_size=1, max_size=20), seed=st.randoms())
def test_the_latest_cursor_does_not_depend_on_the_order(
    values: list[tuple[datetime, str]], seed: Any
) -> None:
    records = [{"at": text} for _, text in values]
    shuffled = list(records)
    seed.shuffle(shuffled)
    latest = max(instant for instant, _ in values)
    assert parse_datetime(latest_cursor(records, DATETIME, None)) == latest
    assert parse_datetime(latest_cursor(shuffled, DATETIME, None)) == latest
    untyped = latest_cursor(shuffled, "at", None)  # no type: the first value's decides
    assert parse_datetime(untyped) == latest


NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
)


@settings(max_examples=300, deadline=None)
@given(a=NUMBERS, b=NUMBERS)
def test_numbers_compare_as_numbers_whatever_they_are_written_as(a: Any, b: Any) -> None:
    kept = NUMBER.greater(a, b)
    assert cursor_key(kept, "number") == max(Decimal(str(a)), Decimal(str(b)))


def test_numbers_written_as_text_do_not_compare_as_text() -> None:
    assert NUMBER.greater("9", "10") == "10"
    assert NUMBER.greater("00123", 99) == "00123"
    assert CursorRule("n", "string").greater("9", "10") == "9"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("2025-01-01T10:00:00+02:00", "datetime"),
        ("2025-01-01", "datetime"),
        ("2025-01-01 10:00:00Z", "datetime"),
        ("20250101", "string"),  # no dashes: an id, not a date
        ("2025-13-01T00:00:00Z", "string"),  # month 13
        ("abc", "string"),
        (17, "number"),
        (1.5, "number"),
        (True, None),
        (None, None),
    ],
)
def test_the_type_is_inferred_from_a_value(value: Any, kind: str | None) -> None:
    assert infer_type(value) == kind


@pytest.mark.parametrize(
    ("rule", "current", "value", "message"),
    [
        (DATETIME, "2025-01-01T00:00:00Z", "yesterday", "'yesterday' is not an ISO 8601"),
        (DATETIME, None, 1735689600, "1735689600 is not an ISO 8601 date-time"),
        (NUMBER, 5, "five", "'five' is not a number"),
        (NUMBER, 5, True, "True is not a number"),
        (CursorRule("s", "string"), "a", 5, "5 is not text"),
        (CursorRule("u"), 5, "five", "'five' does not compare with 5 (read as a number)"),
    ],
)
def test_a_value_of_another_type_is_an_error_with_a_hint(
    rule: CursorRule, current: Any, value: Any, message: str
) -> None:
    with pytest.raises(CursorError, match="HINT") as caught:
        rule.greater(current, value)
    assert message in str(caught.value)
    with pytest.raises(RecordsError, match=f"incremental cursor_field {rule.field!r}"):
        latest_cursor([{rule.field: value}], rule, current)


@settings(max_examples=200, deadline=None)
@given(
    stored=written(),
    window=st.integers(min_value=0, max_value=400 * 86_400).map(lambda s: timedelta(seconds=s)),
)
def test_lookback_sends_the_greatest_instant_minus_the_window_in_utc(
    stored: tuple[datetime, str], window: timedelta
) -> None:
    instant, text = stored
    rule = CursorRule("at", "datetime", lookback=window)
    sent = rule.sent(text, stored=True)
    assert isinstance(sent, str) and sent.endswith("Z") and "+" not in sent
    assert parse_datetime(sent) == instant - window
    assert sent == iso_utc(instant - window)
    assert rule.sent(text, stored=False) == text  # initial: sent as written


@settings(max_examples=100, deadline=None)
@given(stored=written(), hours=st.integers(min_value=0, max_value=72))
def test_a_format_sends_the_instant_in_that_pattern_in_utc(
    stored: tuple[datetime, str], hours: int
) -> None:
    instant, text = stored
    fmt = "%Y-%m-%d %H:%M:%S"
    rule = CursorRule("at", "datetime", format=fmt, lookback=timedelta(hours=hours))
    sent = rule.sent(text, stored=True)
    moved = (instant - timedelta(hours=hours)).replace(microsecond=0)
    assert datetime.strptime(str(sent), fmt).replace(tzinfo=UTC) == moved
    assert parse_datetime(sent, fmt) == moved  # what is sent reads back with the format


def test_a_number_cursor_moves_back_by_a_number() -> None:
    rule = CursorRule("n", "number", lookback=Decimal(100))
    assert rule.sent(1000, stored=True) == 900
    assert rule.sent("1000.5", stored=True) == 900.5
    assert rule.sent(1000, stored=False) == 1000
    assert CursorRule("n", "number").sent("00123", stored=True) == "00123"  # as written


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.integers(min_value=0, max_value=500), st.sampled_from("wdhms")),
        min_size=1,
        max_size=5,
    )
)
def test_durations_add_up_their_parts(parts: list[tuple[int, str]]) -> None:
    seconds = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = timedelta(seconds=sum(n * seconds[unit] for n, unit in parts))
    assert parse_duration(text) == expected
    assert parse_duration(text.upper()) == expected


@pytest.mark.parametrize("value", ["", "2 hours", "h", "-2h", "2x", True, float("inf"), -1])
def test_a_bad_duration_says_how_to_write_one(value: Any) -> None:
    with pytest.raises(CursorError, match="HINT: write it as 2h, 30m, 1d or 90s"):
        parse_duration(value)


def test_state_written_as_text_by_an_older_version_reads_as_its_type() -> None:
    """Older versions stored the greatest value as text compared as text: it still reads, and
    now compares as an instant (an untyped rule infers it from the stored value)."""
    stored = "2025-01-01T09:00:00Z"
    untyped = CursorRule("updated_at")
    assert untyped.greater(stored, "2025-01-01T10:30:00+02:00") == stored
    assert untyped.greater(stored, "2025-01-01T08:30:00-01:00") == "2025-01-01T08:30:00-01:00"
    assert untyped.sent(stored, stored=True) == stored


# --- the incremental block of a pipeline file ------------------------------------------------

PIPELINE = """\
name: p
sources:
  - name: orders
    url: https://x.test/orders
    primary_key: id
    write: {write}
    incremental: {incremental}
"""


def _load(incremental: str, write: str = "merge") -> Any:
    text = PIPELINE.format(incremental=incremental, write=write)
    return _build(load_yaml(text, "p.yaml"), {})


def _problems(incremental: str, write: str = "merge") -> list[str]:
    with pytest.raises(PipelineError) as caught:
        _load(incremental, write)
    return [line.removeprefix("p.yaml:7: sources[0].") for line in str(caught.value).splitlines()]


def test_the_type_comes_from_initial_and_the_rule_from_the_block() -> None:
    spec = _load("{cursor_field: at, param: since, initial: '2025-01-01T00:00:00+02:00'}")
    incremental = spec.sources[0].incremental
    assert incremental.type is None and incremental.cursor_type == "datetime"
    assert incremental.rule() == CursorRule("at", "datetime")
    spec = _load("{cursor_field: n, param: after, initial: 0, lookback: 50}")
    assert spec.sources[0].incremental.rule() == CursorRule("n", "number", lookback=Decimal(50))
    spec = _load(
        "{cursor_field: at, param: since, type: datetime, lookback: 1h30m, format: '%Y%m%d'}"
    )
    rule = spec.sources[0].incremental.rule()
    assert rule.lookback == timedelta(minutes=90) and rule.format == "%Y%m%d"


def test_the_first_value_sent_is_initial_in_the_format() -> None:
    spec = _load(
        "{cursor_field: at, param: since, initial: '2025-01-01T02:00:00+02:00', "
        "format: '%Y-%m-%d %H:%M', lookback: 2h}"
    )
    assert spec.sources[0].incremental.first_value() == "2025-01-01 00:00"
    spec = _load("{cursor_field: at, param: since, initial: '2025-01-01'}")
    assert spec.sources[0].incremental.first_value() == "2025-01-01"  # as written


@pytest.mark.parametrize(
    ("incremental", "write", "problem"),
    [
        (
            "{cursor_field: at, param: since, type: datetime, initial: yesterday}",
            "merge",
            "incremental.initial: 'yesterday' is not an ISO 8601 date-time. HINT: give text "
            "such as 2025-01-01T09:00:00Z, or set incremental.type: number or string",
        ),
        (
            "{cursor_field: n, param: after, type: number, initial: '1e'}",
            "merge",
            "incremental.initial: '1e' is not a number. HINT: set incremental.type: datetime "
            "or string",
        ),
        (
            "{cursor_field: at, param: since, type: datetim}",
            "merge",
            "incremental.type: must be one of datetime, number, string; got 'datetim'. "
            "HINT: did you mean `datetime`?",
        ),
        (
            "{cursor_field: at, param: since, initial: 5, format: '%Y'}",
            "merge",
            "incremental.format: is for datetime cursors; this one is a number",
        ),
        (
            "{cursor_field: at, param: since, type: datetime, format: 'Y-m-d'}",
            "merge",
            "incremental.format: has no strftime directive. HINT: write a pattern such as "
            "'%Y-%m-%d %H:%M:%S'",
        ),
        (
            "{cursor_field: at, param: since, lookback: 2h}",
            "merge",
            "incremental.lookback: needs the cursor's type. HINT: add type: datetime (or "
            "number), or an initial value",
        ),
        (
            "{cursor_field: at, param: since, initial: abc, lookback: 2h}",
            "merge",
            "incremental.lookback: moves a datetime or a number back; text cannot be. HINT: "
            "set type: datetime or number, or remove lookback",
        ),
        (
            "{cursor_field: at, param: since, type: datetime, lookback: 2 hours}",
            "merge",
            "incremental.lookback: '2 hours' is not a duration. HINT: write it as 2h, 30m, 1d "
            "or 90s (or a number of seconds)",
        ),
        (
            "{cursor_field: n, param: after, type: number, lookback: 2h}",
            "merge",
            "incremental.lookback: '2h' is not a window for a number cursor. HINT: give a "
            "number to subtract, such as 100",
        ),
        (
            "{cursor_field: at, param: since, type: datetime, lookback: 2h}",
            "append",
            "incremental.lookback: fetches records that were loaded already, and write: append "
            "would load them twice. HINT: use write: merge with a primary_key (records seen "
            "again replace their rows)",
        ),
    ],
)
def test_each_bad_block_says_what_and_how_to_fix_it(
    incremental: str, write: str, problem: str
) -> None:
    assert _problems(incremental, write) == [problem]


def test_replace_with_a_lookback_is_allowed() -> None:
    spec = _load("{cursor_field: at, param: since, type: datetime, lookback: 2h}", "replace")
    assert spec.sources[0].write == "replace"


def _run(state: dict[str, Any] | None, **incremental: Any) -> Any:
    from fetchpipe.pipeline.runtime.source_run import SourceRun

    spec = _load(
        "{"
        + ", ".join(
            f"{k}: {v!r}"
            for k, v in {"cursor_field": "at", "param": "since", **incremental}.items()
        )
        + "}"
    )
    return SourceRun.start(
        spec.sources[0],
        write=False,
        full_refresh=False,
        state=state,
        ended=None,
        parent=None,
        redact=str,
    )


def test_a_run_sends_the_stored_cursor_minus_the_lookback_or_initial_as_written() -> None:
    initial = "2025-01-01T00:00:00+02:00"
    run = _run(None, initial=initial, lookback="2h")
    assert run.params["since"] == initial and run.cursor == initial and run.failure is None
    run = _run({"cursor": "2025-01-03T17:23:00-08:00"}, initial=initial, lookback="2h")
    assert run.params["since"] == "2025-01-03T23:23:00Z"
    assert run.cursor == "2025-01-03T17:23:00-08:00"  # compared from, as it was stored


def test_a_stored_cursor_of_another_type_fails_the_source_with_a_way_out() -> None:
    run = _run({"cursor": 1735689600}, type="datetime", lookback="2h")
    assert run.failure is not None
    assert "the stored incremental cursor does not fit the source: 1735689600" in run.failure
    assert "HINT: fetchpipe state set PIPELINE orders VALUE, or state reset" in run.failure


def test_the_json_schema_has_the_new_keys() -> None:
    block = PipelineSpec.json_schema()["$defs"]["Incremental"]["properties"]
    assert {"type", "lookback", "format"} <= set(block)
    assert block["type"]["anyOf"][0]["enum"] == ["datetime", "number", "string"]
