"""A mix of every toxic, for mixed tests and benchmarks: each entry a label and its toxics."""

from __future__ import annotations

from dataclasses import dataclass

from fetchpipe.sim.toxics.paths import toxic_path
from fetchpipe.sim.toxics.values import (
    Bandwidth,
    Burst,
    Close,
    Hang,
    Latency,
    ResetPeer,
    RetryAfter,
    RetryAfterForm,
    Slicer,
    Toxic,
    Truncate,
)


@dataclass(frozen=True, slots=True)
class MixEntry:
    """One kind of fault in :func:`toxic_mix`: a label, its toxics and the good body's size.

    ``landable`` is false when a well-behaved client must give up (a Retry-After beyond any
    sane cap), so a test or a benchmark knows which failures are right.
    """

    label: str
    toxics: tuple[Toxic, ...]
    size: int | None = None
    landable: bool = True

    def path(self, key: str) -> str:
        """The path and query of this fault for ``key``."""
        return toxic_path(*self.toxics, key=key, size=self.size)


def toxic_mix(*, hang: float = 2.0, delay: float = 1.0) -> tuple[MixEntry, ...]:
    """Every toxic and every Retry-After form, each spoiling only the first request of a key.

    Closes and 5xx bursts spoil the first two (aiohttp retries a close once by itself), so
    every entry but the huge Retry-After lands for a client that retries three times. Hangs
    last ``hang`` seconds; the Retry-After seconds and future dates ask for ``delay`` seconds.
    """

    def retry_after(form: RetryAfterForm, status: int = 429) -> tuple[Toxic, ...]:
        return (RetryAfter(form=form, delay=delay, status=status, times=1),)

    return (
        MixEntry("latency", (Latency(latency=0.1, jitter=0.05, times=1),)),
        MixEntry("bandwidth", (Bandwidth(rate=500_000, times=1),), 50_000),
        MixEntry("slicer", (Slicer(slice_size=1, slice_delay=0.0005, times=1),), 200),
        MixEntry("hang before headers", (Hang(hang=hang, stage="before_headers", times=1),)),
        MixEntry("hang after headers", (Hang(hang=hang, times=1),)),
        MixEntry("close", (Close(times=2),)),
        MixEntry("reset mid-body", (ResetPeer(times=1),), 300),
        MixEntry("truncated", (Truncate(times=1),), 300),
        MixEntry("truncated chunked", (Truncate(chunked=True, times=1),), 300),
        MixEntry("5xx burst", (Burst(times=2),)),
        MixEntry("429 seconds", retry_after("seconds")),
        MixEntry("429 date", retry_after("date")),
        MixEntry("429 rfc850 date", retry_after("date_rfc850")),
        MixEntry("429 asctime date", retry_after("date_asctime")),
        MixEntry("429 past date", retry_after("past_date")),
        MixEntry("429 zero", retry_after("zero")),
        MixEntry("429 garbage", retry_after("garbage")),
        MixEntry("429 absent", retry_after("absent")),
        MixEntry("429 huge", retry_after("huge"), landable=False),
        MixEntry("503 seconds", retry_after("seconds", status=503)),
    )
