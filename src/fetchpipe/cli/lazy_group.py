"""A click group whose subcommands from other modules are imported when first looked up.

This is click's own recipe ("lazily loading subcommands" in its documentation): the group knows
each such subcommand as ``"module:attribute"`` and imports the module in ``get_command``. A
command that is run, or whose ``--help`` is shown, is imported; the others are not, so that
``fetchpipe fetch`` does not load the pipeline package (pydantic) or the benchmarks. The root's
``--help`` imports them all, to list each with its short help.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """A :class:`click.Group` with ``lazy_subcommands``: name -> ``"module:attribute"``."""

    def __init__(
        self, *args: Any, lazy_subcommands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands and cmd_name not in self.commands:
            self.add_command(self._load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, name: str) -> click.Command:
        module_name, _, attribute = self.lazy_subcommands[name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):  # a wrong entry in lazy_subcommands
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command
