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
the whole cost; no retraining per condition. q trains with the plateau schedule of the run's
posterior (:mod:`wiring.inference._training`) until it converges; its epochs and why it
stopped are recorded in ``training`` (``stop_reason``, ``converged``).

:func:`anatomy_sensitivity_from_store` is the entry point of the pipeline's analyze stage and of
``wiring analyze --store``: it takes the run's simulations from the simulation store the
posterior was trained on (checked by :func:`check_training_store`), so both produce the same
table from the same inputs.
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

__all__ = [
    "CONDITIONS",
    "DEFAULT_TRAINING_ROWS",
    "DEFAULT_WIDE_SIMULATIONS",
    "AnatomySensitivity",
    "anatomy_sensitivity",
    "anatomy_sensitivity_from_store",
    "check_training_store",
    "conditional_train_kwargs",
    "plot_forest",
    "sensitivity_unavailable",
]

logger = logging.getLogger(__name__)

#: The conditions of the sensitivity table, in order: (key, label, fixed ν or None).
CONDITIONS: tuple[tuple[str, str, Mapping[str, float] | None], ...] = (
    ("nominal", "nominal anatomy", {}),
    ("marginalised", "anatomy nuisance marginalised", None),
    ("vpm_boutons_x0.5", "VPM boutons x0.5", {"vpm_boutons": math.log(0.5)}),
    ("vpm_boutons_x2", "VPM boutons x2", {"vpm_boutons": math.log(2.0)}),
)

#: Extra simulations with VPM boutons ×1/2.5 .. ×2.5 (``[analysis] sensitivity_simulations``).
DEFAULT_WIDE_SIMULATIONS = 2_500
#: Run simulations (the first finished rows) q also trains on (``[analysis] sensitivity_rows``).
DEFAULT_TRAINING_ROWS = 7_500

#: The training settings of a posterior manifest that q(θ | x, ν) reuses.
_ESTIMATOR_KEYS = ("estimator", "hidden_features", "num_transforms", "num_bins",
                   "num_components")
_TRAINING_KEYS = ("batch_size", "learning_rate", "validation_fraction", "stop_after_epochs",
                  "max_epochs", "lr_schedule", "lr_decay", "lr_patience", "min_learning_rate",
                  "clip_max_norm")


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
    row_index: npt.ArrayLike | None = None,
    progress: bool = False,
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
        ``simulation_seed`` at indices ``row_index`` (default 0 .. n − 1; ν is recomputed from
        the keyed draws).
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
    row_index
        The simulation index of every row of ``theta`` (n,), when they are not 0 .. n − 1
        (the finished rows of an incomplete store).
    progress
        Show the conditional estimator's training bar (epochs, train and validation loss, best
        loss, learning rate), as :func:`wiring.inference.train_posterior` shows it; a
        ``progress`` in ``train_kwargs`` takes precedence.

    The result's ``training`` records the conditional estimator's training set and settings,
    its epochs, best epoch and validation loss, and why it stopped (``stop_reason``,
    ``stop_message``, ``converged``: false when it hit ``max_epochs``, which is also logged as
    a warning).
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
    if row_index is None:
        nu = spec.sample(int(simulation_seed), 0, len(th))
    else:
        idx = np.asarray(row_index, dtype=np.int64).reshape(-1)
        if idx.shape != (len(th),) or (len(idx) and idx.min() < 0):
            raise InvalidParameterError(
                f"row_index must hold one non-negative simulation index per row of theta "
                f"({len(th)}), got shape {idx.shape}"
            )
        nu = spec.sample(int(simulation_seed), 0, int(idx.max()) + 1 if len(idx) else 0)[idx]
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
    kwargs = {"progress": bool(progress), **dict(train_kwargs or {})}
    logger.info("anatomy sensitivity: training q(theta | x, nu) on %d simulations", len(th))
    conditional = train_posterior(th, np.hstack([xx, nu]), prior_spec, seed=s_train, **kwargs)
    outcome = _training_outcome(conditional.manifest.get("training", {}))
    if outcome.get("converged") is False:
        logger.warning("anatomy sensitivity: q(theta | x, nu) did not converge: %s; raise its "
                       "epoch cap for a trustworthy table", outcome.get("stop_message"))
    else:
        logger.info("anatomy sensitivity: q(theta | x, nu) trained %s epochs; stopped: %s",
                    outcome.get("epochs"), outcome.get("stop_message"))
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
        **outcome,
    }
    fig = plot_forest(summaries, labels, names, reference) if plot else None
    return AnatomySensitivity(param_names=names, summaries=summaries, labels=labels,
                              nuisance=spec.to_dict(), training=training, figure=fig)


