"""Storage shared by ``fetch --out`` (:mod:`fetchpipe.sinks`) and pipelines' destinations.

- :mod:`.duckdb_ingest`: the one way rows reach DuckDB: JSON lines in a temporary file
  (:class:`~.duckdb_ingest.Spool`) read with ``read_json`` at column types given or inferred
  by one rule, plus identifier and literal quoting.
- :mod:`.lifecycle`: ``with`` support for writers that have ``open`` and ``close``.

It sits below both of its users and imports no other part of fetchpipe (not the engine, the
pipeline package, the sinks nor the command line): only orjson, and duckdb for type checking
alone (callers pass their connections), so that ``fetch --out x.jsonl`` starts without duckdb.
"""
