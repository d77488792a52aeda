"""No module of fetchpipe imports itself back through others, counting every import.

The import contracts (``lint-imports``, in ``make test``) check the layers and the cycles
between the modules of each package; a package's ``__init__`` and its own modules are not
siblings there, so this test looks at the whole graph, module by module: imports at the top,
inside functions and under ``TYPE_CHECKING`` alike.
"""

from __future__ import annotations

import graphlib
import textwrap
from pathlib import Path

import grimp
import pytest


def import_cycle(package: str) -> list[str] | None:
    """A cycle of imports between the modules of ``package`` (first module repeated at the end),
    or ``None``."""
    graph = grimp.build_graph(package, cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = list(reversed(exc.args[1]))
        return cycle
    return None


def test_fetchpipe_has_no_import_cycle() -> None:
    assert import_cycle("fetchpipe") is None


def test_a_package_init_and_its_module_importing_it_in_a_function_are_a_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cyclic_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            def make():
                from cyclic_pkg.impl import Thing

                return Thing()
            """
        )
    )
    (package / "impl.py").write_text("from cyclic_pkg import make\n\nThing = object\n")
    (package / "other.py").write_text("import cyclic_pkg.impl\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    cycle = import_cycle("cyclic_pkg")

    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"cyclic_pkg", "cyclic_pkg.impl"}
