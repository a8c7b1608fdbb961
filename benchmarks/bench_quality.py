"""Posterior quality and training cost of the default run's NPE: training settings side by side.

The default run's problem: the ``column`` model, the ``vpm-invivo`` measurements with as many
pairs as each experiment tested, the ``dso`` rule and its Gaussian prior N((1, 1, 1), 0.05·I).
A training set of 20,000 simulations (as ``wiring run`` simulates) and a FIXED held-out set of
2,000 simulations (seeded, independent of the training set) are simulated once; then an NSF
(50 hidden units, 5 transforms, batches of 1,000, one torch thread) is trained with each
setting of :data:`SETTINGS` and

* the **mean log-probability of the true θ** under the posterior given its x, over the 2,000
  held-out rows (higher is better; the posterior is normalized since the prior is Gaussian),
  with its standard error and the paired difference to the first setting (same rows, so the
  test-set noise cancels; what remains is the training-seed spread, measured over ``seeds``);
* the **coverage** of central 95 % marginal intervals on 300 held-out rows (500 samples each);
* **SBC** (``wiring.analysis.calibration``: 200 runs, KS rank uniformity and coverage at
  50/80/95 %): pass or fail, as in the report;
* epochs, why training stopped and wall time (ratios are what to read on a shared machine).

``python -m benchmarks quality`` (``--quick``: 5,000 training simulations, one seed).
``WIRING_BENCH_SEEDS`` (default ``0,1``) sets the training seeds; the anatomy is built into
``WIRING_BENCH_CACHE`` (default: a temporary directory). To spread the settings over
processes, ``WIRING_BENCH_SETTINGS`` picks some (indices into :data:`SETTINGS`) and
``WIRING_BENCH_SAVE`` names a directory for the per-row log densities
(``logq-setting<i>-seed<s>.npy``), from which the paired differences are computed.
``WIRING_BENCH_POSTERIORS=dirA,dirB`` instead evaluates saved posterior directories (e.g. the
``posterior/`` of two runs of the default config) on the same held-out set
(:func:`compare_posteriors`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._figure import Figure

__all__ = ["SETTINGS", "held_out_log_prob", "run"]

#: Training settings compared: the defaults before 0.1.0 and the current ones.
SETTINGS: dict[str, dict[str, Any]] = {
    "before (lr 5e-4 constant, patience 20)": {
        "learning_rate": 5e-4, "stop_after_epochs": 20, "lr_schedule": "constant"},
    "now (defaults: lr 2e-3, plateau decay)": {},
}

_TRAIN_SEED, _TEST_SEED = 11, 12_345


def held_out_log_prob(posterior: Any, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log q(θ_i | x_i) of every held-out row (the network's normalized density)."""
    import torch

    with torch.no_grad():
        lp = posterior.net.log_prob(torch.as_tensor(theta, dtype=torch.float32),
                                    condition=torch.as_tensor(x, dtype=torch.float32))
    return np.asarray(lp.numpy(), dtype=np.float64).reshape(-1)  # sbi returns (1, n)


def _coverage95(posterior: Any, theta: np.ndarray, x: np.ndarray, n_rows: int) -> float:
    hit = []
    for k in range(n_rows):
        s = posterior.sample(500, x[k], seed=k)
        lo, hi = np.quantile(s, [0.025, 0.975], axis=0)
        hit.append((lo <= theta[k]) & (theta[k] <= hi))
    return float(np.mean(hit))


def _problem(n_train: int, cache: Path) -> tuple[Any, Any, tuple[np.ndarray, ...]]:
    from anatomy.generate import build_model
    from anatomy.store import open_model, write_model
    from wiring.inference.priors import build_prior_spec
    from wiring.measurements import load_measurement_set
    from wiring.simulation.simulator import Simulator

    path = cache / "anatomy" / "column-seed0.zarr"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_model(build_model("column", seed=0), path)
    model = open_model(path)
    model.pre.load()
    model.post.load()
    sim = Simulator(model, "dso", load_measurement_set("vpm-invivo"),
                    cache_dir=cache / "features")
    spec = build_prior_spec(sim.rule, kind="gaussian")
    data = []
    for n, seed in ((n_train, _TRAIN_SEED), (2_000, _TEST_SEED)):
        if n == 0:
            continue
        theta = spec.sample(n, np.random.default_rng(seed))
        x = sim.simulate(theta, seed=seed)
        ok = np.all(np.isfinite(x), axis=1)
        data += [theta[ok], x[ok]]
    return sim, spec, tuple(data)


def compare_posteriors(paths: list[str], cache: Path, n_coverage: int = 100,
                       held_out: tuple[np.ndarray, ...] | None = None) -> list[Figure]:
    """Evaluate saved posterior directories (e.g. ``posterior/`` of two runs of the default
    config with different training settings) on the same fixed held-out set: mean log q of the
    true θ, the paired difference to the first, 95 % coverage on ``n_coverage`` rows."""
    from wiring.inference import load_posterior

    th_te, x_te = held_out if held_out is not None else _problem(0, cache)[2]
    figs: list[Figure] = []
    base: np.ndarray | None = None
    for path in paths:
        post = load_posterior(path)
        tr = post.manifest["training"]
        lp = held_out_log_prob(post, th_te, x_te)
        base = lp if base is None else base
        d = lp - base
        figs += [
            Figure(f"{path}: held-out mean log q(theta|x)", float(lp.mean()), "nats",
                   note=f"SE {lp.std(ddof=1) / np.sqrt(len(lp)):.3f}; {tr['epochs']} epochs, "
                        f"stopped: {tr.get('stop_reason', 'patience or cap')}"),
            Figure(f"{path}: difference to the first", float(d.mean()), "nats",
                   target=">= -0.02", note=f"paired SE {d.std(ddof=1) / np.sqrt(len(d)):.4f}"),
            Figure(f"{path}: 95% interval coverage", _coverage95(post, th_te, x_te, n_coverage),
                   "fraction", note=f"{n_coverage} held-out rows"),
        ]
        print("\n".join(f"{f.name}: {f.value:.4f} {f.unit} ({f.note})" for f in figs[-3:]),
              file=sys.stderr, flush=True)
    return figs


