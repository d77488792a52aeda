"""``--executor`` and ``--workers``, the options ``fetch`` and ``run`` share: where requests are
sent from (this process, a local Dask cluster, a running scheduler). Checked by
:func:`fetchpipe.cli.sharded.scale_out`; light to import (``run --help`` loads no more)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

_Decorated = TypeVar("_Decorated", bound=Callable[..., Any])


def executor_options(command: _Decorated) -> _Decorated:
    """``--executor`` and ``--workers`` (``fetch`` and ``run``)."""
    command = click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Worker processes of the local Dask cluster of --executor dask.  [default: 2]",
    )(command)
    return click.option(
        "--executor",
        default="local",
        show_default=True,
        metavar="local|dask|dask://HOST:PORT",
        help="Where requests run: this process; a local Dask cluster (--workers processes); "
        "or a running Dask scheduler (dask://HOST:PORT or tcp://HOST:PORT). Each host's "
        "requests run in one task, so its limits hold cluster-wide. pip install "
        "'fetchpipe[dask]'.",
    )(command)
