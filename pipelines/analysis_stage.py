"""The pipeline's analyze stage: the standard analysis of the trained posterior, the comparison
with other rules, and the report directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_analysis"]

log = logging.getLogger(__name__)


def run_analysis(ctx: Any, report_dir: Path, *, seed: int) -> dict[str, float]:
    """Analyze ``ctx.posterior`` at the measured values and write ``report_dir``.

    Returns the wall time (s) of each part.
    """
    from wiring.analysis import run_standard_analysis
    from wiring.report import write_report

    cfg = ctx.config
    a = cfg.analysis
    x_o = np.asarray(ctx.measurements.x_o, dtype=np.float64)
    prior_spec = ctx.store.prior_spec
    reference = [p.default for p in ctx.rule.params]
    standard = run_standard_analysis(
        ctx.posterior,
        ctx.simulator,
        x_o,
        prior_spec=prior_spec,
        param_names=[p.name for p in ctx.rule.params],
        reference=reference,
        model=ctx.model,
        rule=ctx.rule,
        measurement_set=ctx.measurements,
        n_samples=a.posterior_samples,
        n_predictive=a.predictive_samples,
        n_sbc=a.sbc_runs,
        n_sbc_samples=a.sbc_posterior_samples,
        n_prediction_samples=a.prediction_samples,
        seed=seed,
        skip=() if a.predictions else ("predictions",),
    )
    sections = list(standard.sections)
    timings = dict(standard.timings_s)
    compared = [r for r in a.compare_rules if r != cfg.rule.name]
    if compared and a.comparison_simulations > 0:
        t0 = time.perf_counter()
        sections.append(_compare(ctx, x_o, seed=seed))
        timings["comparison"] = time.perf_counter() - t0
    write_report(
        report_dir,
        config=cfg.to_dict(),
        sections=sections,
        title=f"{cfg.rule.name} on {cfg.measurements.set} ({cfg.run.name} run)",
        overwrite=True,
    )
    return {k: round(v, 3) for k, v in timings.items()}


def _compare(ctx: Any, x_o: Any, *, seed: int) -> Any:
    """Compare the run's rule with the fits of the compared rules (see
    :mod:`pipelines.comparison_fits`; started before training where a dask cluster runs)."""
    from pipelines.comparison_fits import ComparisonFits
    from pipelines.stage_support import derive_seed
    from wiring.analysis import RuleFit, compare_rules
    from wiring.rules.registry import get_rule

    cfg = ctx.config
    theta, x = ctx.store.load()
    fits = [
        RuleFit(
            rule=cfg.rule.name,
            posterior=ctx.posterior,
            simulator=ctx.simulator,
            prior_spec=ctx.store.prior_spec,
            theta=theta,
            x=x,
            seed=derive_seed(cfg.run.seed, "train"),
        )
    ]
    comparison = getattr(ctx, "comparison", None) or ComparisonFits(ctx)
    fits += comparison.results()
    # held-out predictions from the training simulations (no per-θ exact means, which are
    # expensive on large models, and no retraining per left-out measurement)
    a_priori = {fit.rule: [p.default for p in get_rule(fit.rule).params] for fit in fits}
    return compare_rules(
        fits, x_o, n_samples=cfg.analysis.predictive_samples, seed=seed, held_out="abc",
        a_priori=a_priori, voxel_um=float(ctx.model.grid.spacing_um),
    )
