"""SQLite storage for cached responses: WAL, reads on the caller's thread, one writer thread.

Reads are single primary-key look-ups on a connection of the event loop's thread (WAL readers
never wait for the writer). Every change goes through one writer thread with its own
connection, in batched transactions, so hundreds of concurrent requests never meet
"database is locked". The file holds only data (no pickle): JSON headers and raw bodies.
A file that is not a readable cache is set aside (renamed) and a new one started.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from fetchpipe._exceptions import ConfigError

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT NOT NULL,
    vary TEXT NOT NULL,
    url TEXT NOT NULL,
    method TEXT NOT NULL,
    status INTEGER NOT NULL,
    headers BLOB NOT NULL,
    body BLOB NOT NULL,
    request_time REAL NOT NULL,
    response_time REAL NOT NULL,
    last_access REAL NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (key, vary)
);
CREATE INDEX IF NOT EXISTS entries_last_access ON entries (last_access);
"""
_COLUMNS = "key, vary, url, method, status, headers, body, request_time, response_time"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored response. ``headers`` keeps order and repeats, as pairs."""

    key: str
    vary: str
    url: str
    method: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    request_time: float
    response_time: float


@dataclass(frozen=True, slots=True)
class Stats:
    path: str
    entries: int
    bytes: int
    oldest: float | None
    newest: float | None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _open_checked(path: Path) -> tuple[sqlite3.Connection, str | None]:
    """Open (creating) the cache; set aside a file that is not one. Returns a note if so."""
    note = None
    for _ in range(2):
        try:
            conn = _connect(path)  # "file is not a database" shows up here or just below
            conn.executescript(_SCHEMA)
            version = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if version is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif version[0] != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version[0]!r}")
            return conn, note
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(Exception):
                conn.close()
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{path}{suffix}")
                if part.exists():
                    part.replace(Path(f"{aside}{suffix}"))
            note = f"the cache file was unreadable ({exc}); it was set aside as {aside.name}"
    raise ConfigError(f"cannot create a cache at {path}. HINT: check the folder's permissions.")


class Storage:
    """The cache file. ``get`` reads; ``put``/``touch``/``delete`` are queued to the writer."""

    def __init__(self, path: str | Path, *, max_size: int | None = None) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the cache folder {self.path.parent}: {exc}") from exc
        self.max_size = max_size
        self._read, self.note = _open_checked(self.path)
        self._writes: queue.Queue[tuple[str, tuple[object, ...]] | None] = queue.Queue(10_000)
        self._writer = threading.Thread(
            target=self._write_loop, name="fetchpipe-cache", daemon=True
        )
        self._writer_error: BaseException | None = None
        self._touched: list[tuple[float, str, str]] = []
        self._writer.start()

    # --- reads (caller's thread) ----------------------------------------------------------------

    def get(self, key: str) -> list[Entry]:
        """Every stored variant for ``key`` (usually one)."""
        try:
            rows = self._read.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE key = ?", (key,)
            ).fetchall()
        except sqlite3.DatabaseError:
            return []  # a damaged page reads as a miss; the network answers instead
        entries = []
        for key_, vary, url, method, status, headers, body, req_t, resp_t in rows:
            try:
                pairs = [(str(n), str(v)) for n, v in orjson.loads(headers)]
            except (orjson.JSONDecodeError, TypeError, ValueError):
                continue
            entries.append(
                Entry(key_, vary, url, method, status, pairs, bytes(body), req_t, resp_t)
            )
        return entries

    def stats(self) -> Stats:
        count, size, oldest, newest = self._read.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(response_time), MAX(response_time) "
            "FROM entries"
        ).fetchone()
        return Stats(str(self.path), count, size, oldest, newest)

    # --- writes (queued to the writer thread) ----------------------------------------------------

    def put(self, entry: Entry) -> None:
        self._queue("put", (entry,))

    def touch(self, key: str, vary: str, when: float) -> None:
        """Note a use (for LRU pruning); sent to the writer in batches."""
        self._touched.append((when, key, vary))
        if len(self._touched) >= 256:
            self._send_touches()

    def _send_touches(self) -> None:
        touched, self._touched = self._touched, []
        if touched:
            self._queue("touch", (touched,))

    def delete(self, key: str, vary: str) -> None:
        self._queue("delete", (key, vary))

    def prune(self, older_than: float | None = None) -> None:
        """Drop entries stored before ``older_than`` (Unix time); then apply the size cap."""
        self._queue("prune", (older_than,))

    def flush(self) -> None:
        """Wait until every queued change is committed."""
        self._send_touches()
        done = threading.Event()
        self._queue("flush", (done,))
        done.wait()
        if self._writer_error is not None:
            raise ConfigError(f"the cache writer failed: {self._writer_error}")

    def close(self) -> None:
        if self._writer.is_alive():
            self._send_touches()
            self._writes.put(None)
            self._writer.join()
        self._read.close()

    def _queue(self, op: str, args: tuple[object, ...]) -> None:
        if self._writer_error is None:
            self._writes.put((op, args))

    # --- the writer thread ----------------------------------------------------------------------

    def _write_loop(self) -> None:
        conn = _connect(self.path)
        try:
            while True:
                first = self._writes.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < 500:
                    try:
                        nxt = self._writes.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._apply(conn, batch)
                        return
                    batch.append(nxt)
                self._apply(conn, batch)
        except BaseException as exc:  # surfaced by flush(); the run goes on without the cache
            self._writer_error = exc
        finally:
            conn.close()

    def _apply(self, conn: sqlite3.Connection, batch: list[tuple[str, tuple[object, ...]]]) -> None:
        waiters: list[threading.Event] = []
        prune = False
        older_than: float | None = None
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op, args in batch:
                if op == "put":
                    (entry,) = args
                    assert isinstance(entry, Entry)
                    self._insert(conn, entry)
                    prune = prune or self.max_size is not None
                elif op == "touch":
                    touched = args[0]
                    assert isinstance(touched, list)
                    conn.executemany(
                        "UPDATE entries SET last_access = ? WHERE key = ? AND vary = ?", touched
                    )
                elif op == "delete":
                    conn.execute("DELETE FROM entries WHERE key = ? AND vary = ?", args)
                elif op == "prune":
                    prune = True
                    older_than = args[0] if isinstance(args[0], float | int) else older_than
                elif op == "flush":
                    event = args[0]
                    assert isinstance(event, threading.Event)
                    waiters.append(event)
            if older_than is not None:
                conn.execute("DELETE FROM entries WHERE response_time < ?", (older_than,))
            if prune and self.max_size is not None:
                self._enforce_size(conn, self.max_size)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            for event in waiters:
                event.set()

    @staticmethod
    def _insert(conn: sqlite3.Connection, entry: Entry) -> None:
        headers = orjson.dumps(entry.headers)
        conn.execute(
            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.key,
                entry.vary,
                entry.url,
                entry.method,
                entry.status,
                headers,
                entry.body,
                entry.request_time,
                entry.response_time,
                time.time(),
                len(entry.body) + len(headers),
            ),
        )

    @staticmethod
    def _enforce_size(conn: sqlite3.Connection, max_size: int) -> None:
        """Least recently used entries go first until the total fits under ``max_size``."""
        (total,) = conn.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()
        if total <= max_size:
            return
        excess = total - max_size
        victims = []
        for key, vary, size in conn.execute(
            "SELECT key, vary, size FROM entries ORDER BY last_access"
        ):
            victims.append((key, vary))
            excess -= size
            if excess <= 0:
                break
        conn.executemany("DELETE FROM entries WHERE key = ? AND vary = ?", victims)

    def clear(self, url_glob: str | None = None) -> int:
        """Delete every entry, or those whose (redacted) URL matches ``url_glob``; the count."""
        self.flush()
        conn = _connect(self.path)
        try:
            if url_glob is None:
                cursor = conn.execute("DELETE FROM entries")
            else:
                cursor = conn.execute("DELETE FROM entries WHERE url GLOB ?", (url_glob,))
            removed = cursor.rowcount
            conn.execute("VACUUM")  # give the space back to the file system
            return removed
        finally:
            conn.close()

    def vacuum(self) -> None:
        """Commit what is queued, then shrink the file to what it holds."""
        self.flush()
        conn = _connect(self.path)
        try:
            conn.execute("VACUUM")
        finally:
            conn.close()
