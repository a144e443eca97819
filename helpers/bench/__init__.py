"""Benchmarks: stage runner, the measured stages, API load."""
