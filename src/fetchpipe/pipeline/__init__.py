"""Declarative pipelines: sources, auth, pagination, records and destinations in one file.

:class:`Pipeline` loads and checks a YAML or TOML pipeline file and runs it. The package is
in layers, each importing only from those below it (contract ``pipeline-layers``):

- :mod:`.api`: :class:`Pipeline`, the file's model with ``run()``;
- :mod:`.plan`: what a pipeline would request, without sending anything;
- :mod:`.runtime`: the runner, and the pure pieces it drives with real responses
  (pagination, records, auth, the report);
- :mod:`.spec`: reading the file, its model, its checks and its errors.

The names below are imported on first use, so that ``import fetchpipe.pipeline`` is cheap.
"""

import typing as _typing

from fetchpipe import _lazy_names

if _typing.TYPE_CHECKING:
    from fetchpipe.pipeline.api import Pipeline
    from fetchpipe.pipeline.runtime.pagination import PaginationError
    from fetchpipe.pipeline.runtime.records import RecordsError
    from fetchpipe.pipeline.spec.destination import DestinationUrl as Destination
    from fetchpipe.pipeline.spec.errors import PipelineError, Problem
    from fetchpipe.pipeline.spec.models import Source

# Imported on first use (PEP 562): the package's models load pydantic.
_LAZY = {
    # A parsed destination URL: the class is spec.destination.DestinationUrl, the public name
    # kept as it was.
    "Destination": "fetchpipe.pipeline.spec.destination:DestinationUrl",
    "PaginationError": "fetchpipe.pipeline.runtime.pagination",
    "Pipeline": "fetchpipe.pipeline.api",
    "PipelineError": "fetchpipe.pipeline.spec.errors",
    "Problem": "fetchpipe.pipeline.spec.errors",
    "RecordsError": "fetchpipe.pipeline.runtime.records",
    "Source": "fetchpipe.pipeline.spec.models",
}


def __getattr__(name: str) -> _typing.Any:
    return _lazy_names.load(globals(), _LAZY, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Destination",
    "PaginationError",
    "Pipeline",
    "PipelineError",
    "Problem",
    "RecordsError",
    "Source",
]