def _training_outcome(training: Mapping[str, Any]) -> dict[str, Any]:
    """How the conditional estimator's training went (from its manifest's ``training``).

    No wall time: the report's sections hold only what the seed determines (the same run on
    threads or worker processes gives the same summary); the time is in ``run.json``."""
    keys = ("n_train", "n_validation", "n_dropped_invalid", "epochs", "best_epoch",
            "best_validation_loss", "stop_reason", "stop_message", "converged")
    return dict(jsonable({k: training[k] for k in keys if k in training}))


def sensitivity_unavailable(simulator: Any, store: Any = None) -> str | None:
    """Why the sensitivity table cannot be computed for these simulations, or None.

    It needs a simulator with the ``vpm_boutons`` nuisance parameter, and a store whose rows
    are keyed by their index (``streams = "row"``: ν of a row is recomputed from its key).
    """
    spec = getattr(simulator, "nuisance", None)
    if spec is None or "vpm_boutons" not in spec.names:
        have = "none" if spec is None else ", ".join(spec.names)
        return (f"the simulations' anatomy nuisance parameters ({have}) do not include "
                f"vpm_boutons")
    if store is not None and store.streams != "row":
        return (f"simulation store {str(store.path)!r} draws its random numbers per chunk "
                f"(streams = {store.streams!r}), so the nuisance values of its rows cannot be "
                f"recomputed; re-simulate it with this version")
    return None


def _canonical(value: Any) -> str:
    import json

    return json.dumps(jsonable(value), sort_keys=True)


def check_training_store(store: Any, manifest: Mapping[str, Any], simulator: Any = None) -> None:
    """Raise :class:`~wiring.errors.StoreMismatchError` unless ``store`` holds the simulations
    the posterior of ``manifest`` was trained on (and ``simulator``, if given, simulates with
    the store's protocol).

    Checked in this order, each with its own one-line message: rule, anatomy, measurement
    set, nuisance parameters, the rest of the sampling protocol, the run seed, the content
    hash (the store's finished rows and configuration, as recorded by
    :func:`wiring.inference.train_from_store`), and the protocol of ``simulator`` (the wide-ν
    simulations must be simulated like the store's).
    """
    from wiring.errors import StoreMismatchError
    from wiring.simulation._protocol_diff import differing_fields, nuisance_text

    def first_difference(a: Any, b: Any) -> str:
        return next(iter(differing_fields(a, b)), "nothing")

    where = f"simulation store {str(store.path)!r}"
    rule = (manifest.get("rule") or {}).get("name")
    have_rule = (store.rule_info or {}).get("name")
    if rule is not None and rule != have_rule:
        raise StoreMismatchError(
            f"{where} holds simulations of rule {have_rule!r}, but the posterior is of rule "
            f"{rule!r}; pass the store the posterior was trained on")
    for key, have, what in (("anatomy_hash", store.anatomy_hash, "anatomy"),
                            ("measurement_hash", store.measurement_hash, "measurement set")):
        want = manifest.get(key)
        if want is not None and want != have:
            raise StoreMismatchError(
                f"{where} was simulated on another {what} ({str(have)[:12]}) than the posterior "
                f"was trained on ({str(want)[:12]}); pass the store the posterior was trained on")
    stored = store.attrs.get("protocol")
    trained = manifest.get("protocol")
    if nuisance_text(stored) != nuisance_text(trained):
        raise StoreMismatchError(
            f"{where} was simulated with anatomy nuisance parameters "
            f"{nuisance_text(stored)}, but the posterior was trained with "
            f"{nuisance_text(trained)}; pass the store the posterior was trained on")
    if trained is not None and _canonical(stored) != _canonical(trained):
        raise StoreMismatchError(
            f"{where} was simulated with another sampling protocol than the posterior's "
            f"training set ({first_difference(stored, trained)} differs); pass the store the "
            f"posterior was trained on")
    seed = manifest.get("store_seed")
    if seed is not None and int(seed) != int(store.seed):
        raise StoreMismatchError(
            f"{where} has run seed {store.seed}, but the posterior was trained on simulations "
            f"of seed {seed}; pass the store the posterior was trained on")
    want_hash = manifest.get("store_hash")
    if want_hash is not None:
        have_hash = store.content_hash()
        if have_hash != want_hash:
            raise StoreMismatchError(
                f"{where} holds other simulations than the posterior was trained on (content "
                f"hash {have_hash[:12]}, trained on {str(want_hash)[:12]}: e.g. rows finished "
                f"or redone since training); pass the store as it was when the posterior was "
                f"trained")
    fn = getattr(simulator, "protocol", None)
    if callable(fn) and stored is not None and _canonical(fn()) != _canonical(stored):
        raise StoreMismatchError(
            f"the simulator of this analysis emulates the experiments differently from "
            f"{where} ({first_difference(fn(), stored)} differs); use the settings of the "
            f"training simulations (e.g. the same --n-pairs)")


