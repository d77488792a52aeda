"""Latency table of the 50 APIs from the seed scenario.

Fetched one by one the 50 APIs take 135 "minutes" (mean 2.7); fetched concurrently they
take 15 "minutes", the latency of the slowest API.
"""

from __future__ import annotations

import random

__all__ = [
    "SEED_API_COUNT",
    "SEED_CONCURRENT_MINUTES",
    "SEED_LATENCIES_MINUTES",
    "SEED_MEAN_MINUTES",
    "SEED_SEQUENTIAL_MINUTES",
    "seed_latencies",
]

SEED_API_COUNT = 50
SEED_MEAN_MINUTES = 2.7
SEED_CONCURRENT_MINUTES = 15.0
SEED_SEQUENTIAL_MINUTES = SEED_API_COUNT * SEED_MEAN_MINUTES

_RNG_SEED = 0x5EED_50A9


def seed_latencies(
    count: int = SEED_API_COUNT,
    mean: float = SEED_MEAN_MINUTES,
    slowest: float = SEED_CONCURRENT_MINUTES,
    *,
    seed: int = _RNG_SEED,
) -> tuple[float, ...]:
    """Return `count` deterministic latencies with the given mean and exactly one `slowest`.

    The other values are log-normal draws from `random.Random(seed)`, scaled so the total is
    `count * mean`, rounded to 3 decimals; they are all > 0 and < `slowest`.
    """
    if count < 2:
        raise ValueError("count must be at least 2")
    rest_total = count * mean - slowest
    if not 0 < rest_total < (count - 1) * slowest:
        raise ValueError("no table fits this mean and slowest value")
    rng = random.Random(seed)
    for _ in range(1000):
        raw = [rng.lognormvariate(0.0, 0.6) for _ in range(count - 1)]
        scale = rest_total / sum(raw)
        rest = [round(r * scale, 3) for r in raw]
        # Put the rounding drift on the largest value so the total stays exact.
        big = max(range(len(rest)), key=rest.__getitem__)
        rest[big] = round(rest[big] + (rest_total - sum(rest)), 3)
        if all(0.001 <= v < slowest for v in rest):
            break
    else:  # pragma: no cover - not reached for sane inputs
        raise ValueError("could not draw a table for these parameters")
    rest.insert(rng.randrange(count), float(slowest))
    return tuple(rest)


SEED_LATENCIES_MINUTES: tuple[float, ...] = seed_latencies()
"""Latency in "minutes" of API n (0..49): mean 2.7, one API at exactly 15.0."""
