"""What every benchmark report carries, and the helpers around it."""

from __future__ import annotations

import json
import resource
from pathlib import Path

from fetchpipe.bench.report import (
    machine,
    optional_module,
    peak_rss_mb,
    percent,
    raise_nofile_limit,
    write_json,
)


def test_machine_has_cores_python_versions_and_date(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "r.json"
    write_json(out, {"scenario": "x"})
    info = json.loads(out.read_text())["machine"]
    assert info == {**machine(), "date": info["date"]}
    assert info["cores"] >= 1 and info["python"].startswith("3.")
    assert info["packages"]["fetchpipe"] and info["packages"]["aiohttp"]
    assert info["date"].endswith("+00:00")


def test_optional_module() -> None:
    assert optional_module("json") is json
    assert optional_module("fetchpipe_no_such_module") is None


def test_nofile_limit_is_raised_to_the_hard_limit() -> None:
    soft = raise_nofile_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or soft == hard


def test_peak_rss_and_percent() -> None:
    assert 5 < peak_rss_mb() < 4096
    assert percent(1.53, 1.5) == "+2.0%"
    assert percent(1.0, 0.0) == "n/a"
