"""``fetchpipe cache stats|prune|clear``, and the checks of a cache file that ``fetch --cache``
shares: refuse a file that is something else, open the cache and say what opening did.

A missing cache file is an empty cache; a file that is not a fetchpipe cache is left alone and the
command exits 2.

Imports inside the functions are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fetchpipe._exceptions import ConfigError
from fetchpipe._redact import redact_text
from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.fetching import counted, note
from fetchpipe.cli.options import Duration, json_flag
from fetchpipe.engine.cache import DEFAULT_PATH

if TYPE_CHECKING:
    from fetchpipe.engine.cache.http_cache import HttpCache

DEFAULT_CACHE = str(DEFAULT_PATH)
_SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first bytes of every SQLite database file."""


def check_cache_file(path: Path) -> None:
    """Refuse (exit 2) a ``path`` that holds something other than a fetchpipe cache.

    The cache sets an unreadable file aside and starts afresh; that is meant for a damaged
    cache, not for a results file or another program's database given to ``--cache`` by
    mistake. A missing or empty file, or a damaged SQLite file, is fine.
    """
    import sqlite3  # lazy: start-up time (fetch --help)

    if str(path) in ("", "-"):
        raise BadUsage(
            f"{str(path)!r} is not a cache file path. HINT: e.g. --cache={DEFAULT_CACHE}"
        )
    if path.is_dir():
        raise BadUsage(
            f"the cache {str(path)!r} is a folder. HINT: give a file, "
            f"e.g. --cache={path / 'cache.sqlite'}"
        )
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BadUsage(f"cannot read the cache {str(path)!r}: {exc.strerror or exc}") from None
    hint = "HINT: give --cache a file of its own, e.g. --cache=.fetchpipe/cache.sqlite"
    if head and head != _SQLITE_MAGIC:
        raise BadUsage(
            f"{str(path)!r} is not a fetchpipe cache (not an SQLite file); it was left as it "
            f"is. {hint}"
        )
    if not head:
        return
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.DatabaseError:
        return  # damaged: the cache sets it aside and says so
    if tables and "entries" not in tables:
        raise BadUsage(
            f"{str(path)!r} is an SQLite database but not a fetchpipe cache; it was left as it "
            f"is. {hint}"
        )


def open_cache(cache: HttpCache) -> HttpCache:
    """Open ``cache`` (exit 2 if it cannot be); print its note (a file set aside) once."""
    try:
        cache.open()
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    if cache.note:
        note(cache.note)
    return cache


# --- fetchpipe cache ... --------------------------------------------------------------------------

_cache_path_option = click.option(
    "--cache",
    "path",
    default=DEFAULT_CACHE,
    show_default=True,
    metavar="PATH",
    help="The cache file (as given to fetch --cache).",
)


@click.group(name="cache")
def cache_group() -> None:
    """Look into, prune or clear the HTTP cache of `fetch --cache`.

    A missing cache file is an empty cache: every command says "no cache at PATH" and exits 0.
    A file that is not a fetchpipe cache is left alone, and the command exits 2.
    """


def _existing_cache(path: str) -> HttpCache | None:
    """The opened cache at ``path``, or ``None`` (after saying so) when there is none."""
    from fetchpipe.engine.cache.http_cache import HttpCache

    target = Path(path)
    check_cache_file(target)
    if not target.exists():
        click.echo(f"no cache at {path}")
        return None
    return open_cache(HttpCache(target))


def _when(timestamp: float | None, now: float) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    return f"{moment} ({_age(now - timestamp)} ago)"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{max(0.0, seconds):.0f} s"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{n} bytes" if n < 1024 else f"{n} bytes ({value:.1f} {unit})"
    raise AssertionError("unreachable")


def _disk_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += Path(f"{path}{suffix}").stat().st_size
    return total


@cache_group.command(name="stats")
@_cache_path_option
@json_flag
def cache_stats(path: str, as_json: bool) -> None:
    """Entries, their size, the oldest and newest stored response, and the path."""
    import orjson

    cache = _existing_cache(path)
    if cache is None:
        if as_json:
            click.echo(orjson.dumps({"path": path, "exists": False, "entries": 0, "bytes": 0}))
        return
    try:
        stats = cache.stats()
    finally:
        cache.close()
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "path": stats.path,
                    "exists": True,
                    "entries": stats.entries,
                    "bytes": stats.bytes,
                    "disk_bytes": _disk_bytes(Path(path)),  # the file and its write-ahead log
                    "oldest": stats.oldest,
                    "newest": stats.newest,
                }
            )
        )
        return
    now = time.time()
    disk = _disk_bytes(Path(path))
    rows = [
        ("path", stats.path),
        ("entries", str(stats.entries)),
        ("size", f"{_size(stats.bytes)} in entries; {_size(disk)} on disk"),
        ("oldest", _when(stats.oldest, now) or "-"),
        ("newest", _when(stats.newest, now) or "-"),
    ]
    for name, value in rows:
        click.echo(f"{name:<8} {value}")


@cache_group.command(name="prune")
@_cache_path_option
@click.option(
    "--older-than",
    type=Duration(),
    default=None,
    metavar="DURATION",
    help="Remove entries stored more than DURATION ago: seconds (3600) or 30m, 12h, 7d, 1w.",
)
def cache_prune(path: str, older_than: float | None) -> None:
    """Remove old entries, then keep the cache under its size cap (1 GiB).

    The size cap removes the least recently used entries first. Prints how many went.
    """
    cache = _existing_cache(path)
    if cache is None:
        return
    try:
        before = cache.stats().entries
        cache.storage.prune(None if older_than is None else time.time() - older_than)
        cache.storage.vacuum()
        after = cache.stats()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        cache.close()
    click.echo(
        f"removed {counted(before - after.entries, 'entry')}; "
        f"{counted(after.entries, 'entry')} left, {_size(after.bytes)}"
    )


@cache_group.command(name="clear")
@_cache_path_option
@click.option(
    "--url",
    "url_glob",
    default=None,
    metavar="GLOB",
    help="Only entries whose URL matches GLOB (*, ?, [...]; case-sensitive), e.g. "
    "'https://api.example.com/v1/*'. Stored URLs show credential parameters as REDACTED.",
)
def cache_clear(path: str, url_glob: str | None) -> None:
    """Remove every entry, or those whose URL matches --url. Prints how many went."""
    import sqlite3

    cache = _existing_cache(path)
    if cache is None:
        return
    try:
        removed = cache.storage.clear(url_glob)
    except (ConfigError, sqlite3.Error) as exc:
        raise click.ClickException(f"cannot clear the cache {path}: {exc}") from None
    finally:
        cache.close()
    which = "" if url_glob is None else f" matching {redact_text(url_glob)!r}"
    click.echo(f"removed {counted(removed, 'entry')}{which}")
