"""The response plan: every decision about one answer, made before its first byte is written.

:func:`plan_response` is pure (the time is passed in): which toxics are active for this
request, the status, headers and body, how long to wait, how to send the bytes and how the
connection ends. The server only carries the plan out.
"""

from __future__ import annotations

import http
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fetchpipe.sim.toxics.rules import (
    applies,
    burst_status,
    fault_body,
    good_body,
    latency_delay,
    retry_after_value,
)
from fetchpipe.sim.toxics.values import (
    STAGES,
    Bandwidth,
    Burst,
    Close,
    Hang,
    Latency,
    ResetPeer,
    RetryAfter,
    Slicer,
    Toxic,
    Truncate,
)

Ending = Literal["complete", "close", "hang_before", "hang_after", "truncate", "reset"]
_CHUNK = 32
_LAST_CHUNK = b"0\r\n\r\n"
_BANDWIDTH_TICKS = 20  # pieces per second of a bandwidth-limited response
_UNLIMITED = 1 << 30


@dataclass(frozen=True, slots=True)
class Plan:
    """What the server does for one request.

    Wait ``delay``; then by ``ending``: ``close`` or ``hang_before`` (for ``hang`` seconds)
    send nothing and close; ``hang_after`` sends the head only, hangs, then closes; the others
    send ``head`` and ``body`` (only ``cut`` bytes of it for ``truncate`` and ``reset``) in
    ``piece``-byte writes, ``piece_delay`` seconds apart and no faster than ``rate`` bytes/s,
    then keep the connection (``complete``), close it (``truncate``) or reset it ``reset_delay``
    seconds later (``reset``).
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    delay: float = 0.0
    ending: Ending = "complete"
    hang: float = 0.0
    cut: int | None = None
    reset_delay: float = 0.0
    piece: int = _UNLIMITED
    piece_delay: float = 0.0
    rate: int | None = None

    def head(self, keep_alive: bool) -> bytes:
        """The status line and headers, ``Connection`` included."""
        try:
            reason = http.HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk_encode(payload: bytes) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(payload[i : i + _CHUNK]), payload[i : i + _CHUNK])
        for i in range(0, len(payload), _CHUNK)
    ]
    return b"".join(parts) + _LAST_CHUNK


def _answer(
    active: Sequence[Toxic], key: str, n: int, size: int, now: float
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, extra headers and payload: the first active burst or Retry-After decides."""
    for toxic in active:
        if isinstance(toxic, Burst):
            status = burst_status(toxic, n)
            assert status is not None
            return status, [], fault_body(status, key, n)
        if isinstance(toxic, RetryAfter):
            value = retry_after_value(toxic, now)
            headers = [] if value is None else [("Retry-After", value)]
            return toxic.status, headers, fault_body(toxic.status, key, n)
    return 200, [], good_body(key, size)


def _ending(active: Sequence[Toxic], body: bytes, chunked: bool) -> dict[str, Any]:
    """The ending fields of the plan: the most drastic active toxic wins.

    Order: close, hang before headers, hang after headers, then the earliest cut of a reset or
    a truncation (a reset on a tie). A cut always leaves the body incomplete.
    """
    for toxic in active:
        if isinstance(toxic, Close):
            return {"ending": "close"}
    for stage in STAGES:
        for toxic in active:
            if isinstance(toxic, Hang) and toxic.stage == stage:
                ending = "hang_before" if stage == "before_headers" else "hang_after"
                return {"ending": ending, "hang": toxic.hang}
    longest = len(body) - (len(_LAST_CHUNK) if chunked else 1)
    best: dict[str, Any] = {}
    for toxic in active:
        if isinstance(toxic, ResetPeer):
            cut = min(toxic.reset_after, longest)
            if not best or cut <= best["cut"]:
                best = {"ending": "reset", "cut": cut, "reset_delay": toxic.reset_delay}
        elif isinstance(toxic, Truncate):
            cut = min(toxic.truncate_after, longest)
            if not best or cut < best["cut"]:
                best = {"ending": "truncate", "cut": cut}
    return best


def _delivery(active: Sequence[Toxic]) -> dict[str, Any]:
    """Piece size, delay between pieces and rate from the active slicers and bandwidths."""
    piece, piece_delay, rate = _UNLIMITED, 0.0, None
    for toxic in active:
        if isinstance(toxic, Slicer):
            piece = min(piece, toxic.slice_size)
            piece_delay = max(piece_delay, toxic.slice_delay)
        elif isinstance(toxic, Bandwidth):
            rate = toxic.rate if rate is None else min(rate, toxic.rate)
    if rate is not None:
        piece = min(piece, max(1, rate // _BANDWIDTH_TICKS))
    return {"piece": piece, "piece_delay": piece_delay, "rate": rate}


def plan_response(toxics: Sequence[Toxic], *, key: str, n: int, size: int = 0, now: float) -> Plan:
    """Decide how to answer request number ``n`` of ``key`` at Unix time ``now``. Pure."""
    active = [t for t in toxics if applies(t, n)]
    delay = sum(latency_delay(t, key, n) for t in active if isinstance(t, Latency))
    status, headers, payload = _answer(active, key, n, size, now)
    chunked = any(isinstance(t, Truncate) and t.chunked for t in active)
    framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(payload)))
    body = _chunk_encode(payload) if chunked else payload
    return Plan(
        status=status,
        headers=(("Content-Type", "application/json"), framing, *headers),
        body=body,
        delay=delay,
        **_ending(active, body, chunked),
        **_delivery(active),
    )