def run(quick: bool) -> list[Figure]:
    """Train with every setting of :data:`SETTINGS` and compare; see the module docstring."""
    from wiring.analysis.calibration import calibration
    from wiring.inference import train_posterior

    cache = Path(os.environ.get("WIRING_BENCH_CACHE") or tempfile.mkdtemp(prefix="bench-q-"))
    if os.environ.get("WIRING_BENCH_POSTERIORS"):
        return compare_posteriors(os.environ["WIRING_BENCH_POSTERIORS"].split(","), cache)
    n_train = 5_000 if quick else 20_000
    seeds = [int(v) for v in os.environ.get("WIRING_BENCH_SEEDS", "0" if quick else "0,1")
             .split(",")]
    t0 = time.perf_counter()
    sim, spec, (th_tr, x_tr, th_te, x_te) = _problem(n_train, cache)
    figs = [Figure("simulated training + held-out sets", time.perf_counter() - t0, "s",
                   note=f"{len(th_tr)} + {len(th_te)} valid simulations, column model")]
    base_lp: dict[int, np.ndarray] = {}
    base_wall: list[float] = []
    save = os.environ.get("WIRING_BENCH_SAVE", "")
    chosen = os.environ.get("WIRING_BENCH_SETTINGS", "")
    picked = [int(k) for k in chosen.split(",")] if chosen else range(len(SETTINGS))
    for index, (label, kwargs) in enumerate(SETTINGS.items()):
        if index not in picked:
            continue
        lps, walls, cpus, epochs, reasons, cover, sbc = [], [], [], [], [], [], []
        for seed in seeds:
            t, c = time.perf_counter(), time.process_time()
            post = train_posterior(th_tr, x_tr, spec, batch_size=1000, seed=seed,
                                   num_threads=1, progress=False, **kwargs)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            tr = post.manifest["training"]
            epochs.append(tr["epochs"])
            reasons.append(tr["stop_reason"])
            lp = held_out_log_prob(post, th_te, x_te)
            lps.append(lp)
            base_lp.setdefault(seed, lp)
            print(f"{label}, seed {seed}: {tr['epochs']} epochs ({tr['stop_reason']}), "
                  f"{walls[-1]:.1f} s wall, {cpus[-1]:.1f} s CPU, held-out mean log q "
                  f"{lp.mean():.4f}", file=sys.stderr, flush=True)
            if save:
                Path(save).mkdir(parents=True, exist_ok=True)
                np.save(Path(save) / f"logq-setting{index}-seed{seed}.npy", lp)
            cover.append(_coverage95(post, th_te, x_te, 100 if quick else 300))
            cal = calibration(post, spec, sim, n_sbc=100 if quick else 200,
                              n_posterior_samples=500, seed=seed, plot=False)
            sbc.append(cal.passed)  # None: too few runs for a verdict
            print(f"{label}, seed {seed}: coverage {cover[-1]:.3f}, SBC {cal.verdict}",
                  file=sys.stderr, flush=True)
        if not base_wall:
            base_wall = walls
        mean_lp = [float(v.mean()) for v in lps]
        diffs = [lp - base_lp[s] for lp, s in zip(lps, seeds, strict=True)]
        d_mean = float(np.mean([d.mean() for d in diffs]))
        d_se = float(np.std(np.concatenate(diffs), ddof=1) / np.sqrt(sum(len(d) for d in diffs)))
        figs += [
            Figure(f"{label}: held-out mean log q(theta|x)", float(np.mean(mean_lp)), "nats",
                   note=f"per seed {[round(v, 4) for v in mean_lp]}; SE of one "
                        f"{float(np.std(lps[0], ddof=1) / np.sqrt(len(lps[0]))):.3f}"),
            Figure(f"{label}: difference to the first setting", d_mean, "nats",
                   target=">= -0.02", note=f"paired over rows and seeds, SE {d_se:.4f}"),
            Figure(f"{label}: training wall time", float(np.mean(walls)), "s",
                   note=f"ratio to the first setting run {np.mean(walls) / np.mean(base_wall):.2f}"
                        f"; epochs {epochs}; stopped: {reasons}"),
            Figure(f"{label}: training CPU time", float(np.mean(cpus)), "s",
                   note="one torch thread: the cost on an idle core, whatever the load"),
            Figure(f"{label}: 95% interval coverage", float(np.mean(cover)), "fraction",
                   target="0.95 ± 0.03", note=f"{100 if quick else 300} held-out rows"),
            Figure(f"{label}: SBC passed", float(np.mean([p for p in sbc if p is not None]))
                   if any(p is not None for p in sbc) else float("nan"), "fraction of seeds",
                   target="1", note="KS rank uniformity and coverage at 50/80/95 %; "
                   f"{sum(p is None for p in sbc)} seed(s) not judged (too few runs)"),
        ]
    return figs
