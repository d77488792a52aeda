"""The ``fetchpipe`` command line: parses, calls the library, prints.

Exit codes: 0 every request ok; 1 some requests failed (every success is still written) or the
results could not be written; 2 bad usage or input, found before any request is sent
(:class:`~fetchpipe.cli.bad_usage.BadUsage`, or click's own usage error for an option value).
Secrets stay out of what is printed and written: header values are never shown, API-key query
parameters, URL passwords and a URL's user name given alone are redacted (see
:mod:`fetchpipe._redact`).

Here: the root group and the program's entry point. Each command lives in a module of its own
(:mod:`.fetch`, :mod:`.merge`, :mod:`.demo`, :mod:`.sim`, :mod:`.cache`, :mod:`.pipeline`,
:mod:`.state`, :mod:`.init`, :mod:`.runs`, :mod:`.report`; the benchmarks in
``fetchpipe.bench.cli``) that the root group imports by name when the command is run or its
help is shown (:mod:`.lazy_group`), and each command imports what it uses inside its function:
``fetchpipe --version`` loads no command, and ``fetchpipe fetch`` no pipeline, pydantic or DuckDB
(unless --out is a .duckdb file). The options several commands share are in :mod:`.options`.
"""

from __future__ import annotations

import os

import click

from fetchpipe import __version__
from fetchpipe.cli.lazy_group import LazyGroup


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    lazy_subcommands={
        "bench": "fetchpipe.bench.cli:bench",
        "cache": "fetchpipe.cli.cache:cache_group",
        "demo": "fetchpipe.cli.demo:demo",
        "fetch": "fetchpipe.cli.fetch:fetch",
        "init": "fetchpipe.cli.init:init",
        "merge": "fetchpipe.cli.merge:merge",
        "plan": "fetchpipe.cli.pipeline:plan",
        "report": "fetchpipe.cli.report:report_command",
        "run": "fetchpipe.cli.pipeline:run_command",
        "runs": "fetchpipe.cli.runs:runs_command",
        "schema": "fetchpipe.cli.pipeline:schema",
        "sim": "fetchpipe.cli.sim:sim",
        "state": "fetchpipe.cli.state:state_group",
        "validate": "fetchpipe.cli.pipeline:validate",
    },
)
@click.version_option(__version__)
def main() -> None:
    """Fetch many HTTP/JSON APIs at once, politely and reliably, into DuckDB or JSONL."""
    if os.environ.get("FETCHPIPE_TESTING") == "1":
        from fetchpipe.engine.retry import set_testing  # lazy: start-up time

        set_testing(True)


def entry_point(prog_name: str | None = None) -> None:
    """The ``fetchpipe`` program (the console script, ``python -m fetchpipe``): :data:`main`,
    then an exit without the interpreter's teardown (see :mod:`fetchpipe.cli.quick_exit`)."""
    from fetchpipe.cli.quick_exit import leave

    try:
        main(prog_name=prog_name)  # click's standalone mode: it always ends in SystemExit
    except SystemExit as exc:
        leave(exc.code)
