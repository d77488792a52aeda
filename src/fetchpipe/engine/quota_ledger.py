"""The quota ledger: requests counted per host and calendar window in a small SQLite file that
concurrent processes share (``quotas.sqlite`` in the state directory, ``.fetchpipe/`` by
default).

A process does not write once per request: it *reserves* a block of requests (one short
``BEGIN IMMEDIATE`` transaction: read what is used, add the grant, commit), spends it in
memory, and gives back what it did not spend when it closes (:meth:`QuotaLedger.release`). So
the file always counts at least what was sent, never less: a process that dies holding a block
leaves it counted as used (a quota is never overspent; it may be underspent by that block).
``BEGIN IMMEDIATE`` takes the write lock before the read, so two processes never both read
the same count and both grant from it; a process that finds the lock taken waits for it (the
transactions are a few statements long).

SQLite from the standard library rather than a lock file and a JSON count: it gives the
transaction and the waiting for the lock across processes, on every platform Python runs on.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fetchpipe._exceptions import ConfigError
from fetchpipe._quota import Quota, Window

if TYPE_CHECKING:
    import sqlite3

FILE_NAME = "quotas.sqlite"
LOCK_WAIT = 30.0
"""Seconds a process waits for another's transaction on the ledger before it gives up."""
KEEP = 40 * 86400.0
"""Windows that reset longer ago than this (seconds) are dropped when the ledger opens."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_use (
    host TEXT NOT NULL,
    period TEXT NOT NULL,
    window TEXT NOT NULL,
    used INTEGER NOT NULL,
    resets_at REAL NOT NULL,
    PRIMARY KEY (host, period, window)
)
"""


class QuotaLedger:
    """The shared count of one state directory's quotas (see the module docstring)."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        import sqlite3  # lazy: start-up time (only a run with a quota opens the ledger)

        self.path = Path(state_dir) / FILE_NAME
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection = sqlite3.connect(
                self.path, timeout=LOCK_WAIT, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.execute("DELETE FROM quota_use WHERE resets_at < ?", (time.time() - KEEP,))
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the quota ledger {self.path}: {exc}. HINT: give a state "
                "directory that can be written (fetch --state-dir DIR; Fetcher(state_dir=...))"
            ) from exc

    def reserve(self, host: str, quota: Quota, window: Window, want: int) -> tuple[int, int]:
        """Take up to ``want`` requests of ``host``'s quota in ``window``. Returns ``(granted,
        used)``: what this call granted (0 when the quota is spent) and the window's count after
        it."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT used FROM quota_use WHERE host = ? AND period = ? AND window = ?",
                (host, quota.per, window.key),
            ).fetchone()
            used = int(row[0]) if row is not None else 0
            granted = max(0, min(want, quota.requests - used))
            if granted:
                db.execute(
                    "INSERT INTO quota_use (host, period, window, used, resets_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (host, period, window) "
                    "DO UPDATE SET used = used + excluded.used",
                    (host, quota.per, window.key, granted, window.reset.timestamp()),
                )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                db.execute("ROLLBACK")
            raise
        return granted, used + granted

    def release(self, host: str, quota: Quota, window: Window, unused: int) -> None:
        """Give back ``unused`` requests reserved in ``window`` and not sent."""
        if unused <= 0:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "UPDATE quota_use SET used = max(0, used - ?) "
                "WHERE host = ? AND period = ? AND window = ?",
                (unused, host, quota.per, window.key),
            )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                db.execute("ROLLBACK")
            raise

    def used(self, host: str, quota: Quota, when: datetime) -> int:
        """Requests counted for ``host`` in the window of ``when`` (for reports and tests)."""
        row = self._db.execute(
            "SELECT used FROM quota_use WHERE host = ? AND period = ? AND window = ?",
            (host, quota.per, quota.window(when).key),
        ).fetchone()
        return int(row[0]) if row is not None else 0

    def close(self) -> None:
        self._db.close()