def conditional_train_kwargs(manifest: Mapping[str, Any], *,
                             max_epochs: int | None = None) -> dict[str, Any]:
    """Training arguments of q(θ | x, ν) from a posterior manifest: the posterior's network and
    schedule (estimator, size, batch size, plateau learning-rate schedule, patience, epoch
    cap), ``max_epochs`` replacing the cap when given."""
    est = manifest.get("estimator") or {}
    tr = manifest.get("training") or {}
    out: dict[str, Any] = {k: est[k] for k in _ESTIMATOR_KEYS if k in est}
    out.update({k: tr[k] for k in _TRAINING_KEYS if k in tr})
    if max_epochs:
        out["max_epochs"] = int(max_epochs)
    return out


def anatomy_sensitivity_from_store(
    posterior: PosteriorLike,
    simulator: Any,
    store: Any,
    x_o: npt.ArrayLike,
    *,
    param_names: Sequence[str],
    reference: npt.ArrayLike | None,
    rows: int = DEFAULT_TRAINING_ROWS,
    n_wide: int = DEFAULT_WIDE_SIMULATIONS,
    n_samples: int = 2000,
    seed: int = 0,
    train_kwargs: Mapping[str, Any] | None = None,
    marginal_summary: Any = None,
    plot: bool = True,
    progress: bool = False,
) -> AnatomySensitivity:
    """:func:`anatomy_sensitivity` on the simulations of a
    :class:`~wiring.simulation.store.SimulationStore` (the posterior's training set).

    The conditional estimator trains on the store's first ``rows`` finished rows (0: all; any
    prefix is valid training data since ν of row j is keyed by j) plus ``n_wide`` wide-ν
    simulations. The store's prior and run seed are used. Callers check the store first
    (:func:`sensitivity_unavailable`, and :func:`check_training_store` for a store given by a
    user).

    Raises
    ------
    InvalidParameterError
        The table cannot be computed (the reason of :func:`sensitivity_unavailable`).
    """
    from wiring.simulation.store import row_keys

    reason = sensitivity_unavailable(simulator, store)
    if reason is not None:
        raise InvalidParameterError(f"no anatomy sensitivity: {reason}")
    theta, x = store.load()  # the finished rows, in row order
    index = np.flatnonzero(store.done_mask())
    if rows:
        theta, x, index = theta[:rows], x[:rows], index[:rows]
    logger.info("anatomy sensitivity: nominal, marginalised, VPM boutons x0.5 and x2 "
                "(%d run simulations + %d wide ones)", len(index), n_wide)
    return anatomy_sensitivity(
        posterior, simulator, theta, x, x_o,
        simulation_seed=row_keys(store.seed)[1], prior_spec=store.prior_spec,
        param_names=param_names, reference=reference, n_samples=n_samples, n_wide=n_wide,
        seed=seed, train_kwargs=train_kwargs, marginal_summary=marginal_summary, plot=plot,
        row_index=index, progress=progress,
    )


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
