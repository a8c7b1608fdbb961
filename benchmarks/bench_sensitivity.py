"""The anatomy sensitivity's plug-in rows against a direct retrain (``small`` model, ``dso``).

The sensitivity table gets its fixed-anatomy rows (VPM boutons ×0.5, ×2) from one conditional
estimator q(θ | x, ν) evaluated at fixed ν. This benchmark checks the ×2 row against the
direct route: simulations with ν_b = log 2 for every row and NPE trained on them alone. It
reports, per parameter, the difference of the posterior means in units of the direct
posterior's standard deviation, the ratio of the 95 % interval widths, and whether the two
verdicts on the a-priori rule agree; the wall and CPU seconds of the sensitivity analysis
itself (the cost it adds to a run); and the conditional estimator's epochs and why it stopped
(it must converge, not reach its cap).

Sizes: ``n`` simulations with ν from its prior plus ``n/2`` with VPM boutons ×1/2.5 .. ×2.5
(the conditional estimator's training set), and ``n`` at ν_b = log 2 (the retrain); full mode
n = 10,000, quick n = 3,000. Threads: ``WIRING_BENCH_THREADS`` (default 1) torch threads.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from benchmarks._figure import Figure

__all__ = ["run"]


def run(quick: bool) -> list[Figure]:
    """Plug-in ×2 row against a direct retrain at ν_b = log 2, and the analysis cost."""
    from anatomy.generate import build_model
    from wiring.analysis.sensitivity import anatomy_sensitivity
    from wiring.analysis.summary import summarize_posterior
    from wiring.inference import build_prior_spec, train_posterior
    from wiring.measurements import load_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    threads = int(os.environ.get("WIRING_BENCH_THREADS", "1"))
    n = 3_000 if quick else 10_000
    train = {"hidden_features": 30, "num_transforms": 3, "max_epochs": 200,
             "stop_after_epochs": 10, "batch_size": 500, "num_threads": threads,
             "progress": False}
    mset = load_measurement_set("vpm-invivo")
    rule = get_rule("dso")
    spec = build_prior_spec(rule, "gaussian")
    sim = Simulator(build_model("small", seed=0), rule, mset,
                    nuisance=["vpm_boutons", "target_sites"])
    x_o = np.asarray(mset.x_o, dtype=np.float64)
    ref = [p.default for p in rule.params]
    names = [p.name for p in rule.params]

    theta = spec.sample_rows(11, 0, n)
    x = sim.simulate(theta, seed=12)
    marginal = train_posterior(theta, x, spec, seed=13, **train)
    t0, c0 = time.perf_counter(), time.process_time()
    res = anatomy_sensitivity(marginal, sim, theta, x, x_o, simulation_seed=12, prior_spec=spec,
                              param_names=names, reference=ref, n_samples=5000, n_wide=n // 2,
                              seed=14, train_kwargs=train, plot=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    theta2 = spec.sample_rows(21, 0, n)
    x2 = sim.simulate(theta2, seed=22, nuisance={"vpm_boutons": math.log(2.0)})
    direct = train_posterior(theta2, x2, spec, seed=23, **train)
    d = summarize_posterior(direct.sample(5000, x_o, seed=24), names, prior_spec=spec,
                            reference=ref, log_prob=lambda t: direct.log_prob(t, x_o), plot=False)
    p = res.summaries["vpm_boutons_x2"]
    figs = [
        Figure("sensitivity analysis wall time", wall, "s", note=f"{n} + {n // 2} simulations"),
        Figure("sensitivity analysis CPU time", cpu, "s", note=f"{threads} torch thread(s)"),
        Figure("conditional estimator epochs", float(res.training["epochs"]), "epochs",
               target=f"< {train['max_epochs']} (converged)",
               note=f"stopped: {res.training['stop_reason']} (best epoch "
                    f"{res.training['best_epoch']})"),
    ]
    for k, name in enumerate(names):
        figs.append(Figure(f"x2 row vs retrain: mean difference, {name}",
                           float((p.mean[k] - d.mean[k]) / d.std[k]), "direct sd",
                           target="|.| < 0.5"))
        wp = p.interval[k, 1] - p.interval[k, 0]
        wd = d.interval[k, 1] - d.interval[k, 0]
        figs.append(Figure(f"x2 row vs retrain: interval width ratio, {name}",
                           float(wp / wd), "", target="0.75 .. 1.33"))
    figs.append(Figure("x2 row vs retrain: same verdict",
                       float(p.reference_in_hpd == d.reference_in_hpd), "bool", target="1",
                       note=f"HPD level plug-in {p.reference_hpd_level:.3f}, "
                            f"retrain {d.reference_hpd_level:.3f}"))
    return figs
