"""NPE training and sampling speed, and the batch-size default.

Data come from a fake simulator with the paper's dimensions (θ ∈ R³ from the dso prior
N(1, 0.05·I), x ∈ R⁷: a sigmoid of a linear map plus binomial-like noise), so the figures
measure training, not simulation. For each training-set size (10^4; full mode also 10^5) and
batch size (200 = sbi's default, and 1,000; ``batch_size="auto"`` picks 200 up to 10^4
training rows and 1,000 from 5·10^4) we report the time per epoch, the time and epochs to
convergence (the default plateau schedule and early stopping), the held-out loss (negative log
posterior density on 2,000 fresh simulations: lower is better) and the empirical coverage of
central 95 % marginal intervals on 200 fresh simulations (0.95 when calibrated; standard error
≈ 0.009 per parameter). Finally the time to draw 10^4 posterior samples.

Threads: ``WIRING_BENCH_THREADS`` (default 2) torch threads.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks._figure import Figure

__all__ = ["run"]

_W = np.array([[1.0, 0.5, -0.3], [0.2, 1.0, 0.4], [-0.4, 0.3, 1.0], [0.6, 0.6, 0.6],
               [1.0, -0.8, 0.1], [0.3, 0.0, -1.0], [0.5, 0.5, -0.5]])


def _simulate(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-(theta @ _W.T - 0.8) * 2.0))
    return rng.binomial(50, p) / 50.0


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from wiring.inference.priors import PriorSpec

    spec = PriorSpec(kind="gaussian", names=("a", "b", "c"), loc=(1.0,) * 3,
                     scale=(0.05**0.5,) * 3)
    rng = np.random.default_rng(seed)
    theta = spec.sample(n, rng)
    return theta, _simulate(theta, rng)


def run(quick: bool) -> list[Figure]:
    """Training time per epoch / to convergence, held-out loss, coverage, sampling time."""
    import torch

    from wiring.inference import train_posterior
    from wiring.inference.priors import PriorSpec

    threads = int(os.environ.get("WIRING_BENCH_THREADS", "2"))
    spec = PriorSpec(kind="gaussian", names=("a", "b", "c"), loc=(1.0,) * 3,
                     scale=(0.05**0.5,) * 3)
    test_t, test_x = _data(2000, seed=99)
    figs: list[Figure] = []
    sizes = [10_000] if quick else [10_000, 100_000]
    post = None
    for n in sizes:
        theta, x = _data(n, seed=n)
        for bs in (200, 1000):
            t0 = time.perf_counter()
            post = train_posterior(theta, x, spec, batch_size=bs, seed=0, progress=False,
                                   num_threads=threads)
            wall = time.perf_counter() - t0
            tr = post.manifest["training"]
            label = f"n={n:.0e}, batch={tr['batch_size']}"
            figs.append(Figure(f"NSF epoch time ({label})", float(np.median(tr["epoch_s"])),
                               "s", note=f"{threads} torch threads"))
            figs.append(Figure(f"NSF time to convergence ({label})", wall, "s",
                               note=f"{tr['epochs']} epochs, converged={tr['converged']}"))
            with torch.no_grad():
                lp = post.net.log_prob(torch.as_tensor(test_t, dtype=torch.float32),
                                       condition=torch.as_tensor(test_x, dtype=torch.float32))
            figs.append(Figure(f"held-out loss ({label})", float(-lp.mean()), "nats",
                               note="lower is better"))
            cover = []
            for k in range(200):
                s = post.sample(500, test_x[k], seed=k)
                lo, hi = np.quantile(s, [0.025, 0.975], axis=0)
                cover.append((lo <= test_t[k]) & (test_t[k] <= hi))
            figs.append(Figure(f"95% interval coverage ({label})", float(np.mean(cover)),
                               "fraction", target="0.95 ± 0.03"))
    assert post is not None
    t0 = time.perf_counter()
    post.sample(10_000, test_x[0], seed=0)
    figs.append(Figure("sample 10^4 from posterior", time.perf_counter() - t0, "s",
                       note=f"{threads} torch threads"))
    return figs
