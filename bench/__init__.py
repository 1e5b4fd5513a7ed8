"""Benchmarks: each prints its figure and a ratio to a baseline measured in the same run."""
