"""Simulated API fleet on loopback addresses, for tests, the demo and benchmarks.

``ToxicServer`` (:mod:`fetchpipe.sim.toxics`) is the misbehaving server for fault injection.
"""

from fetchpipe.sim.fleet import Fleet, serve
from fetchpipe.sim.loopback import MAX_HOSTS
from fetchpipe.sim.seed import (
    SEED_API_COUNT,
    SEED_CONCURRENT_MINUTES,
    SEED_LATENCIES_MINUTES,
    SEED_MEAN_MINUTES,
    SEED_SEQUENTIAL_MINUTES,
    seed_latencies,
)
from fetchpipe.sim.stats import FleetStats
from fetchpipe.sim.toxics import ToxicServer

__all__ = [
    "MAX_HOSTS",
    "SEED_API_COUNT",
    "SEED_CONCURRENT_MINUTES",
    "SEED_LATENCIES_MINUTES",
    "SEED_MEAN_MINUTES",
    "SEED_SEQUENTIAL_MINUTES",
    "Fleet",
    "FleetStats",
    "ToxicServer",
    "seed_latencies",
    "serve",
]
