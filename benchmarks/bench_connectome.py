"""Connectome engine: the full ``column`` model, worker scaling, and throughput on ``field``.

Each job runs in a fresh subprocess (so its peak memory is its own), pinned to two cores, on a
model store written once into a temporary folder, and streams its connectome into a store with
:func:`wiring.connectome.compute_connectome_to_store` (what ``wiring connectome`` does). The
rule is ``dso`` at θ = (1, 1, 1). Figures:

- ``column`` (``small`` with ``--quick``), every pair (all cortical neurons plus the barreloid),
  2 workers on 2 cores, 1 worker on 1 core and 1 worker on 2 cores: wall and CPU time, peak
  memory, pair-voxel products, output pairs, the speed-ups; skipped with
  ``WIRING_BENCH_CONNECTOME_FULL=0`` (then the speed-up is measured on the partial job);
- the same model with every 8th postsynaptic neuron, 2 workers, and ``field`` with as many
  postsynaptic neurons: throughput of ``field`` relative to ``column``;
- the fixed cost of a job (one postsynaptic neuron), subtracted before throughputs are compared.

A job's cost is linear in two counts: pair-voxel products (the sparse product) and output pairs
(the draw and the store). The ``column`` and ``field`` partial jobs have very different
products per pair, which fixes both unit costs; predicting the every-pair job from them checks
that the total cost is linear in the work. Wall times on a shared machine vary with its load; CPU
times do not.
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
from wiring.connectome import compute_connectome, compute_connectome_to_store, open_connectome
from wiring.measurements.selectors import Selector

store, post_step, workers, limit_gb, out = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                            float(sys.argv[4]), sys.argv[5])
resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30), int(limit_gb * 2**30)))
t0 = time.perf_counter()
model = open_model(store)
model.pre.load(); model.post.load()
t_load = time.perf_counter() - t0
ids = model.neurons.ids
first = Selector(ids=tuple(int(i) for i in ids[:5]))
compute_connectome(model, "dso", [1.0, 1.0, 1.0], seed=0, pre=first, post=first)  # compile
if post_step == 0:  # fixed cost: one postsynaptic neuron
    post = Selector(ids=(int(ids[len(ids) // 2]),))
else:
    post = None if post_step == 1 else Selector(ids=tuple(int(i) for i in ids[::post_step]))
r0 = resource.getrusage(resource.RUSAGE_SELF)
t1 = time.perf_counter()
compute_connectome_to_store(model, "dso", [1.0, 1.0, 1.0], out, seed=1, post=post,
                            workers=workers)
wall = time.perf_counter() - t1
r1 = resource.getrusage(resource.RUSAGE_SELF)
conn = open_connectome(out, lazy=True)
print(json.dumps({
    "wall_s": wall, "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
    "load_s": t_load, "products": conn.attrs["engine"]["pair_voxel_products"],
    "blocks": conn.attrs["engine"]["blocks"], "n_pre": conn.n_pre, "n_post": conn.n_post,
    "pairs": conn.n_pairs, "connections": conn.n_connections,
    "peak_rss_mb": r1.ru_maxrss / 1024,
}))
"""


