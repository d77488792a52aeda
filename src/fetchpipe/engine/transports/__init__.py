"""The transports: what sends one request and returns a complete, size-capped response.

``base`` holds the :class:`~fetchpipe.engine.transports.base.Transport` protocol the engine
sees, the response it gets and what both transports share; ``redirects`` the one redirect loop
they both run a request through (and the rules of each hop); ``aiohttp`` and ``reqwest`` put
that on their HTTP library; ``factory`` builds the transport a name chooses.

May import the engine's parts (security, decoding, watchdog) and the core values; nothing above
them in the engine (fetcher, runs), and no module imports this package's own ``__init__``.
"""
