"""Benchmarks: each scenario runs its baseline in the same invocation and reports the ratio."""
