"""What ``wiring run --config paper`` costs, stage by stage, measured on scaled-down pieces.

The paper-sized study (10^6 simulations of ``dso`` on ``column``, 50 pairs per measurement, an
NSF of 100 hidden units and 5 transforms trained in batches of 2,000, SBC with 1,000 runs of
1,000 posterior samples, 10^5 posterior samples, 10^4 predictive draws, two compared rules
with 10^5 simulations each) cannot be run as a benchmark on a small machine. This benchmark
measures each cost on a piece small enough to time and scales it:

* **simulation**: sims/s on ``column`` with 50 pairs per measurement (θ from N(1, 0.05·I)) in 1
  and 2 forked processes (median of 3), hence minutes for 10^6;
* **training**: CPU seconds per 10^5 training rows of the paper's network, 1 and 2 torch
  threads (median of 3 passes of 50 batches), hence the seconds per epoch of 9·10^5 rows, and
  the same for a device when ``WIRING_BENCH_DEVICE`` names one (e.g. ``cuda``);
* **sampling**: seconds per 10^4 posterior samples (SBC draws 10^6, the summary 10^5).

``WIRING_BENCH_CACHE``: a directory whose ``anatomy/column-seed0.zarr`` is used instead of
building the model (``bench_quality`` leaves one there).

The epochs to convergence are not measured here (they need the full training set); the report
(``CHANGELOG``/``README``) states the assumption used with the figures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks._figure import Figure

__all__ = ["run"]

_PAPER_NET = {"estimator": "nsf", "hidden_features": 100, "num_transforms": 5, "num_bins": 10}


def _epoch_cost(device: str, threads: int, rows: int,
                batch: int = 2000) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds per ``rows`` training rows of the paper's network (3 repetitions;
    CPU seconds are what to read on a loaded machine, for one thread)."""
    import torch

    from wiring.inference.npe import _build_net, _threads

    rng = np.random.default_rng(0)
    theta = torch.as_tensor(rng.normal(1.0, 0.05**0.5, (rows, 3)), dtype=torch.float32)
    x = torch.as_tensor(rng.uniform(0.0, 1.0, (rows, 7)), dtype=torch.float32)
    settings = {**_PAPER_NET, "num_components": 10, "z_score_theta": "independent",
                "z_score_x": "independent"}
    out, cpu = [], []
    with _threads(threads):
        net = _build_net(settings, theta, x).to(device)
        theta, x = theta.to(device), x.to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for rep in range(4):  # the first pass warms up and is not counted
            t0, c0 = time.perf_counter(), time.process_time()
            for b in range(0, rows, batch):
                opt.zero_grad()
                loss = net.loss(theta[b:b + batch], x[b:b + batch]).mean()
                loss.backward()
                opt.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if rep:
                out.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    return out, cpu


def run(quick: bool) -> list[Figure]:
    """Measure the pieces; see the module docstring."""
    from anatomy.generate import build_model
    from anatomy.store import open_model
    from benchmarks.bench_simulator import _median_note, _processes
    from wiring.inference import train_posterior
    from wiring.inference.priors import PriorSpec
    from wiring.measurements import load_measurement_set
    from wiring.simulation.simulator import Simulator

    figs: list[Figure] = []
    preset = "small" if quick else "column"
    stored = Path(os.environ.get("WIRING_BENCH_CACHE", "")) / "anatomy" / f"{preset}-seed0.zarr"
    if os.environ.get("WIRING_BENCH_CACHE") and stored.exists():
        model = open_model(stored)
        model.pre.load()
        model.post.load()
    else:
        model = build_model(preset, seed=0)
    sim = Simulator(model, "dso", load_measurement_set("vpm-invivo"), n_pairs=50)
    del model
    for n_proc in (1, 2):
        walls, _ = _processes(sim, n_proc, 1 if quick else 3)
        rate, note = _median_note(walls)
        figs.append(Figure(f"simulate {preset}, 50 pairs, {n_proc} process(es)", rate, "sims/s",
                           note=f"{note}; 10^6 simulations in {1e6 / rate / 60:.1f} min"))
    del sim
    rows = 20_000 if quick else 40_000
    for threads in (1, 2):
        secs, cpu = _epoch_cost("cpu", threads, rows)
        per_epoch = float(np.median(secs)) * 9e5 / rows
        figs.append(Figure(f"NSF-100 epoch of 9e5 rows, cpu, {threads} thread(s), wall",
                           per_epoch, "s",
                           note=f"median of {len(secs)} passes over {rows} rows, batch 2000, "
                                f"scaled; 20 epochs: {20 * per_epoch / 60:.0f} min"))
        if threads == 1:
            per_cpu = float(np.median(cpu)) * 9e5 / rows
            figs.append(Figure("NSF-100 epoch of 9e5 rows, cpu, 1 thread, CPU time", per_cpu,
                               "s", note=f"20 epochs: {20 * per_cpu / 60:.0f} min of one core"))
    device = os.environ.get("WIRING_BENCH_DEVICE", "")
    if device:
        secs, _ = _epoch_cost(device, 1, rows)
        per_epoch = float(np.median(secs)) * 9e5 / rows
        figs.append(Figure(f"NSF-100 epoch of 9e5 rows, {device}", per_epoch, "s",
                           note=f"20 epochs: {20 * per_epoch / 60:.1f} min"))
    spec = PriorSpec(kind="gaussian", names=("a", "b", "c"), loc=(1.0,) * 3,
                     scale=(0.05**0.5,) * 3)
    rng = np.random.default_rng(1)
    theta = spec.sample(2000, rng)
    x = rng.uniform(0, 1, (2000, 7))
    post = train_posterior(theta, x, spec, max_epochs=1, progress=False, num_threads=1,
                           hidden_features=100, num_transforms=5)
    t0 = time.perf_counter()
    post.sample(10_000, x[0], seed=0)
    t_s = time.perf_counter() - t0
    figs.append(Figure("sample 10^4 from the paper's NSF", t_s, "s",
                       note=f"1 thread; SBC 1000 x 1000: {100 * t_s / 60:.1f} min; summary "
                            f"10^5: {10 * t_s:.0f} s"))
    return figs
