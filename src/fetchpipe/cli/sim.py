"""``fetchpipe sim serve``: the simulated API fleet on 127.0.0.x, in the foreground.

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import click

from fetchpipe.cli.options import minute_option


@click.group()
def sim() -> None:
    """The simulated API fleet on 127.0.0.x."""


@sim.command()
@click.option("--hosts", default=50, show_default=True, type=click.IntRange(1, 254))
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@minute_option()
def serve(hosts: int, port: int, minute: float) -> None:
    """Run the fleet in the foreground until Ctrl-C."""
    from fetchpipe.sim import serve as serve_fleet

    serve_fleet(host_count=hosts, port=port, minute=minute)
