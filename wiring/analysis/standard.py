"""The standard analysis of one trained posterior: summary and pairplot, posterior predictive
check, calibration and connectivity predictions, as report sections.

Used by ``wiring analyze`` and the pipeline's analyze stage, so both produce the same report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from wiring.analysis._common import PosteriorLike, SimulatorLike, check_x_o, child_seeds
from wiring.errors import InvalidParameterError

__all__ = ["ANALYSES", "StandardAnalysis", "run_standard_analysis"]

logger = logging.getLogger(__name__)

#: The analyses of :func:`run_standard_analysis`, in report order.
ANALYSES: tuple[str, ...] = ("summary", "predictive", "calibration", "predictions")


@dataclass(frozen=True, kw_only=True)
class StandardAnalysis:
    """Results by analysis name (see :data:`ANALYSES`) and wall time per analysis (s)."""

    results: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def sections(self) -> list[Any]:
        """The results in report order."""
        return [self.results[k] for k in ANALYSES if k in self.results]


def run_standard_analysis(
    posterior: PosteriorLike,
    simulator: SimulatorLike,
    x_o: npt.ArrayLike,
    *,
    prior_spec: Any,
    param_names: Sequence[str],
    reference: npt.ArrayLike | None = None,
    labels: Sequence[str] | None = None,
    model: Any = None,
    rule: Any = None,
    measurement_set: Any = None,
    n_samples: int = 2000,
    n_predictive: int = 1000,
    n_calibration: int = 100,
    n_sbc: int = 200,
    n_sbc_samples: int = 1000,
    n_prediction_samples: int = 200,
    max_pairs: int = 2000,
    seed: int = 0,
    skip: Iterable[str] = (),
    n_conditions: int = 10,
) -> StandardAnalysis:
    """Run the standard analyses (each seeded from ``seed``) and return them.

    Parameters
    ----------
    posterior, simulator, x_o, prior_spec, param_names
        The trained posterior, the simulator it was trained with, the observation (m,), the
        prior and the parameter names.
    reference
        The rule's a-priori parameters (marked in the pairplot, checked against the HPD region).
    labels
        Pairplot axis labels.
    model, rule, measurement_set
        Needed for the predictions (``rule`` may be a name); without a model they are skipped.
    n_samples
        Posterior samples for the summary.
    n_predictive, n_calibration
        Posterior predictive draws and calibration replicates of the predictive check.
    n_sbc, n_sbc_samples
        SBC runs and posterior samples per run.
    n_prediction_samples, max_pairs
        Posterior samples and pairs per type pair of the predictions.
    seed
        Seed of everything random.
    skip
        Names from :data:`ANALYSES` not to run.
    n_conditions
        Posterior samples the conditional correlations are conditioned at (0: not computed;
        see :func:`~wiring.analysis.summary.summarize_posterior`).
    """
    from wiring.analysis.calibration import calibration
    from wiring.analysis.predictions import predict_connectivity
    from wiring.analysis.predictive import posterior_predictive_check
    from wiring.analysis.summary import summarize_posterior

    skipped = set(skip)
    unknown = skipped - set(ANALYSES)
    if unknown:
        raise InvalidParameterError(
            f"unknown analysis name(s) {sorted(unknown)} to skip; known: {', '.join(ANALYSES)}"
        )
    xo = check_x_o(x_o, tuple(simulator.names))
    seeds = dict(zip(ANALYSES, child_seeds(seed, len(ANALYSES)), strict=True))
    out = StandardAnalysis()
    if "summary" not in skipped:
        t0 = time.perf_counter()
        samples = np.asarray(posterior.sample(n_samples, xo, seed=seeds["summary"]))
        out.results["summary"] = summarize_posterior(
            samples, param_names, prior_spec=prior_spec, reference=reference,
            log_prob=lambda t: posterior.log_prob(t, xo), labels=labels,
            n_conditions=n_conditions)
        out.timings_s["summary"] = time.perf_counter() - t0
    if "predictive" not in skipped:
        t0 = time.perf_counter()
        out.results["predictive"] = posterior_predictive_check(
            posterior, simulator, xo, n_samples=n_predictive, seed=seeds["predictive"],
            n_calibration=n_calibration, prior_spec=prior_spec)
        out.timings_s["predictive"] = time.perf_counter() - t0
    if "calibration" not in skipped:
        t0 = time.perf_counter()
        out.results["calibration"] = calibration(
            posterior, prior_spec, simulator, n_sbc=n_sbc, n_posterior_samples=n_sbc_samples,
            seed=seeds["calibration"], param_names=param_names)
        out.timings_s["calibration"] = time.perf_counter() - t0
    if "predictions" not in skipped:
        if model is None or rule is None:
            logger.info("predictions skipped: no structural model or rule given")
        else:
            t0 = time.perf_counter()
            out.results["predictions"] = predict_connectivity(
                posterior, model, rule, xo, n_samples=n_prediction_samples,
                seed=seeds["predictions"], max_pairs=max_pairs,
                measurement_set=measurement_set)
            out.timings_s["predictions"] = time.perf_counter() - t0
    for name, secs in out.timings_s.items():
        logger.info("analysis %s: %.1f s", name, secs)
    return out
