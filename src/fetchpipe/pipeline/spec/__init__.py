"""A pipeline file and its model: reading it, checking it, saying what is wrong with it.

- :mod:`.loading`: YAML or TOML into plain data, keeping each key's line; ``${VAR}``.
- :mod:`.errors`: :class:`~.errors.PipelineError`, problems by field path and line.
- :mod:`.models`: the file's blocks as frozen pydantic models; :mod:`.config`:
  :class:`~.config.PipelineSpec`, the whole file, its cross-field checks, JSON Schema and the
  engine values it configures (limits, retry, breaker, security, cache). Blocks with their own
  checks have their own module: :mod:`.auth` (the ``auth`` types), :mod:`.status`
  (``on_status``), :mod:`.incremental`, :mod:`.network` (``defaults.security`` and
  ``defaults.proxy``, and the proxy and TLS settings they make when a run starts); all build
  on :mod:`.base`.
- :mod:`.paths`, :mod:`.graph` and :mod:`.cursors`: pure values the model checks with and the
  layers above reuse: dotted paths, ``{source.field}`` URL templates, the sources' dependency
  order, typed incremental cursors (comparison, lookback).

It imports the engine's values and policies (to build them), the core values, pydantic and
yaml; never the plan, the runtime or a destination: a file is checked without running it.
"""
