"""A host's politeness figures over several engines (a cluster fetch's batches one after
another, a split host's tasks side by side): counts add up, and the limit in force is the
later one's, or for the parts of one host the whole host's."""

from __future__ import annotations

import copy
import functools

from hypothesis import given
from hypothesis import strategies as st

from fetchpipe._host_rates import HostRateReport, one_after_another, side_by_side

_published = st.sampled_from(["10 per 2 s", "4 per 1 s", "5 per window"])


@st.composite
def reports(draw: st.DrawFn) -> HostRateReport:
    """A report as an engine fills one: a source only with a published limit, a learned rate
    only without one."""
    known = draw(st.sampled_from(["published", "learned", "nothing"]))
    published = draw(_published) if known == "published" else None
    per_second = None
    if known != "nothing":
        per_second = draw(st.floats(0.1, 100).map(lambda x: round(x, 2)))
    return HostRateReport(
        "api.test",
        throttled=draw(st.integers(0, 1000)),
        paused=draw(st.floats(0, 1000).map(lambda x: round(x, 2))),
        published=published,
        per_second=per_second,
        learned=known == "learned",
        unavailable=draw(st.integers(0, 1000)),
        source="RateLimit-Policy" if published else None,
        configured=draw(st.none() | st.floats(0.5, 50).map(lambda x: round(x, 2))),
    )


def _counts(report: HostRateReport) -> tuple[int, int, float]:
    return report.throttled, report.unavailable, round(report.paused, 6)


def _limit_fields(report: HostRateReport) -> tuple[object, ...]:
    return report.published, report.source, report.per_second, report.learned


@given(st.lists(reports(), min_size=1, max_size=6))
def test_one_batch_after_another_adds_the_counts_and_keeps_the_last_known_limit(
    batches: list[HostRateReport],
) -> None:
    kept = copy.deepcopy(batches)
    combined = functools.reduce(HostRateReport.then, batches)
    assert batches == kept  # nothing combined is changed
    assert combined.throttled == sum(b.throttled for b in batches)
    assert combined.unavailable == sum(b.unavailable for b in batches)
    assert abs(combined.paused - sum(b.paused for b in batches)) < 1e-6
    knowing = [b for b in batches if b.published is not None or b.learned]
    last = knowing[-1] if knowing else batches[0]
    assert _limit_fields(combined) == _limit_fields(last)
    configured = [b.configured for b in batches if b.configured is not None]
    assert combined.configured == (configured[-1] if configured else None)


@given(st.lists(reports(), min_size=1, max_size=6))
def test_a_split_host_s_parts_add_their_counts_and_shares_in_any_order(
    parts: list[HostRateReport],
) -> None:
    combined = functools.reduce(HostRateReport.beside, parts)
    backwards = functools.reduce(HostRateReport.beside, reversed(parts))
    assert _counts(combined) == _counts(backwards)
    assert combined.throttled == sum(p.throttled for p in parts)
    assert combined.unavailable == sum(p.unavailable for p in parts)
    configured = [p.configured for p in parts if p.configured is not None]
    if configured:
        assert combined.configured is not None
        assert abs(combined.configured - sum(configured)) < 1e-6
    else:
        assert combined.configured is None
    published = [p for p in parts if p.published is not None]
    if published:  # the host's own limit, the strictest read
        assert not combined.learned and combined.published is not None
        assert combined.per_second == min(p.per_second or 0.0 for p in published)
    elif any(p.learned for p in parts):  # the parts' rates add up: the host got their sum
        rates = [p.per_second if p.learned else p.configured for p in parts]
        assert combined.learned and combined.per_second is not None
        assert abs(combined.per_second - sum(r for r in rates if r is not None)) < 1e-6
    else:
        assert (combined.published, combined.per_second, combined.learned) == (None, None, False)


def test_two_halves_of_a_host_read_as_the_whole_host() -> None:
    half = HostRateReport("api.test", throttled=3, per_second=2.5, learned=True, configured=5.0)
    other = HostRateReport("api.test", throttled=1, paused=1.5, configured=5.0)
    whole = half.beside(other)
    assert whole.limit == "learned 7.5/s (ceiling 10/s)"  # 2.5 learned + 5 still configured
    assert whole.text == "learned 7.5/s (ceiling 10/s), 4 429s, paused 1.5 s"
    quiet = HostRateReport("api.test", configured=5.0).beside(HostRateReport("api.test"))
    assert quiet.limit == "configured 5/s"
    read = HostRateReport(
        "api.test", published="4 per 1 s", source="RateLimit-Policy", per_second=4.0
    )
    assert half.beside(read).limit == "published 4 per 1 s (RateLimit-Policy)"


def test_a_later_batch_that_met_nothing_keeps_the_limit_and_one_that_read_a_new_one_wins() -> None:
    first = HostRateReport("h", throttled=2, per_second=3.0, learned=True)
    nothing = HostRateReport("h", paused=0.5)
    assert first.then(nothing).text == "learned 3/s, 2 429s, paused 0.5 s"
    read = HostRateReport("h", published="10 per 2 s", source="X-RateLimit-*", per_second=5.0)
    assert first.then(read).text == "published 10 per 2 s (X-RateLimit-*), 2 429s, paused 0.0 s"
    assert read.then(first).limit == "learned 3/s"  # the later one is in force at the end


def test_the_mappings_combine_host_by_host_and_are_left_unchanged() -> None:
    a = {"one": HostRateReport("one", throttled=1), "two": HostRateReport("two", throttled=2)}
    b = {"two": HostRateReport("two", throttled=3), "three": HostRateReport("three", paused=1.0)}
    before = copy.deepcopy((a, b))
    for combine in (one_after_another, side_by_side):
        combined = combine(a, b)
        assert {host: r.throttled for host, r in combined.items()} == {
            "one": 1,
            "two": 5,
            "three": 0,
        }
        assert (a, b) == before
        assert combined["one"] is a["one"] and combined["three"] is b["three"]
