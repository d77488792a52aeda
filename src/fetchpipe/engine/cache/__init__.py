"""The HTTP cache: RFC 9111 decisions (``policy``), keys without secrets (``keys``), SQLite
storage with one writer (``storage``), and the ``HttpCache`` the engine talks to (``http_cache``).
"""

from pathlib import Path

DEFAULT_PATH = Path(".fetchpipe") / "cache.sqlite"
"""Where ``HttpCache()`` and ``fetch --cache`` keep the cache unless told (here, not in
``http_cache``, so that the command line can show it without loading the cache)."""
