"""The ``analyze`` stage: the standard analysis of the trained posterior, the comparison with
other rules, and the report directory (``<run>/report``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.context import PipelineContext, train_kwargs

if TYPE_CHECKING:
    from wiring.analysis import RuleComparison

__all__ = ["run_analysis", "run_analyze"]

log = logging.getLogger(__name__)


def run_analyze(ctx: PipelineContext) -> None:
    """Write ``<run>/report`` unless an earlier invocation finished it."""
    report = ctx.run_dir / "report"
    if ctx.record.is_done("analyze") and (report / "index.html").exists():
        return
    t0 = ctx.record.start("analyze")
    timings = run_analysis(ctx, report, seed=ctx.seed("analyze"))
    ctx.record.finish("analyze", t0, parts=timings)


def run_analysis(ctx: PipelineContext, report_dir: Path, *, seed: int) -> dict[str, float]:
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
    if a.sensitivity:
        from wiring.analysis.sensitivity import sensitivity_unavailable

        reason = sensitivity_unavailable(ctx.simulator, ctx.store)
        if reason is None:
            t0, c0 = time.perf_counter(), time.process_time()
            sections.append(_sensitivity(ctx, x_o, reference, standard.results.get("summary")))
            timings["sensitivity"] = time.perf_counter() - t0
            timings["sensitivity_cpu"] = time.process_time() - c0  # the work runs here
        else:
            log.info("anatomy sensitivity skipped: %s", reason)
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


def _compare(ctx: PipelineContext, x_o: np.ndarray, *, seed: int) -> RuleComparison:
    """Compare the run's rule with the fits of the compared rules (see
    :mod:`pipelines.comparison_fits`; started before training on a local dask cluster)."""
    from pipelines.comparison_fits import ComparisonFits
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
            seed=ctx.seed("train"),
        )
    ]
    comparison = ctx.comparison or ComparisonFits(ctx)
    fits += comparison.results()
    # held-out predictions from the training simulations (no per-θ exact means, which are
    # expensive on large models, and no retraining per left-out measurement)
    a_priori = {fit.rule: [p.default for p in get_rule(fit.rule).params] for fit in fits}
    return compare_rules(
        fits, x_o, n_samples=cfg.analysis.predictive_samples, seed=seed, held_out="abc",
        a_priori=a_priori, voxel_um=float(ctx.model.grid.spacing_um),
    )


def _sensitivity(ctx: PipelineContext, x_o: Any, reference: Any, summary: Any) -> Any:
    """The anatomy sensitivity table (nominal, marginalised, VPM boutons ×0.5 and ×2) on the
    run's simulation store; q(θ | x, ν) trains like the run's posterior (``[inference]``),
    with ``analysis.sensitivity_max_epochs`` as its epoch cap when set."""
    from wiring.analysis.sensitivity import anatomy_sensitivity_from_store

    a = ctx.config.analysis
    kwargs = train_kwargs(ctx.config.inference)
    if a.sensitivity_max_epochs:
        kwargs["max_epochs"] = a.sensitivity_max_epochs
    return anatomy_sensitivity_from_store(
        ctx.posterior, ctx.simulator, ctx.store, x_o,
        param_names=[p.name for p in ctx.rule.params],
        reference=reference,
        rows=a.sensitivity_rows,
        n_wide=a.sensitivity_simulations,
        n_samples=min(a.posterior_samples, 5000),
        seed=ctx.seed("sensitivity"),
        train_kwargs=kwargs,
        marginal_summary=summary,
        progress=ctx.progress,
    )
