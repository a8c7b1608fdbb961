"""Calibration: SBC ranks and coverage pass for an exact posterior, fail for an over-confident
one, and an NPE trained on a small budget for a linear-Gaussian toy shows no miscalibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_toys import ExactPosterior, LinearGaussian

from wiring.analysis import calibration, coverage_from_ranks, min_sbc_runs
from wiring.errors import InvalidParameterError

A = np.array([[1.0, 0.5], [0.0, 1.0], [1.0, -1.0]])


def _toy() -> LinearGaussian:
    return LinearGaussian(A=A, sigma=0.3, loc=np.ones(2), scale=np.full(2, 0.5))


def test_coverage_from_ranks_golden() -> None:
    ranks = np.array([[0.0, 50.0], [25.0, 50.0], [50.0, 99.0], [75.0, 10.0]])
    cov = coverage_from_ranks(ranks, 100, np.array([0.0, 0.5, 1.0]))
    # level 0.5 keeps u in [0.25, 0.75]: column 0 -> 3/4, column 1 -> 2/4
    np.testing.assert_allclose(cov, [[0.25, 0.5], [0.75, 0.5], [1.0, 1.0]])


def test_exact_posterior_passes() -> None:
    toy = _toy()
    res = calibration(ExactPosterior(toy), toy.prior_spec, toy, n_sbc=300,
                      n_posterior_samples=500, seed=0)
    assert res.passed, res.to_dict()
    assert res.judged and res.verdict == "passed" and res.min_runs == 181
    assert res.ranks.shape == (300, 2) and res.ranks.max() <= 500
    assert np.all(res.coverage_deviation < 0.1)
    assert abs(res.tarp_atc) < 0.1
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert "Bonferroni" in d["criteria"] and d["passed"] is True
    assert [r["parameter"] for r in d["parameters"]] == ["t0", "t1"]
    assert set(res.figures()) == {"sbc_ranks", "coverage"}
    assert res.figure is not None and res.coverage_figure is not None
    assert [ax.get_xlabel() for ax in res.figure.axes] == ["rank of t0", "rank of t1"]
    cov_ax = res.coverage_figure.axes[0]
    assert cov_ax.get_xlabel() == "credibility level"
    assert cov_ax.get_ylabel() == "expected coverage"


def test_seeded_and_reproducible() -> None:
    toy = _toy()
    a = calibration(ExactPosterior(toy), toy.prior_spec, toy, n_sbc=50,
                    n_posterior_samples=100, seed=5, plot=False)
    b = calibration(ExactPosterior(toy), toy.prior_spec, toy, n_sbc=50,
                    n_posterior_samples=100, seed=5, plot=False)
    np.testing.assert_array_equal(a.ranks, b.ranks)
    np.testing.assert_array_equal(a.tarp_ecp, b.tarp_ecp)


@pytest.mark.parametrize("shrink", [0.5, 2.0])
def test_miscalibrated_posterior_fails(shrink: float) -> None:
    toy = _toy()
    res = calibration(ExactPosterior(toy, shrink=shrink), toy.prior_spec, toy, n_sbc=300,
                      n_posterior_samples=500, seed=0, plot=False)
    assert not res.passed
    assert np.all(res.coverage_deviation > 0.1)
    # over-confident: too little coverage (TARP area below the diagonal), and vice versa
    assert np.sign(res.tarp_atc) == np.sign(shrink - 1)


def test_c2st_scores_are_reported() -> None:
    toy = _toy()
    res = calibration(ExactPosterior(toy), toy.prior_spec, toy, n_sbc=100,
                      n_posterior_samples=200, seed=1, c2st=True, plot=False)
    assert res.c2st_ranks is not None and res.c2st_dap is not None
    assert np.all(np.abs(res.c2st_dap - 0.5) < 0.2)
    assert "c2st_dap" in res.to_dict()["parameters"][0]


def test_min_sbc_runs_golden() -> None:
    # by hand: K = sqrt(ln(2 d / 0.01) / 2) (the Kolmogorov tail 2 exp(-2 K^2); its next term
    # is below 1e-10 here), z = 0.841621 (80 %), n = ceil(((K + z / 2) / 0.16)^2)
    assert [min_sbc_runs(d) for d in (1, 2, 3, 4, 5)] == [164, 181, 191, 198, 203]
    assert min_sbc_runs(3, deviation=0.1) == 489  # a miscalibration half as large: 2.6x the runs
    with pytest.raises(InvalidParameterError, match="min_sbc_runs"):
        min_sbc_runs(0)


def test_the_miscalibrations_min_sbc_runs_names_are_0_16_from_uniform() -> None:
    from scipy.stats import norm

    u = np.linspace(1e-6, 1 - 1e-6, 200_001)
    for factor in (2.0, 0.5):  # a posterior twice too narrow, twice too wide
        assert np.max(np.abs(norm.cdf(factor * norm.ppf(u)) - u)) == pytest.approx(0.1613,
                                                                                   abs=1e-4)
    shifted = norm.cdf(norm.ppf(u) + 0.4)  # shifted by 0.4 posterior standard deviations
    assert np.max(np.abs(shifted - u)) == pytest.approx(0.1585, abs=1e-4)


def test_ks_test_has_the_stated_power_at_min_sbc_runs() -> None:
    """Monte Carlo: ranks of a posterior twice too narrow, d = 3 (Bonferroni level 0.01/3).
    At min_sbc_runs(3) the power is at least 80 % (the bound is conservative); at 20 runs,
    the quick config's former count, the test misses this miscalibration most of the time."""
    from scipy.stats import kstest, norm

    rng = np.random.default_rng(0)
    reps = 400

    def power(n: int) -> float:
        ranks = norm.cdf(norm.ppf(rng.uniform(size=(reps, n))) / 2.0)  # CDF Φ(2 Φ⁻¹(u))
        return float(np.mean([kstest(r, "uniform").pvalue < 0.01 / 3 for r in ranks]))

    se = np.sqrt(0.8 * 0.2 / reps)  # Monte-Carlo standard error at 80 %
    assert power(min_sbc_runs(3)) >= 0.8 - 3 * se
    assert power(20) < 0.3


