"""Logs on stderr for the command line: ``--log-level``, ``--log-format text|json``, ``-v``.

The library logs to the ``fetchpipe.*`` loggers (:mod:`fetchpipe._log`); a command that takes
the log options calls :func:`configure`, which gives the ``fetchpipe`` logger one
:class:`StderrHandler` at the level asked for (``warning`` unless told).

Lines stay whole beside the progress display: on a terminal, a line is printed through the
rich console that draws the progress bar or the live table (:func:`attach` names it), which
prints it above them; elsewhere each line is one ``write`` of the whole line, as the plain
progress lines are (so that two threads never interleave within a line).

``text``: ``HH:MM:SS.mmm LEVEL event: message`` and the fields that are set (source, host,
url, attempt, status, error). ``json``: one object per line with ``ts`` (UTC, ISO 8601),
``level``, ``logger``, ``event``, ``message``, ``run_id``, ``source``, ``host``, ``url``,
``attempt``, ``status``, ``error`` (``null`` when unknown) and the event's own fields.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from fetchpipe._log import FIELDS, ROOT
from fetchpipe._redact import redact_text
from fetchpipe.cli.plain_console import Output

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
FORMATS = ("text", "json")
DEFAULT_LEVEL = "warning"
_SHOWN = ("source", "host", "url", "attempt", "status", "error")
"""The fields a text line shows after its message, when set."""


def level_for(name: str | None, verbose: int) -> int:
    """The level of ``--log-level`` (``warning`` unless given), or of ``-v`` (info) and
    ``-vv`` (debug) when they ask for more."""
    level = LEVELS[(name or DEFAULT_LEVEL).lower()]
    if verbose:
        level = min(level, LEVELS["info"] if verbose == 1 else LEVELS["debug"])
    return level


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fetchpipe", None)
    return fields if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL event: message  source=... url=...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        moment = time.strftime("%H:%M:%S", time.localtime(record.created))
        millis = int(record.msecs)
        event = fields.get("event") or record.name
        parts = [f"{moment}.{millis:03d} {record.levelname} {event}: {record.getMessage()}"]
        parts += [f"{name}={fields[name]}" for name in _SHOWN if fields.get(name) is not None]
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        return redact_text(" ".join(parts)).replace("\n", " | ")


class JsonFormatter(logging.Formatter):
    """One JSON object per record (orjson), the fields of :data:`fetchpipe._log.FIELDS`
    always present."""

    def format(self, record: logging.LogRecord) -> str:
        import orjson  # lazy: only for --log-format json

        fields = _fields(record)
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        data: dict[str, Any] = {
            "ts": moment,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        data.update({name: fields.get(name) for name in FIELDS})
        if data["event"] is None:
            data["event"] = "log"
        data.update({k: v for k, v in fields.items() if k not in data})
        if record.exc_info:
            data["exception"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(data, default=str).decode()


class StderrHandler(logging.Handler):
    """Writes each record as one whole line on stderr (through :attr:`console` on a
    terminal, so that it prints above the progress display)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.console: Output | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            console = self.console
            if console is not None and console.is_terminal:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
                return
            stream = sys.stderr
            stream.write(line + "\n")  # one write: a line is never cut by another thread's
            stream.flush()
        except Exception:  # as logging's own handlers: a broken stderr must not stop the run
            self.handleError(record)


_handler: StderrHandler | None = None


def configure(level_name: str | None, log_format: str, verbose: int = 0) -> None:
    """Log the ``fetchpipe`` loggers' records at the level asked for, on stderr, in
    ``log_format`` (``text`` or ``json``)."""
    global _handler
    level = level_for(level_name, verbose)
    root = logging.getLogger(ROOT)
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = StderrHandler(level)
    _handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(_handler)
    root.setLevel(level)
    root.propagate = False  # the command's handler only: no second copy from the root logger


def attach(console: Output) -> None:
    """Print log lines through ``console`` (on a terminal: the one drawing the progress)."""
    if _handler is not None:
        _handler.console = console
