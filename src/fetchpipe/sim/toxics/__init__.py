"""A misbehaving HTTP server on loopback, in the style of Toxiproxy's toxics.

Toxiproxy sits between a client and a real server and damages the traffic ("toxics"). Here the
server itself misbehaves, down to the byte, so a test needs no proxy: :class:`ToxicServer`
speaks just enough HTTP/1.1 over raw ``asyncio`` streams to answer well or badly, on
``127.0.0.1`` .. ``127.0.0.{hosts}`` (one shared port), and nowhere else.

Toxics are frozen values; every one takes ``times``: it applies to the first ``times``
requests of a key (``None``: to all of them), so "fail the first N times" works for each kind.

==================  ==================================================  ======================
toxic (path name)   what the client sees                                query parameters
==================  ==================================================  ======================
``latency``         the answer after ``latency`` ± ``jitter`` seconds   ``latency``, ``jitter``
``bandwidth``       head and body at ``rate`` bytes per second          ``rate``
``hang``            nothing (``stage=before_headers``) or the head      ``hang``, ``stage``
                    only, for ``hang`` seconds; then the connection
                    is closed
``close``           the connection closed without any response          (none)
``reset_peer``      the head and ``reset_after`` body bytes, then a     ``reset_after``,
                    TCP reset (RST) ``reset_delay`` seconds later       ``reset_delay``
``truncate``        the head (Content-Length lies, or a chunked body)   ``truncate_after``,
                    and ``truncate_after`` body bytes, then a clean     ``chunked``
                    close (FIN)
``slicer``          the whole response in ``slice_size``-byte writes    ``slice_size``,
                    ``slice_delay`` seconds apart                       ``slice_delay``
``burst``           500, 502, 503, 504, 500, ... (``statuses``), then   ``statuses``
                    200 once ``times`` is used up
``retry_after``     ``status`` (429) with a ``Retry-After`` in the      ``form``, ``delay``,
                    given ``form`` (see :data:`RETRY_AFTER_FORMS`)      ``status``, ``value``
==================  ==================================================  ======================

Two ways to pick the toxics of a request, which add up (the path's first):

* by URL: ``/toxic/{name}[+{name}...]?key=k&times=1&...``, e.g.
  ``/toxic/slicer?key=a&slice_size=1&slice_delay=0.001`` or ``/toxic/latency+bandwidth?...``
  (``times`` applies to each toxic of the path; :func:`toxic_path` writes these URLs);
* programmatically: ``server.set_toxics(ResetPeer(times=1), key="a")`` for the requests whose
  ``key`` query parameter is ``a``, on any path, or with ``key=None`` for every request whose
  key has no toxics of its own.

The URL form needs no access to the server object (a server in another process, a CLI run);
the programmatic form keeps the URLs of a test plain. Any path is an endpoint: without toxics a
request gets 200 and :func:`good_body` (valid, deterministic JSON; ``size=N`` pads it to N
bytes). ``GET /__stats`` and ``POST /__reset`` read and clear the counters; they are not counted.

The server counts requests per ``(path, key)`` (:meth:`ToxicServer.count`, used to decide
which requests a toxic applies to) and per host with concurrency high-water marks
(:attr:`ToxicServer.stats`, a :class:`~fetchpipe.sim.stats.FleetStats`), so tests can assert
retries and limits from the server's side. Nothing runs unbounded: a hang lasts at most
``max_hang`` seconds, a whole answer at most ``max_response_seconds``, an idle keep-alive
connection ``keepalive_timeout``, and stopping the server ends everything at once.

The modules, each importing only those listed after it: ``server`` (:class:`ToxicServer`),
``wire`` (HTTP/1.1 on raw streams), ``mix`` (:func:`toxic_mix`), ``plan`` (the pure response
plan), ``paths`` (toxic URLs), ``rules`` (pure per-request rules, good and fault bodies),
``values`` (the toxics themselves). This package's names are the ones to import.
"""

from fetchpipe.sim.toxics.mix import MixEntry, toxic_mix
from fetchpipe.sim.toxics.paths import parse_toxics, toxic_path
from fetchpipe.sim.toxics.plan import Plan, plan_response
from fetchpipe.sim.toxics.rules import (
    applies,
    burst_status,
    good_body,
    latency_delay,
    retry_after_value,
)
from fetchpipe.sim.toxics.server import ToxicServer
from fetchpipe.sim.toxics.values import (
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
)

__all__ = [
    "GARBAGE_RETRY_AFTER",
    "HUGE_RETRY_AFTER",
    "MAX_BODY",
    "PAST_BY",
    "RETRY_AFTER_FORMS",
    "Bandwidth",
    "Burst",
    "Close",
    "Hang",
    "Latency",
    "MixEntry",
    "Plan",
    "ResetPeer",
    "RetryAfter",
    "Slicer",
    "Toxic",
    "ToxicError",
    "ToxicServer",
    "Truncate",
    "applies",
    "burst_status",
    "good_body",
    "latency_delay",
    "parse_toxics",
    "plan_response",
    "retry_after_value",
    "toxic_mix",
    "toxic_path",
]
