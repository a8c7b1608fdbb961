"""Posterior predictive check: re-simulate the experiments from posterior samples and ask, per
measurement, how surprising the measured value is.

p-values
--------
``p_value`` is the two-sided posterior predictive p-value with a mid-p correction for the
discrete x (connected fractions k/n): with ``F_<`` and ``F_=`` the predictive probabilities of a value below
and equal to the measurement, ``p = min(1, 2 min(F_< + F_=/2, 1 - F_< - F_=/2))``.
Posterior predictive p-values are conservative (they pile up near 0.5 for a correct model
because the posterior already saw the measurement). With ``n_calibration > 0`` they are also
*calibrated* as Hjort, Dahl & Steinbakk 2006 (JASA 101:211) define it: replicate data sets are
drawn from the **prior** predictive (θ_r from the prior, x_r from the simulator), the amortized
posterior is conditioned on each replicate and the replicate's posterior predictive p-value
computed the same way; ``p_value_calibrated`` is the Monte Carlo estimate of the fraction of
these reference p-values at or below the observed one (see :func:`calibrate_p_values`; its
resolution is 1 / (n_calibration + 1)). If the model (prior and simulator) is right, the
observed data are a draw from the prior predictive too, so the calibrated p-value is uniform.
The reference distribution does not depend on the observation; it costs ``n_calibration``
posterior samplings and ``n_calibration * (n_calibration_samples + 1)`` extra simulations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from wiring._typing import FloatArray
from wiring.analysis._common import (
    PosteriorLike,
    SimulatorLike,
    check_x_o,
    child_seeds,
    drop_nan_rows,
    jsonable,
    prior_sample,
    sample_many,
)
from wiring.errors import InvalidParameterError, WiringError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "PredictiveCheck",
    "calibrate_p_values",
    "posterior_predictive_check",
    "predictive_p_value",
    "prior_predictive_p_values",
    "simulate_predictive",
]

logger = logging.getLogger(__name__)

#: Values of x closer than this count as equal to the measurement (x are fractions k/n).
_TIE_TOL = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictiveCheck:
    """Result of :func:`posterior_predictive_check`; arrays have one entry per measurement (m,),
    ``interval`` is (m, 2) (central 95 % of the predictive), ``x_pred`` (n, m)."""

    title: ClassVar[str] = "Posterior predictive check"

    names: tuple[str, ...]
    x_o: FloatArray
    x_pred: FloatArray = field(repr=False)
    mean: FloatArray
    std: FloatArray
    interval: FloatArray
    z: FloatArray
    p_value: FloatArray
    p_value_calibrated: FloatArray | None
    n_samples: int
    n_dropped: int
    n_calibration: int
    figure: Figure | None = field(default=None, repr=False, compare=False)

    def table(self) -> list[dict[str, Any]]:
        """One row per measurement (JSON-native)."""
        rows = []
        for k, name in enumerate(self.names):
            row = {
                "measurement": name,
                "measured": self.x_o[k],
                "predictive_mean": self.mean[k],
                "predictive_std": self.std[k],
                "ci_low": self.interval[k, 0],
                "ci_high": self.interval[k, 1],
                "z": self.z[k],
                "p_value": self.p_value[k],
            }
            if self.p_value_calibrated is not None:
                row["p_value_calibrated"] = self.p_value_calibrated[k]
            rows.append(jsonable(row))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-native summary (no figure, no raw predictive samples)."""
        return dict(jsonable({
            "n_samples": self.n_samples,
            "n_dropped": self.n_dropped,
            "n_calibration": self.n_calibration,
            "p_value_method": "two-sided posterior predictive mid-p",
            "p_value_calibrated_method": (
                f"Hjort et al. 2006: rank of the p-value among those of {self.n_calibration} "
                f"replicate data sets drawn from the prior predictive, each conditioned on by "
                f"the amortized posterior (uniform if the model is right); Monte Carlo "
                f"estimate (1 + rank) / ({self.n_calibration} + 1), so at least "
                f"{1 / (self.n_calibration + 1):.3g}"
            ) if self.n_calibration else None,
            "measurements": self.table(),
        }))

    def figures(self) -> dict[str, Figure]:
        """Figures by file stem."""
        return {"predictive_check": self.figure} if self.figure is not None else {}


