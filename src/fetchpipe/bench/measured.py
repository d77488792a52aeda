"""``python -m fetchpipe.bench.measured REPORT ARGS...``: the ``fetchpipe`` command, measured.

Runs ``fetchpipe ARGS...`` in this process, as ``python -m fetchpipe ARGS...`` would (same
entry point, same output, same exit code), then writes ``{"exit_code": ..., "peak_rss_mb": ...}``
to REPORT, the peak being this process's own ``VmHWM`` (see
:func:`fetchpipe.bench.report.peak_rss_mb`). The benchmarks use it where the command line itself
is what they measure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from fetchpipe.bench.report import peak_rss_mb
from fetchpipe.cli import main as fetchpipe_command


def run_command(args: list[str]) -> int:
    """``fetchpipe ARGS`` in this process; its exit code (errors printed as click prints them)."""
    try:
        result = fetchpipe_command.main(args=args, prog_name="fetchpipe", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        click.echo(exc.code, err=True)
        return 1
    return result if isinstance(result, int) else 0


def main(argv: list[str]) -> None:
    report, args = Path(argv[0]), argv[1:]
    code = run_command(args)
    report.write_text(json.dumps({"exit_code": code, "peak_rss_mb": peak_rss_mb()}))
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
