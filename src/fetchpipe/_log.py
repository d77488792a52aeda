"""What fetchpipe logs: the ``fetchpipe.*`` loggers, the events, and what each record carries.

Every module that logs takes its logger from :func:`logger` (``fetchpipe.engine``,
``fetchpipe.pipeline``, ``fetchpipe.fetch``) and logs through :func:`emit`: one call per event,
with a name from :data:`EVENTS` and the fields of :data:`FIELDS` (``run_id``, ``source``,
``host``, ``url``, ``attempt``, ``status``, ``error``) in ``record.fetchpipe``, a dict that
formatters read (the command line's text and JSON lines: :mod:`fetchpipe.cli.log_output`).

Quiet for a library user: the package logger has a ``NullHandler``, so nothing is printed
unless the application configures logging. Free when off: :func:`emit` asks
``isEnabledFor`` before it builds anything, and the one per-request event (``request_done``,
DEBUG) is asked about once per ``stream()`` call, not per request.

Never a secret: a record's URL and message pass through :func:`fetchpipe._redact.redact_text`
(credential query values, URL passwords) and, inside a pipeline run, through the pipeline's
own redaction (its ``${VAR}`` values and credentials), which the run puts in the
:class:`RunContext`.

The run context (a context variable, so the engine's tasks inherit it from the run that
started them) also names the run and tells a request's source, and may take the events the
engine reports (pauses, breaker openings, retries) to record them beside the run's requests:
:func:`emit` hands them to ``RunContext.on_event`` whether or not the logger is on.

Written on the standard library alone: this module is of the core layer (contract
``core-stdlib``), below the engine.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from fetchpipe._redact import redact_text, redact_url

ROOT = "fetchpipe"
logging.getLogger(ROOT).addHandler(logging.NullHandler())

FIELDS = ("event", "run_id", "source", "host", "url", "attempt", "status", "error")
"""The fields every record carries in ``record.fetchpipe`` (``None`` when unknown)."""

EVENTS = {
    "run_started": "a pipeline run (or a fetch) began, or resumed an unfinished run",
    "run_ended": "the run ended: its status, requests and seconds",
    "source_started": "a source's first request is queued",
    "source_ended": "a source ended: ok, unchanged, failed (why) or fetched",
    "page_committed": "a source's pages since the last commit are in the destination",
    "request_retried": "an attempt failed and will be tried again: why, and the wait",
    "retry_refused": "a retry was refused: the host's retry budget is spent",
    "host_paused": "a host's requests wait: its Retry-After",
    "host_down": "a host's circuit breaker opened: how long it rests",
    "host_up": "a host whose circuit had opened answered again: the circuit closed",
    "request_done": "a request's result (DEBUG): status, attempts, seconds",
}
"""The events, by name, and what each says (README: Logs)."""

RECORDED = frozenset({"request_retried", "retry_refused", "host_paused", "host_down", "host_up"})
"""The engine's events a run records beside its requests (``RunContext.on_event``)."""

EventHook = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class RunContext:
    """What the records of one run share: its id, the redaction of its secrets, how to tell
    a request's source (from the request's key), and who records the engine's events."""

    run_id: str | None = None
    redact: Callable[[str], str] = redact_text
    source_of: Callable[[object], str | None] | None = None
    on_event: EventHook | None = None


_CONTEXT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "fetchpipe_run", default=None
)


def new_run_id() -> str:
    """A unique run id that sorts by start time: UTC time to the microsecond, 6 random hex
    digits (``20261126T101500.123456Z-3fa2c1``). Pipelines' runs and ``fetch``'s."""
    import secrets  # lazy: loaded by the first run, not by every import of the engine

    return f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}"


def logger(name: str) -> logging.Logger:
    """The logger ``fetchpipe.<name>``."""
    return logging.getLogger(f"{ROOT}.{name}")


@contextlib.contextmanager
def run_context(context: RunContext) -> Iterator[RunContext]:
    """Make ``context`` the current run's (for this task and the tasks it starts)."""
    token = _CONTEXT.set(context)
    try:
        yield context
    finally:
        _CONTEXT.reset(token)


def current() -> RunContext | None:
    """The current run's context, if a run set one."""
    return _CONTEXT.get()


def host_of(url: str) -> str | None:
    """The host name of ``url`` (lower case), or ``None``.

    Cut out by hand in the common case (``scheme://[user@]host[:port]/...``): a request log
    row is made per request, and ``urlsplit`` took 40% of its time."""
    _, sep, rest = url.partition("://")
    if sep:
        end = len(rest)
        for mark in "/?#":
            found = rest.find(mark, 0, end)
            if found != -1:
                end = found
        authority = rest[:end].rpartition("@")[2]
        if "[" not in authority:  # not an IPv6 literal: the port, if any, is after the colon
            return authority.partition(":")[0].lower() or None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def full_url(url: str, params: Mapping[str, object] | None) -> str:
    """``url`` with ``params`` in its query, as it is sent (not yet redacted)."""
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def emit(
    log: logging.Logger,
    level: int,
    event: str,
    message: str,
    *,
    url: str | None = None,
    params: Mapping[str, object] | None = None,
    key: object = None,
    host: str | None = None,
    source: str | None = None,
    attempt: int | None = None,
    status: int | None = None,
    error: str | None = None,
    **extra: Any,
) -> None:
    """Log ``event`` on ``log`` at ``level`` when it is enabled, with its fields; and hand an
    event of :data:`RECORDED` to the run context's ``on_event`` whatever the level.

    ``url`` (with its ``params``) and ``message`` are redacted here; ``key`` is the request's
    key, for the run context to tell its source. ``extra`` adds fields (``wait``, ``reason``,
    ``rows``, ...), which must hold no secret or be redacted by the caller.
    """
    context = _CONTEXT.get()
    hook = context.on_event if context is not None and event in RECORDED else None
    if hook is None and not log.isEnabledFor(level):
        return
    redact = context.redact if context is not None else redact_text
    shown = None if url is None else redact_url(redact(full_url(url, params)))
    if host is None and url is not None:
        host = host_of(url)
    if source is None and context is not None and context.source_of is not None:
        source = context.source_of(key)
    fields: dict[str, Any] = {
        "event": event,
        "run_id": context.run_id if context is not None else None,
        "source": source,
        "host": host,
        "url": shown,
        "attempt": attempt,
        "status": status,
        "error": error,
        **extra,
    }
    text = redact_url(redact(message))  # credential parameters, whatever the context's rule
    if hook is not None:
        hook(event, {**fields, "message": text})
    if log.isEnabledFor(level):
        log.log(level, "%s", text, extra={"fetchpipe": fields})


__all__ = [
    "EVENTS",
    "FIELDS",
    "RECORDED",
    "ROOT",
    "RunContext",
    "current",
    "emit",
    "full_url",
    "host_of",
    "logger",
    "new_run_id",
    "run_context",
]
