"""Running a pipeline: its sources' pages through one engine run into the destination.

:mod:`.runner` (:class:`~.runner.PipelineRunner`) and the pure pieces it drives:
:mod:`.pagination`, :mod:`.records`, :mod:`.auth` (credentials), :mod:`.report` (what the run
did).

It imports the spec, the destinations (:mod:`fetchpipe.destinations.pipelines`), the engine
and the core values; never the plan or the public :class:`~fetchpipe.pipeline.api.Pipeline`
above it.
"""
