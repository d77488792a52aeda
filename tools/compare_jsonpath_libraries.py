"""How the JSONPath library of pipeline files was chosen: the figures in spec/paths.py.

Not part of the package, nor of its tests: the three libraries are not all dependencies.
Run it in an environment that has them, with the RFC 9535 compliance test suite's ``cts.json``
(github.com/jsonpath-standard/jsonpath-compliance-test-suite)::

    python -m venv .venv-jsonpath && .venv-jsonpath/bin/pip install python-jsonpath==2.2.2 \\
        jsonpath-rfc9535==1.0.1 jsonpath-ng==1.16.0
    .venv-jsonpath/bin/python tools/compare_jsonpath_libraries.py cts.json

For each library: the compliance cases passed (a valid query gives one of the expected results,
an invalid one is refused when compiled), the time of ``$.data.items[*].node`` compiled once and
run on a page of 1,000 records (best of 5 runs of 50), the compile time, and the import time in a
fresh process (best of 5). The baseline is the dotted path fetchpipe reads without a library.
"""

from __future__ import annotations

import json
import subprocess
import sys
import timeit
from collections.abc import Callable
from typing import Any

Compile = Callable[[str], Any]
Values = Callable[[Any, Any], list[Any]]


def python_jsonpath(strict: bool) -> tuple[Compile, Values]:
    import jsonpath

    env = jsonpath.JSONPathEnvironment(strict=strict)
    return env.compile, lambda query, data: query.findall(data)


def jsonpath_rfc9535() -> tuple[Compile, Values]:
    import jsonpath_rfc9535

    return jsonpath_rfc9535.compile, lambda query, data: query.find(data).values()


def jsonpath_ng() -> tuple[Compile, Values]:
    from jsonpath_ng.ext import parse

    return parse, lambda query, data: [match.value for match in query.find(data)]


LIBRARIES: dict[str, tuple[Callable[[], tuple[Compile, Values]], str]] = {
    "python-jsonpath (strict)": (lambda: python_jsonpath(True), "jsonpath"),
    "python-jsonpath": (lambda: python_jsonpath(False), "jsonpath"),
    "jsonpath-rfc9535": (jsonpath_rfc9535, "jsonpath_rfc9535"),
    "jsonpath-ng (ext)": (jsonpath_ng, "jsonpath_ng.ext"),
}
QUERY = "$.data.items[*].node"
PAGE = {
    "data": {
        "items": [
            {"node": {"id": i, "name": f"product {i}", "price": i * 1.5, "tags": ["a", "b"]}}
            for i in range(1000)
        ]
    }
}


def compliance(tests: list[dict[str, Any]], compile_: Compile, values: Values) -> int:
    passed = 0
    for test in tests:
        try:
            query = compile_(test["selector"])
        except Exception:
            passed += bool(test.get("invalid_selector"))
            continue
        if test.get("invalid_selector"):
            continue
        try:
            found = values(query, test["document"])
        except Exception:
            continue
        passed += any(found == expected for expected in test.get("results") or [test["result"]])
    return passed


def import_ms(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        for _ in range(5)
    ]
    return min(float(run.stdout) for run in runs) * 1e3


def timings(compile_: Compile, values: Values) -> tuple[float, float]:
    """Seconds to run the compiled query on the page, and to compile it."""
    query = compile_(QUERY)
    assert [node["id"] for node in values(query, PAGE)] == list(range(1000))
    run = min(timeit.repeat(lambda: values(query, PAGE), number=50, repeat=5)) / 50
    build = min(timeit.repeat(lambda: compile_(QUERY), number=200, repeat=3)) / 200
    return run, build


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        tests = json.load(file)["tests"]
    for name, (make, module) in LIBRARIES.items():
        compile_, values = make()
        run, build = timings(compile_, values)
        print(
            f"{name:26s} compliance {compliance(tests, compile_, values)}/{len(tests)}  "
            f"1,000 records {run * 1e3:6.2f} ms  compile {build * 1e6:6.1f} us  "
            f"import {import_ms(module):5.1f} ms"
        )
    items = PAGE["data"]["items"]
    run = min(timeit.repeat(lambda: [item["node"] for item in items], number=200, repeat=5)) / 200
    print(f"{'baseline: dotted + .node':26s} {'':16s} 1,000 records {run * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
