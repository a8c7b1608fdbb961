"""Rule comparison: how well each fitted rule predicts every measurement, in sample and held
out, and which rules the data rule out.

For each rule (a :class:`RuleFit`: posterior, simulator and prior; :func:`fit_rule` trains one):

* **posterior predictive** (in sample): :func:`~wiring.analysis.predictive.posterior_predictive_check`
  at ``x_o``: per measurement the error of the predictive mean, the z-score and the two-sided
  mid-p predictive p-value.
* **held out** (leave one measurement out): the posterior given every measurement *but* j
  predicts measurement j. Two methods:

  - ``"importance"`` (default of this function, cheap; an approximation): it treats the
    measurements as conditionally independent given θ and each as binomial,
    ``k_j ~ Binomial(n_j, P_j(θ))`` with ``P_j = simulator.expected(θ)``. The simulator is
    not exactly that: it draws one connectome per simulation, samples pairs without
    replacement and pools measurements that share pairs (L4 with L4sp and L4ss in
    vpm-invivo), so measurements sharing neurons are correlated and the spread of x differs
    from the binomial on small populations. ``"abc"`` (what ``wiring run`` uses) needs neither
    assumption.
    Hence ``p(θ | x_-j) ∝ p(θ | x) / p(x_j | θ)``: samples of the full posterior reweighted by
    ``1 / p(x_j | θ)`` (truncated at ``mean(w) sqrt(S)``, Ionides 2008) are samples of the
    leave-one-out posterior (Gelfand 1992; Vehtari et al. 2017). Costs one posterior sampling
    per rule; the effective sample size per measurement is reported (below ~50 the estimate is
    unreliable: use ``"retrain"``).
  - ``"retrain"``: for each j a posterior is trained on the training simulations with column j
    removed and conditioned on ``x_o`` without j; exact up to the network, but costs m extra
    trainings per rule (e.g. 7 × ~80 s for 10^4 simulations with the default NSF on 2 cores).
    Needs the training data (``RuleFit.theta``/``x``).

  - ``"abc"`` (cheap, needs only the training simulations ``RuleFit.theta``/``x``): the
    training simulations whose *other* measurements lie closest to ``x_o`` (the ``k`` nearest
    in the standardized Euclidean distance, ``k`` = 2 % of the simulations, at least 100) are
    draws from the prior predictive conditioned on ``x_-j`` (rejection ABC); their x_j is the
    held-out predictive sample. It includes the experiment's sampling noise, needs neither
    ``simulator.expected`` nor retraining, and its tolerance shrinks with the training budget.

  The log predictive density of the held-out measurement (binomial, averaged over the
  leave-one-out posterior) is summed into ``elpd_loo``; differences to the best rule are
  reported (more than ~4 units is a clear preference).

Each rule is also evaluated at its **a-priori parameters** (``a_priori``; e.g. Peters' rules at
θ = 1, the DSO rule at (1, 1, 1)): the experiments are simulated at that one θ and each
measurement gets the predictive mean and the two-sided mid-p p-value, so a rule can be judged
as its authors proposed it, not only after fitting. The report states the voxel size the rules
were evaluated at (``voxel_um``): overlap-based rules such as Peters' depend on it (Boelts et
al. 2023 tested Peters' rules at 1 µm; this package's models have 50 µm voxels).

A rule is **ruled out** iff, for some measurement, the posterior predictive or the held-out
p-value is below ``alpha / m`` (Bonferroni over the m measurements; default alpha = 0.01).
Held-out p-values resting on fewer than ``min_ess`` effective samples (default 50) are reported
but do not count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from wiring._typing import FloatArray
from wiring.analysis._common import (
    PosteriorLike,
    SimulatorLike,
    check_x_o,
    child_seeds,
    jsonable,
    prior_sample,
)
from wiring.analysis.predictive import posterior_predictive_check, predictive_p_value
from wiring.errors import InvalidParameterError, WiringError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["HeldOutMethod", "RuleComparison", "RuleFit", "compare_rules", "fit_rule"]

logger = logging.getLogger(__name__)

HeldOutMethod = Literal["importance", "retrain", "abc", "none"]


@dataclass(frozen=True, kw_only=True)
class RuleFit:
    """A fitted rule: its posterior, the simulator (rule × anatomy × measurements), the prior
    and optionally the training simulations (needed for ``held_out="retrain"``)."""

    rule: str
    posterior: PosteriorLike
    simulator: SimulatorLike
    prior_spec: Any
    theta: FloatArray | None = field(default=None, repr=False)
    x: FloatArray | None = field(default=None, repr=False)
    seed: int = 0
    train_kwargs: Mapping[str, Any] = field(default_factory=dict)


Trainer = Callable[..., Any]


def _default_trainer() -> Trainer:
    from wiring.inference.npe import train_posterior

    return train_posterior


def fit_rule(
    rule: Any,
    simulator: SimulatorLike,
    prior_spec: Any,
    n_sims: int,
    seed: int,
    *,
    trainer: Trainer | None = None,
    keep_training_data: bool = True,
    **train_kwargs: Any,
) -> RuleFit:
    """Simulate ``n_sims`` prior samples and train a posterior for one rule.

    Parameters
    ----------
    rule
        The rule (instance or name); only its name is recorded.
    simulator
        ``simulator(theta, rng=) -> x`` for this rule.
    prior_spec
        :class:`wiring.inference.priors.PriorSpec` (or compatible).
    n_sims
        Training simulations.
    seed
        Seed of the prior draws, the simulations and the training.
    trainer
        ``trainer(theta, x, prior_spec, seed=..., **train_kwargs) -> Posterior``; default
        :func:`wiring.inference.train_posterior`.
    keep_training_data
        Keep θ and x on the result (needed for held-out ``"retrain"``).
    **train_kwargs
        Passed to the trainer (e.g. estimator, batch size).
    """
    if n_sims < 2:
        raise InvalidParameterError(f"n_sims={n_sims!r}: need at least 2 training simulations")
    names = getattr(prior_spec, "names", None)
    d = len(names) if names else len(getattr(rule, "params", ()))
    if not d:
        raise InvalidParameterError("cannot tell the number of parameters: the prior spec has "
                                    "no names and the rule no params")
    s_prior, s_sim, s_train = child_seeds(seed, 3)
    theta = prior_sample(prior_spec, n_sims, d, np.random.default_rng(s_prior))
    x = np.asarray(simulator(theta, rng=np.random.default_rng(s_sim)), dtype=np.float64)
    train = trainer or _default_trainer()
    posterior = train(theta, x, prior_spec, seed=s_train, **train_kwargs)
    name = rule if isinstance(rule, str) else str(getattr(rule, "name", rule))
    return RuleFit(rule=name, posterior=posterior, simulator=simulator, prior_spec=prior_spec,
                   theta=theta if keep_training_data else None,
                   x=x if keep_training_data else None, seed=seed,
                   train_kwargs=dict(train_kwargs))


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleComparison:
    """Result of :func:`compare_rules`: arrays are (n_rules, m) over ``rules`` × ``names``."""

    title: ClassVar[str] = "Rule comparison"

    rules: tuple[str, ...]
    names: tuple[str, ...]
    x_o: FloatArray
    in_sample_mean: FloatArray
    in_sample_z: FloatArray
    in_sample_p: FloatArray
    held_out_mean: FloatArray
    held_out_z: FloatArray
    held_out_p: FloatArray
    held_out_lpd: FloatArray
    held_out_ess: FloatArray
    held_out_method: str
    alpha: float
    min_ess: float
    ruled_out: Mapping[str, bool]
    reasons: Mapping[str, tuple[str, ...]]
    elpd_loo: FloatArray
    a_priori_theta: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    a_priori_mean: FloatArray | None = None
    a_priori_p: FloatArray | None = None
    voxel_um: float | None = None
    figure: Figure | None = field(default=None, repr=False, compare=False)

    def table(self) -> list[dict[str, Any]]:
        """One row per (rule, measurement), JSON-native."""
        rows = []
        for r, rule in enumerate(self.rules):
            for k, name in enumerate(self.names):
                rows.append(jsonable({
                    "rule": rule,
                    "measurement": name,
                    "measured": self.x_o[k],
                    "predicted": self.in_sample_mean[r, k],
                    "error": self.in_sample_mean[r, k] - self.x_o[k],
                    "z": self.in_sample_z[r, k],
                    "p_value": self.in_sample_p[r, k],
                    "held_out_predicted": self.held_out_mean[r, k],
                    "held_out_error": self.held_out_mean[r, k] - self.x_o[k],
                    "held_out_z": self.held_out_z[r, k],
                    "held_out_p_value": self.held_out_p[r, k],
                    "held_out_log_density": self.held_out_lpd[r, k],
                    "held_out_ess": self.held_out_ess[r, k],
                    **self._a_priori_cells(r, k),
                }))
        return rows

    def _a_priori_cells(self, r: int, k: int) -> dict[str, Any]:
        if self.a_priori_mean is None or self.a_priori_p is None:
            return {}
        return {"a_priori_predicted": self.a_priori_mean[r, k],
                "a_priori_p_value": self.a_priori_p[r, k]}

    def a_priori_ruled_out(self, r: int) -> bool | None:
        """Whether rule ``r`` at its a-priori parameters fails a measurement (p < alpha / m);
        None when it was not evaluated there."""
        if self.a_priori_p is None or not np.isfinite(self.a_priori_p[r]).any():
            return None
        return bool(np.nanmin(self.a_priori_p[r]) < self.alpha / len(self.names))

    def summary(self) -> list[dict[str, Any]]:
        """One row per rule: errors, elpd and the verdict."""
        best = np.nanmax(self.elpd_loo) if np.isfinite(self.elpd_loo).any() else np.nan
        out = []
        for r, rule in enumerate(self.rules):
            out.append(jsonable({
                "rule": rule,
                "rms_error": float(np.sqrt(np.mean((self.in_sample_mean[r] - self.x_o) ** 2))),
                "rms_held_out_error": float(np.sqrt(np.nanmean(
                    (self.held_out_mean[r] - self.x_o) ** 2))) if np.isfinite(
                    self.held_out_mean[r]).any() else None,
                "min_p_value": float(np.nanmin(self.in_sample_p[r])),
                "min_held_out_p_value": float(np.nanmin(self.held_out_p[r]))
                if np.isfinite(self.held_out_p[r]).any() else None,
                "elpd_loo": self.elpd_loo[r],
                "elpd_loo_difference": self.elpd_loo[r] - best,
                "ruled_out": self.ruled_out[rule],
                "reasons": list(self.reasons[rule]),
                "a_priori_theta": list(self.a_priori_theta[rule])
                if rule in self.a_priori_theta else None,
                "a_priori_rms_error": float(np.sqrt(np.nanmean(
                    (self.a_priori_mean[r] - self.x_o) ** 2)))
                if self.a_priori_mean is not None and np.isfinite(self.a_priori_mean[r]).any()
                else None,
                "a_priori_min_p_value": float(np.nanmin(self.a_priori_p[r]))
                if self.a_priori_p is not None and np.isfinite(self.a_priori_p[r]).any()
                else None,
                "a_priori_ruled_out": self.a_priori_ruled_out(r),
            }))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-native summary (no figure)."""
        m = len(self.names)
        return dict(jsonable({
            "held_out_method": self.held_out_method,
            "criterion": f"ruled out iff a posterior predictive or held-out p-value < "
                         f"{self.alpha:g}/{m} (Bonferroni over {m} measurements); held-out "
                         f"p-values with fewer than {self.min_ess:g} effective samples do not "
                         f"count",
            "a_priori": "each rule simulated at its a-priori parameters (a_priori_theta); "
                        "ruled out there iff a p-value < alpha/m",
            "voxel_um": self.voxel_um,
            "resolution_note": _resolution_note(self.voxel_um),
            "rules": self.summary(),
            "per_measurement": self.table(),
        }))

    def figures(self) -> dict[str, Figure]:
        """Figures by file stem."""
        return {"rule_comparison": self.figure} if self.figure is not None else {}