def predictive_p_value(x_pred: npt.ArrayLike, x_o: npt.ArrayLike) -> FloatArray:
    """Two-sided mid-p predictive p-value per column of ``x_pred`` (n, m) for ``x_o`` (m,).

    NaN entries of ``x_pred`` are ignored per column; a column without finite values gives NaN.

    Examples
    --------
    >>> x = np.array([[0.0], [0.1], [0.2], [0.3]])
    >>> predictive_p_value(x, [0.3]).tolist()   # F_< = 3/4, F_= = 1/4 -> 2 * (1/8)
    [0.25]
    """
    xp = np.atleast_2d(np.asarray(x_pred, dtype=np.float64))
    xo = np.asarray(x_o, dtype=np.float64).reshape(1, -1)
    finite = np.isfinite(xp)
    n = finite.sum(axis=0).astype(np.float64)
    below = ((xp < xo - _TIE_TOL) & finite).sum(axis=0)
    equal = ((np.abs(xp - xo) <= _TIE_TOL) & finite).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = (below + 0.5 * equal) / n
    p = np.minimum(1.0, 2.0 * np.minimum(lo, 1.0 - lo))
    return np.asarray(p, dtype=np.float64)


def calibrate_p_values(p_obs: npt.ArrayLike, p_reference: npt.ArrayLike) -> FloatArray:
    """Calibrated p-values: the reference distribution function of the p-value at ``p_obs``
    (m,), estimated from the r reference p-values (r, m) as the Monte Carlo p-value
    ``(1 + below + equal / 2) / (r + 1)`` (ties count half). Counting the observation as one
    of the draws keeps the estimate valid for finite r and never 0: with r = 100 replicates the
    smallest value is 1/101, which reads "below about 0.01"."""
    po = np.asarray(p_obs, dtype=np.float64).reshape(1, -1)
    pr = np.atleast_2d(np.asarray(p_reference, dtype=np.float64))
    finite = np.isfinite(pr)
    n = finite.sum(axis=0).astype(np.float64)
    below = ((pr < po - _TIE_TOL) & finite).sum(axis=0)
    equal = ((np.abs(pr - po) <= _TIE_TOL) & finite).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((1.0 + below + 0.5 * equal) / (n + 1.0), dtype=np.float64)


def simulate_predictive(
    posterior: PosteriorLike,
    simulator: SimulatorLike,
    x_o: FloatArray,
    *,
    n_samples: int,
    seed: int,
) -> tuple[FloatArray, FloatArray, int]:
    """Posterior samples θ (n', d) at ``x_o``, their simulations x (n', m), and the number of
    samples dropped because the simulator returned NaN (θ outside the rule's domain)."""
    s_post, s_sim = child_seeds(seed, 2)
    theta = np.asarray(posterior.sample(n_samples, x_o, seed=s_post), dtype=np.float64)
    x = np.asarray(simulator(theta, rng=np.random.default_rng(s_sim)), dtype=np.float64)
    theta, x, keep = drop_nan_rows(theta, x, what="posterior predictive simulations")
    return theta, x, int((~keep).sum())


