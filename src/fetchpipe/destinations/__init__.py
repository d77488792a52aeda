"""Where results land: the output files of ``fetchpipe fetch`` and the destinations of pipelines.

Two parts, named after the command that uses them, over what both share:

- :mod:`.fetch`: ``fetch --out`` and ``fetch --resume``: one record per result, the
  :class:`~.fetch.Sink` protocol with a JSON Lines and a DuckDB sink
  (:func:`.fetch.factory.open_sink` picks one by the file's extension), and what an output file
  already holds (:mod:`.fetch.resume`).
- :mod:`.pipelines`: a pipeline's tables: the :class:`~.pipelines.Destination` protocol the
  runner talks to, the DuckDB file and the JSONL/Parquet directory behind it
  (:func:`.pipelines.factory.destination_for` picks one by the destination URL's kind), the
  staged records, the run journal and the tables' schema evolution.
- :mod:`.duckdb_ingest` (the one way rows reach DuckDB, for both parts) and :mod:`.lifecycle`
  (``with`` support for writers that have ``open`` and ``close``).

Neither part imports the other. The package sits below the pipeline package and above the
engine: it imports the core values (:mod:`fetchpipe._models`, :mod:`fetchpipe._exceptions`,
:mod:`fetchpipe._redact`), orjson, and duckdb inside the functions that open a database (lazy:
start-up time), never the engine, the pipeline package or the command line. This ``__init__``
imports nothing, so that ``fetch --out x.jsonl`` loads neither DuckDB nor pydantic.
"""
