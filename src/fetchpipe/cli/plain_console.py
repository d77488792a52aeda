"""stderr without rich when it is not a terminal, printing what rich would print there.

The command line prints its notes, progress and summary through rich. Without a terminal (a
pipe, a file, a CI log) rich prints plain text, and importing it costs about 55 modules and
0.05 s: some 3% of fetching the seed's 50 APIs (``fetchpipe bench startup``). So when stderr is
not a terminal, :func:`stderr_console` gives a :class:`PlainConsole`, which writes a line as it
is when rich would print exactly that line, and hands anything else (markup, emoji codes,
control or non-ASCII characters, a line rich would wrap) to a rich ``Console`` made then. The
summary's table does the same (:func:`fetchpipe.cli.summary.plain_table`). The unit tests compare
both with rich's own output.

Where rich would see a terminal (stderr is one, or ``FORCE_COLOR``, ``TTY_COMPATIBLE``,
``TTY_INTERACTIVE`` or Jupyter say so) the console is rich's.
"""

from __future__ import annotations

import builtins
import os
import re
import sys
from typing import IO, TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console

_RICH_ENVIRONMENT = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS")
"""Variables with which rich may see a terminal, or size it, where :func:`isatty` does not."""
_EMOJI_CODE = re.compile(r":\S*?:")
"""What rich's emoji codes look like (``:smile:``): such text is left to rich."""
MIN_WIDTH = 20
"""Narrower than this (``COLUMNS=5``), rich decides how to print."""


class Output(Protocol):
    """What the command line needs of a console: rich's ``Console`` or :class:`PlainConsole`."""

    @property
    def is_terminal(self) -> bool: ...

    @property
    def file(self) -> IO[str]: ...

    def print(
        self,
        text: object,
        /,
        *,
        markup: bool | None = None,
        highlight: bool | None = None,
        soft_wrap: bool | None = None,
    ) -> None: ...


def plain_line(text: str) -> bool:
    """Whether rich prints ``text`` as it is (no terminal, no markup, no wrapping)."""
    return text.isascii() and text.isprintable() and _EMOJI_CODE.search(text) is None


def console_width(environ: dict[str, str] | None = None) -> int | None:
    """The width rich gives a console without a terminal; ``None`` where rich's rules are not
    this simple (``COLUMNS`` very small, odd or 0)."""
    env = os.environ if environ is None else environ
    columns = env.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    else:
        width = 0
        for fd in (0, 1, 2):  # rich asks stdin, stdout and stderr in this order
            try:
                width = os.get_terminal_size(fd).columns
            except (AttributeError, ValueError, OSError):
                continue
            break
        width = width or 80
    return width if width >= MIN_WIDTH else None


def _rich_sees_a_terminal(file: IO[str]) -> bool:
    if sys.platform == "win32" or hasattr(builtins, "get_ipython"):
        return True  # legacy Windows consoles and Jupyter: left to rich
    if any(name in os.environ for name in _RICH_ENVIRONMENT):
        return True
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


class PlainConsole:
    """Writes to ``file`` (stderr unless given) the lines rich would print as they are."""

    is_terminal = False

    def __init__(self, width: int, file: IO[str] | None = None) -> None:
        self.width = width
        self._file = file
        self._rich: Console | None = None

    @property
    def file(self) -> IO[str]:
        return self._file if self._file is not None else sys.stderr

    def rich(self) -> Console:
        """A rich console on the same file, for what is not plain (made on first use)."""
        if self._rich is None:
            from rich.console import Console  # lazy: start-up time (see the top)

            self._rich = Console(file=self._file, stderr=self._file is None)
        return self._rich

    def print(
        self,
        text: object,
        /,
        *,
        markup: bool | None = None,
        highlight: bool | None = None,
        soft_wrap: bool | None = None,
    ) -> None:
        """As rich's ``Console.print`` of one string (anything else goes to rich)."""
        if (
            isinstance(text, str)
            and plain_line(text)
            and (markup is False or "[" not in text)
            and (soft_wrap or len(text) <= self.width)
        ):
            self.write_lines([text])
            return
        self.rich().print(text, markup=markup, highlight=highlight, soft_wrap=soft_wrap)

    def write_lines(self, lines: list[str]) -> None:
        file = self.file
        file.write("".join(f"{line}\n" for line in lines))
        file.flush()  # as rich does after each print


def stderr_console() -> Output:
    """A :class:`PlainConsole` on stderr when rich would print plain text there; else rich's."""
    width = console_width()
    if width is not None and not _rich_sees_a_terminal(sys.stderr):
        return PlainConsole(width)
    from rich.console import Console  # lazy: start-up time (see the top)

    return Console(stderr=True)
