"""The command line's one error for bad usage or input: exit 2, before any request is sent.

Every command raises :class:`BadUsage` for what it finds wrong once click has parsed its
options: an input file that cannot be read, settings that do not fit together, a cache file that
is something else, an invalid pipeline file. A bad option value is click's own usage error
(``click.BadParameter``, raised by click or by the parsers of :mod:`fetchpipe.cli.options`): it
prints the command's usage line before the error, and exits 2 as well.
"""

from __future__ import annotations

from typing import IO, Any

import click


class BadUsage(click.ClickException):
    """Bad usage or input, found before any request was sent: exit 2.

    Printed on stderr as ``Error: MESSAGE``; with ``plain=True`` as the message alone, for a
    message whose lines each name the file they are about, as a compiler's do
    (``pipeline.yaml:12: sources.users.url: ...``).
    """

    exit_code = 2

    def __init__(self, message: str, *, plain: bool = False) -> None:
        super().__init__(message)
        self.plain = plain

    def show(self, file: IO[Any] | None = None) -> None:
        if self.plain:
            click.echo(self.format_message(), file=file, err=True)
        else:
            super().show(file)
