"""The anatomy sensitivity table: its structure, the verdict shared with the posterior summary,
and the conditional estimator against the exact posterior of a linear-Gaussian toy with a
nuisance parameter."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from analysis_toys import ExactPosterior, LinearGaussian

from wiring.analysis.sensitivity import CONDITIONS, anatomy_sensitivity
from wiring.analysis.summary import summarize_posterior
from wiring.errors import InvalidParameterError
from wiring.simulation.nuisance import NuisanceSpec

A = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
B = np.array([[0.4, 0.0], [0.4, 0.3], [0.4, 0.0]])  # x shifts with ν_b (and a little ν_t)
SIGMA = 0.15
TOY = LinearGaussian(A=A, sigma=SIGMA, loc=np.array([1.0, 1.0]), scale=np.array([0.3, 0.3]),
                     names=("m0", "m1", "m2"), param_names=("a", "b"))


class NuisanceToy:
    """x = A θ + B ν + N(0, σ²): the posterior given ν is the LinearGaussian one at x − B ν."""

    names = TOY.names

    def __init__(self) -> None:
        self.nuisance = NuisanceSpec.from_names(["vpm_boutons", "target_sites"])

    def simulate(self, theta: Any, *, seed: int, start_index: int = 0,
                 nuisance: Any = None) -> np.ndarray:
        th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        nu = (self.nuisance.sample(seed, start_index, len(th)) if nuisance is None
              else np.broadcast_to(np.asarray(nuisance, np.float64), (len(th), 2)))
        rng = np.random.default_rng([seed, start_index])
        out: np.ndarray = th @ A.T + nu @ B.T + SIGMA * rng.standard_normal((len(th), 3))
        return out


def _training(sim: NuisanceToy, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    theta = TOY.prior_spec.sample_rows(seed + 1, 0, n)
    return theta, sim.simulate(theta, seed=seed)


TRAIN = {"hidden_features": 20, "num_transforms": 2, "max_epochs": 60, "stop_after_epochs": 8,
         "batch_size": 200, "num_threads": 1}


def _result(n: int, n_wide: int, train: dict[str, Any]) -> Any:
    sim = NuisanceToy()
    theta, x = _training(sim, n, seed=4)
    x_o = np.array([0.95, 0.85, 0.9])
    marginal = ExactPosterior(TOY)  # any posterior: the table reports it as it is
    summary = summarize_posterior(marginal.sample(2000, x_o, seed=1), TOY.param_names,
                                  prior_spec=TOY.prior_spec, reference=[1.0, 1.0],
                                  log_prob=lambda t: marginal.log_prob(t, x_o), plot=False)
    res = anatomy_sensitivity(
        marginal, sim, theta, x, x_o, simulation_seed=4, prior_spec=TOY.prior_spec,
        param_names=TOY.param_names, reference=[1.0, 1.0], n_samples=2000, n_wide=n_wide,
        seed=0, train_kwargs=train, marginal_summary=summary)
    return res, summary, x_o


@pytest.fixture(scope="module")
def result() -> Any:
    """A quick, rough estimator: enough for the table's structure."""
    return _result(400, 200, {**TRAIN, "hidden_features": 10, "num_transforms": 1,
                              "max_epochs": 3})


def test_structure_and_shared_verdict(result: Any) -> None:
    res, summary, _ = result
    assert list(res.summaries) == [key for key, _, _ in CONDITIONS]
    assert res.summaries["marginalised"] is summary
    for key in res.summaries:
        assert res.verdict(key) == res.summaries[key].reference_in_hpd
    rows = res.table()
    assert len(rows) == 4 * 2
    assert {r["condition"] for r in rows} == {label for _, label, _ in CONDITIONS}
    assert set(rows[0]) == {"condition", "parameter", "mean", "ci_low", "ci_high",
                            "a_priori_rule_plausible"}
    d = res.to_dict()
    assert d["conditions"]["marginalised"]["a_priori_rule_plausible"] == summary.reference_in_hpd
    assert d["training"]["n_run_simulations"] == 400
    assert d["training"]["n_wide_simulations"] == 200
    assert set(res.figures()) == {"forest"}


@pytest.mark.slow
def test_fixed_rows_match_the_exact_conditional_posterior() -> None:
    res, _, x_o = _result(3000, 1500, TRAIN)
    for key, _, fixed in CONDITIONS:
        if fixed is None:
            continue
        nu = np.array([fixed.get("vpm_boutons", 0.0), 0.0])
        mean, cov = TOY.posterior_moments(x_o - B @ nu)
        sd = np.sqrt(np.diag(cov))
        got = res.summaries[key]
        # a small NPE (×0.5 puts x − Bν in the tail of the training set): means within half a
        # posterior sd, interval widths within 25 %
        assert np.all(np.abs(got.mean - mean) < sd / 2), (key, got.mean, mean)
        width = got.interval[:, 1] - got.interval[:, 0]
        assert np.all(np.abs(width / (2 * 1.96 * sd) - 1) < 0.25), (key, width, sd)
    # doubling the boutons shifts x by 0.4 log 2: the posterior mean of a moves down
    assert res.summaries["vpm_boutons_x2"].mean[0] < res.summaries["nominal"].mean[0] - 0.15


def test_needs_vpm_boutons() -> None:
    sim = NuisanceToy()
    sim.nuisance = NuisanceSpec.from_names(["target_sites"])
    theta, x = np.ones((50, 2)), np.ones((50, 3))
    with pytest.raises(InvalidParameterError, match="vpm_boutons"):
        anatomy_sensitivity(ExactPosterior(TOY), sim, theta, x, x[0], simulation_seed=1,
                            prior_spec=TOY.prior_spec, param_names=TOY.param_names,
                            reference=None)
    assert math.isclose(NuisanceSpec.from_names(["vpm_boutons"]).sd[0], math.log(1.5))
