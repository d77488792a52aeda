"""Start-up, measured: the command line as users run it, each command a process of its own.

Every command is spawned and timed to its exit (:func:`fetchpipe.bench.process.spawn`), so
interpreter start, imports and teardown count. Each runs once to warm up, then ``runs`` times,
the commands of a group taking turns (the order rotating) so that a machine whose speed drifts
weighs on each alike; the table shows medians.

- start-up: the baseline ``python -c "import aiohttp, orjson, uvloop"`` (the libraries a fetch
  cannot do without), then ``fetchpipe --version`` and ``fetchpipe fetch --help``. Target: each
  at most the baseline + 0.05 s.
- seed: the seed's 50 APIs on the simulated fleet (in a child process): the seed's gather script
  (:mod:`fetchpipe.bench.seed_gather`) against ``fetchpipe fetch URLS --out run.jsonl``. Target:
  fetchpipe at most 1.05 times the script.

``fetchpipe`` is the installed console script next to the Python running the benchmark, the
program users run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fetchpipe._exceptions import ConfigError
from fetchpipe.bench.fleet import running_fleet
from fetchpipe.bench.process import spawn
from fetchpipe.bench.svg import Bar, bar_chart

STARTUP_MARGIN = 0.05
"""Seconds over the baseline that ``--version`` and ``fetch --help`` may take."""
SEED_RATIO = 1.05
"""``fetchpipe fetch`` over the seed's gather script, both whole processes, at most."""
TIMEOUT = 300.0
"""Seconds before a command's process is killed (and the run counted as failed)."""
GATHER_SCRIPT = Path(__file__).with_name("seed_gather.py")
NO_BYTECODE_NOTE = (
    "note: PYTHONDONTWRITEBYTECODE is set: a module whose .pyc is missing or out of date (an "
    "edited checkout) is compiled at every start, which users of an installed fetchpipe do not pay"
)


def baseline_code() -> str:
    """``import aiohttp, orjson, uvloop``; without uvloop where it is not installed."""
    names = ["aiohttp", "orjson"]
    if importlib.util.find_spec("uvloop") is not None:
        names.append("uvloop")
    return f"import {', '.join(names)}"


def fetchpipe_program() -> str:
    """The ``fetchpipe`` console script next to ``sys.executable``, else the one on PATH."""
    folder = Path(sys.executable).parent
    for name in ("fetchpipe", "fetchpipe.exe"):
        if (folder / name).is_file():
            return str(folder / name)
    found = shutil.which("fetchpipe")
    if found is None:
        raise ConfigError(
            f"there is no fetchpipe program next to {sys.executable} or on PATH. HINT: install "
            "fetchpipe into this Python's environment (pip install fetchpipe, or pip install -e "
            ". in a checkout) and run the benchmark with that environment's fetchpipe"
        )
    return found


@dataclass(frozen=True, slots=True)
class Command:
    """One row's command: ``argv`` is run, ``shown`` printed."""

    name: str
    label: str
    argv: list[str]
    shown: str


@dataclass(slots=True)
class Row:
    """A command over its runs: the seconds of each run, and why a run failed if one did."""

    command: Command
    samples: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.command.name

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


def run_group(
    commands: Sequence[Command], runs: int, workdir: Path, env: dict[str, str]
) -> list[Row]:
    """Each command once to warm up, then ``runs`` rounds in turns, the order rotating."""
    rows = [Row(command) for command in commands]
    for round_ in range(-1, runs):
        start = max(round_, 0) % len(rows)
        for row in rows[start:] + rows[:start]:
            done = spawn(row.command.argv, workdir, env, TIMEOUT)
            if round_ < 0:
                continue
            row.samples.append(done.seconds)
            if done.exit_code != 0:
                why = (
                    "killed at the timeout"
                    if done.exit_code is None
                    else f"exit code {done.exit_code}"
                )
                last = done.output_tail.splitlines()[-1:]
                row.failures.append(f"{why}: {last[0]}" if last else why)
    return rows


def startup_commands(program: str) -> list[Command]:
    code = baseline_code()
    return [
        Command("baseline", "baseline", [sys.executable, "-c", code], f'python -c "{code}"'),
        Command("version", "fetchpipe --version", [program, "--version"], "fetchpipe --version"),
        Command(
            "fetch_help",
            "fetchpipe fetch --help",
            [program, "fetch", "--help"],
            "fetchpipe fetch --help",
        ),
    ]