def test_too_few_runs_are_not_judged() -> None:
    toy = _toy()
    res = calibration(ExactPosterior(toy), toy.prior_spec, toy, n_sbc=20,
                      n_posterior_samples=100, seed=0, plot=False)
    assert res.passed is None and not res.judged and res.min_runs == min_sbc_runs(2) == 181
    assert res.verdict == "not judged (20 runs; at least 181 needed)"
    d = res.to_dict()
    assert d["verdict"] == res.verdict and d["passed"] is None and d["min_runs"] == 181
    assert "judged only with at least 181 valid runs" in d["criteria"]
    assert len(res.ks_pvals) == 2 and res.ranks.shape == (20, 2)  # still reported
    forced = calibration(ExactPosterior(toy), toy.prior_spec, toy, n_sbc=20,
                         n_posterior_samples=100, seed=0, plot=False, min_runs=0)
    assert forced.judged and forced.verdict in ("passed", "FAILED")
    np.testing.assert_array_equal(forced.ranks, res.ranks)


def test_bad_input() -> None:
    toy = _toy()

    class Anonymous:
        def sample(self, n, x_o, *, seed):
            return np.zeros((n, 2))

    with pytest.raises(InvalidParameterError, match="parameter names"):
        calibration(Anonymous(), toy.prior_spec, toy)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="n_sbc"):
        calibration(ExactPosterior(toy), toy.prior_spec, toy, n_sbc=1)


@pytest.mark.slow
def test_npe_on_linear_gaussian_is_calibrated() -> None:
    """NPE (small MAF, 3,000 simulations; 20-60 s on one thread) on a conjugate toy passes SBC and
    coverage. (SBC checks calibration, not sharpness: the prior itself passes it. Closeness to
    the exact posterior is the inference module's test.)"""
    from wiring.inference import train_posterior

    toy = _toy()
    rng = np.random.default_rng(0)
    theta = toy.prior_spec.sample(3000, rng)
    x = toy(theta, rng=rng)
    post = train_posterior(theta, x, toy.prior_spec, estimator="maf", hidden_features=32,
                           num_transforms=2, batch_size=250, stop_after_epochs=15,
                           max_epochs=300, num_threads=1, seed=0, progress=False,
                           metadata={"measurement_names": list(toy.names)})
    res = calibration(post, toy.prior_spec, toy, n_sbc=200, n_posterior_samples=500, seed=1,
                      plot=False)
    assert res.passed, res.to_dict()
