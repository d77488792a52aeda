"""The fetch engine: requests in, results out, on one asyncio loop, within limits, with retries.

``fetcher`` (the Python API: ``Fetcher``, ``fetch_all``, ``run``) starts a ``stream_run`` per
``stream()`` call: its workers take requests from the ``scheduler`` (per-host ``limits``, the
``breaker``), send them through ``transports/`` and decide what happens next in ``outcomes``
(``retry``: backoff, Retry-After). ``cache/`` is the HTTP cache, ``decoding`` reads bodies
within the cap, ``security`` holds the transports' rules.

May import the core values (``fetchpipe._config``, ``_exceptions``, ``_models``, ``_redact``)
and the HTTP and parsing libraries; never the pipeline, the destinations, the command line, the
simulated APIs or the benchmarks. Its own layers are the ``engine-layers`` import contract.
"""
