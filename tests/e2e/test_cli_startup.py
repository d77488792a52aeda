"""Commands import only what they use: checked on ``sys.modules`` of a fresh interpreter.

(How long start-up takes is measured by ``fetchpipe bench startup``, not here.)
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fetchpipe.sim import Fleet
from tests.e2e.conftest import RunCli

HEAVY = ("pydantic", "duckdb", "fetchpipe.pipeline", "yaml")
"""Never loaded by ``import fetchpipe.cli``, ``--version`` or ``fetch --help``."""
CLIENT = ("aiohttp", "yarl", "rich", "sqlite3")
"""Not needed to print a version or a command's help either."""

_RICH_SEES_A_TERMINAL = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")

# Runs the command line in this interpreter, then prints which of the modules asked for it loaded.
_PROBE = """
import json, sys
names, args = json.loads(sys.argv[1]), sys.argv[2:]
import fetchpipe.cli
if args:
    try:
        fetchpipe.cli.main(args, prog_name="fetchpipe")
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
print(json.dumps(sorted(name for name in names if name in sys.modules)), file=sys.stderr)
"""


def _loaded(
    *args: str, names: tuple[str, ...] = HEAVY + CLIENT, cwd: Path | None = None
) -> list[str]:
    """Which of ``names`` are in ``sys.modules`` after ``fetchpipe ARGS`` in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in _RICH_SEES_A_TERMINAL}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(names), *args],
        env=env,
        cwd=cwd,
        capture_output=True,  # stderr is not a terminal
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stderr.splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "args", [(), ("--version",), ("fetch", "--help"), ("init", "--help"), ("report", "--help")]
)
def test_the_command_line_loads_no_pipeline_database_or_http_client(args: tuple[str, ...]) -> None:
    assert _loaded(*args) == []


def test_the_probe_sees_what_a_command_loads() -> None:
    # The same probe after commands that do need them: it is not blind.
    assert _loaded("schema", names=HEAVY) == ["fetchpipe.pipeline", "pydantic", "yaml"]
    assert _loaded("bench", "--help", names=("fetchpipe.bench.cli",)) == ["fetchpipe.bench.cli"]


def test_the_root_help_lists_every_command_without_loading_pydantic() -> None:
    assert _loaded("--help", names=("pydantic", "duckdb", "aiohttp")) == []


def test_fetch_to_jsonl_loads_no_duckdb_pipeline_or_rich(cli_fleet: Fleet, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(cli_fleet.api_urls[:3]) + "\n")
    names = ("duckdb", "pydantic", "rich")  # rich: stderr is not a terminal
    for out, expected in (("o.jsonl", []), ("o.duckdb", ["duckdb"])):
        # A short --out: a line longer than the console's width is rich's to wrap.
        loaded = _loaded("fetch", str(urls), "--out", out, names=names, cwd=tmp_path)
        assert loaded == expected, out
    # The report of a JSONL output is made from the run's rows in memory: still no DuckDB.
    loaded = _loaded(
        "fetch", str(urls), "--out", "o.jsonl", "--report", "r.html", names=names, cwd=tmp_path
    )
    assert loaded == [] and (tmp_path / "r.html").stat().st_size > 0


def test_version_is_the_installed_distribution_s(run_cli: RunCli) -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"fetchpipe, version {importlib.metadata.version('fetchpipe')}\n"