@dataclass(slots=True)
class StartupReport:
    runs: int
    startup: list[Row]
    seed: list[Row] = field(default_factory=list)
    scale: float | None = None
    apis: int = 0
    slowest_seconds: float | None = None
    no_bytecode: bool = False
    """``PYTHONDONTWRITEBYTECODE`` was set for the commands."""

    def row(self, name: str) -> Row:
        return next(r for r in self.startup + self.seed if r.name == name)

    @property
    def clean(self) -> bool:
        """Every run of every command exited 0 (for fetch and the script: every API answered)."""
        return not any(r.failures for r in self.startup + self.seed)

    @property
    def startup_limit(self) -> float | None:
        base = self.row("baseline").seconds
        return None if base is None else base + STARTUP_MARGIN

    @property
    def seed_ratio(self) -> float | None:
        if not self.seed:
            return None
        gather, fetch = self.row("seed_gather").seconds, self.row("seed_fetch").seconds
        return fetch / gather if gather and fetch is not None else None

    def holds(self, name: str) -> bool | None:
        """Whether the row's target holds; ``None`` for a baseline or a row without figures."""
        if name in ("version", "fetch_help"):
            limit, seconds = self.startup_limit, self.row(name).seconds
            return None if limit is None or seconds is None else seconds <= limit
        if name == "seed_fetch":
            ratio = self.seed_ratio
            return None if ratio is None else ratio <= SEED_RATIO
        return None

    def target_text(self, name: str) -> str:
        verdict = {True: "holds", False: "does NOT hold", None: "n/a"}[self.holds(name)]
        if name in ("version", "fetch_help"):
            return f"target <= baseline + {STARTUP_MARGIN:g} s: {verdict}"
        if name == "seed_fetch":
            return f"target <= {SEED_RATIO:g}x the script: {verdict}"
        return ""

    def _table(self, rows: list[Row], width: int) -> list[str]:
        base = rows[0].seconds
        out = []
        for row in rows:
            seconds = row.seconds
            if seconds is None:
                out.append(f"{row.command.label:<{width}}  no figure")
                continue
            spread = f"{min(row.samples):.3f}-{max(row.samples):.3f}"
            line = f"{row.command.label:<{width}}{seconds:>9.3f}{spread:>15}"
            if row is not rows[0] and base:
                target = self.target_text(row.name)
                line += f"{seconds - base:>+10.3f} s{seconds / base:>7.2f}x  {target}"
            out.append(line)
            out += [f"  failed: {failure}" for failure in row.failures[:3]]
        return out

    def lines(self) -> list[str]:
        rows = self.startup + self.seed
        width = max(len(r.command.label) for r in rows) + 2
        head = f"{'command':<{width}}{'seconds':>9}{'min-max':>15}{'vs baseline':>12}{'ratio':>8}"
        out = [
            f"startup: each command a process of its own, timed from spawn to exit; one warm-up, "
            f"then {self.runs} run(s) each in turns (median)",
            f"baseline: {self.startup[0].command.shown}",
            *([NO_BYTECODE_NOTE] if self.no_bytecode else []),
            head,
            *self._table(self.startup, width),
        ]
        if self.seed:
            out += [
                "",
                f"seed: {self.apis} simulated APIs (fleet in its own process), one minute = "
                f"{self.scale:g} s, the slowest API {self.slowest_seconds:.3f} s; baseline: the "
                f"seed's gather script, `{self.seed[0].command.shown}`",
                head,
                *self._table(self.seed, width),
            ]
        return out

    def to_json(self) -> dict[str, Any]:
        def row_json(row: Row) -> dict[str, Any]:
            return {
                "name": row.name,
                "label": row.command.label,
                "command": row.command.shown,
                "seconds": row.seconds,
                "samples": row.samples,
                "failures": row.failures,
                "target": self.target_text(row.name) or None,
                "holds": self.holds(row.name),
            }

        seed = None
        if self.seed:
            seed = {
                "scale": self.scale,
                "apis": self.apis,
                "slowest_api_seconds": self.slowest_seconds,
                "ratio": self.seed_ratio,
                "target_ratio": SEED_RATIO,
                "rows": [row_json(r) for r in self.seed],
            }
        return {
            "scenario": "startup",
            "runs": self.runs,
            "baseline": self.startup[0].command.shown,
            "startup_margin_seconds": STARTUP_MARGIN,
            "startup_limit_seconds": self.startup_limit,
            "pythondontwritebytecode": self.no_bytecode,
            "rows": [row_json(r) for r in self.startup],
            "seed": seed,
        }

    def chart(self, subtitle: str) -> str:
        bars = []
        for rows in (self.startup, self.seed):
            for row in rows:
                seconds = row.seconds
                text = "no figure" if seconds is None else f"{seconds:.3f} s"
                if seconds is not None and row is not rows[0] and rows[0].seconds:
                    text += f" · {seconds / rows[0].seconds:.2f}x"
                bars.append(Bar(row.command.label, seconds, text, row is not rows[0]))
        return bar_chart(
            "Whole processes, spawn to exit (median)",
            bars,
            axis="seconds (lower is better)",
            subtitle=subtitle,
        )


@contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fetchpipe-bench-startup-") as folder:
        yield Path(folder)


def measure(runs: int, scale: float | None) -> StartupReport:
    """Time the start-up rows, and the seed rows unless ``scale`` is ``None``."""
    program = fetchpipe_program()
    env = dict(os.environ)
    with _workdir() as workdir:
        report = StartupReport(runs, run_group(startup_commands(program), runs, workdir, env))
        report.no_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
        if scale is None:
            return report
        with running_fleet(scale) as fleet:
            urls = workdir / "urls.txt"
            urls.write_text("\n".join(fleet.api_urls) + "\n", encoding="utf-8")
            commands = [
                Command(
                    "seed_gather",
                    "the seed's gather script",
                    [sys.executable, "-P", str(GATHER_SCRIPT), urls.name],
                    "python -P seed_gather.py urls.txt",
                ),
                Command(
                    "seed_fetch",
                    "fetchpipe fetch (jsonl)",
                    [program, "fetch", urls.name, "--out", "run.jsonl"],
                    "fetchpipe fetch urls.txt --out run.jsonl",
                ),
            ]
            report.seed = run_group(commands, runs, workdir, env)
            report.scale = scale
            report.apis = len(fleet.api_urls)
            report.slowest_seconds = max(fleet.latencies) * scale
    return report
