"""Declarative pipelines: sources, auth, pagination, records and destinations in one file.

:class:`Pipeline` loads and checks a YAML or TOML pipeline file; :mod:`.pagination` and
:mod:`.records` are the pure pieces a runtime drives with real responses; :mod:`.plan` says
what would be requested, without sending anything.
"""

from fetchpipe.pipeline.config import Pipeline
from fetchpipe.pipeline.errors import PipelineError, Problem
from fetchpipe.pipeline.models import Destination, Source
from fetchpipe.pipeline.pagination import PaginationError
from fetchpipe.pipeline.records import RecordsError

__all__ = [
    "Destination",
    "PaginationError",
    "Pipeline",
    "PipelineError",
    "Problem",
    "RecordsError",
    "Source",
]
