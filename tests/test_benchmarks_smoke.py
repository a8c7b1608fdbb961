"""The simulator benchmark still runs against the current API (quick sizes)."""

from __future__ import annotations

import math

from benchmarks import bench_simulator


def test_simulator_benchmark_runs_quick() -> None:
    figures = list(bench_simulator.run(quick=True))
    names = [f.name for f in figures]
    assert any("research (50 pairs): sims/s per core" in n for n in names)
    assert any("per-study: sims/s per core" in n for n in names)
    assert all(math.isfinite(float(f.value)) for f in figures if isinstance(f.value, float | int))