def posterior_predictive_check(
    posterior: PosteriorLike,
    simulator: SimulatorLike,
    x_o: npt.ArrayLike,
    *,
    n_samples: int = 1000,
    seed: int = 0,
    n_calibration: int = 100,
    n_calibration_samples: int = 200,
    prior_spec: Any = None,
    plot: bool = True,
) -> PredictiveCheck:
    """Re-simulate the measurements from posterior samples and compare with ``x_o``.

    Parameters
    ----------
    posterior
        Posterior with ``sample(n, x_o, seed=)``.
    simulator
        Simulator ``simulator(theta, rng=) -> x`` with ``names``.
    x_o
        Measured connection probabilities, shape (m,), in ``simulator.names`` order.
    n_samples
        Posterior predictive draws.
    seed
        Seed of everything random here.
    n_calibration
        Replicate data sets for calibrating the p-values (0: no calibration); see the module
        docstring.
    n_calibration_samples
        Posterior predictive draws per replicate.
    prior_spec
        The prior the replicates of the calibration are drawn from (default: the posterior's
        ``prior_spec``); needed when ``n_calibration > 0``.
    plot
        Whether to draw the violin figure.

    Returns
    -------
    PredictiveCheck

    Raises
    ------
    ShapeMismatchError, InvalidParameterError
        ``x_o`` has the wrong length or a NaN; a non-positive sample count.
    WiringError
        Every posterior sample lies outside the rule's domain.
    """
    names = tuple(simulator.names)
    xo = check_x_o(x_o, names)
    if n_samples < 2 or n_calibration < 0 or n_calibration_samples < 2:
        raise InvalidParameterError(
            f"n_samples={n_samples!r}, n_calibration={n_calibration!r} and "
            f"n_calibration_samples={n_calibration_samples!r}: need n_samples >= 2, "
            f"n_calibration >= 0 and n_calibration_samples >= 2"
        )
    s_main, s_cal = child_seeds(seed, 2)
    _, x_pred, n_dropped = simulate_predictive(posterior, simulator, xo,
                                               n_samples=n_samples, seed=s_main)
    if len(x_pred) < 2:
        raise WiringError(
            f"only {len(x_pred)} of {n_samples} posterior samples lie inside the rule's domain; "
            f"the posterior does not fit this simulator (check the rule and prior)"
        )
    p = predictive_p_value(x_pred, xo)
    p_cal = None
    if n_calibration:
        spec = prior_spec if prior_spec is not None else getattr(posterior, "prior_spec", None)
        if spec is None:
            raise InvalidParameterError(
                "the calibrated p-values need the prior (prior_spec=...) to draw replicate "
                "data sets from the prior predictive; pass it or set n_calibration=0"
            )
        p_cal = calibrate_p_values(
            p, prior_predictive_p_values(posterior, simulator, spec, n_calibration,
                                         n_calibration_samples, s_cal))
    mean = x_pred.mean(axis=0)
    std = x_pred.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, (xo - mean) / np.where(std > 0, std, 1.0), np.nan)
    fig = None
    if plot:
        from wiring.analysis._plots import plot_predictive_check

        fig = plot_predictive_check(names, x_pred, xo, p if p_cal is None else p_cal)
    return PredictiveCheck(
        names=names,
        x_o=xo,
        x_pred=x_pred,
        mean=mean,
        std=std,
        interval=np.quantile(x_pred, [0.025, 0.975], axis=0).T,
        z=z,
        p_value=p,
        p_value_calibrated=p_cal,
        n_samples=len(x_pred),
        n_dropped=n_dropped,
        n_calibration=n_calibration,
        figure=fig,
    )


def prior_predictive_p_values(
    posterior: PosteriorLike,
    simulator: SimulatorLike,
    prior_spec: Any,
    n_rep: int,
    n_per_rep: int,
    seed: int,
) -> FloatArray:
    """Reference p-values (n_rep', m) of Hjort et al. 2006: replicate data sets from the prior
    predictive (θ_r from the prior, x_r ~ simulator(θ_r)), each conditioned on by the posterior
    and given its posterior predictive p-value. Replicates the simulator cannot produce (NaN,
    θ outside the rule's domain) are dropped."""
    rng = np.random.default_rng(seed)
    names = tuple(simulator.names)
    theta = prior_sample(prior_spec, n_rep, _prior_dim(prior_spec), rng)
    x_rep = np.asarray(simulator(theta, rng=rng), dtype=np.float64)
    x_rep = x_rep[np.all(np.isfinite(x_rep), axis=1)]
    if len(x_rep) == 0:
        raise WiringError("no prior predictive replicate could be simulated (all NaN); the prior "
                          "lies outside the rule's domain")
    th = sample_many(posterior, x_rep, n_per_rep, int(rng.integers(2**62)))  # (S, R, d)
    th_all = th.transpose(1, 0, 2).reshape(-1, th.shape[2])
    own = np.repeat(np.arange(len(x_rep)), n_per_rep)
    x_all = np.asarray(simulator(th_all, rng=rng), dtype=np.float64)
    out = np.full((len(x_rep), len(names)), np.nan)
    for r in range(len(x_rep)):
        out[r] = predictive_p_value(x_all[own == r], x_rep[r])
    return out


def _prior_dim(spec: Any) -> int:
    """Number of parameters of a prior spec (object or mapping)."""
    for key in ("names", "loc", "low"):
        val = spec.get(key) if isinstance(spec, dict) else getattr(spec, key, None)
        if val is not None and np.size(val) > 0:
            return int(np.size(val))
    raise InvalidParameterError("cannot tell the number of parameters of the prior spec")
