"""Benchmarks: each script prints absolute figures and a ratio against a reference run alongside."""
