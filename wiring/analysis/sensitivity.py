"""How much the verdict depends on the anatomy: the posterior under changed anatomies.

The structural model has uncertain scale parameters (the anatomy nuisance parameters of
:mod:`wiring.simulation.nuisance`). :func:`anatomy_sensitivity` reports the posterior mean, the
central 95 % interval of every parameter and the a-priori rule's verdict (the HPD criterion of
:func:`wiring.analysis.summary.summarize_posterior`, the same one the main summary uses) for:

- ``nominal``: the anatomy as built (ν = 0);
- ``marginalised``: the nuisance parameters integrated out under their prior — the posterior
  of NPE trained on θ with ν drawn from its prior for every simulation (the run's posterior
  when the run has nuisance parameters);
- ``vpm_boutons_x0.5`` and ``vpm_boutons_x2``: VPM bouton counts halved and doubled
  (ν_b = log 0.5, log 2; other nuisance parameters at 0).

Design. The fixed-anatomy rows come from one *conditional* estimator q(θ | x, ν), trained with
ν appended to x, evaluated by plugging in ν. The conditional posterior p(θ | x, ν) does not
depend on how ν was distributed in the training set (θ is drawn from its prior independently
of ν), so q is trained on the run's own simulations (ν from its prior; the values are
recomputed from the keyed draws, nothing is stored) plus ``n_wide`` further simulations with
ν_b uniform on [−log f, log f] (f = ``wide_factor``, 2.5 by default), which put training mass
at ×0.5 and ×2 where the prior has little. One extra training and ``n_wide`` simulations are
the whole cost; no retraining per condition.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from wiring.analysis._common import PosteriorLike, check_x_o, child_seeds, jsonable
from wiring.errors import InvalidParameterError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CONDITIONS", "AnatomySensitivity", "anatomy_sensitivity", "plot_forest"]

logger = logging.getLogger(__name__)

#: The conditions of the sensitivity table, in order: (key, label, fixed ν or None).
CONDITIONS: tuple[tuple[str, str, Mapping[str, float] | None], ...] = (
    ("nominal", "nominal anatomy", {}),
    ("marginalised", "anatomy nuisance marginalised", None),
    ("vpm_boutons_x0.5", "VPM boutons x0.5", {"vpm_boutons": math.log(0.5)}),
    ("vpm_boutons_x2", "VPM boutons x2", {"vpm_boutons": math.log(2.0)}),
)


@dataclass(frozen=True, kw_only=True)
class AnatomySensitivity:
    """Posterior summaries per anatomy condition (see :func:`anatomy_sensitivity`).

    ``summaries`` maps a condition key of :data:`CONDITIONS` to the
    :class:`~wiring.analysis.summary.PosteriorSummary` of that condition (computed without a
    pairplot); ``nuisance`` is the nuisance spec (JSON); ``training`` describes the
    conditional estimator's training set.
    """

    title: ClassVar[str] = "Anatomy sensitivity"

    param_names: tuple[str, ...]
    summaries: dict[str, Any]
    labels: dict[str, str]
    nuisance: dict[str, Any]
    training: dict[str, Any]
    figure: Figure | None = field(default=None, repr=False, compare=False)

    def verdict(self, key: str) -> bool | None:
        """Whether the a-priori rule lies in the 95 % HPD region under condition ``key``."""
        v = self.summaries[key].reference_in_hpd
        return None if v is None else bool(v)

    def table(self) -> list[dict[str, Any]]:
        """One row per condition and parameter (JSON-native)."""
        rows = []
        for key, s in self.summaries.items():
            for k, name in enumerate(self.param_names):
                rows.append(jsonable({
                    "condition": self.labels[key],
                    "parameter": name,
                    "mean": s.mean[k],
                    "ci_low": s.interval[k, 0],
                    "ci_high": s.interval[k, 1],
                    "a_priori_rule_plausible": s.reference_in_hpd,
                }))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-native summary (no figure)."""
        out = {
            "param_names": list(self.param_names),
            "conditions": {
                key: {
                    "label": self.labels[key],
                    "mean": s.mean,
                    "interval": s.interval,
                    "reference_hpd_level": s.reference_hpd_level,
                    "a_priori_rule_plausible": s.reference_in_hpd,
                }
                for key, s in self.summaries.items()
            },
            "verdict_criterion": "a-priori rule inside the 95 % highest-posterior-density "
                                 "region (as in the posterior summary)",
            "nuisance": self.nuisance,
            "training": self.training,
        }
        return dict(jsonable(out))

    def figures(self) -> dict[str, Figure]:
        """Figures by file stem."""
        return {"forest": self.figure} if self.figure is not None else {}


