"""What an output file already holds, for ``fetch --resume``: the requests fetched successfully.

A request is known by its ``key`` when it has one, taken as text (DuckDB stores keys as text,
so the key ``42`` and the key ``"42"`` are one key), else by its method and its URL as stored:
redacted (see :func:`fetchpipe._redact.redact_url`), so a URL with an API key in its query
matches its stored ``REDACTED`` form. Only results with ``ok`` true count; failed ones are
fetched again.

A request with ``params`` or a ``json`` body and no key is never taken as done: the stored URL
is the request's URL without its params, and the body is not stored, so such a request cannot
be told apart from others to the same URL. :func:`plan` counts them so the caller can say so.

Memory: only a 64-bit fingerprint per stored success is kept (Python's ``hash`` of the
identity, computed on both sides in the same process, so its per-process salt does not
matter), never the records: about 70 bytes per success in a set. Two identities collide with a
probability of about n / 2⁶⁴ per request looked up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fetchpipe._exceptions import ConfigError
from fetchpipe._models import Request
from fetchpipe._redact import redact_url

_DUCKDB_MAGIC = b"DUCK"
_TABLE = "responses"
_FETCH_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Stored:
    """The successful results found in an output file (none when it does not exist)."""

    path: str
    exists: bool
    done: set[int] = field(default_factory=set, repr=False)
    """Fingerprints of the requests with a successful result."""
    successes: int = 0
    """Successful results read (a request stored twice counts twice)."""
    unreadable: int = 0
    """Lines that are not records, not counting a torn last line (a killed run's last write)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``--resume`` does with an input: how many requests it skips and fetches."""

    skipped: int
    to_fetch: int
    unmatchable: int
    """Requests to fetch that have params or a JSON body and no key (see the module doc)."""


def _key_identity(key: object) -> int:
    return hash(("key", str(key)))


def _url_identity(method: str, url: str) -> int:
    return hash(("url", method, url))


def fingerprint(request: Request) -> int | None:
    """The identity of ``request`` as :func:`load` computes it from a stored record, or
    ``None`` when no stored record can match it (params or a JSON body, and no key)."""
    if request.key is not None:
        return _key_identity(request.key)
    if request.params or request.json is not None:
        return None
    return _url_identity(request.method.upper(), redact_url(request.url))


def is_done(request: Request, stored: Stored) -> bool:
    """Whether ``stored`` holds a successful result for ``request``."""
    identity = fingerprint(request)
    return identity is not None and identity in stored.done


def plan(requests: Iterable[Request], stored: Stored) -> Plan:
    """Count what a resumed run would skip and fetch, without fetching."""
    skipped = to_fetch = unmatchable = 0
    for request in requests:
        identity = fingerprint(request)
        if identity is not None and identity in stored.done:
            skipped += 1
        else:
            to_fetch += 1
            unmatchable += identity is None
    return Plan(skipped=skipped, to_fetch=to_fetch, unmatchable=unmatchable)


def remaining(requests: Iterable[Request], stored: Stored) -> Iterator[Request]:
    """The requests of ``requests`` that ``stored`` holds no successful result for."""
    done = stored.done
    for request in requests:
        identity = fingerprint(request)
        if identity is None or identity not in done:
            yield request


def load(path: str | Path) -> Stored:
    """The successes stored in ``path``: a ``.jsonl`` or ``.duckdb`` output of ``fetch``.

    A missing or empty file holds none. Raises :class:`ConfigError` when the file's content is
    not of the format its extension names, or when it cannot be read.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".jsonl", ".duckdb"):
        raise ConfigError(
            f"cannot resume from {str(path)!r}: unknown extension {suffix or '(none)'!r}. "
            "HINT: resume from the .duckdb or .jsonl file a run wrote"
        )
    try:
        with target.open("rb") as file:
            head = file.read(4096)
    except FileNotFoundError:
        return Stored(str(path), exists=False)
    except OSError as exc:
        raise ConfigError(
            f"cannot resume from {str(path)!r}: {exc.strerror or exc}. "
            "HINT: check that the file is readable"
        ) from None
    if not head:
        return Stored(str(path), exists=True)
    is_duckdb = head[8:12] == _DUCKDB_MAGIC
    if suffix == ".jsonl":
        if is_duckdb:
            raise ConfigError(
                f"cannot resume from {str(path)!r}: it is a DuckDB database, but its name ends "
                "in .jsonl. HINT: rename it to end in .duckdb and resume with that --out, or "
                "write to a new file"
            )
        if not head.lstrip().startswith(b"{") and head.strip():
            raise ConfigError(
                f"cannot resume from {str(path)!r}: it is not JSON Lines of results (its first "
                "line does not start with '{'). HINT: resume only into a file fetchpipe "
                "wrote, or write to a new file"
            )
        return _load_jsonl(target)
    if not is_duckdb:
        if head.lstrip().startswith(b"{"):
            what = "it looks like JSON Lines"
            hint = "rename it to end in .jsonl and resume with that --out, or write to a new file"
        else:
            what = "nor JSON Lines"
            hint = "resume only into a file fetchpipe wrote, or write to a new file"
        raise ConfigError(
            f"cannot resume from {str(path)!r}: it is not a DuckDB database ({what}). HINT: {hint}"
        )
    return _load_duckdb(target)


def _load_jsonl(path: Path) -> Stored:
    done: set[int] = set()
    successes = unreadable = 0
    with path.open("rb") as file:
        for line in file:
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                # The last line without its newline is a killed run's torn write; the sink
                # cuts it off before appending. Any other such line is counted.
                unreadable += line.endswith(b"\n")
                continue
            if not isinstance(data, dict):
                unreadable += 1
                continue
            identity = _stored_identity(data.get("key"), data.get("method"), data.get("url"))
            if identity is None:
                unreadable += 1
            elif data.get("ok") is True:
                done.add(identity)
                successes += 1
    return Stored(str(path), True, done, successes, unreadable)


def _stored_identity(key: Any, method: Any, url: Any) -> int | None:
    if key is not None:
        return _key_identity(key)
    if isinstance(method, str) and isinstance(url, str):
        if "@" in url:  # an older output may show a user name given alone: redacted now
            url = redact_url(url)
        return _url_identity(method.upper(), url)
    return None


def _load_duckdb(path: Path) -> Stored:
    import duckdb  # lazy: start-up time; resuming from a .jsonl file loads no DuckDB

    done: set[int] = set()
    successes = 0
    try:
        # Read-only still replays the write-ahead log a killed run left behind.
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise ConfigError(
            f"cannot resume from {str(path)!r}: {exc}. HINT: check that no other process has "
            "the file open"
        ) from None
    with contextlib.closing(connection):
        try:
            tables = connection.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name = ?",
                [_TABLE],
            ).fetchall()
            if not tables[0][0]:
                return Stored(str(path), True)
            cursor = connection.execute(f'SELECT "key", "method", "url" FROM "{_TABLE}" WHERE "ok"')
            while rows := cursor.fetchmany(_FETCH_ROWS):
                for key, method, url in rows:
                    identity = _stored_identity(key, method, url)
                    if identity is not None:
                        done.add(identity)
                        successes += 1
        except duckdb.Error as exc:
            raise ConfigError(
                f"cannot resume from {str(path)!r}: cannot read its table {_TABLE!r}: {exc}. "
                "HINT: resume only into a file fetchpipe wrote, or write to a new file"
            ) from None
    return Stored(str(path), True, done, successes)


__all__ = ["Plan", "Stored", "fingerprint", "is_done", "load", "plan", "remaining"]
