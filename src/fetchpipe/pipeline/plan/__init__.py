"""What a pipeline would request, in which order, how many requests, how long at least.

:mod:`.plan`: :func:`~.plan.build_plan` and :func:`~.plan.render`, the ``fetchpipe plan``
command's dry run. It imports the spec (the pipeline it plans) and, from the runtime, only the
paginators (:mod:`fetchpipe.pipeline.runtime.pagination`, pure: the first request of each
source is the one the runner would send); never the runner nor the engine's fetcher: a plan
sends nothing (contract ``plan-sends-nothing``).
"""