def _wide_nuisance(spec: Any, seed: int, n: int, wide_factor: float) -> npt.NDArray[np.float64]:
    """ν (n, k) of the top-up set: ν_b uniform on [−log f, log f], the others from the prior."""
    from wiring.rules.draw import keyed_uniforms

    nu = np.asarray(spec.sample(seed, 0, n), dtype=np.float64)
    b = spec.names.index("vpm_boutons")
    u = keyed_uniforms(seed, np.arange(n, dtype=np.int64), np.int64(b + 1000))
    half = math.log(wide_factor)
    nu[:, b] = -half + 2.0 * half * u
    return nu


def anatomy_sensitivity(
    posterior: PosteriorLike,
    simulator: Any,
    theta: npt.ArrayLike,
    x: npt.ArrayLike,
    x_o: npt.ArrayLike,
    *,
    simulation_seed: int,
    prior_spec: Any,
    param_names: Sequence[str],
    reference: npt.ArrayLike | None,
    n_samples: int = 2000,
    n_wide: int = 0,
    wide_factor: float = 2.5,
    seed: int = 0,
    train_kwargs: Mapping[str, Any] | None = None,
    marginal_summary: Any = None,
    plot: bool = True,
) -> AnatomySensitivity:
    """The sensitivity table of the posterior to the anatomy (see the module docstring).

    Parameters
    ----------
    posterior
        NPE trained on θ only with ν drawn from its prior: the marginalised row.
    simulator
        The :class:`~wiring.simulation.simulator.Simulator` of the training set; its
        ``nuisance`` spec must include ``vpm_boutons``.
    theta, x
        The training set of ``posterior`` (n, d), (n, m), simulated by ``simulator`` with seed
        ``simulation_seed`` at indices 0 .. n − 1 (ν is recomputed from the keyed draws).
    x_o
        The observation (m,).
    prior_spec, param_names, reference
        The prior, parameter names and the a-priori rule's parameters (the verdict).
    n_samples
        Posterior samples per condition.
    n_wide, wide_factor
        Extra simulations with ν_b uniform on [−log f, log f] for the conditional estimator.
    seed
        Seed of the extra simulations, the training and the sampling.
    train_kwargs
        Passed to :func:`wiring.inference.train_posterior` (network size, epochs, threads).
    marginal_summary
        The :class:`~wiring.analysis.summary.PosteriorSummary` of ``posterior`` at ``x_o``
        already computed (the report's main summary): reused as the marginalised row, so the
        table and the summary state the same verdict.
    """
    from wiring.analysis.summary import summarize_posterior
    from wiring.inference import train_posterior

    spec = getattr(simulator, "nuisance", None)
    if spec is None or "vpm_boutons" not in spec.names:
        raise InvalidParameterError(
            "the anatomy sensitivity needs a simulator with the vpm_boutons nuisance "
            "parameter ([anatomy] nuisance = [\"vpm_boutons\", ...])"
        )
    names = tuple(param_names)
    xo = check_x_o(x_o, tuple(simulator.names))
    th = np.asarray(theta, dtype=np.float64)
    xx = np.asarray(x, dtype=np.float64)
    nu = spec.sample(int(simulation_seed), 0, len(th))
    s_theta, s_sim, s_nu, s_train, s_sample = child_seeds(seed, 5)
    if n_wide > 0:
        if not wide_factor > 1.0:
            raise InvalidParameterError(f"wide_factor must be > 1, got {wide_factor!r}")
        logger.info("anatomy sensitivity: %d simulations with VPM boutons x1/%.1f .. x%.1f",
                    n_wide, wide_factor, wide_factor)
        th_w = prior_spec.sample_rows(s_theta, 0, n_wide)
        nu_w = _wide_nuisance(spec, s_nu, n_wide, wide_factor)
        x_w = simulator.simulate(th_w, seed=s_sim, nuisance=nu_w)
        th, xx, nu = np.vstack([th, th_w]), np.vstack([xx, x_w]), np.vstack([nu, nu_w])
    kwargs = {"progress": False, **dict(train_kwargs or {})}
    logger.info("anatomy sensitivity: training q(theta | x, nu) on %d simulations", len(th))
    conditional = train_posterior(th, np.hstack([xx, nu]), prior_spec, seed=s_train, **kwargs)
    summaries: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for key, label, fixed in CONDITIONS:
        labels[key] = label
        if fixed is None and marginal_summary is not None:
            summaries[key] = marginal_summary
            continue
        if fixed is None:
            def log_prob(t: Any, _x: Any = xo) -> Any:
                return posterior.log_prob(t, _x)

            samples = np.asarray(posterior.sample(n_samples, xo, seed=s_sample))
        else:
            x_c = np.concatenate([xo, [float(fixed.get(n, 0.0)) for n in spec.names]])

            def log_prob(t: Any, _x: Any = x_c) -> Any:
                return conditional.log_prob(t, _x)

            samples = np.asarray(conditional.sample(n_samples, x_c, seed=s_sample))
        summaries[key] = summarize_posterior(samples, names, prior_spec=prior_spec,
                                             reference=reference, log_prob=log_prob, plot=False)
    training = {
        "estimator": "conditional NPE q(theta | x, nu), nu appended to x",
        "n_run_simulations": int(len(xx) - max(n_wide, 0)),
        "n_wide_simulations": int(max(n_wide, 0)),
        "wide_vpm_boutons_factor": float(wide_factor),
        "settings": jsonable({k: v for k, v in kwargs.items() if k != "progress"}),
    }
    fig = plot_forest(summaries, labels, names, reference) if plot else None
    return AnatomySensitivity(param_names=names, summaries=summaries, labels=labels,
                              nuisance=spec.to_dict(), training=training, figure=fig)


