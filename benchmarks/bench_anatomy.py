"""Synthetic anatomy: build time, peak memory and sparsity per preset.

Each preset is built in a fresh subprocess, so its peak resident memory is its own (and not the
maximum of everything built before in this process). Threads are limited to 2 to match the
2-core target machine. CPU time is reported next to wall time because wall time on a shared
machine includes waiting for a core. ``--quick`` builds ``tiny``, ``small`` and ``column``; the full run adds
``field``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks._figure import Figure

__all__ = ["run"]

_CHILD = r"""
import json, resource, sys, time
from anatomy.generate import build_model
preset = sys.argv[1]
build_model("tiny")  # imports and first-call overheads out of the timing
t0, c0 = time.perf_counter(), time.process_time()
m = build_model(preset, seed=0)
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss_mb = rss / 1024 if sys.platform != "darwin" else rss / 1024**2
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "peak_rss_mb": rss_mb, "neurons": m.n_neurons,
                  "voxels": m.n_voxels, "nnz_pre": m.pre.nnz, "nnz_post": m.post.nnz}))
"""

_TARGETS = {
    "tiny": ("< 1 s", None),
    "column": ("< 120 s", "< 4096 MB"),
}


def _build(preset: str) -> dict[str, float]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "2"
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, preset], env=env, check=True, capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool) -> list[Figure]:
    """Build each preset in a subprocess and report time, peak memory and nnz."""
    presets = ("tiny", "small", "column") if quick else ("tiny", "small", "column", "field")
    figures: list[Figure] = []
    for preset in presets:
        r = _build(preset)
        t_target, m_target = _TARGETS.get(preset, ("", None))
        note = f"{int(r['neurons']):,} neurons, {int(r['voxels']):,} voxels"
        figures += [
            Figure(f"{preset} build time", r["seconds"], "s", t_target, note),
            Figure(f"{preset} build CPU time", r["cpu_seconds"], "s", "",
                   "process CPU time (robust to a loaded machine)"),
            Figure(f"{preset} peak memory", r["peak_rss_mb"], "MB", m_target or "",
                   "peak RSS of the building process"),
            Figure(f"{preset} nnz pre", r["nnz_pre"], "entries", "",
                   f"{r['nnz_pre'] / r['neurons']:.0f} voxels per neuron"),
            Figure(f"{preset} nnz post", r["nnz_post"], "entries", "",
                   f"{r['nnz_post'] / r['neurons']:.0f} voxels per neuron"),
        ]
    return figures
