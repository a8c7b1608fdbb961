"""Connectome engine: the full ``column`` model, worker scaling, and throughput on ``field``.

Each job runs in a fresh subprocess (so its peak memory is its own) on a model store written
once into a temporary folder. Figures:

- ``column`` (``small`` with ``--quick``): the exact number of pair-voxel products of the
  every-pair job (all cortical neurons plus the barreloid, θ = (1, 1, 1));
- the same model with every 8th postsynaptic neuron (all presynaptic ones), 1 and 2 workers:
  wall and CPU time, peak memory, products per second, the speed-up, and the every-pair time
  estimated from the measured products per CPU second;
- the every-pair job itself with 2 workers, written block by block to a store with
  :func:`wiring.connectome.compute_connectome_to_store` (the whole connectome does not fit the
  memory target: lambda alone is 8 bytes per overlapping pair); skipped with
  ``WIRING_BENCH_CONNECTOME_FULL=0``;
- ``field`` with as many postsynaptic neurons as the partial job: products per CPU second
  relative to ``column`` (flat throughput means linear total cost).

The rule is ``dso`` evaluated through the factorized path (``wiring.dso.SupportsFactors``).
Wall times on a shared machine vary with its load; CPU times and products per CPU second do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._figure import Figure

__all__ = ["run"]

_JOB = r"""
import json, resource, sys, time
import numpy as np
from anatomy.store import open_model
from wiring.connectome import compute_connectome
from wiring.dso import dso_factors
from wiring.rules.dso import DSO
from wiring.selectors import Selector

class FactorizedDSO(DSO):
    def factors(self, theta):
        return dso_factors(theta)

store, post_step, workers, limit_gb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out = sys.argv[5] if len(sys.argv) > 5 else ""
resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30), int(limit_gb * 2**30)))
t0 = time.perf_counter()
model = open_model(store)
model.pre.load(); model.post.load()
t_load = time.perf_counter() - t0
post = None if post_step == 1 else Selector(ids=tuple(int(i) for i in model.neurons.ids[::post_step]))
compute_connectome(model, FactorizedDSO(), [1.0, 1.0, 1.0], seed=0,
                   pre=Selector(ids=tuple(int(i) for i in model.neurons.ids[:5])),
                   post=Selector(ids=tuple(int(i) for i in model.neurons.ids[:5])))  # compile
r0 = resource.getrusage(resource.RUSAGE_SELF)
t1 = time.perf_counter()
if out:
    from wiring.connectome import compute_connectome_to_store, open_connectome
    compute_connectome_to_store(model, FactorizedDSO(), [1.0, 1.0, 1.0], out, seed=1, post=post,
                                workers=workers)
else:
    conn = compute_connectome(model, FactorizedDSO(), [1.0, 1.0, 1.0], seed=1, post=post,
                              workers=workers)
wall = time.perf_counter() - t1
r1 = resource.getrusage(resource.RUSAGE_SELF)
if out:
    import zarr
    g = zarr.open_group(out, mode="r")
    class _C: pass
    conn = _C()
    conn.attrs = dict(g.attrs)
    conn.n_pre, conn.n_post = g["pre"].shape[0], g["post"].shape[0]
    conn.expected = _C(); conn.expected.nnz = g["expected/data"].shape[0]
    conn.n_connections = g["synapses/data"].shape[0]
    conn.n_synapses = int(np.asarray(g["synapses/data"][...], dtype=np.int64).sum())
