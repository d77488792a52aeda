"""The HTTP cache: RFC 9111 decisions (``policy``), keys without secrets (``keys``), SQLite
storage with one writer (``storage``), and the ``HttpCache`` the engine talks to (``http_cache``).
"""
