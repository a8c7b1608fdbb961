"""Calibration of a posterior: simulation-based calibration (SBC) ranks and expected coverage.

Draw θ_i from the prior, simulate x_i, sample the posterior at each x_i and rank θ_i among the
samples per parameter (Talts et al. 2018). For a calibrated posterior the ranks are uniform and
the central credible interval at level a covers θ_i in a fraction a of the runs. The ranks, the
uniformity tests and the joint coverage (TARP, Lemos et al. 2023) are computed by
``sbi.diagnostics`` (``run_sbc``/``check_sbc``/``run_tarp``/``check_tarp``) from posterior
samples drawn here with explicit seeds, so the result is reproducible and works with any
posterior that has ``sample(n, x_o, seed=)``.

Pass/fail criteria (stated in the result):

* every parameter's KS test of rank uniformity has p > ``ks_alpha / d`` (Bonferroni over the d
  parameters; default family-wise level 0.01), and
* the expected coverage of the central 50 %, 80 % and 95 % intervals of every parameter deviates
  from the nominal level by less than ``coverage_tolerance`` (default 0.1; with 200 runs the
  Monte-Carlo standard error is at most 0.035).

The C2ST scores (ranks vs uniform, data-averaged posterior vs prior) and TARP's area to curve
are reported for information only: with a few hundred runs they are too noisy to gate on.

**Too few runs are not judged.** With a few dozen runs the verdict says little: the KS test
cannot see even a badly miscalibrated posterior, and the coverage estimates scatter by more
than the tolerance (at 20 runs the standard error of a 50 % coverage is 0.11), so a perfectly
calibrated posterior of three parameters fails the criteria 82 % of the time (Monte Carlo of
uniform ranks; 3 % at 191 runs) and a wrong one fails always. The result is therefore judged only
with at least :func:`min_sbc_runs` valid runs, the number at which the KS test has 80 % power
against a miscalibration a user would want to know about (see there; 191 for three
parameters); below it ``passed`` is None and the verdict reads "not judged (N runs; at least M
needed)", while the ranks, p-values, coverage and figures are still reported.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from wiring._typing import FloatArray
from wiring.analysis._common import (
    PosteriorLike,
    SimulatorLike,
    child_seeds,
    drop_nan_rows,
    jsonable,
    prior_sample,
    sample_many,
)
from wiring.errors import InvalidParameterError, WiringError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CHECK_LEVELS", "Calibration", "calibration", "coverage_from_ranks", "min_sbc_runs"]

logger = logging.getLogger(__name__)

#: Credibility levels at which the coverage criterion is checked.
CHECK_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)
#: Distance of the rank CDF from the uniform CDF the KS test must detect (see min_sbc_runs).
DETECT_DEVIATION = 0.16
#: Power the KS test must have against that deviation for the result to be judged.
DETECT_POWER = 0.8


def min_sbc_runs(d: int, *, ks_alpha: float = 0.01, deviation: float = DETECT_DEVIATION,
                 power: float = DETECT_POWER) -> int:
    """Fewest SBC runs at which the rank-uniformity test has ``power`` to see a miscalibration.

    The test is a KS test of each parameter's normalized ranks against the uniform at level
    ``ks_alpha / d`` (Bonferroni). The miscalibration is a rank CDF ``F`` that is ``deviation``
    away from the uniform somewhere: with Gaussian posteriors, about 0.16 is a posterior twice too
    wide or twice too narrow (``F(u) = Φ(2 Φ⁻¹(u))`` or ``Φ(Φ⁻¹(u) / 2)``, at most 0.161
    from ``u``) or one shifted by 0.4 posterior standard deviations (``2 Φ(0.2) − 1 =
    0.159``): errors that change what the posterior says about the rule.

    The bound: the KS statistic is at least ``|F̂(t) − t|`` at the point ``t`` of the largest
    deviation, where ``F̂(t)`` is a binomial fraction of ``n`` runs with standard deviation at
    most ``0.5 / √n``; the test rejects when the statistic exceeds ``K / √n`` (``K`` the
    Kolmogorov distribution's upper ``ks_alpha / d`` quantile). With the normal approximation
    of the binomial, the power is at least ``power`` once ``√n · deviation ≥ K + z_power / 2``,
    i.e. ``n ≥ ((K + z_power / 2) / deviation)²``: 164 runs for one parameter, 191 for three,
    203 for five (defaults). The bound looks at one point of the CDF only, so the actual power
    is higher; runs whose θ falls outside the rule's domain do not count.

    Examples
    --------
    >>> min_sbc_runs(3)
    191
    """
    from scipy.stats import kstwobign, norm

    if int(d) < 1 or not 0 < ks_alpha < 1 or not 0 < deviation < 1 or not 0 < power < 1:
        raise InvalidParameterError(
            f"min_sbc_runs needs d >= 1 and ks_alpha, deviation, power in (0, 1); got d={d!r}, "
            f"ks_alpha={ks_alpha!r}, deviation={deviation!r}, power={power!r}"
        )
    k = float(kstwobign.isf(ks_alpha / int(d)))
    return int(np.ceil(((k + float(norm.ppf(power)) / 2) / deviation) ** 2))


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """Result of :func:`calibration`. ``ranks`` is (n_sbc, d) in [0, n_posterior_samples];
    ``coverage`` (L, d) is the expected coverage of central intervals at ``levels`` (L,);
    ``coverage_deviation`` (d,) the largest |coverage - level| over :data:`CHECK_LEVELS`.
    ``passed`` is None when the result is not judged: fewer than ``min_runs`` valid runs
    (:func:`min_sbc_runs`); :attr:`verdict` says it in words."""

    title: ClassVar[str] = "Calibration"

    param_names: tuple[str, ...]
    n_sbc: int
    n_dropped: int
    n_posterior_samples: int
    ranks: FloatArray = field(repr=False)
    ks_pvals: FloatArray
    c2st_ranks: FloatArray | None
    c2st_dap: FloatArray | None
    levels: FloatArray = field(repr=False)
    coverage: FloatArray = field(repr=False)
    coverage_deviation: FloatArray
    tarp_alpha: FloatArray = field(repr=False)
    tarp_ecp: FloatArray = field(repr=False)
    tarp_atc: float
    tarp_ks_pval: float
    ks_alpha: float
    coverage_tolerance: float
    passed: bool | None
    min_runs: int
    criteria: str
    figure: Figure | None = field(default=None, repr=False, compare=False)
    coverage_figure: Figure | None = field(default=None, repr=False, compare=False)

    @property
    def judged(self) -> bool:
        """Whether there were enough runs for a verdict (at least :attr:`min_runs`)."""
        return self.passed is not None

    @property
    def verdict(self) -> str:
        """``"passed"``, ``"FAILED"`` or ``"not judged (N runs; at least M needed)"``."""
        if self.passed is None:
            return f"not judged ({self.n_sbc} runs; at least {self.min_runs} needed)"
        return "passed" if self.passed else "FAILED"

    def table(self) -> list[dict[str, Any]]:
        """One row per parameter (JSON-native)."""
        rows = []
        for k, name in enumerate(self.param_names):
            row: dict[str, Any] = {
                "parameter": name,
                "ks_pval": self.ks_pvals[k],
                "coverage_deviation": self.coverage_deviation[k],
            }
            for lv in CHECK_LEVELS:
                row[f"coverage_{round(100 * lv)}"] = _coverage_at(self.ranks[:, k],
                                                                  self.n_posterior_samples, lv)
            if self.c2st_ranks is not None:
                row["c2st_ranks"] = self.c2st_ranks[k]
            if self.c2st_dap is not None:
                row["c2st_dap"] = self.c2st_dap[k]
            rows.append(jsonable(row))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-native summary (no figures, no raw ranks)."""
        return dict(jsonable({
            "verdict": self.verdict,
            "passed": self.passed,
            "criteria": self.criteria,
            "n_sbc": self.n_sbc,
            "min_runs": self.min_runs,
            "n_dropped": self.n_dropped,
            "n_posterior_samples": self.n_posterior_samples,
            "parameters": self.table(),
            "tarp_atc": self.tarp_atc,
            "tarp_ks_pval": self.tarp_ks_pval,
        }))

    def figures(self) -> dict[str, Figure]:
        """Figures by file stem."""
        out = {}
        if self.figure is not None:
            out["sbc_ranks"] = self.figure
        if self.coverage_figure is not None:
            out["coverage"] = self.coverage_figure
        return out


def _coverage_at(ranks: FloatArray, n_post: int, level: float) -> float:
    u = np.asarray(ranks, dtype=np.float64) / n_post
    return float(np.mean((u >= 0.5 - level / 2) & (u <= 0.5 + level / 2)))


def coverage_from_ranks(ranks: FloatArray, n_posterior_samples: int,
                        levels: FloatArray) -> FloatArray:
    """Expected coverage (L, d) of central credible intervals at ``levels`` (L,) from SBC ranks
    (n, d): the fraction of runs whose true parameter lies inside the interval.

    Examples
    --------
    >>> r = np.arange(100.0)[:, None]            # perfectly uniform ranks out of 100
    >>> coverage_from_ranks(r, 100, np.array([0.5])).round(2).tolist()
    [[0.51]]
    """
    u = np.asarray(ranks, dtype=np.float64)[None, :, :] / n_posterior_samples
    a = np.asarray(levels, dtype=np.float64)[:, None, None]
    inside = (u >= 0.5 - a / 2) & (u <= 0.5 + a / 2)
    return np.asarray(inside.mean(axis=1), dtype=np.float64)


class _PrecomputedSamples:
    """Hands precomputed posterior samples (S, N, d) to ``sbi.diagnostics`` (which asks the
    posterior for ``sample_batched``), so sampling happens once, seeded, by our posterior."""

    def __init__(self, samples: Any) -> None:
        self._samples = samples

    def sample_batched(self, sample_shape: Any, x: Any, **kwargs: Any) -> Any:
        s, n = self._samples.shape[:2]
        if tuple(sample_shape) != (s,) or len(x) != n:
            raise WiringError(
                f"internal: precomputed samples have shape {tuple(self._samples.shape)}, "
                f"asked for {tuple(sample_shape)} x {len(x)}"
            )
        return self._samples


def calibration(
    posterior: PosteriorLike,
    prior_spec: Any,
    simulator: SimulatorLike,
    *,
    n_sbc: int = 200,
    n_posterior_samples: int = 1000,
    seed: int = 0,
    param_names: Sequence[str] | None = None,
    ks_alpha: float = 0.01,
    coverage_tolerance: float = 0.1,
    c2st: bool = False,
    plot: bool = True,
    min_runs: int | None = None,
) -> Calibration:
    """Simulation-based calibration and expected coverage of ``posterior``.

    Parameters
    ----------
    posterior
        Posterior with ``sample(n, x_o, seed=)`` (amortized: conditioned on every simulated x).
    prior_spec
        The prior the posterior was trained with (``sample(n, rng)``, or kind/loc/scale or
        kind/low/high).
    simulator
        ``simulator(theta, rng=) -> x``.
    n_sbc
        Number of (θ, x) pairs; a few hundred give useful checks (sbi warns below 100), and
        fewer than ``min_runs`` valid ones are not judged.
    n_posterior_samples
        Posterior samples per x used for the ranks.
    seed
        Seed of everything random here.
    param_names
        Parameter names; default ``posterior.param_names``.
    ks_alpha, coverage_tolerance
        The pass/fail thresholds (module docstring).
    c2st
        Also compute sbi's C2ST scores (slower; informational).
    plot
        Whether to draw the rank and coverage figures.
    min_runs
        Fewest valid runs for a verdict; default :func:`min_sbc_runs` of the number of
        parameters at ``ks_alpha`` (0 always judges).

    Returns
    -------
    Calibration

    Raises
    ------
    InvalidParameterError
        Bad counts, or no parameter names.
    WiringError
        Fewer than 2 simulations inside the rule's domain.
    """
    import torch
    from sbi.diagnostics import check_sbc, check_tarp, run_sbc, run_tarp

    names = tuple(param_names if param_names is not None
                  else getattr(posterior, "param_names", None) or ())
    if not names:
        raise InvalidParameterError(
            "calibration needs the parameter names: pass param_names=... or a posterior with "
            "a param_names attribute"
        )
    if n_sbc < 2 or n_posterior_samples < 2:
        raise InvalidParameterError(
            f"n_sbc={n_sbc!r} and n_posterior_samples={n_posterior_samples!r} must both be >= 2 "
            f"(a few hundred and ~1000 are typical)"
        )
    d = len(names)
    needed = min_sbc_runs(d, ks_alpha=ks_alpha) if min_runs is None else int(min_runs)
    if needed < 0:
        raise InvalidParameterError(f"min_runs={min_runs!r} must be >= 0")
    s_prior, s_sim, s_post, s_ref, s_torch = child_seeds(seed, 5)
    theta = prior_sample(prior_spec, n_sbc, d, np.random.default_rng(s_prior))
    x = np.asarray(simulator(theta, rng=np.random.default_rng(s_sim)), dtype=np.float64)
    theta, x, keep = drop_nan_rows(theta, x, what="SBC simulations")
    n = len(theta)
    if n < 2:
        raise WiringError(
            f"only {n} of {n_sbc} prior samples give a valid simulation; the prior puts its mass "
            f"outside the rule's domain"
        )
    samples = sample_many(posterior, x, n_posterior_samples, s_post).astype(np.float32)
    t_theta = torch.as_tensor(theta, dtype=torch.float32)
    t_x = torch.as_tensor(x, dtype=torch.float32)
    source = _PrecomputedSamples(torch.as_tensor(samples))
    refs = np.random.default_rng(s_ref).uniform(theta.min(axis=0), theta.max(axis=0),
                                                size=theta.shape)
    with warnings.catch_warnings(), torch.random.fork_rng():
        warnings.filterwarnings("ignore", message=".*(SBC|TARP|C2ST|less than 100).*")
        torch.manual_seed(s_torch)
        ranks_t, dap = run_sbc(t_theta, t_x, source, num_posterior_samples=n_posterior_samples,
                               show_progress_bar=False)
        ranks = ranks_t.numpy().astype(np.float64)
        c2st_r = c2st_d = None
        if c2st:
            checks = check_sbc(ranks_t, t_theta, dap, num_posterior_samples=n_posterior_samples)
            ks = checks["ks_pvals"].numpy().astype(np.float64)
            c2st_r = checks["c2st_ranks"].numpy().astype(np.float64)
            c2st_d = checks["c2st_dap"].numpy().astype(np.float64)
        else:  # the KS part of check_sbc, without its (slow) classifier tests
            from sbi.diagnostics.sbc import check_uniformity_frequentist

            ks = check_uniformity_frequentist(ranks_t, n_posterior_samples).numpy().astype(
                np.float64)
        ecp_t, alpha_t = run_tarp(t_theta, t_x, source,
                                  references=torch.as_tensor(refs, dtype=torch.float32),
                                  num_posterior_samples=n_posterior_samples,
                                  show_progress_bar=False, num_bins=max(n // 10, 2))
        atc, tarp_ks = check_tarp(ecp_t, alpha_t)
    levels = np.linspace(0.0, 1.0, 101)
    cov = coverage_from_ranks(ranks, n_posterior_samples, levels)
    chk = np.array(CHECK_LEVELS)
    dev = np.abs(coverage_from_ranks(ranks, n_posterior_samples, chk) - chk[:, None]).max(axis=0)
    passed: bool | None = bool(np.all(ks > ks_alpha / d) and np.all(dev < coverage_tolerance))
    if n < needed:
        passed = None
    criteria = (
        f"pass iff every parameter's KS rank-uniformity p-value > {ks_alpha:g}/{d} "
        f"(Bonferroni) and the expected coverage of its central "
        f"{', '.join(f'{round(100 * c)} %' for c in CHECK_LEVELS)} intervals is within "
        f"{coverage_tolerance:g} of nominal; judged only with at least {needed} valid runs "
        f"(fewer give the KS test less than {DETECT_POWER:.0%} power against a rank CDF "
        f"{DETECT_DEVIATION:g} from uniform, e.g. a posterior twice too wide or narrow)"
    )
    verdict = ("passed" if passed else "FAILED") if passed is not None else (
        f"not judged ({n} runs; at least {needed} needed)")
    logger.info("calibration: %s (KS p min %.3g, max coverage deviation %.3f)",
                verdict, float(ks.min()), float(dev.max()))
    fig = cov_fig = None
    if plot:
        from wiring.analysis._plots import plot_coverage, plot_sbc_ranks

        fig = plot_sbc_ranks(ranks, n_posterior_samples, names)
        cov_fig = plot_coverage(levels, cov, names, tarp_alpha=alpha_t.numpy(),
                                tarp_ecp=ecp_t.numpy(), n_runs=n)
    return Calibration(
        param_names=names,
        n_sbc=n,
        n_dropped=int((~keep).sum()),
        n_posterior_samples=n_posterior_samples,
        ranks=ranks,
        ks_pvals=ks,
        c2st_ranks=c2st_r,
        c2st_dap=c2st_d,
        levels=levels,
        coverage=cov,
        coverage_deviation=dev,
        tarp_alpha=alpha_t.numpy().astype(np.float64),
        tarp_ecp=ecp_t.numpy().astype(np.float64),
        tarp_atc=float(atc),
        tarp_ks_pval=float(tarp_ks),
        ks_alpha=ks_alpha,
        coverage_tolerance=coverage_tolerance,
        passed=passed,
        min_runs=needed,
        criteria=criteria,
        figure=fig,
        coverage_figure=cov_fig,
    )
