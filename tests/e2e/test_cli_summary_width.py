"""The summary table of ``fetchpipe run`` when stdout is not a terminal (a pipe, a CI log):
never cut to 80 columns, whatever the length of a source's name or cursor."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from urllib.request import urlopen

import yaml

from fetchpipe.sim import Fleet

LONG_NAME = "products_with_a_table_name_long_enough_to_need_a_wide_table"


def _pipeline(path: Path, fleet: Fleet) -> Path:
    config = {
        "name": "wide",
        "destination": f"duckdb:///{path.parent / 'wide.duckdb'}",
        "sources": [
            {
                "name": LONG_NAME,
                "url": fleet.url("/shop/v1/all/products"),
                "records": "products",
                "primary_key": "id",
                "incremental": {
                    "cursor_field": "updated_at",
                    "param": "updated_since",
                    "initial": "2024-01-01T00:00:00Z",
                },
            },
            {
                "name": "gone",
                "url": fleet.url("/status/404"),
                "on_status": {404: "skip"},
            },
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_piped_summary_is_never_cut(cli_fleet: Fleet, tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path / "wide.yaml", cli_fleet)
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # as in a CI job
    environ["FETCHPIPE_TESTING"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "fetchpipe", "run", str(pipeline), "--quiet"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "…" not in out, out
    header = next(line for line in out.splitlines() if " source " in line)
    assert " skipped " in header and " cursor " in header
    row = next(line for line in out.splitlines() if LONG_NAME in line)
    assert _greatest_updated_at(cli_fleet) in row  # the whole cursor, on the source's line
    assert len(row) > 80
    assert all(line == line.rstrip() for line in out.splitlines())  # no padding to the width
    assert any(line.startswith("run ") and " 2 ok, 0 failed, " in line for line in out.splitlines())


def test_a_terminal_summary_still_fits_the_terminal(cli_fleet: Fleet, tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path / "wide.yaml", cli_fleet)
    environ = {**os.environ, "FETCHPIPE_TESTING": "1", "COLUMNS": "80"}
    leader, follower = pty.openpty()  # stdout a terminal 80 columns wide
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fetchpipe", "run", str(pipeline), "--quiet"],
            stdout=follower,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=environ,
            timeout=60,
            check=False,
        )
        os.close(follower)
        out = _read_all(leader).decode()
    finally:
        os.close(leader)
    assert done.returncode == 0, out + done.stderr.decode()
    lines = [ANSI.sub("", line) for line in out.splitlines()]
    assert any(line.startswith("┃ source ") for line in lines), out
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert len(table) == 6 and max(len(line) for line in table) <= 80, "\n".join(lines)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _read_all(fd: int) -> bytes:
    chunks = []
    for _ in range(1000):  # bounded: the output is a few kilobytes
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the writer is gone and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _greatest_updated_at(fleet: Fleet) -> str:
    with urlopen(fleet.url("/shop/v1/all/products"), timeout=10) as response:  # loopback
        products = json.loads(response.read())["products"]
    return str(max(p["updated_at"] for p in products))
