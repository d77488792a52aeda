"""Names a package hands on from its modules, imported on first use (PEP 562).

``fetchpipe`` and ``fetchpipe.pipeline`` keep a table of such names so that importing them (and
starting the command line) loads neither the engine's nor the pipelines' heavy dependencies;
each package's ``__getattr__`` calls :func:`load` with its table.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def load(namespace: dict[str, Any], table: Mapping[str, str], name: str) -> Any:
    """Import ``name`` from the module ``table`` gives for it and keep it in ``namespace`` (the
    package's globals), so that the next lookup finds it without ``__getattr__``.

    ``"module:other"`` hands on the module's ``other`` as ``name`` (a public name kept for an
    object renamed since)."""
    where = table.get(name)
    if where is None:
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    namespace[name] = value
    return value