print(json.dumps({
    "wall_s": wall, "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
    "load_s": t_load, "products": conn.attrs["engine"]["pair_voxel_products"],
    "blocks": conn.attrs["engine"]["blocks"], "n_pre": conn.n_pre, "n_post": conn.n_post,
    "pairs_lambda": int(conn.expected.nnz), "connections": conn.n_connections,
    "synapses": conn.n_synapses, "peak_rss_mb": r1.ru_maxrss / 1024,
}))
"""


def _job(store: Path, *, post_step: int, workers: int, limit_gb: float = 16.0,
         cores: int | None = None, out: Path | None = None) -> dict[str, Any]:
    """Run one connectome job in a subprocess (``out``: stream it into that store)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, "-c", _JOB, str(store), str(post_step), str(workers), str(limit_gb),
           str(out or "")]
    if cores is not None and hasattr(os, "sched_getaffinity"):
        avail = sorted(os.sched_getaffinity(0))[:cores]
        cmd = ["taskset", "-c", ",".join(map(str, avail)), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _store(preset: str, folder: Path) -> Path:
    """A store of the preset: reused from ``$WIRING_BENCH_STORES/<preset>.zarr`` when present."""
    from anatomy.generate import build_model
    from anatomy.store import write_model

    cached = os.environ.get("WIRING_BENCH_STORES")
    if cached and (Path(cached) / f"{preset}.zarr").is_dir():
        return Path(cached) / f"{preset}.zarr"
    path = folder / f"{preset}.zarr"
    write_model(build_model(preset, seed=0), path)
    return path


def _products(store: Path) -> tuple[int, float]:
    """Neurons and exact pair-voxel products of the every-pair job, from the stored indptr."""
    import numpy as np
    import zarr

    g = zarr.open_group(store, mode="r")
    n_pre = np.diff(np.asarray(g["pre/indptr"][...], dtype=np.int64))
    n_post = np.diff(np.asarray(g["post/indptr"][...], dtype=np.int64))
    return int(g["neurons/cell_type"].shape[0]), float(np.sum(n_pre * n_post))


def _rate_figures(tag: str, job: dict[str, Any]) -> list[Figure]:
    note = (f"{job['n_pre']} pre x {job['n_post']} post, {job['blocks']} blocks, "
            f"{job['pairs_lambda']:.3g} pairs with lambda > 0, "
            f"{job['connections']:.3g} connections")
    return [
        Figure(f"{tag}: wall time", job["wall_s"], "s", "", note),
        Figure(f"{tag}: CPU time", job["cpu_s"], "s"),
        Figure(f"{tag}: peak memory", job["peak_rss_mb"] / 1024, "GB", "",
               "whole process incl. the loaded model"),
        Figure(f"{tag}: pair-voxel products", job["products"], ""),
        Figure(f"{tag}: products/s (wall)", job["products"] / job["wall_s"], "1/s"),
        Figure(f"{tag}: products per CPU second", job["products"] / job["cpu_s"], "1/s"),
    ]


def run(quick: bool) -> list[Figure]:
    """Run the connectome benchmarks (see the module docstring).

    ``WIRING_BENCH_STORES=DIR`` reuses ``DIR/<preset>.zarr``; ``WIRING_BENCH_CONNECTOME_FULL=0``
    skips the every-pair job and reports its estimate from the partial job only.
    """
    main_preset, big_preset = ("small", "column") if quick else ("column", "field")
    run_full = os.environ.get("WIRING_BENCH_CONNECTOME_FULL", "1") != "0"
    figs: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-connectome-") as tmp:
        folder = Path(tmp)
        store = _store(main_preset, folder)
        n_neurons, total = _products(store)
        figs.append(Figure(f"{main_preset}: pair-voxel products, every pair", total, "",
                           "", f"{n_neurons} neurons (all cortical + barreloid)"))
        step = 2 if quick else 8
        one = _job(store, post_step=step, workers=1, cores=2)
        two = _job(store, post_step=step, workers=2, cores=2)
        for tag, job in ((f"{main_preset} 1/{step} of posts, 1 worker", one),
                         (f"{main_preset} 1/{step} of posts, 2 workers", two)):
            if "error" in job:
                figs.append(Figure(tag, float("nan"), "", "", job["error"][:120]))
            else:
                figs += _rate_figures(tag, job)
        if "error" not in one and "error" not in two:
            figs.append(Figure("speed-up 2 vs 1 workers", one["wall_s"] / two["wall_s"], "x",
                               ">= 1.6", "same job, wall time"))
            rate = two["products"] / two["cpu_s"]
            figs.append(Figure(f"{main_preset} every pair: estimated time on 2 cores",
                               total / rate / 2, "s", "< 300 s",
                               "products / (products per CPU second) / 2"))
        if run_full:
            full = _job(store, post_step=1, workers=2, cores=2, limit_gb=22.0,
                        out=folder / "connectome.zarr")
            tag = f"{main_preset} every pair, 2 workers, streamed to a store"
            if "error" in full:
                figs.append(Figure(tag, float("nan"), "", "< 300 s, < 4 GB", full["error"][:120]))
            else:
                figs += _rate_figures(tag, full)
        big = _store(big_preset, folder)
        ref = two if "error" not in two else one
        if "error" not in ref:
            import zarr

            n_big = int(zarr.open_group(big, mode="r")["neurons/cell_type"].shape[0])
            big_step = max(1, round(n_big / max(ref["n_post"], 1)))
            far = _job(big, post_step=big_step, workers=2, cores=2, limit_gb=22.0)
            if "error" not in far:
                rate_main = ref["products"] / ref["cpu_s"]
                rate_big = far["products"] / far["cpu_s"]
                figs += [
                    Figure(f"{big_preset}: products per CPU second", rate_big, "1/s", "",
                           f"{far['n_pre']} pre x {far['n_post']} post"),
                    Figure(f"throughput {big_preset} / {main_preset}", rate_big / rate_main,
                           "x", "~1 (flat)", "products per CPU second"),
                ]
            else:
                figs.append(Figure(f"{big_preset} job", float("nan"), "", "",
                                   far["error"][:120]))
    return figs
