"""The seed scenario's latency table."""

from __future__ import annotations

import math

import pytest

from fetchpipe.sim import (
    SEED_API_COUNT,
    SEED_CONCURRENT_MINUTES,
    SEED_LATENCIES_MINUTES,
    SEED_MEAN_MINUTES,
    SEED_SEQUENTIAL_MINUTES,
    seed_latencies,
)


def test_table_shape() -> None:
    assert len(SEED_LATENCIES_MINUTES) == SEED_API_COUNT == 50
    assert all(isinstance(v, float) for v in SEED_LATENCIES_MINUTES)


def test_mean_is_2_7_and_total_is_135() -> None:
    assert math.isclose(sum(SEED_LATENCIES_MINUTES) / 50, 2.7, rel_tol=1e-12)
    assert math.isclose(sum(SEED_LATENCIES_MINUTES), 135.0, rel_tol=1e-12)
    assert SEED_MEAN_MINUTES == 2.7
    assert math.isclose(SEED_SEQUENTIAL_MINUTES, 135.0)


def test_exactly_one_slowest_api_at_15() -> None:
    assert max(SEED_LATENCIES_MINUTES) == 15.0 == SEED_CONCURRENT_MINUTES
    assert SEED_LATENCIES_MINUTES.count(15.0) == 1
    others = [v for v in SEED_LATENCIES_MINUTES if v != 15.0]
    assert len(others) == 49
    assert all(0 < v < 15 for v in others)


def test_table_is_computed_deterministically() -> None:
    assert seed_latencies() == SEED_LATENCIES_MINUTES
    other = seed_latencies(seed=1)
    assert other != SEED_LATENCIES_MINUTES
    assert math.isclose(sum(other), 135.0, rel_tol=1e-12)
    assert max(other) == 15.0
    # Not a degenerate table: the values spread out.
    assert len(set(SEED_LATENCIES_MINUTES)) > 40


def test_other_parameters() -> None:
    table = seed_latencies(count=10, mean=1.0, slowest=3.0)
    assert len(table) == 10
    assert math.isclose(sum(table), 10.0, rel_tol=1e-12)
    assert table.count(3.0) == 1
    assert all(0 < v < 3.0 for v in table if v != 3.0)


@pytest.mark.parametrize(
    ("count", "mean", "slowest"),
    [(1, 2.7, 15.0), (50, 0.2, 15.0), (50, 15.0, 15.0)],
)
def test_impossible_parameters_are_rejected(count: int, mean: float, slowest: float) -> None:
    with pytest.raises(ValueError, match=r"count|table"):
        seed_latencies(count=count, mean=mean, slowest=slowest)
