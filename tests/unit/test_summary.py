"""The run summary: figures from results, and its two renderings."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fetchpipe import Source  # the public name of _models.Provenance
from fetchpipe._models import ErrorKind, Request, Result, Timings
from fetchpipe.cli.summary import Summary, one_line, render, table


def _result(
    elapsed: float,
    *,
    error: ErrorKind | None = None,
    attempts: int = 1,
    source: Source = Source.NETWORK,
) -> Result:
    return Result(
        Request("http://api.example.com/x"),
        status=None if error else 200,
        attempts=attempts,
        error=error,
        error_message=None if error is None else "failed",
        timings=Timings(queued=10.0, started=10.0, done=10.0 + elapsed),
        source=source,
    )


def _summary(*results: Result, wall_time: float | None = None) -> Summary:
    summary = Summary()
    for result in results:
        summary.add(result)
    summary.wall_time = wall_time
    return summary


def test_empty_summary() -> None:
    summary = Summary()

    assert (summary.total, summary.ok, summary.failed, summary.retries) == (0, 0, 0, 0)
    assert summary.p50 is None
    assert summary.p95 is None
    assert summary.max_latency is None
    assert summary.rate is None
    assert one_line(summary) == (
        "0 requests: 0 ok, 0 failed | 0 retries | p50 -, p95 - | - req/s | wall -"
    )


def test_counts_failures_by_reason_and_retries() -> None:
    summary = _summary(
        _result(0.1),
        _result(0.2, attempts=3),
        _result(0.3, error=ErrorKind.TIMEOUT, attempts=4),
        _result(0.4, error=ErrorKind.HTTP_STATUS),
        _result(0.5, error=ErrorKind.TIMEOUT, attempts=2),
        _result(0.0, error=ErrorKind.INVALID_REQUEST, attempts=0),
    )

    assert summary.total == 6
    assert summary.ok == 2
    assert summary.failed == 4
    assert summary.retries == 2 + 3 + 1
    assert summary.failures() == [
        (ErrorKind.TIMEOUT, 2),
        (ErrorKind.HTTP_STATUS, 1),
        (ErrorKind.INVALID_REQUEST, 1),
    ]


def test_percentiles_are_nearest_rank() -> None:
    summary = _summary(*(_result(i / 100) for i in range(100, 0, -1)))

    assert summary.p50 == pytest.approx(0.50)
    assert summary.p95 == pytest.approx(0.95)
    assert summary.percentile(0) == pytest.approx(0.01)
    assert summary.percentile(100) == pytest.approx(1.00)
    assert summary.max_latency == pytest.approx(1.00)


def test_percentile_of_one_result() -> None:
    summary = _summary(_result(0.25))

    assert summary.p50 == summary.p95 == pytest.approx(0.25)


def test_percentiles_follow_new_results() -> None:
    summary = _summary(_result(1.0))
    assert summary.p50 == pytest.approx(1.0)

    summary.add(_result(0.1))
    summary.add(_result(0.2))

    assert summary.p50 == pytest.approx(0.2)


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_out_of_range(p: float) -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        Summary().percentile(p)


def test_rate_uses_wall_time() -> None:
    summary = _summary(*(_result(0.1) for _ in range(30)), wall_time=1.5)

    assert summary.rate == pytest.approx(20.0)


def test_one_line() -> None:
    summary = _summary(
        _result(0.1),
        _result(0.2, attempts=2),
        _result(0.3, error=ErrorKind.HTTP_STATUS),
        _result(0.4, error=ErrorKind.CONNECT, attempts=4),
        wall_time=0.5,
    )

    assert one_line(summary) == (
        "4 requests: 2 ok, 2 failed (connect 1, http_status 1) | 4 retries | "
        "p50 0.200 s, p95 0.400 s | 8.0 req/s | wall 0.500 s"
    )


def test_table_and_render() -> None:
    summary = _summary(
        _result(0.1), _result(0.3, error=ErrorKind.RATE_LIMITED, attempts=2), wall_time=2.0
    )
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)

    console.print(table(summary))
    rendered_table = out.getvalue()
    render(summary, console)
    text = out.getvalue()

    for figure in ("requests", "ok", "failed", "rate_limited", "retries", "p50", "p95"):
        assert figure in rendered_table
    assert "1.0" in rendered_table
    assert "2.000 s" in rendered_table
    assert text.rstrip().endswith(one_line(summary))


def _cached_run() -> Summary:
    return _summary(
        _result(0.0, attempts=0, source=Source.CACHE),
        _result(0.0, attempts=0, source=Source.CACHE),
        _result(0.1, source=Source.REVALIDATED),
        _result(0.2, attempts=2, source=Source.STALE),
        _result(0.3),
        _result(0.0, attempts=0, error=ErrorKind.NOT_CACHED),
        wall_time=1.0,
    )


def test_counts_results_by_source_and_missing_cache_entries() -> None:
    summary = _cached_run()

    assert summary.by_source == {
        Source.CACHE: 2,
        Source.REVALIDATED: 1,
        Source.STALE: 1,
        Source.NETWORK: 1,
    }
    assert summary.not_cached == 1  # offline misses came from nowhere: not counted as network
    assert summary.sources() == [
        ("cache", 2),
        ("revalidated", 1),
        ("stale", 1),
        ("network", 1),
        ("not cached", 1),
    ]


def test_one_line_ends_with_the_sources_when_a_cache_was_used() -> None:
    assert one_line(_cached_run()) == (
        "6 requests: 5 ok, 1 failed (not_cached 1) | 1 retries | p50 0.000 s, p95 0.300 s | "
        "6.0 req/s | wall 1.000 s | cache 2, revalidated 1, stale 1, network 1, not cached 1"
    )


def test_sources_are_shown_with_a_cache_even_if_all_came_from_the_network() -> None:
    plain = _summary(_result(0.1), wall_time=1.0)
    with_cache = Summary(cache_used=True)
    with_cache.add(_result(0.1))
    with_cache.wall_time = 1.0

    assert not plain.shows_sources
    assert "network" not in one_line(plain)
    assert with_cache.shows_sources
    assert one_line(with_cache).endswith(" | cache 0, revalidated 0, stale 0, network 1")


def test_table_lists_the_sources() -> None:
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(table(_cached_run()))
    text = out.getvalue()

    for label in ("sources", "cache", "revalidated", "stale", "network", "not cached"):
        assert label in text
    assert "not_cached" in text  # and the failure reason
