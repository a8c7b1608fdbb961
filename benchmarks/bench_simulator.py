"""Simulator throughput and pair-feature extraction.

Every rate is the **median of at least 3 runs** (not the best), with the spread (min-max) in the
note. θ is drawn from the dso prior of the paper, N((1, 1, 1), 0.05·I) (sd 0.224), and each
case is timed under two protocols:

* ``per-study``: as many pairs per measurement as each experiment tested (``n_pairs =
  "experiment"``, what ``wiring run`` simulates; 127 pairs per simulation for ``vpm-invivo``);
* ``research``: 50 pairs per measurement, the protocol of the research code of Boelts et al.
  (2023) and of ``--config paper`` (350 pairs per simulation).

Figures
-------
* sims/s per core (CPU time of this process, batches of 1,000 θ) on a synthetic pair table of
  the real model's size (about 10^7 shared-voxel rows over the 7 ``vpm-invivo`` measurements;
  10^6 with ``--quick``), for the compiled kernel and the generic numpy path, with pairs and
  rows visited per second;
* the same on a generated model with ``vpm-invivo`` (``column``; ``small`` with ``--quick``):
  feature extraction time, table size (or its estimate when the factored form is used) and
  sims/s per core;
* throughput with 1 and 2 worker processes (wall clock, forked workers sharing the tables),
  and from it the time 10^6 simulations take (``--config paper``).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from benchmarks._figure import Figure, peak_rss_mb

__all__ = ["run", "synthetic_tables"]

#: Post-population sizes of the 7 in vivo measurements (pre: 150 VPM neurons).
_POST = (1600, 640, 480, 920, 880, 500, 1800)
#: First postsynaptic id of each population: L4sp and L4ss are disjoint parts of L4 (which
#: pools them in vpm-invivo), the others are separate neurons.
_POST_BASE = (0, 10_000, 0, 480, 20_000, 30_000, 40_000)
_TARGET = 5000.0


def synthetic_tables(n_rows: int, *, seed: int = 0) -> Any:
    """A :class:`wiring.simulation.FeatureBundle` of 7 populations with about ``n_rows`` rows.

    150 pre (fewer for smaller ``n_rows``) × (480 ... 1800) post neurons per population (the
    L4sp and L4ss posts among L4's, as vpm-invivo pools them); a
    quarter of the pairs overlap, with a geometric number of shared voxels (mean about 40);
    counts and postAll are drawn so that connection probabilities at θ = 1 are in the measured
    range (0.1 - 0.6).
    """
    from wiring.simulation.features import FeatureBundle

    rng = np.random.default_rng(seed)
    n_pre = max(10, round(150 * n_rows / 1e7))  # ~40 rows per overlapping pair at any size
    pairs = [n_pre * p for p in _POST]
    p_total = sum(pairs)
    frac = 0.25
    mean_rows = n_rows / (p_total * frac)
    overlap = rng.random(p_total) < frac
    counts = np.where(overlap, rng.geometric(1.0 / mean_rows, p_total), 0).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    r = int(indptr[-1])
    rows = {
        "log_pre": np.log1p(rng.poisson(2.0, r)).astype(np.float32),
        "log_post": np.log1p(rng.poisson(3.0, r)).astype(np.float32),
        "log_post_all": np.log(rng.uniform(40.0, 400.0, r)).astype(np.float32),
        "depth_um": rng.uniform(0.0, 2000.0, r).astype(np.float32),
    }
    pre = np.concatenate([np.repeat(np.arange(n_pre), p) for p in _POST]).astype(np.int64)
    post = np.concatenate([np.tile(np.arange(p), n_pre) + n_pre + base
                           for p, base in zip(_POST, _POST_BASE, strict=True)]).astype(np.int64)
    return FeatureBundle(
        names=("L4", "L4-septum", "L4sp", "L4ss", "L5IT", "L5PT", "L6"),
        pair_offsets=np.concatenate([[0], np.cumsum(pairs)]).astype(np.int64),
        pre=pre,
        post=post,
        indptr=indptr,
        voxel=rng.integers(0, 20000, r).astype(np.int32),
        rows=rows,
        soma_distance_um=rng.uniform(0.0, 1000.0, p_total),
    )


class _GenericDSO:
    """DSO through ``rate`` only, to time the generic (numpy) simulator path."""

    from wiring.rules.dso import DSO as _DSO

    name: ClassVar[str] = "dso_generic"
    level: ClassVar[str] = "voxel"
    synapses: ClassVar[str] = "poisson"
    params = _DSO.params
    features = _DSO.features

    def __init__(self) -> None:
        self._dso = self._DSO()

    def rate(self, features: Mapping[str, Any], theta: Sequence[Any]) -> Any:
        return self._dso.rate(features, theta)


#: Repetitions behind every median.
_REPS = 3
_PRIOR_SD = 0.05**0.5


def _theta(n: int, seed: int) -> Any:
    return np.random.default_rng(seed).normal(1.0, _PRIOR_SD, (n, 3))


def _median_note(values: Sequence[float]) -> tuple[float, str]:
    v = np.asarray(values, dtype=np.float64)
    return float(np.median(v)), f"median of {len(v)}, range {v.min():.0f}-{v.max():.0f}"


def _sims_per_cpu_s(sim: Any, *, batch: int = 1000, reps: int = _REPS) -> tuple[float, str]:
    """Median simulations per CPU second over ``reps`` batches (and the note)."""
    theta = _theta(batch, 0)
    sim.simulate(theta[:10], seed=0)  # compile
    rates = []
    for k in range(reps):
        t = time.process_time()
        sim.simulate(theta, seed=1, start_index=k * batch)
        rates.append(batch / max(time.process_time() - t, 1e-9))
    return _median_note(rates)


_WORKER_SIM: Any = None


def _worker(args: tuple[int, int]) -> tuple[int, float, float]:
    start, n = args
    theta = _theta(1000, start)
    t, c = time.perf_counter(), time.process_time()
    for k in range(n):
        _WORKER_SIM.simulate(theta, seed=2, start_index=start + k * 1000)
    return n * 1000, time.perf_counter() - t, time.process_time() - c


def _processes(sim: Any, n_proc: int, n_batches: int) -> tuple[list[float], list[float]]:
    """Simulations per second of wall clock (slowest worker) and per CPU second, with
    ``n_proc`` forked workers (pool start-up not counted), for each of :data:`_REPS` runs."""
    global _WORKER_SIM
    _WORKER_SIM = sim
    sim.simulate(_theta(10, 0), seed=0)  # compile before forking
    ctx = mp.get_context("fork")
    walls, cpus = [], []
    with ctx.Pool(n_proc) as pool:
        for rep in range(_REPS):
            res = pool.map(_worker, [((rep * n_proc + i) * 10**7, n_batches)
                                     for i in range(n_proc)])
            done = sum(r[0] for r in res)
            walls.append(done / max(r[1] for r in res))
            cpus.append(done / sum(r[2] for r in res))
    return walls, cpus


def _rows_per_sim(sim: Any) -> float:
    b = sim.source
    if not hasattr(b, "indptr"):
        return float("nan")
    per_pair = [
        (b.indptr[b.pair_offsets[i + 1]] - b.indptr[b.pair_offsets[i]]) / max(b.n_pairs[i], 1)
        for i in range(b.n_measurements)
    ]
    return float(np.dot(per_pair, sim.n_sample))


def _protocols(source: Any, mset: Any) -> dict[str, Any]:
    from wiring.simulation.simulator import Simulator

    return {"per-study": Simulator(source, "dso", mset),
            # the research code's protocol, as `--config paper` runs it: 50 pairs per
            # measurement drawn with replacement, pooled measurements simulated independently
            "research (50 pairs)": Simulator(source, "dso", mset, n_pairs=50, replace=True,
                                             pooling=False)}


def _kernel_figures(label: str, sims: Mapping[str, Any]) -> list[Figure]:
    figs = []
    for proto, sim in sims.items():
        rate, note = _sims_per_cpu_s(sim)
        pairs = float(sim.n_sample.sum())
        rows = _rows_per_sim(sim)
        figs += [
            Figure(f"{label}, {proto}: sims/s per core", rate, "sims/s", f">= {_TARGET:.0f}",
                   f"{note}; batch 1000, CPU time of one process; {pairs:.0f} pairs/sim"),
            Figure(f"{label}, {proto}: sampled pairs/s per core", rate * pairs, "pairs/s",
                   note="one random access each"),
        ]
        if np.isfinite(rows):
            figs.append(Figure(f"{label}, {proto}: rows/s per core (upper bound)", rate * rows,
                               "rows/s", note=f"{rows:.0f} rows per simulation without early "
                                              f"stop; rows are contiguous"))
    return figs


def run(quick: bool) -> list[Figure]:
    """Run the simulator benchmarks; see the module docstring."""
    from anatomy.generate import build_model
    from wiring.measurements import load_measurement_set
    from wiring.simulation.features import estimate_table, population_pairs
    from wiring.simulation.simulator import Simulator

    figs: list[Figure] = []
    mset = load_measurement_set("vpm-invivo")

    # --- synthetic table of the real model's size ---------------------------------------
    n_rows = 1_000_000 if quick else 10_000_000
    t = time.perf_counter()
    bundle = synthetic_tables(n_rows)
    t_make = time.perf_counter() - t
    sims = _protocols(bundle, mset)
    p_bar = sims["per-study"].expected([[1.0, 1.0, 1.0]])[0]
    figs.append(Figure("synthetic table rows", bundle.n_rows, "rows",
                       note=f"7 measurements, {int(bundle.n_pairs.sum())} pairs, "
                            f"{bundle.nbytes / 1e6:.0f} MB, built in {t_make:.1f} s; "
                            f"p at theta=1: {np.round(p_bar, 2).tolist()}"))
    figs += _kernel_figures("synthetic", sims)
    slow = Simulator(bundle, _GenericDSO(), mset)  # type: ignore[arg-type]
    rate, note = _sims_per_cpu_s(slow)
    figs.append(Figure("synthetic, per-study: sims/s per core (generic numpy path)", rate,
                       "sims/s", note=f"{note}; rule.rate, segment sums"))
    n_batches = 2 if quick else 5
    figs += _process_figures("synthetic, research (50 pairs)", sims["research (50 pairs)"],
                             n_batches)
    del sims, slow, bundle

    # --- a generated model -----------------------------------------------------------------
    preset = "small" if quick else "column"
    model = build_model(preset, seed=0)
    t = time.perf_counter()
    pops = population_pairs(model, mset)
    est_rows, est_bytes = estimate_table(model, pops)
    t_est = time.perf_counter() - t
    figs.append(Figure(f"{preset}: pair table rows (vpm-invivo)", float(est_rows.sum()), "rows",
                       note=f"{int(sum(len(p.pair_pre) for p in pops))} pairs; counted in "
                            f"{t_est:.1f} s"))
    figs.append(Figure(f"{preset}: pair table size", est_bytes / 1e9, "GB", "< 2",
                       note="20 bytes per row + 32 per pair"))
    t = time.perf_counter()
    sim = Simulator(model, "dso", mset)
    t_feat = time.perf_counter() - t
    figs.append(Figure(f"{preset}: feature extraction", t_feat, "s",
                       note=f"{sim.representation} form in use, "
                            f"{sim.source.nbytes / 1e6:.0f} MB in memory"))
    sims = _protocols(sim.source, mset)
    figs += _kernel_figures(preset, sims)
    for proto, s in sims.items():
        figs += _process_figures(f"{preset}, {proto}", s, 1 if quick else 3)
    figs.append(Figure("peak memory", peak_rss_mb(), "MB"))
    return figs


def _process_figures(label: str, sim: Any, n_batches: int) -> list[Figure]:
    (w1, c1), (w2, c2) = _processes(sim, 1, n_batches), _processes(sim, 2, n_batches)
    m1, note1 = _median_note(w1)
    m2, note2 = _median_note(w2)
    return [
        Figure(f"{label}: 1 process", m1, "sims/s",
               note=f"wall clock, {note1}; {np.median(c1):.0f} per CPU s; 10^6 sims in "
                    f"{1e6 / m1 / 60:.1f} min"),
        Figure(f"{label}: 2 processes", m2, "sims/s",
               note=f"wall clock, {note2}, x{m2 / m1:.2f} of 1 process; {np.median(c2):.0f} "
                    f"per CPU s; 10^6 sims in {1e6 / m2 / 60:.1f} min"),
    ]
