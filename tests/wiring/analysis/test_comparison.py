"""Rule comparison on binomial toys with exact (conjugate) posteriors: the wrong rule is ruled
out, the right one is not, and the importance-sampling held-out prediction matches the exact
leave-one-out posterior."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from analysis_toys import BinomialRule, BinomialToy

from wiring.analysis import RuleFit, compare_rules, fit_rule
from wiring.errors import InvalidParameterError, WiringError
from wiring.inference.priors import PriorSpec

N_PAIRS = (60, 80, 100, 50)
X_O = np.array([0.25, 0.3, 0.27, 0.34])
PRIOR = PriorSpec(kind="uniform", names=("p",), low=(0.0,), high=(1.0,))


def _fits() -> list[RuleFit]:
    good = BinomialRule(N_PAIRS)
    # a 'rule' that cannot produce probabilities near the data: P = theta / 10 <= 0.1
    class Tenth(BinomialRule):
        def expected(self, theta: Any) -> np.ndarray:
            return super().expected(theta) / 10

    bad = Tenth(N_PAIRS)

    class EdgePosterior(BinomialToy):
        def sample(self, n: int, x_o: Any, *, seed: int) -> np.ndarray:
            # its posterior piles up at the upper prior bound
            return 1.0 - 0.05 * np.random.default_rng(seed).random((n, 1))

    return [
        RuleFit(rule="good", posterior=good.posterior(), simulator=good, prior_spec=PRIOR),
        RuleFit(rule="bad", posterior=EdgePosterior(n_pairs=N_PAIRS), simulator=bad,
                prior_spec=PRIOR),
    ]


def test_wrong_rule_is_ruled_out() -> None:
    res = compare_rules(_fits(), X_O, n_samples=2000, seed=0)
    assert res.ruled_out == {"good": False, "bad": True}
    assert res.reasons["bad"] and not res.reasons["good"]
    assert np.all(res.in_sample_p[0] > 0.05)
    assert np.all(np.abs(res.held_out_z[0]) < 2.5)
    assert res.elpd_loo[0] > res.elpd_loo[1] + 10
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert "Bonferroni" in d["criterion"]
    assert [r["rule"] for r in d["rules"]] == ["good", "bad"]
    assert d["rules"][0]["elpd_loo_difference"] == 0.0
    assert len(d["per_measurement"]) == 8
    assert res.figure is not None
    axes = res.figure.axes
    assert axes[0].get_ylabel() == "predictive p-value" and axes[0].get_yscale() == "log"
    assert [t.get_text() for t in axes[1].get_xticklabels()] == ["m0", "m1", "m2", "m3"]
    legend = axes[0].get_legend()
    assert legend is not None
    assert any("(ruled out)" in t.get_text() for t in legend.get_texts())


def test_importance_held_out_matches_exact_leave_one_out() -> None:
    from scipy.stats import betabinom

    fit = _fits()[0]
    res = compare_rules([fit], X_O, n_samples=20000, seed=1)
    k = np.round(X_O * np.array(N_PAIRS))
    n = np.array(N_PAIRS)
    for j in range(len(N_PAIRS)):
        a = 2.0 + k.sum() - k[j]
        b = 5.0 + (n - k).sum() - (n[j] - k[j])
        exact_mean = a / (a + b)
        exact_lpd = betabinom(n[j], a, b).logpmf(k[j])
        assert res.held_out_mean[0, j] == pytest.approx(exact_mean, abs=0.01)
        assert res.held_out_lpd[0, j] == pytest.approx(exact_lpd, abs=0.05)
        assert res.held_out_ess[0, j] > 5000


def test_retrain_held_out_uses_the_remaining_columns() -> None:
    rule = BinomialRule(N_PAIRS)
    calls: list[int] = []

    def trainer(theta: Any, x: Any, prior_spec: Any, *, seed: int, **kw: Any) -> Any:
        calls.append(x.shape[1])
        if x.shape[1] == len(N_PAIRS):
            return rule.posterior()
        # which column is missing: compare with the full training data
        full = fit_x
        assert full is not None
        gone = next(c for c in range(full.shape[1])
                    if not any(np.array_equal(full[:, c], x[:, k]) for k in range(x.shape[1])))
        return BinomialToy(n_pairs=tuple(v for c, v in enumerate(N_PAIRS) if c != gone))

    fit = fit_rule("good", rule, PRIOR, 200, seed=0, trainer=trainer)
    fit_x = fit.x
    assert fit.theta is not None and fit.x is not None
    assert fit.theta.shape == (200, 1) and fit.x.shape == (200, 4) and calls == [4]
    res = compare_rules([fit], X_O, n_samples=3000, seed=0, held_out="retrain",
                        trainer=trainer)
    assert calls == [4, 3, 3, 3, 3]
    exact = compare_rules([fit], X_O, n_samples=3000, seed=0)
    np.testing.assert_allclose(res.held_out_mean, exact.held_out_mean, atol=0.01)
    np.testing.assert_allclose(res.held_out_lpd, exact.held_out_lpd, atol=0.1)


def test_no_held_out() -> None:
    res = compare_rules(_fits(), X_O, n_samples=500, held_out="none", plot=False)
    assert np.isnan(res.held_out_p).all() and np.isnan(res.elpd_loo).all()
    assert res.ruled_out["bad"] is True  # the in-sample check alone rules it out
    json.dumps(res.to_dict(), allow_nan=False)


def test_bad_input() -> None:
    fits = _fits()
    with pytest.raises(InvalidParameterError, match="at least one"):
        compare_rules([], X_O)
    with pytest.raises(InvalidParameterError, match="held_out='loo'"):
        compare_rules(fits, X_O, held_out="loo")  # type: ignore[arg-type]
    other = RuleFit(rule="other", posterior=BinomialToy(n_pairs=(5,)),
                    simulator=BinomialRule((5,)), prior_spec=PRIOR)
    with pytest.raises(InvalidParameterError, match="same measurements"):
        compare_rules([fits[0], other], X_O)
    with pytest.raises(InvalidParameterError, match="distinct"):
        compare_rules([fits[0], fits[0]], X_O)
    with pytest.raises(WiringError, match="training simulations"):
        compare_rules([fits[0]], X_O, held_out="retrain")
    with pytest.raises(InvalidParameterError, match="n_sims"):
        fit_rule("good", fits[0].simulator, PRIOR, 1, seed=0)


def test_held_out_with_too_few_effective_samples_does_not_count() -> None:
    res = compare_rules(_fits(), X_O, n_samples=1000, seed=0, min_ess=1e9, plot=False)
    assert res.ruled_out["bad"] is True
    assert all(r.startswith("posterior predictive") for r in res.reasons["bad"])
    assert "effective samples" in res.to_dict()["criterion"]


def test_with_real_simulators(tiny_model: Any) -> None:
    """The plumbing with wiring.simulation.simulator.Simulator (n_sample, expected) on the tiny model."""
    from wiring.inference.priors import build_prior_spec
    from wiring.measurements import load_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    class PriorDraws:
        def __init__(self, spec: Any) -> None:
            self.spec = spec

        def sample(self, n: int, x_o: Any, *, seed: int) -> np.ndarray:
            return np.asarray(self.spec.sample(n, np.random.default_rng(seed)))

        def log_prob(self, theta: Any, x_o: Any) -> Any:
            raise AssertionError("the comparison only samples the posteriors")

    mset = load_measurement_set("vpm-invivo")
    fits = []
    for name, kind in (("dso", "gaussian"), ("peters_neuron", "uniform")):
        rule = get_rule(name)
        spec = build_prior_spec(rule, kind)
        fits.append(RuleFit(rule=name, posterior=PriorDraws(spec),
                            simulator=Simulator(tiny_model, rule, mset), prior_spec=spec))
    res = compare_rules(fits, mset.x_o, n_samples=300, seed=0)
    m = len(mset.names)
    assert res.names == tuple(mset.names) and res.held_out_p.shape == (2, m)
    assert np.isfinite(res.held_out_lpd).all() and np.all(res.held_out_lpd < 0)
    assert np.all((res.held_out_ess >= 1) & (res.held_out_ess <= 300))
    json.dumps(res.to_dict(), allow_nan=False)


def test_abc_held_out_matches_exact_leave_one_out() -> None:
    """Nearest training simulations in the other measurements give the leave-one-out
    predictive of the held-out one (beta-binomial here), within the ABC tolerance."""
    from scipy.stats import betabinom

    rule = BinomialRule(N_PAIRS)
    fit = fit_rule("good", rule, PRIOR, 40000, seed=3,
                   trainer=lambda *a, **k: rule.posterior())
    res = compare_rules([fit], X_O, n_samples=2000, seed=0, held_out="abc")
    k = np.round(X_O * np.array(N_PAIRS))
    n = np.array(N_PAIRS)
    for j in range(len(N_PAIRS)):
        a = 1.0 + k.sum() - k[j]  # the training simulations come from the uniform prior
        b = 1.0 + (n - k).sum() - (n[j] - k[j])
        assert res.held_out_mean[0, j] == pytest.approx(a / (a + b), abs=0.03)
        assert res.held_out_lpd[0, j] == pytest.approx(betabinom(n[j], a, b).logpmf(k[j]),
                                                       abs=0.35)
        assert res.held_out_ess[0, j] == 800
    assert res.held_out_method == "abc"


def test_abc_held_out_needs_training_data() -> None:
    with pytest.raises(WiringError, match="held_out='abc' needs the training simulations"):
        compare_rules(_fits(), X_O, n_samples=200, held_out="abc")


def test_rules_at_their_a_priori_parameters() -> None:
    """Each rule is also simulated at its a-priori θ: the mean and p-value match the binomial
    at that θ (golden values from scipy), a θ far from the data is ruled out there, and the
    report names the voxel size."""
    from scipy.stats import binom

    fits = _fits()
    res = compare_rules(fits, X_O, n_samples=20000, seed=2, held_out="none",
                        a_priori={"good": [0.27], "bad": [1.0]}, voxel_um=50.0)
    assert res.a_priori_theta == {"good": (0.27,), "bad": (1.0,)}
    assert res.a_priori_mean is not None and res.a_priori_p is not None
    # 'good' at 0.27: mean 0.27 (standard error sqrt(.27 .73 / n / 20000) < 0.0003)
    np.testing.assert_allclose(res.a_priori_mean[0], 0.27, atol=0.002)
    n = np.array(N_PAIRS)
    k = np.round(X_O * n)
    lo = binom.cdf(k - 1, n, 0.27) + 0.5 * binom.pmf(k, n, 0.27)
    exact_p = np.minimum(1, 2 * np.minimum(lo, 1 - lo))
    np.testing.assert_allclose(res.a_priori_p[0], exact_p, atol=0.02)
    # 'bad' at 1.0 predicts 0.1 everywhere: ruled out at its a-priori value
    np.testing.assert_allclose(res.a_priori_mean[1], 0.1, atol=0.003)
    assert res.a_priori_ruled_out(0) is False and res.a_priori_ruled_out(1) is True
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["voxel_um"] == 50.0 and "1 µm" in d["resolution_note"]
    assert d["rules"][0]["a_priori_theta"] == [0.27]
    assert d["rules"][1]["a_priori_ruled_out"] is True
    assert {"a_priori_predicted", "a_priori_p_value"} <= set(d["per_measurement"][0])
    assert res.figure is not None
    assert "50 µm" in res.figure.axes[0].get_title()
    # without a-priori values nothing is reported for them
    plain = compare_rules(fits, X_O, n_samples=500, seed=2, held_out="none", plot=False)
    assert plain.a_priori_p is None and plain.to_dict()["rules"][0]["a_priori_theta"] is None
