"""Benchmark scripts (a regular package: opacus installs a top-level `benchmarks` package of its own, which would
otherwise shadow this folder in imports)."""