def plot_forest(summaries: Mapping[str, Any], labels: Mapping[str, str],
                param_names: Sequence[str], reference: npt.ArrayLike | None) -> Figure:
    """Forest plot: per parameter, the mean and 95 % interval under every condition, with the
    a-priori value as a dashed line (conditions where it is not plausible in red)."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    d = len(param_names)
    keys = list(summaries)
    fig, axes = plt.subplots(1, d, figsize=(3.2 * d, 0.5 * len(keys) + 1.6), sharey=True,
                             squeeze=False)
    ref = None if reference is None else np.asarray(reference, dtype=np.float64).reshape(-1)
    ys = np.arange(len(keys))[::-1]
    for k, ax in enumerate(axes[0]):
        for y, key in zip(ys, keys, strict=True):
            s = summaries[key]
            color = "#b31b1b" if s.reference_in_hpd is False else "#1f3b57"
            lo, hi = s.interval[k]
            ax.plot([lo, hi], [y, y], color=color, lw=2)
            ax.plot([s.mean[k]], [y], "o", color=color)
        if ref is not None:
            ax.axvline(ref[k], color="0.4", ls="--", lw=1)
        ax.set_xlabel(param_names[k])
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(ys)
    axes[0][0].set_yticklabels([labels[k] for k in keys])
    fig.suptitle("posterior mean and 95 % interval per anatomy "
                 "(red: a-priori rule outside the 95 % HPD region)", fontsize=9)
    fig.tight_layout()
    assert isinstance(fig, Figure)
    return fig
