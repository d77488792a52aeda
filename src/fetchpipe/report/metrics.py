"""A run's figures in the Prometheus text format, for node_exporter's textfile collector.

:func:`render` is a pure function of a :class:`~fetchpipe.report.data.RunData`, like the HTML
page: per host and source, the requests by outcome, the retries and the bytes (counters: each
file holds one run, so they start again at each run, which ``rate()`` and ``increase()`` read
as a reset), the requests' durations as a histogram (first attempt to result), and the run's
length and end as gauges. Written by hand (the format is a few lines of text, stable since
Prometheus 1.0): the ``prometheus_client`` package would be a dependency for a file write.
Labels are ``pipeline``, ``host`` and ``source`` only (no run id, no URL: their values are
unbounded, and a URL may carry what a metrics system should not keep).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable

from fetchpipe.report.data import RunData
from fetchpipe.report.stats import field_of, run_seconds

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds of the duration histogram, in seconds (Prometheus' defaults, up to a minute)."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(round(value, 6)) if value != int(value) else str(int(value))


def _family(name: str, kind: str, help_text: str, lines: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]


def render(data: RunData) -> str:
    """The run's metrics as the text a ``.prom`` file holds."""
    pipeline = data.run.pipeline
    requests: dict[tuple[str, str, str], float] = defaultdict(float)
    retries: dict[tuple[str, str], int] = defaultdict(int)
    sizes: dict[tuple[str, str], float] = defaultdict(float)
    buckets: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * len(BUCKETS))
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in data.requests:
        key = (str(field_of(row, "host") or ""), str(field_of(row, "source") or ""))
        weight = float(field_of(row, "weight") or 1.0)
        requests[(*key, str(field_of(row, "outcome")))] += weight
        retries[key] += max(0, int(field_of(row, "attempts") or 1) - 1)
        sizes[key] += float(field_of(row, "bytes") or 0) * weight
        seconds = float(field_of(row, "total_time") or 0.0)
        first = bisect.bisect_left(BUCKETS, seconds)
        counts = buckets[key]
        for i in range(first, len(BUCKETS)):
            counts[i] += weight
        totals[key][0] += seconds * weight
        totals[key][1] += weight

    def labels(host: str, source: str, **more: str) -> str:
        return _labels(pipeline=pipeline, host=host, source=source, **more)

    histogram: list[str] = []
    for (host, source), counts in sorted(buckets.items()):
        for bound, count in zip(BUCKETS, counts, strict=True):
            le = labels(host, source, le=_number(bound))
            histogram.append(f"fetchpipe_request_duration_seconds_bucket{le} {_number(count)}")
        total, count = totals[(host, source)]
        inf = labels(host, source, le="+Inf")
        histogram += [
            f"fetchpipe_request_duration_seconds_bucket{inf} {_number(count)}",
            f"fetchpipe_request_duration_seconds_sum{labels(host, source)} {_number(total)}",
            f"fetchpipe_request_duration_seconds_count{labels(host, source)} {_number(count)}",
        ]
    ended = data.run.ended_at
    run = _labels(pipeline=pipeline)
    lines = [
        *_family(
            "fetchpipe_requests_total",
            "counter",
            "Requests of the last run, by host, source and outcome.",
            (
                f"fetchpipe_requests_total{labels(h, s, outcome=o)} {_number(round(n))}"
                for (h, s, o), n in sorted(requests.items())
            ),
        ),
        *_family(
            "fetchpipe_retries_total",
            "counter",
            "Retries of the last run's requests, by host and source.",
            (f"fetchpipe_retries_total{labels(h, s)} {n}" for (h, s), n in sorted(retries.items())),
        ),
        *_family(
            "fetchpipe_response_bytes_total",
            "counter",
            "Bytes of the last run's responses, by host and source.",
            (
                f"fetchpipe_response_bytes_total{labels(h, s)} {_number(round(n))}"
                for (h, s), n in sorted(sizes.items())
            ),
        ),
        *_family(
            "fetchpipe_request_duration_seconds",
            "histogram",
            "Seconds from a request's first attempt to its result, in the last run.",
            histogram,
        ),
        *_family(
            "fetchpipe_run_duration_seconds",
            "gauge",
            "Seconds the last run took.",
            [f"fetchpipe_run_duration_seconds{run} {_number(run_seconds(data))}"],
        ),
    ]
    if ended is not None:
        lines += _family(
            "fetchpipe_run_end_timestamp_seconds",
            "gauge",
            "When the last run ended (Unix time).",
            [f"fetchpipe_run_end_timestamp_seconds{run} {_number(ended.timestamp())}"],
        )
    return "\n".join(lines) + "\n"


__all__ = ["BUCKETS", "render"]
