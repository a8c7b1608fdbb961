"""Cost of the posterior analysis and the report.

Figures
-------
* ``predict_connectivity`` on a generated model (``column``; ``small`` with ``--quick``): every
  pre type × post type, 200 posterior samples around the a-priori DSO rule, at most 2,000 pairs
  per type pair: wall and CPU time, and the numpy reference path for comparison (small only);
* ``posterior_predictive_check`` with calibrated p-values (1,000 draws, 100 × 200 replicate
  draws) with ``vpm-invivo`` on the same model (the posterior is a Gaussian stand-in: sampling a
  trained flow is measured by ``bench_inference``);
* ``calibration`` (SBC + TARP through ``sbi.diagnostics``, 200 runs × 1,000 samples) with an
  exact linear-Gaussian posterior, i.e. the cost of the diagnostics themselves;
* ``write_report`` of 6 figures.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._figure import Figure

__all__ = ["run"]


def _timed(fn: Any) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


class _GaussianDraws:
    """A posterior stand-in: N((1, 1, 1), 0.1² I) whatever x_o."""

    param_names = ("theta_pre", "theta_post", "theta_postall")

    def sample(self, n: int, x_o: Any, *, seed: int) -> Any:
        return 1.0 + 0.1 * np.random.default_rng(seed).standard_normal((n, 3))

    def log_prob(self, theta: Any, x_o: Any) -> Any:
        return -0.5 * np.sum(((np.asarray(theta) - 1.0) / 0.1) ** 2, axis=-1)


def run(quick: bool) -> list[Figure]:
    from anatomy.generate import build_model
    from wiring.analysis import (
        calibration,
        posterior_predictive_check,
        predict_connectivity,
        summarize_posterior,
    )
    from wiring.analysis.predictions import _PairTableBuilder, connection_probability
    from wiring.inference.priors import PriorSpec
    from wiring.measurements import load_measurement_set
    from wiring.report import write_report
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    preset = "small" if quick else "column"
    model = build_model(preset, seed=0)
    theta = 1.0 + 0.1 * np.random.default_rng(0).standard_normal((200, 3))
    figures: list[Figure] = []
    pred, wall, cpu = _timed(lambda: predict_connectivity(
        None, model, "dso", None, theta=theta, max_pairs=2000, seed=0, plot=False))
    n_tp = pred.samples.shape[1] * pred.samples.shape[2]
    figures.append(Figure(f"predictions {preset}: {n_tp} type pairs × 200 θ, wall", wall, "s",
                          note=f"{int(pred.n_pairs_used.sum())} pairs; CPU {cpu:.1f} s"))
    if quick:
        dso = get_rule("dso")
        builder = _PairTableBuilder(model)
        codes = np.asarray(model.neurons.cell_type)
        i = np.flatnonzero(codes == 11)[:40]
        j = np.flatnonzero(codes == 4)[:50]
        table = builder.table(np.repeat(i, len(j)), np.tile(j, len(i)))
        _, t_np, _ = _timed(lambda: connection_probability(dso, table, theta))
        from wiring.analysis.predictions import _expected

        _, t_fast, _ = _timed(lambda: _expected(dso, [table], theta))
        figures.append(Figure("predictions: numpy reference / simulator path, one type pair",
                              t_np / t_fast, "ratio", note=f"{table.n_rows} rows × 200 θ"))
    mset = load_measurement_set("vpm-invivo")
    sim = Simulator(model, "dso", mset)
    post = _GaussianDraws()
    _, wall, cpu = _timed(lambda: posterior_predictive_check(
        post, sim, mset.x_o, n_samples=1000, seed=0, n_calibration=100,
        n_calibration_samples=200, plot=False))
    figures.append(Figure(f"predictive check {preset} (1,000 + 100 × 200 simulations)", wall,
                          "s", note=f"CPU {cpu:.1f} s"))

    class _Toy:
        names = ("a", "b", "c")

        def __call__(self, theta: Any, *, rng: Any) -> Any:
            return np.asarray(theta) + 0.3 * rng.standard_normal(np.shape(theta))

    class _Exact:
        param_names = ("a", "b", "c")

        def sample(self, n: int, x_o: Any, *, seed: int) -> Any:
            # prior N(0, 1), noise 0.3: posterior N(x / 1.09, 0.3² / 1.09)
            var = 0.09 / 1.09
            mean = np.asarray(x_o) / 1.09
            return mean + np.sqrt(var) * np.random.default_rng(seed).standard_normal((n, 3))

    prior = PriorSpec(kind="gaussian", names=("a", "b", "c"), loc=(0.0,) * 3, scale=(1.0,) * 3)
    cal, wall, cpu = _timed(lambda: calibration(_Exact(), prior, _Toy(), n_sbc=200,
                                                n_posterior_samples=1000, seed=0, plot=False))
    figures.append(Figure("calibration 200 runs × 1,000 samples (exact posterior)", wall, "s",
                          note=f"verdict: {cal.verdict}"))
    summ = summarize_posterior(post.sample(2000, None, seed=0), post.param_names,
                               prior_spec=prior, reference=[1.0, 1.0, 1.0])
    cal_fig = calibration(_Exact(), prior, _Toy(), n_sbc=100, n_posterior_samples=200, seed=1)
    ppc_fig = posterior_predictive_check(post, sim, mset.x_o, n_samples=300, seed=0,
                                         n_calibration=0)
    pred_fig = predict_connectivity(None, model, "dso", None, theta=theta[:20], max_pairs=100,
                                    seed=0, measurement_set=mset)
    with tempfile.TemporaryDirectory() as tmp:
        _, wall, _ = _timed(lambda: write_report(Path(tmp) / "r", config={"bench": True},
                                                 sections=[summ, ppc_fig, cal_fig, pred_fig]))
    figures.append(Figure("write_report, 5 figures (4 sections)", wall, "s"))
    return figures
