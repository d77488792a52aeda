"""The pure parts of the toxic server: configs, URLs, Retry-After rendering, bursts, plans."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import orjson
import pytest

from fetchpipe.engine.retry import parse_retry_after
from fetchpipe.sim.toxics import (
    GARBAGE_RETRY_AFTER,
    HUGE_RETRY_AFTER,
    MAX_BODY,
    PAST_BY,
    RETRY_AFTER_FORMS,
    Bandwidth,
    Burst,
    Close,
    Hang,
    Latency,
    ResetPeer,
    RetryAfter,
    Slicer,
    Toxic,
    ToxicError,
    Truncate,
    applies,
    burst_status,
    good_body,
    latency_delay,
    parse_toxics,
    plan_response,
    retry_after_value,
    toxic_mix,
    toxic_path,
)

NOW = 1_750_000_000.25  # a fixed Unix time with a fraction, so rounding shows


# --- configuration values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Latency(latency=-0.1), "latency must be between"),
        (lambda: Latency(latency=float("nan")), "latency must be between"),
        (lambda: Latency(jitter=61), "jitter must be between"),
        (lambda: Bandwidth(rate=0), "rate must be between"),
        (lambda: Hang(hang=-1), "hang must be between"),
        (lambda: Hang(stage="during"), "stage must be one of"),  # type: ignore[arg-type]
        (lambda: Close(times=0), "times must be between"),
        (lambda: ResetPeer(reset_after=-1), "reset_after must be between"),
        (lambda: ResetPeer(reset_delay=11), "reset_delay must be between"),
        (lambda: Truncate(truncate_after=MAX_BODY + 1), "truncate_after must be between"),
        (lambda: Slicer(slice_size=0), "slice_size must be between"),
        (lambda: Slicer(slice_delay=2), "slice_delay must be between"),
        (lambda: Burst(statuses=()), "statuses must list"),
        (lambda: Burst(statuses=(500, 429)), "each of statuses must be between 500"),
        (lambda: RetryAfter(form="later"), "form must be one of"),  # type: ignore[arg-type]
        (lambda: RetryAfter(status=200), "status must be between 400"),
        (lambda: RetryAfter(delay=-1), "delay must be between"),
        (lambda: RetryAfter(form="raw", value="1\r\nX: y"), "without control characters"),
        (lambda: RetryAfter(value="5"), "only used by the raw form"),
        (lambda: Latency(times=True), "times must be between"),  # a bool is not a count
    ],
)
def test_bad_configs_are_refused_with_the_field_named(make: Any, message: str) -> None:
    with pytest.raises(ToxicError, match=message):
        make()


def test_toxics_are_frozen_values() -> None:
    toxic = Slicer(slice_size=2)
    assert toxic == Slicer(slice_size=2) and hash(toxic) == hash(Slicer(slice_size=2))
    with pytest.raises(AttributeError):
        toxic.slice_size = 3  # type: ignore[misc]


def test_times_limits_a_toxic_to_the_first_requests_of_a_key() -> None:
    assert [applies(ResetPeer(times=2), n) for n in (1, 2, 3)] == [True, True, False]
    assert all(applies(ResetPeer(), n) for n in (1, 10, 10_000))


# --- 5xx bursts and latency -----------------------------------------------------------------------


def test_burst_cycles_through_its_statuses_then_stops() -> None:
    toxic = Burst(times=6)
    assert [burst_status(toxic, n) for n in range(1, 9)] == [
        500,
        502,
        503,
        504,
        500,
        502,
        None,
        None,
    ]
    assert [burst_status(Burst(statuses=(503,)), n) for n in (1, 50)] == [503, 503]


def test_latency_jitter_is_bounded_and_repeats_per_key_and_request() -> None:
    toxic = Latency(latency=0.1, jitter=0.05)
    delays = [latency_delay(toxic, "k", n) for n in range(1, 200)]
    assert all(0.05 <= d <= 0.15 for d in delays)
    assert len(set(delays)) > 150  # jittered...
    assert delays == [latency_delay(toxic, "k", n) for n in range(1, 200)]  # ...repeatably
    assert latency_delay(Latency(latency=0.01, jitter=1.0), "k", 3) == 0.0  # drew below -0.01
    assert latency_delay(Latency(latency=0.2), "k", 1) == 0.2


# --- Retry-After in every form --------------------------------------------------------------------


def _unix(value: str) -> float:
    return email.utils.parsedate_to_datetime(value).replace(tzinfo=None).timestamp() - time.timezone


def test_every_retry_after_form_renders() -> None:
    rendered = {
        form: retry_after_value(RetryAfter(form=form, delay=2), NOW)  # type: ignore[arg-type]
        for form in RETRY_AFTER_FORMS
        if form != "raw"
    }
    assert rendered == {
        "seconds": "2",
        "date": "Sun, 15 Jun 2025 15:06:43 GMT",
        "date_rfc850": "Sunday, 15-Jun-25 15:06:43 GMT",
        "date_asctime": "Sun Jun 15 15:06:43 2025",
        "past_date": "Sun, 15 Jun 2025 14:06:40 GMT",
        "zero": "0",
        "garbage": GARBAGE_RETRY_AFTER,
        "absent": None,
        "huge": str(HUGE_RETRY_AFTER),
    }
    assert retry_after_value(RetryAfter(form="raw", value="١٢"), NOW) == "١٢"
    assert retry_after_value(RetryAfter(form="seconds", delay=0.2), NOW) == "1"  # rounded up


def test_the_engine_reads_each_form_as_rfc_9110_says() -> None:
    """Future dates ask at least ``delay``; a past date, 0; garbage and absent: no value."""

    def seen(form: str, delay: float = 2) -> float | None:
        value = retry_after_value(RetryAfter(form=form, delay=delay), NOW)  # type: ignore[arg-type]
        return parse_retry_after(value, NOW)

    assert seen("seconds") == 2.0
    for form in ("date", "date_rfc850", "date_asctime"):
        wait = seen(form)
        assert wait is not None and 2.0 <= wait < 3.0, form
    assert seen("past_date") == 0.0 and seen("zero") == 0.0
    assert seen("garbage") is None and seen("absent") is None
    assert seen("huge") == float(HUGE_RETRY_AFTER)
    past = retry_after_value(RetryAfter(form="past_date"), NOW)
    assert past is not None and _unix(past) == pytest.approx(NOW - PAST_BY, abs=1)


# --- URLs -----------------------------------------------------------------------------------------

EVERY_KIND: list[Toxic] = [
    Latency(latency=0.25, jitter=0.1, times=2),
    Bandwidth(rate=1000),
    Hang(hang=3, stage="before_headers"),
    Close(times=1),
    ResetPeer(reset_after=0, reset_delay=0.0),
    Truncate(truncate_after=5, chunked=True),
    Slicer(slice_size=3, slice_delay=0.0),
    Burst(statuses=(503, 500), times=3),
    RetryAfter(form="raw", value="soon & later", status=503),
]


@pytest.mark.parametrize("toxic", EVERY_KIND, ids=lambda t: t.name)
def test_a_toxic_round_trips_through_its_url(toxic: Toxic) -> None:
    path, _, query = toxic_path(toxic, key="k 1", size=500).partition("?")
    assert path == f"/toxic/{toxic.name}"
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    assert params["key"] == "k+1" and params["size"] == "500"
    from urllib.parse import parse_qsl

    assert parse_toxics(toxic.name, dict(parse_qsl(query))) == (toxic,)


def test_defaults_stay_out_of_the_url_and_a_stack_shares_times() -> None:
    assert toxic_path(Slicer()) == "/toxic/slicer"
    stack = (Latency(latency=0.5, times=1), Bandwidth(rate=10, times=1))
    path = toxic_path(*stack, key="a")
    assert path == "/toxic/latency+bandwidth?latency=0.5&times=1&rate=10&key=a"
    assert parse_toxics("latency+bandwidth", {"latency": "0.5", "times": "1", "rate": "10"}) == (
        stack
    )
    with pytest.raises(ToxicError, match="share times"):
        toxic_path(Latency(times=1), Bandwidth(times=2))


@pytest.mark.parametrize(
    ("names", "query", "message"),
    [
        ("slicer", {"slice_sise": "1"}, "unknown parameter"),
        ("slice", {}, "unknown toxic 'slice'"),
        ("slicer+slicer", {}, "only once"),
        ("latency", {"latency": "fast"}, "latency='fast' is not valid"),
        ("truncate", {"chunked": "maybe"}, "chunked='maybe' is not valid"),
        ("burst", {"statuses": "503,200"}, "each of statuses"),
        ("+".join(["latency"] * 9), {}, "at most 8"),
    ],
)
def test_bad_toxic_urls_are_refused(names: str, query: dict[str, str], message: str) -> None:
    with pytest.raises(ToxicError, match=message):
        parse_toxics(names, query)


# --- bodies and plans -----------------------------------------------------------------------------


def test_good_bodies_are_deterministic_json_of_the_asked_size() -> None:
    assert good_body("k") == b'{"ok":true,"key":"k"}'
    for size in (0, 30, 31, 1000, 65_537):
        body = good_body('k"é', size)
        assert body == good_body('k"é', size)
        decoded = orjson.loads(body)
        assert decoded["ok"] is True and decoded["key"] == 'k"é'
        assert len(body) == max(size, len(good_body('k"é')))
    with pytest.raises(ToxicError):
        good_body("k", MAX_BODY + 1)


def test_no_toxic_plans_a_complete_good_answer() -> None:
    plan = plan_response([], key="k", n=1, size=100, now=NOW)
    assert (plan.status, plan.ending, plan.cut, plan.delay) == (200, "complete", None, 0.0)
    assert plan.body == good_body("k", 100)
    assert dict(plan.headers)["Content-Length"] == "100"
    head = plan.head(keep_alive=True)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"keep-alive\r\n\r\n")


def test_a_toxic_used_up_plans_a_good_answer() -> None:
    stack = [Burst(times=1), ResetPeer(times=1), Latency(latency=1, times=1)]
    assert plan_response(stack, key="k", n=1, now=NOW).ending == "reset"
    later = plan_response(stack, key="k", n=2, now=NOW)
    assert (later.status, later.ending, later.delay) == (200, "complete", 0.0)


def test_cuts_always_leave_the_body_short() -> None:
    body = good_body("k")
    reset = plan_response([ResetPeer(reset_after=10_000)], key="k", n=1, now=NOW)
    assert reset.ending == "reset" and reset.cut == len(body) - 1
    truncated = plan_response([Truncate(truncate_after=5)], key="k", n=1, now=NOW)
    assert (truncated.ending, truncated.cut) == ("truncate", 5)
    assert dict(truncated.headers)["Content-Length"] == str(len(body))  # the lie
    chunked = plan_response([Truncate(truncate_after=10**6, chunked=True)], key="k", n=1, now=NOW)
    assert dict(chunked.headers)["Transfer-Encoding"] == "chunked"
    assert chunked.cut is not None and not chunked.body[: chunked.cut].endswith(b"0\r\n\r\n")
    both = plan_response(
        [Truncate(truncate_after=3), ResetPeer(reset_after=3)], key="k", n=1, now=NOW
    )
    assert (both.ending, both.cut) == ("reset", 3)  # a reset wins a tie


def test_the_most_drastic_ending_wins_and_delivery_toxics_combine() -> None:
    stack = [ResetPeer(), Hang(hang=2), Close(times=1), Slicer(slice_size=4), Bandwidth(rate=100)]
    assert plan_response(stack, key="k", n=1, now=NOW).ending == "close"
    plan = plan_response(stack, key="k", n=2, now=NOW)
    assert (plan.ending, plan.hang) == ("hang_after", 2)
    assert (plan.piece, plan.piece_delay, plan.rate) == (4, 0.001, 100)
    fast = plan_response([Bandwidth(rate=2000)], key="k", n=1, now=NOW)
    assert fast.piece == 100  # a twentieth of a second's worth


def test_retry_after_and_burst_answers_are_json_with_the_header() -> None:
    plan = plan_response([RetryAfter(form="seconds", delay=3)], key="k", n=1, now=NOW)
    assert plan.status == 429 and ("Retry-After", "3") in plan.headers
    assert orjson.loads(plan.body) == {"ok": False, "status": 429, "key": "k", "n": 1}
    absent = plan_response([RetryAfter(form="absent")], key="k", n=1, now=NOW)
    assert all(name != "Retry-After" for name, _ in absent.headers)
    burst = plan_response([Burst(times=2)], key="k", n=2, now=NOW)
    assert burst.status == 502 and burst.head(False).startswith(b"HTTP/1.1 502 Bad Gateway")


def test_the_mix_has_every_toxic_and_retry_after_form_and_lands_once_retried() -> None:
    mix = toxic_mix(hang=3.0, delay=2.0)
    assert len({entry.label for entry in mix}) == len(mix)
    kinds = {type(toxic) for entry in mix for toxic in entry.toxics}
    assert kinds == {
        Latency,
        Bandwidth,
        Slicer,
        Hang,
        Close,
        ResetPeer,
        Truncate,
        Burst,
        RetryAfter,
    }
    forms = {t.form for entry in mix for t in entry.toxics if isinstance(t, RetryAfter)}
    assert forms == set(RETRY_AFTER_FORMS) - {"raw"}
    assert [e.label for e in mix if not e.landable] == ["429 huge"]
    for entry in mix:
        assert all(t.times is not None and t.times <= 2 for t in entry.toxics), entry.label
        good = plan_response(entry.toxics, key="k", n=3, size=entry.size or 0, now=NOW)
        assert (good.status, good.ending, good.delay) == (200, "complete", 0.0), entry.label
    hangs = [t for e in mix for t in e.toxics if isinstance(t, Hang)]
    assert {t.hang for t in hangs} == {3.0}
    assert entry.path("k").startswith("/toxic/retry_after?")
