"""Benchmarks (``make bench``): they print tables and never assert on wall-clock numbers."""
