"""Benchmarks: ``python -m benchmarks [NAME ...] [--quick]`` prints a table of figures.

Each ``bench_<name>.py`` module defines ``run(quick: bool) -> list[Figure]``.
"""