def _resolution_note(voxel_um: float | None) -> str:
    if voxel_um is None:
        return "voxel size not given"
    return (f"rules evaluated on the structural model's {voxel_um:g} µm voxels (overlap = a "
            f"shared voxel); Boelts et al. 2023 tested Peters' rules at 1 µm resolution, where "
            f"overlap is much rarer, so Peters' rules here are the {voxel_um:g} µm variants")


def _at_a_priori(fit: RuleFit, theta0: Sequence[float], xo: FloatArray, n: int,
                 seed: int) -> tuple[FloatArray, FloatArray]:
    """Predictive mean and mid-p p-value per measurement of ``n`` simulations at ``theta0``."""
    th = np.repeat(np.asarray(theta0, dtype=np.float64).reshape(1, -1), n, axis=0)
    x = np.asarray(fit.simulator(th, rng=np.random.default_rng(seed)), dtype=np.float64)
    x = x[np.all(np.isfinite(x), axis=1)]
    if len(x) == 0:
        logger.warning("rule %s: its a-priori parameters %s lie outside its domain", fit.rule,
                       list(theta0))
        return np.full(len(xo), np.nan), np.full(len(xo), np.nan)
    return x.mean(axis=0), predictive_p_value(x, xo)


def _n_pairs(simulator: Any, m: int, n_pairs: Any) -> FloatArray | None:
    """Tested pairs per measurement: the explicit argument, else the simulator's
    (``Simulator.n_sample``: pairs sampled per simulated experiment)."""
    cands = [n_pairs, getattr(simulator, "n_sample", None), getattr(simulator, "n_pairs", None)]
    for c in cands:
        if c is None or isinstance(c, str) or callable(c):
            continue
        arr = np.broadcast_to(np.asarray(c, dtype=np.float64).reshape(-1), (m,)) if np.size(
            c) in (1, m) else None
        if arr is not None and np.all(arr >= 1):
            return np.array(arr)
    return None


