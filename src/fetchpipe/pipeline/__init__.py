"""Declarative pipelines: sources, auth, pagination, records and destinations in one file.

:class:`Pipeline` loads and checks a YAML or TOML pipeline file; :mod:`.pagination` and
:mod:`.records` are the pure pieces a runtime drives with real responses; :mod:`.plan` says
what would be requested, without sending anything.
"""

import typing as _typing

from fetchpipe import _lazy_names

if _typing.TYPE_CHECKING:
    from fetchpipe.pipeline.api import Pipeline
    from fetchpipe.pipeline.errors import PipelineError, Problem
    from fetchpipe.pipeline.models import DestinationUrl as Destination
    from fetchpipe.pipeline.models import Source
    from fetchpipe.pipeline.pagination import PaginationError
    from fetchpipe.pipeline.records import RecordsError

# Imported on first use (PEP 562): the package's models load pydantic.
_LAZY = {
    # A parsed destination URL: the class is models.DestinationUrl, the public name kept as it was.
    "Destination": "fetchpipe.pipeline.models:DestinationUrl",
    "PaginationError": "fetchpipe.pipeline.pagination",
    "Pipeline": "fetchpipe.pipeline.api",
    "PipelineError": "fetchpipe.pipeline.errors",
    "Problem": "fetchpipe.pipeline.errors",
    "RecordsError": "fetchpipe.pipeline.records",
    "Source": "fetchpipe.pipeline.models",
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
