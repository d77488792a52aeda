"""What a run met at a host, as the summaries and the report show it: HostPace fills a
HostRateReport from the answers it is told (no network: answers are status and headers), and
the report goes to JSON and back unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from fetchpipe._host_rates import HostRateReport
from fetchpipe.destinations.run_log import RunSummary
from fetchpipe.engine.aimd import AdaptivePolicy
from fetchpipe.engine.politeness import HostPace
from fetchpipe.report import from_rows, politeness
from fetchpipe.report.html import render


@dataclass
class _Host:
    name: str = "api.test"
    active: int = 1
    interval: float = 0.0
    tolerance: float = 0.0
    remember_until: float = 0.0
    fresh_first: int = 0
    fresh: list[object] = field(default_factory=list)


def _pace(reports: dict[str, HostRateReport], ceiling: float | None = None) -> HostPace:
    return HostPace(
        AdaptivePolicy(), read_headers=True, aimd=True, ceiling=ceiling, reports=reports
    )


def _answer(pace: HostPace, host: _Host, status: int, headers: dict[str, str], at: float) -> None:
    pace.started(host, at)
    pace.answered(host, status, headers, at, at + 0.01, retry_after_max=60.0)


def test_throttles_are_counted_apart_and_the_ceiling_is_shown() -> None:
    reports: dict[str, HostRateReport] = {}
    pace, host = _pace(reports, ceiling=50.0), _Host()
    _answer(pace, host, 200, {}, 0.0)
    assert reports == {}  # nothing happened: nothing to show
    _answer(pace, host, 429, {}, 0.1)
    _answer(pace, host, 503, {"Retry-After": "1"}, 0.2)
    _answer(pace, host, 503, {}, 0.3)  # a 503 without Retry-After is an outage, not a throttle
    report = reports["api.test"]
    assert (report.throttled, report.unavailable, report.configured) == (1, 1, 50.0)
    assert report.learned and report.per_second is not None and report.per_second <= 50.0
    assert report.limit == f"learned {report.per_second:.3g}/s (ceiling 50/s)"
    assert report.text.startswith(f"{report.limit}, 1 429, 1 503, paused ")


def test_the_source_of_a_published_limit_is_named() -> None:
    forms = {
        "X-RateLimit-*": {
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "9",
            "X-RateLimit-Reset": "2",
        },
        "RateLimit-Policy": {"RateLimit-Policy": '"p";q=10;w=2', "RateLimit": '"p";r=9;t=2'},
        "RateLimit": {"RateLimit": "limit=10, remaining=9, reset=2"},
        "RateLimit-Policy+X-RateLimit-*": {
            "RateLimit-Policy": '"p";q=100;w=60',
            "RateLimit": '"p";r=99;t=60',
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "9",
            "X-RateLimit-Reset": "2",
        },
    }
    for source, headers in forms.items():
        reports: dict[str, HostRateReport] = {}
        pace, host = _pace(reports), _Host()
        _answer(pace, host, 200, headers, 0.0)
        report = reports["api.test"]
        assert report.source == source, headers
        assert report.limit.startswith("published ") and report.limit.endswith(f" ({source})")
        assert (report.throttled, report.unavailable, report.learned) == (0, 0, False)


def test_a_configured_limit_alone_and_nothing_known() -> None:
    assert HostRateReport("h", configured=5.0, throttled=2).limit == "configured 5/s"
    assert HostRateReport("h", throttled=1).text == "none known, 1 429, paused 0.0 s"


@given(
    throttled=st.integers(0, 10_000),
    unavailable=st.integers(0, 10_000),
    paused=st.floats(0, 1e5, allow_nan=False).map(lambda x: round(x, 3)),
    per_second=st.none() | st.floats(0.001, 1e4).map(lambda x: round(x, 3)),
    configured=st.none() | st.floats(0.001, 1e4),
    published=st.none() | st.sampled_from(["10 per 2 s", "5000 per 3600 s, 10 per 1 s"]),
    source=st.none() | st.sampled_from(["RateLimit-Policy", "X-RateLimit-*"]),
    learned=st.booleans(),
)
def test_a_report_goes_to_json_and_back_unchanged(
    throttled: int,
    unavailable: int,
    paused: float,
    per_second: float | None,
    configured: float | None,
    published: str | None,
    source: str | None,
    learned: bool,
) -> None:
    report = HostRateReport(
        "h", throttled, paused, published, per_second, learned, unavailable, source, configured
    )
    again = HostRateReport.from_dict("h", report.as_dict())
    assert again == report and again.text == report.text


def test_a_report_from_an_older_or_damaged_row_keeps_what_it_can() -> None:
    report = HostRateReport.from_dict("h", {"throttled": 3, "paused_seconds": "x", "more": 1})
    assert report == HostRateReport("h", throttled=3)


def test_the_report_lists_the_most_throttled_first_and_escapes_what_it_shows() -> None:
    figures = {
        "calm.example": HostRateReport("calm.example", paused=3.0, configured=5.0),
        "<b>busy</b>": HostRateReport("<b>busy</b>", throttled=7, per_second=2.5, learned=True),
        "api.example": HostRateReport(
            "api.example", published="10 per 2 s", source="X-RateLimit-*", unavailable=1
        ),
    }
    run = RunSummary("r1", "fetch", "done", None, None)
    run.politeness = {host: report.as_dict() for host, report in figures.items()}
    data = from_rows(run, [], [])
    assert [r.host for r in politeness.hosts(data)] == [
        "<b>busy</b>",
        "api.example",
        "calm.example",
    ]
    page = politeness.section(data)
    assert "&lt;b&gt;busy&lt;/b&gt;" in page and "<b>busy" not in page
    assert "learned from 429s (AIMD)" in page and "published (X-RateLimit-*)" in page
    assert ">configured<" in page and ">5/s<" in page
    empty = from_rows(RunSummary("r2", "fetch", "done", None, None), [], [])
    assert politeness.section(empty) == politeness.NOTHING
    assert politeness.NOTHING in render(
        from_rows(RunSummary("r3", "x", "done", None, None), [], [])
    )
