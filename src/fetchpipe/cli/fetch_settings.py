"""``fetchpipe fetch``'s flags turned into the run's settings: limits, retry, timeouts, headers,
and the HTTP cache the cache flags ask for (checked, not opened). Bad values are
:class:`~fetchpipe.cli.bad_usage.BadUsage` (exit 2) before any request is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetchpipe._config import READAHEAD, HostLimits, Limits, Timeouts
from fetchpipe._exceptions import ConfigError
from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.cache import DEFAULT_CACHE, check_cache_file
from fetchpipe.cli.fetching import Settings
from fetchpipe.cli.options import parse_cache_ttls
from fetchpipe.cli.sharded import ScaleOut, cluster_cache_dir
from fetchpipe.engine.retry import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:
    from fetchpipe._quota import Quota
    from fetchpipe.engine.cache.http_cache import HttpCache


def settings_from_flags(
    *,
    concurrency: int,
    per_host_concurrency: int | None,
    rates: Mapping[str, float],
    quotas: Mapping[str, Quota] | None = None,
    retries: int,
    retry_budget: float | None = DEFAULT_RETRY.budget,
    timeout: float | None,
    deadline: float | None,
    headers: Mapping[str, str],
    cache: HttpCache | None,
    readahead: int = READAHEAD,
) -> Settings:
    try:
        per_host = HostLimits(max_concurrency=per_host_concurrency)
        quotas = quotas or {}
        hosts = {
            host: HostLimits(
                max_concurrency=per_host_concurrency,
                max_per_second=rates.get(host),
                quota=quotas.get(host),
            )
            for host in (*rates, *quotas)
        }
        # --timeout bounds the whole attempt, so no tighter idle-read bound applies.
        timeouts = Timeouts() if timeout is None else Timeouts(read=None, total=timeout)
        if deadline is not None:
            timeouts = Timeouts(timeouts.connect, timeouts.read, timeouts.total, deadline)
        return Settings(
            limits=Limits(
                max_concurrency=concurrency, per_host=per_host, hosts=hosts, readahead=readahead
            ),
            retry=RetryPolicy(attempts=retries + 1, budget=retry_budget),
            timeouts=timeouts,
            headers=headers,
            cache=cache,
        )
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None


def cache_from_flags(
    path: str | None,
    ttls: tuple[str, ...],
    stale_if_error: float | None,
    offline: bool,
    scale: ScaleOut,
) -> tuple[HttpCache | None, str | None]:
    """The ``HttpCache`` the options ask for, checked but not opened (``None`` without one),
    and on a cluster the directory of its per-shard files (the cache is their template)."""
    from fetchpipe.engine.cache.http_cache import HttpCache

    if path is None and offline:
        path = DEFAULT_CACHE
    if path is None:
        given = ["--cache-ttl"] if ttls else []
        if stale_if_error is not None:
            given.append("--stale-if-error")
        if given:
            raise BadUsage(
                f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} a cache. "
                f"HINT: add --cache (the file {DEFAULT_CACHE}) or --cache=PATH"
            )
        return None, None
    ttl, overrides = parse_cache_ttls(ttls)
    directory = cluster_cache_dir(path, DEFAULT_CACHE) if scale.on_cluster else None
    target = Path(directory or path)
    if directory is None:
        check_cache_file(target)
    if offline and not target.exists():
        raise BadUsage(
            f"--offline: there is no cache at {path}. HINT: run once without --offline to fill "
            "it, or point --cache=PATH at an existing cache"
        )
    options: dict[str, Any] = {}
    if stale_if_error is not None:
        options["stale_if_error"] = stale_if_error
    try:
        cache = HttpCache(target, ttl=ttl, ttl_overrides=overrides, offline=offline, **options)
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    return cache, directory