def _job(store: Path, out: Path, *, post_step: int, workers: int, limit_gb: float = 16.0,
         cores: int = 2) -> dict[str, Any]:
    """Run one connectome job in a subprocess (``post_step`` 0: one postsynaptic neuron)."""
    import shutil

    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, "-c", _JOB, str(store), str(post_step), str(workers), str(limit_gb),
           str(out)]
    if hasattr(os, "sched_getaffinity") and shutil.which("taskset"):
        avail = sorted(os.sched_getaffinity(0))[:cores]
        cmd = ["taskset", "-c", ",".join(map(str, avail)), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return res


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


def _figures(tag: str, job: dict[str, Any], target: str = "") -> list[Figure]:
    if "error" in job:
        return [Figure(tag, float("nan"), "", target, job["error"][:120])]
    note = (f"{job['n_pre']} pre x {job['n_post']} post, {job['blocks']} blocks, "
            f"{job['products']:.3g} pair-voxel products, {job['pairs']:.3g} pairs with "
            f"lambda > 0, {job['connections']:.3g} connections")
    return [
        Figure(f"{tag}: wall time", job["wall_s"], "s", target, note),
        Figure(f"{tag}: CPU time", job["cpu_s"], "s"),
        Figure(f"{tag}: peak memory", job["peak_rss_mb"] / 1024, "GB",
               "< 4 GB" if target else "", "whole process incl. the loaded model"),
        Figure(f"{tag}: products/s (wall)", job["products"] / job["wall_s"], "1/s"),
    ]


def _unit_costs(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float] | None:
    """CPU seconds per product and per pair from two jobs (fixed cost removed): 2 x 2 solve."""
    import numpy as np

    m = np.array([[a["products"], a["pairs"]], [b["products"], b["pairs"]]], dtype=float)
    y = np.array([a["work_s"], b["work_s"]])
    ratios = sorted(m[:, 0] / np.maximum(m[:, 1], 1.0))
    if ratios[0] <= 0 or ratios[1] / ratios[0] < 1.3:  # too alike to separate the two costs
        return None
    alpha, beta = np.linalg.solve(m, y)
    return float(alpha), float(beta)


def run(quick: bool) -> list[Figure]:
    """Run the connectome benchmarks (see the module docstring).

    ``WIRING_BENCH_STORES=DIR`` reuses ``DIR/<preset>.zarr``; ``WIRING_BENCH_CONNECTOME_FULL=0``
    skips the every-pair job.
    """
    main_preset, big_preset = ("small", "column") if quick else ("column", "field")
    run_full = os.environ.get("WIRING_BENCH_CONNECTOME_FULL", "1") != "0"
    figs: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-connectome-") as tmp:
        folder = Path(tmp)
        out = folder / "connectome.zarr"
        store = _store(main_preset, folder)
        big = _store(big_preset, folder)
        step = 2 if quick else 8
        fixed = {p: _job(s, out, post_step=0, workers=2) for p, s in
                 ((main_preset, store), (big_preset, big))}
        two = _job(store, out, post_step=step, workers=2)
        figs += _figures(f"{main_preset} 1/{step} of posts, 2 workers", two)
        full: dict[str, Any] = {"error": "skipped (WIRING_BENCH_CONNECTOME_FULL=0)"}
        full_one: dict[str, Any] = dict(full)
        full_one_core: dict[str, Any] = dict(full)
        if run_full:
            full = _job(store, out, post_step=1, workers=2, limit_gb=22.0)
            full_one_core = _job(store, out, post_step=1, workers=1, cores=1, limit_gb=22.0)
            full_one = _job(store, out, post_step=1, workers=1, limit_gb=22.0)
        figs += _figures(f"{main_preset} every pair, 2 workers", full, "< 300 s")
        figs += _figures(f"{main_preset} every pair, 1 worker, 1 core", full_one_core)
        figs += _figures(f"{main_preset} every pair, 1 worker, 2 cores", full_one)
        # scaling on the largest job run (fixed costs weigh least there)
        if run_full:
            pairs = [(full_one_core, "1 worker on 1 core", ">= 1.6"),
                     (full_one, "1 worker on 2 cores (its store writer and side threads use "
                                "the second core)", "")]
            what = "every pair"
        else:
            pairs = [(_job(store, out, post_step=step, workers=1, cores=1),
                      "1 worker on 1 core", ">= 1.6")]
            what = f"1/{step} of posts"
        ref = full if run_full else two
        for base, label, target in pairs:
            if "error" not in base and "error" not in ref:
                b = ref
                figs.append(Figure(f"speed-up 2 workers (2 cores) vs {label.split(' (')[0]}",
                                   base["wall_s"] / b["wall_s"], "x", target,
                                   f"{main_preset} {what}, wall time; {label}"))
        far: dict[str, Any] = {"error": "no reference job"}
        if "error" not in two:
            import zarr

            n_big = int(zarr.open_group(big, mode="r")["neurons/cell_type"].shape[0])
            big_step = max(1, round(n_big / max(two["n_post"], 1)))
            far = _job(big, out, post_step=big_step, workers=2, limit_gb=22.0)
            figs += _figures(f"{big_preset} 1/{big_step} of posts, 2 workers", far)
        jobs_ok = all("error" not in j for j in (two, far, *fixed.values()))
        if jobs_ok:
            two["work_s"] = two["cpu_s"] - fixed[main_preset]["cpu_s"]
            far["work_s"] = far["cpu_s"] - fixed[big_preset]["cpu_s"]
            figs += [
                Figure(f"fixed cost of a job: {p}", j["cpu_s"], "s", "",
                       "CPU s with one postsynaptic neuron") for p, j in fixed.items()
            ]
            figs.append(Figure(
                f"throughput {big_preset} / {main_preset}",
                (far["products"] / far["work_s"]) / (two["products"] / two["work_s"]), "x",
                "", f"products per CPU s; products per pair {two['products'] / two['pairs']:.0f}"
                f" ({main_preset}) vs {far['products'] / far['pairs']:.0f} ({big_preset})"))
            costs = _unit_costs(two, far)
            if costs is not None:
                alpha, beta = costs
                figs += [
                    Figure("cost per pair-voxel product", alpha * 1e9, "ns CPU"),
                    Figure("cost per output pair", beta * 1e9, "ns CPU",
                           "", "draw, float32 conversion, compression and write"),
                ]
                if "error" not in full:
                    pred = (alpha * full["products"] + beta * full["pairs"]
                            + fixed[main_preset]["cpu_s"])
                    figs.append(Figure(
                        f"{main_preset} every pair: measured / linear prediction",
                        full["cpu_s"] / pred, "x", "~1 (linear total cost)",
                        f"CPU s predicted from the two partial jobs: {pred:.0f}"))
    return figs
