"""``fetchpipe sim serve``: the simulated API fleet on 127.0.0.x, in the foreground.

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import errno

import click

from fetchpipe.cli.bad_usage import BadUsage
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

    try:
        serve_fleet(host_count=hosts, port=port, minute=minute)
    except OSError as exc:  # the fleet could not listen: nothing was served
        hint = _LISTEN_HINTS.get(exc.errno or 0, "check the addresses and the port")
        raise BadUsage(f"{exc.strerror or exc}. HINT: {hint}") from None


_LISTEN_HINTS = {
    errno.EADDRINUSE: "another process listens on that port (a fetchpipe sim serve still "
    "running?): stop it, or choose another port with --port (0: a free one)",
    errno.EADDRNOTAVAIL: "this system answers on 127.0.0.1 only (macOS: add the other "
    "addresses with ifconfig lo0 alias 127.0.0.N), or serve --hosts 1",
    errno.EACCES: "ports below 1024 need privileges: choose another port with --port",
}
"""What to do when the fleet cannot listen, by the errno of the bind."""