def _binom_logpmf(k: FloatArray, n: float, p: FloatArray) -> FloatArray:
    from scipy.stats import binom

    return np.asarray(binom.logpmf(k, n, np.clip(p, 0.0, 1.0)), dtype=np.float64)


def _importance_held_out(
    fit: RuleFit, theta: FloatArray, xo: FloatArray, n_pairs: FloatArray | None,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Held-out mean, z, p, log density and ESS per measurement by importance reweighting."""
    expected = getattr(fit.simulator, "expected", None)
    if expected is None or n_pairs is None:
        raise WiringError(
            f"rule {fit.rule!r}: held_out='importance' needs simulator.expected(theta) and the "
            f"number of tested pairs per measurement (pass n_pairs=...); use held_out='retrain'"
        )
    m = len(xo)
    p_th = np.asarray(expected(theta), dtype=np.float64)
    ok = np.all(np.isfinite(p_th), axis=1)
    theta, p_th = theta[ok], p_th[ok]
    s = len(theta)
    k_o = np.round(xo * n_pairs)
    mean, z, p, lpd, ess = (np.full(m, np.nan) for _ in range(5))
    for j in range(m):
        ll = _binom_logpmf(np.full(s, k_o[j]), float(n_pairs[j]), p_th[:, j])
        # samples that cannot produce x_o (likelihood 0, e.g. p = 0 or 1 exactly) would get
        # infinite weight; the floor keeps the weights finite before truncation
        ll_floor = np.maximum(ll, -700.0)
        logw = -ll_floor - np.max(-ll_floor)
        w = np.exp(logw)
        w = np.minimum(w, w.mean() * np.sqrt(s))  # truncated importance sampling
        w /= w.sum()
        ess[j] = 1.0 / np.sum(w**2)
        lpd[j] = float(np.log(np.sum(w * np.exp(ll))))
        pick = rng.choice(s, size=s, replace=True, p=w)
        x_j = rng.binomial(int(n_pairs[j]), np.clip(p_th[pick, j], 0, 1)) / n_pairs[j]
        mean[j] = x_j.mean()
        sd = x_j.std(ddof=1)
        z[j] = (xo[j] - mean[j]) / sd if sd > 0 else np.nan
        p[j] = predictive_p_value(x_j[:, None], xo[j : j + 1])[0]
    return mean, z, p, lpd, ess


def _abc_held_out(
    fit: RuleFit, xo: FloatArray, n_pairs: FloatArray | None, *, fraction: float = 0.02,
    min_k: int = 100,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Held-out mean, z, p, log density and sample size per measurement from the training
    simulations nearest to ``x_o`` in the other measurements (rejection ABC)."""
    if fit.theta is None or fit.x is None:
        raise WiringError(
            f"rule {fit.rule!r}: held_out='abc' needs the training simulations; fit the rule "
            f"with fit_rule(..., keep_training_data=True) or pass RuleFit(theta=..., x=...)"
        )
    x = np.asarray(fit.x, dtype=np.float64)
    x = x[np.all(np.isfinite(x), axis=1)]
    s, m = x.shape
    if s < 2:
        raise WiringError(f"rule {fit.rule!r}: held_out='abc' needs finite training simulations")
    scale = x.std(axis=0)
    scale[scale <= 0] = 1.0
    k = int(min(s, max(min_k, round(fraction * s))))
    mean, z, p, lpd, size = (np.full(m, np.nan) for _ in range(5))
    for j in range(m):
        cols = [c for c in range(m) if c != j]
        d2 = np.sum(((x[:, cols] - xo[cols]) / scale[cols]) ** 2, axis=1)
        nearest = np.argpartition(d2, k - 1)[:k] if k < s else np.arange(s)
        x_j = x[nearest, j]
        mean[j] = x_j.mean()
        sd = x_j.std(ddof=1)
        z[j] = (xo[j] - mean[j]) / sd if sd > 0 else np.nan
        p[j] = predictive_p_value(x_j[:, None], xo[j : j + 1])[0]
        half = 0.5 / float(n_pairs[j]) if n_pairs is not None else 0.5 * scale[j] / 10
        hits = np.count_nonzero(np.abs(x_j - xo[j]) <= half + 1e-12)
        lpd[j] = float(np.log((hits + 0.5) / (k + 1.0)))
        size[j] = k
    return mean, z, p, lpd, size


def _retrain_held_out(
    fit: RuleFit, xo: FloatArray, n_samples: int, n_pairs: FloatArray | None, seed: int,
    trainer: Trainer | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    if fit.theta is None or fit.x is None:
        raise WiringError(
            f"rule {fit.rule!r}: held_out='retrain' needs the training simulations; fit the "
            f"rule with fit_rule(..., keep_training_data=True)"
        )
    train = trainer or _default_trainer()
    m = len(xo)
    mean, z, p, lpd = (np.full(m, np.nan) for _ in range(4))
    expected = getattr(fit.simulator, "expected", None)
    for j, s in enumerate(child_seeds(seed, m)):
        s_train, s_post, s_sim = child_seeds(s, 3)
        cols = [c for c in range(m) if c != j]
        post_j = train(fit.theta, fit.x[:, cols], fit.prior_spec, seed=s_train,
                       **fit.train_kwargs)
        th = np.asarray(post_j.sample(n_samples, xo[cols], seed=s_post), dtype=np.float64)
        x = np.asarray(fit.simulator(th, rng=np.random.default_rng(s_sim)), dtype=np.float64)
        good = np.all(np.isfinite(x), axis=1)
        x_j = x[good, j]
        mean[j] = x_j.mean()
        sd = x_j.std(ddof=1)
        z[j] = (xo[j] - mean[j]) / sd if sd > 0 else np.nan
        p[j] = predictive_p_value(x_j[:, None], xo[j : j + 1])[0]
        if expected is not None and n_pairs is not None:
            p_th = np.asarray(expected(th[good]), dtype=np.float64)[:, j]
            ll = _binom_logpmf(np.full(len(p_th), np.round(xo[j] * n_pairs[j])),
                               float(n_pairs[j]), p_th)
            lpd[j] = float(np.log(np.mean(np.exp(ll - ll.max()))) + ll.max())
    return mean, z, p, lpd, np.full(m, float(n_samples))


def compare_rules(
    fits: Sequence[RuleFit],
    x_o: npt.ArrayLike,
    *,
    n_samples: int = 1000,
    seed: int = 0,
    held_out: HeldOutMethod = "importance",
    alpha: float = 0.01,
    n_pairs: npt.ArrayLike | None = None,
    trainer: Trainer | None = None,
    min_ess: float = 50.0,
    a_priori: Mapping[str, Sequence[float]] | None = None,
    voxel_um: float | None = None,
    plot: bool = True,
) -> RuleComparison:
    """Compare fitted rules on the measurements ``x_o`` (see the module docstring).

    Parameters
    ----------
    fits
        Two or more fitted rules with simulators of the same measurements (same ``names``).
    x_o
        Measured values (m,).
    n_samples
        Posterior samples per rule.
    seed
        Seed of everything random here.
    held_out
        ``"importance"``, ``"retrain"`` or ``"none"``.
    alpha
        Family-wise level of the rule-out criterion.
    n_pairs
        Tested pairs per measurement (default: the simulator's ``n_pairs``); needed for the
        binomial held-out density.
    trainer
        Trainer for ``"retrain"`` (default :func:`wiring.inference.train_posterior`).
    min_ess
        Held-out p-values with a smaller effective sample size do not count for the verdict.
    a_priori
        A-priori parameters by rule name (e.g. ``{"peters_neuron": [1.0]}``); each such rule
        is also simulated ``n_samples`` times at them (not part of the verdict, reported
        beside it).
    voxel_um
        Voxel size of the structural model the rules were evaluated on (reported).
    plot
        Whether to draw the figure.

    Raises
    ------
    InvalidParameterError
        Fewer than one fit, an unknown method, or simulators of different measurements.
    """
    if not fits:
        raise InvalidParameterError("compare_rules needs at least one fitted rule")
    if held_out not in ("importance", "retrain", "abc", "none"):
        raise InvalidParameterError(
            f"held_out={held_out!r}; allowed: 'importance', 'retrain', 'abc', 'none'"
        )
    names = tuple(fits[0].simulator.names)
    for f in fits[1:]:
        if tuple(f.simulator.names) != names:
            raise InvalidParameterError(
                f"rule {f.rule!r} was fitted to measurements {list(f.simulator.names)}, rule "
                f"{fits[0].rule!r} to {list(names)}; compare rules on the same measurements"
            )
    rules = tuple(f.rule for f in fits)
    if len(set(rules)) != len(rules):
        raise InvalidParameterError(f"rule names must be distinct, got {list(rules)}")
    xo = check_x_o(x_o, names)
    m, nr = len(names), len(fits)
    arrs = {k: np.full((nr, m), np.nan) for k in (
        "in_mean", "in_z", "in_p", "ho_mean", "ho_z", "ho_p", "ho_lpd", "ho_ess")}
    for r, (fit, s) in enumerate(zip(fits, child_seeds(seed, nr), strict=True)):
        s_ppc, s_ho = child_seeds(s, 2)
        ppc = posterior_predictive_check(fit.posterior, fit.simulator, xo, n_samples=n_samples,
                                         seed=s_ppc, n_calibration=0, plot=False)
        arrs["in_mean"][r], arrs["in_z"][r], arrs["in_p"][r] = ppc.mean, ppc.z, ppc.p_value
        npairs = _n_pairs(fit.simulator, m, n_pairs)
        if held_out == "importance":
            theta = np.asarray(fit.posterior.sample(n_samples, xo, seed=s_ho), dtype=np.float64)
            res = _importance_held_out(fit, theta, xo, npairs, np.random.default_rng(s_ho))
        elif held_out == "retrain":
            res = _retrain_held_out(fit, xo, n_samples, npairs, s_ho, trainer)
        elif held_out == "abc":
            res = _abc_held_out(fit, xo, npairs)
        else:
            continue
        for key, val in zip(("ho_mean", "ho_z", "ho_p", "ho_lpd", "ho_ess"), res, strict=True):
            arrs[key][r] = val
        low_ess = [names[j] for j in range(m) if res[4][j] < min_ess]
        if low_ess:
            logger.warning("rule %s: held-out estimates rest on fewer than %g effective samples "
                           "for %s (not used for the verdict); consider held_out='retrain'",
                           fit.rule, min_ess, ", ".join(low_ess))
    a_priori_theta = {rule: tuple(float(v) for v in theta0)
                      for rule, theta0 in (a_priori or {}).items() if rule in rules}
    ap_mean = ap_p = None
    if a_priori_theta:
        ap_mean, ap_p = np.full((nr, m), np.nan), np.full((nr, m), np.nan)
        for r, (fit, s) in enumerate(zip(fits, child_seeds(seed + 1, nr), strict=True)):
            if fit.rule in a_priori_theta:
                ap_mean[r], ap_p[r] = _at_a_priori(fit, a_priori_theta[fit.rule], xo,
                                                   n_samples, s)
    thr = alpha / m
    ruled, reasons = {}, {}
    for r, rule in enumerate(rules):
        why = [f"posterior predictive p = {arrs['in_p'][r, k]:.2g} < {thr:.2g} for {names[k]}"
               for k in range(m) if arrs["in_p"][r, k] < thr]
        why += [f"held-out p = {arrs['ho_p'][r, k]:.2g} < {thr:.2g} for {names[k]}"
                for k in range(m) if arrs["ho_p"][r, k] < thr and arrs["ho_ess"][r, k] >= min_ess]
        ruled[rule] = bool(why)
        reasons[rule] = tuple(why)
    elpd = np.array([np.sum(arrs["ho_lpd"][r]) if np.isfinite(arrs["ho_lpd"][r]).all()
                     else np.nan for r in range(nr)])
    fig = None
    if plot:
        from wiring.analysis._plots import plot_rule_comparison

        fig = plot_rule_comparison(rules, names, arrs["in_p"], arrs["ho_p"], arrs["ho_z"],
                                   ruled_out=ruled, alpha=thr,
                                   reliable=arrs["ho_ess"] >= min_ess, a_priori_p=ap_p,
                                   voxel_um=voxel_um)
    return RuleComparison(
        rules=rules, names=names, x_o=xo,
        in_sample_mean=arrs["in_mean"], in_sample_z=arrs["in_z"], in_sample_p=arrs["in_p"],
        held_out_mean=arrs["ho_mean"], held_out_z=arrs["ho_z"], held_out_p=arrs["ho_p"],
        held_out_lpd=arrs["ho_lpd"], held_out_ess=arrs["ho_ess"], held_out_method=held_out,
        alpha=alpha, min_ess=min_ess, ruled_out=ruled, reasons=reasons, elpd_loo=elpd,
        a_priori_theta=a_priori_theta, a_priori_mean=ap_mean, a_priori_p=ap_p,
        voxel_um=voxel_um, figure=fig,
    )
