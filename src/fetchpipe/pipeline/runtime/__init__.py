"""Running a pipeline: its sources' pages through one engine run into the destination.

The runner (:class:`~.runner.PipelineRunner`) and its parts, one module each:

- :mod:`.source_run`: a source during a run (:class:`~.source_run.SourceRun`) and its page
  jobs; :mod:`.finish`: how a source run ends (written, discarded or kept for a resume);
- :mod:`.feed`: the job queue that feeds the engine, and the check of links to other hosts;
- :mod:`.pages`: reading a page: records, next pages, the child jobs (fan-out);
- :mod:`.commits`: a source's pages committed in batches with their journal rows;
- :mod:`.resume`: run ids, resuming an unfinished run, jobs as the journal keeps them;
- :mod:`.destination`: the destination, called on its one thread.

And the pure pieces they drive: :mod:`.pagination`, :mod:`.records`, :mod:`.auth`
(credentials), :mod:`.report` (what the run did).

It imports the spec, the destinations (:mod:`fetchpipe.destinations.pipelines`), the engine
and the core values; never the plan or the public :class:`~fetchpipe.pipeline.api.Pipeline`
above it.
"""
