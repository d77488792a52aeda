"""Engine settings as frozen values. Override with ``dataclasses.replace``. Times are seconds."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fetchpipe._exceptions import ConfigError
from fetchpipe._quota import Quota

MiB = 1024 * 1024
READAHEAD = 1_000_000
"""Requests the engine reads ahead of its buffer at most, by default (``Limits.readahead``)."""
TRANSPORTS = ("aiohttp", "fast")
"""``aiohttp`` (the default) or ``fast``: pyreqwest, Rust reqwest/hyper (``fetchpipe[fast]``)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-attempt timeouts, plus ``deadline``: a bound on one request, all attempts and waits.

    ``None`` switches a bound off. The deadline starts with the request's first attempt.
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    total: float | None = 60.0
    deadline: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total", "deadline"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(
                    f"timeouts.{name} must be a positive number of seconds, got {value!r}. "
                    "HINT: use None to switch this timeout off."
                )


@dataclass(frozen=True, slots=True)
class HostLimits:
    """Limits for one host: concurrent requests and a rate (GCRA, with ``burst``).

    ``adaptive``: pace the host by what it answers (see :mod:`fetchpipe.engine.politeness`).
    ``None`` (the default): read its published limits, and learn a rate from its 429s unless
    ``max_per_second`` is given; ``True``: both, ``max_per_second`` being the ceiling of the
    learned rate; ``False``: neither (only the limits given here, and Retry-After).
    ``quota``: requests per calendar hour, day or month (UTC), counted across runs and
    processes in the Fetcher's ``state_dir`` (see :mod:`fetchpipe.engine.quotas`).
    """

    max_concurrency: int | None = None
    max_per_second: float | None = None
    burst: int = 1
    adaptive: bool | None = None
    quota: Quota | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(
                f"max_concurrency must be at least 1, got {self.max_concurrency!r}. "
                "HINT: use None for no per-host bound."
            )
        if self.max_per_second is not None and not (
            self.max_per_second > 0 and math.isfinite(self.max_per_second)
        ):
            raise ConfigError(
                f"max_per_second must be a positive number, got {self.max_per_second!r}. "
                "HINT: use None for no rate limit."
            )
        if self.burst < 1:
            raise ConfigError(f"burst must be at least 1, got {self.burst!r}.")
        if self.quota is not None and not isinstance(self.quota, Quota):
            raise ConfigError(
                f"quota must be a fetchpipe.Quota, got {self.quota!r}. "
                "HINT: e.g. HostLimits(quota=Quota(5000, 'day'))"
            )


@dataclass(frozen=True, slots=True)
class Limits:
    """Global and per-host limits.

    ``hosts`` maps a host name or a ``*.example.com`` pattern to its own ``HostLimits``;
    an exact name wins over a pattern, and a longer pattern over a shorter one. Hosts that
    match nothing get ``per_host``.
    """

    max_concurrency: int = 100
    per_host: HostLimits = field(default_factory=HostLimits)
    hosts: Mapping[str, HostLimits] = field(default_factory=dict)
    max_body_size: int = 64 * MiB
    buffer_size: int | None = None
    readahead: int = READAHEAD
    """Requests the engine may read beyond its buffer while a worker has nothing to do, so that
    an input grouped by host keeps every host busy: kept per host, a few thousand in memory and
    the rest in an encrypted temporary file (about the requests' size on disk). 0: read no
    further than the buffer."""

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {self.max_concurrency!r}.")
        if self.readahead < 0:
            raise ConfigError(
                f"readahead must be 0 or more, got {self.readahead!r}. "
                "HINT: 0 reads no further ahead than the buffer."
            )
        if self.max_body_size < 1:
            raise ConfigError(f"max_body_size must be positive, got {self.max_body_size!r}.")
        if self.buffer_size is not None and self.buffer_size < 1:
            raise ConfigError(f"buffer_size must be at least 1, got {self.buffer_size!r}.")
        normalised = {pattern.lower(): value for pattern, value in self.hosts.items()}
        for pattern in normalised:
            if not pattern or any(c in pattern for c in "/: "):
                raise ConfigError(
                    f"host pattern {pattern!r} is not a host name. "
                    "HINT: write 'api.example.com' or '*.example.com', without scheme or port."
                )
        object.__setattr__(self, "hosts", normalised)

    @property
    def queue_size(self) -> int:
        """How many requests the engine holds at once (waiting or in flight)."""
        if self.buffer_size is not None:
            return self.buffer_size
        return max(1000, 4 * self.max_concurrency)

    @property
    def has_quotas(self) -> bool:
        """Some host has a quota (the Fetcher then keeps a quota ledger)."""
        return self.per_host.quota is not None or any(
            h.quota is not None for h in self.hosts.values()
        )

    def for_host(self, host: str) -> HostLimits:
        """The limits that apply to ``host`` (already lower-case)."""
        exact = self.hosts.get(host)
        if exact is not None:
            return exact
        best: tuple[int, HostLimits] | None = None
        for pattern, value in self.hosts.items():
            matches = "*" in pattern and fnmatch.fnmatchcase(host, pattern)
            if matches and (best is None or len(pattern) > best[0]):
                best = (len(pattern), value)
        return best[1] if best is not None else self.per_host
