"""stderr without rich prints what rich prints: compared with rich's own output, case by case."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys

import pytest
from rich.console import Console
from rich.errors import MarkupError

from fetchpipe import Source  # the public name of _models.Provenance
from fetchpipe._models import ErrorKind, Request, Result, Timings
from fetchpipe.cli.plain_console import PlainConsole, console_width
from fetchpipe.cli.summary import Summary, plain_table, render

CASES = 400
ALPHABET = "abcxyz019 ./-_=:[]/\\é→😀\t\x1b\r"
PIECES = [":smile:", "[bold]", "[/bold]", "[red]x[/red]", "http://127.0.0.1:8080/a?b=1", "  "]


def _text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(1, 12)):
        if rng.random() < 0.2:
            parts.append(rng.choice(PIECES))
        else:
            parts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 30))))
    text = "".join(parts)
    if rng.random() < 0.5:  # most lines the command line prints are plain ASCII
        text = "".join(c for c in text if c.isascii() and c.isprintable() and c not in "[:")
        text = text.replace(" ", ": ", 1)  # as in "note: ..."
    return text


def _consoles(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Console, io.StringIO, PlainConsole, io.StringIO]:
    """Rich's console and the plain one, both sized as the command line's are: by COLUMNS."""
    monkeypatch.setenv("COLUMNS", str(width))
    expected, got = io.StringIO(), io.StringIO()
    plain_width = console_width()
    assert plain_width == width
    return Console(file=expected), expected, PlainConsole(plain_width, got), got


def test_a_line_prints_as_rich_prints_it(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261126)
    plain_written = 0
    for _ in range(CASES):
        text, width = _text(rng), rng.randrange(20, 140)
        options = {
            "markup": rng.choice([None, False, True]),
            "highlight": rng.choice([None, False]),
            "soft_wrap": rng.choice([None, False, True]),
        }
        rich, expected, plain, got = _consoles(width, monkeypatch)
        outcomes = []
        for console in (rich, plain):
            try:
                console.print(text, **options)
                outcomes.append(None)
            except MarkupError as exc:  # random markup: the same error either way
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1]
        assert got.getvalue() == expected.getvalue(), (text, width, options)
        plain_written += plain._rich is None
    assert CASES / 5 < plain_written < CASES  # both paths were taken, the plain one often


def _result(rng: random.Random) -> Result:
    error = rng.choice([None, None, *ErrorKind])
    source = rng.choice(list(Source))
    elapsed = rng.random() * rng.choice([0.01, 1, 100, 10_000])
    return Result(
        Request("http://api.example.com/x"),
        status=None if error else 200,
        attempts=rng.randrange(0, 6),
        error=error,
        error_message=None if error is None else "failed",
        timings=Timings(queued=10.0, started=10.0, done=10.0 + elapsed),
        source=source,
    )


def _summary(rng: random.Random) -> Summary:
    summary = Summary(cache_used=rng.random() < 0.3)
    for _ in range(rng.randrange(0, 40)):
        summary.add(_result(rng))
    summary.wall_time = rng.choice([None, rng.random() * 100])
    summary.retries_denied = rng.choice([0, 0, rng.randrange(1, 10**6)])
    for _ in range(rng.choice([0, 0, 1, 3])):
        host = rng.choice(["api.example.com", "127.0.0.1:8080", "[::1]:9000", "a" * 60, "b:c:d"])
        summary.hosts_down[host + str(rng.randrange(10))] = rng.randrange(1, 4)
    return summary


def test_the_summary_table_prints_as_rich_prints_it(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    plain_tables = 0
    for _ in range(CASES // 2):
        summary, width = _summary(rng), rng.choice([20, 30, 40, 80, 120])
        rich, expected, plain, got = _consoles(width, monkeypatch)
        render(summary, rich)
        render(summary, plain)
        assert got.getvalue() == expected.getvalue(), (summary, width)
        plain_tables += plain_table(summary, width) is not None
    assert CASES / 8 < plain_tables < CASES / 2  # both paths were taken


def test_width_is_rich_s(monkeypatch: pytest.MonkeyPatch) -> None:
    for columns in ("57", "200", "20"):
        monkeypatch.setenv("COLUMNS", columns)
        assert console_width() == Console(file=io.StringIO()).width == int(columns)
    monkeypatch.setenv("COLUMNS", "wide")
    assert console_width() == Console(file=io.StringIO()).width
    monkeypatch.delenv("COLUMNS")
    assert console_width() == Console(file=io.StringIO()).width
    for narrow in ("5", "0"):  # left to rich
        monkeypatch.setenv("COLUMNS", narrow)
        assert console_width() is None


_WHICH = """
from rich.console import Console
from rich.errors import MarkupError
from fetchpipe.cli.plain_console import stderr_console
print(type(stderr_console()).__name__, Console(stderr=True).is_terminal)
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "PlainConsole"),
        ({"FORCE_COLOR": "1"}, "Console"),
        ({"TTY_COMPATIBLE": "1"}, "Console"),
        ({"TTY_INTERACTIVE": "1"}, "Console"),
        ({"COLUMNS": "3"}, "Console"),
    ],
)
def test_stderr_that_is_not_a_terminal_is_plain_unless_rich_may_see_one(
    env: dict[str, str], expected: str
) -> None:
    names = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "COLUMNS")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    proc = subprocess.run(
        [sys.executable, "-c", _WHICH],
        env={**clean, **env},
        capture_output=True,  # stderr is a pipe
        text=True,
        timeout=30,
        check=True,
    )
    kind, rich_sees_a_terminal = proc.stdout.split()
    assert kind == expected
    assert rich_sees_a_terminal == "False" or kind == "Console"


def test_a_plain_console_writes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    console = PlainConsole(80)
    assert not console.is_terminal
    console.print("results written to out.jsonl", markup=False, highlight=False)
    console.print("[bold]x[/bold]")  # markup: rich prints it, on the same stream
    assert capsys.readouterr().err == "results written to out.jsonl\nx\n"
