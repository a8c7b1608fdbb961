"""Posterior predictive check: p-values (golden values and uniformity under a correct model),
the result table and the figure, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_toys import BinomialToy
from matplotlib.collections import LineCollection
from scipy.stats import kstest

from wiring.analysis import posterior_predictive_check, predictive_p_value
from wiring.analysis.predictive import calibrate_p_values
from wiring.errors import InvalidParameterError, ShapeMismatchError, WiringError


def test_p_value_golden() -> None:
    x = np.array([[0.1, 0.0], [0.2, 0.0], [0.2, 0.5], [0.4, 1.0]])
    # column 0 at 0.2: F_< = 1/4, F_= = 2/4 -> lower mid-p 1/2 -> p = 1
    # column 1 at 1.0: F_< = 3/4, F_= = 1/4 -> upper mid-p 1/8 -> p = 1/4
    np.testing.assert_allclose(predictive_p_value(x, [0.2, 1.0]), [1.0, 0.25])
    # outside the support: p = 0
    np.testing.assert_allclose(predictive_p_value(x, [5.0, -1.0]), [0.0, 0.0])
    # NaN draws are ignored
    xn = np.vstack([x, [np.nan, np.nan]])
    np.testing.assert_allclose(predictive_p_value(xn, [0.2, 1.0]), [1.0, 0.25])


def test_calibrate_p_values_is_a_monte_carlo_p_value() -> None:
    ref = np.array([[0.1], [0.2], [0.2], [0.9]])
    # (1 + below + ties / 2) / (r + 1): 0.2 -> (1 + 1 + 1) / 5; 0.05 -> 1 / 5, never 0
    np.testing.assert_allclose(calibrate_p_values([0.2], ref), [0.6])
    np.testing.assert_allclose(calibrate_p_values([0.05], ref), [0.2])
    np.testing.assert_allclose(calibrate_p_values([0.95], ref), [1.0])


def test_hjort_p_values_uniform_under_the_prior_predictive() -> None:
    """Data from the prior predictive (θ ~ Beta(2, 5), then x): Hjort's calibrated p-values
    (reference replicates from the prior predictive) are uniform; the raw posterior predictive
    p-values are conservative (too few small values)."""
    toy = BinomialToy(n_pairs=(40, 60, 120), a=2.0, b=5.0)
    rng = np.random.default_rng(7)
    raw: list[np.ndarray] = []
    cal: list[np.ndarray] = []
    for rep in range(100):
        theta = toy.prior_spec.sample(1, rng)
        x_o = toy(theta, rng=rng)[0]
        res = posterior_predictive_check(toy, toy, x_o, n_samples=400, seed=rep,
                                         n_calibration=100, n_calibration_samples=200,
                                         plot=False)
        raw.append(res.p_value)
        assert res.p_value_calibrated is not None
        cal.append(res.p_value_calibrated)
    raw_a, cal_a = np.concatenate(raw), np.concatenate(cal)
    # 300 p-values (3 per data set, dependent within one); a uniform sample of this size has
    # mean 0.5 +- 0.017 and variance 1/12; the reference distribution of 100 replicates adds
    # a rank error of about +-0.05 per p-value
    assert kstest(cal_a, "uniform").pvalue > 0.01
    assert abs(cal_a.mean() - 0.5) < 0.06
    assert abs(cal_a.var() - 1 / 12) < 0.02
    assert abs(np.mean(cal_a <= 0.1) - 0.1) < 0.06
    # posterior predictive p-values pile up in the middle (known conservativeness)
    assert raw_a.var() < cal_a.var()
    assert np.mean(raw_a <= 0.1) < 0.05
    assert kstest(raw_a, "uniform").pvalue < 0.01


def test_calibration_draws_replicates_from_the_prior() -> None:
    """The replicate data sets of the calibration come from the prior predictive, not from
    the posterior predictive at x_o: observed 0.9, replicates average the prior mean 2/7."""
    seen: list[np.ndarray] = []

    class Recording(BinomialToy):
        def sample(self, n, x_o, *, seed):
            seen.append(np.asarray(x_o, dtype=float))
            return super().sample(n, x_o, seed=seed)

    toy = Recording(n_pairs=(50, 50))
    res = posterior_predictive_check(toy, toy, [0.9, 0.9], n_samples=200, seed=0,
                                     n_calibration=300, n_calibration_samples=50, plot=False)
    replicates = np.array(seen[1:])  # the first call samples the posterior at x_o
    assert replicates.shape == (300, 2)
    # prior predictive mean 2/7; its standard deviation ~0.17, so +-0.01 for 300 replicates
    assert abs(replicates.mean() - 2 / 7) < 0.04
    assert res.p_value_calibrated is not None and res.n_calibration == 300

    class NoPrior(BinomialToy):
        prior_spec = None  # type: ignore[assignment]

    bare = NoPrior(n_pairs=(50,))
    with pytest.raises(InvalidParameterError, match="prior predictive"):
        posterior_predictive_check(bare, bare, [0.3], n_calibration=10, plot=False)


def test_misfit_gives_small_p() -> None:
    toy = BinomialToy(n_pairs=(100, 100))
    # two measurements that cannot share one probability
    res = posterior_predictive_check(toy, toy, [0.05, 0.6], n_samples=2000, seed=0,
                                     n_calibration=50, plot=False)
    assert res.p_value.max() < 0.01
    assert np.all(np.abs(res.z) > 3)
    assert res.p_value_calibrated is not None
    assert res.p_value_calibrated.max() < 0.05


def test_result_table_and_figure() -> None:
    toy = BinomialToy(n_pairs=(50, 50, 80))
    x_o = np.array([0.3, 0.26, 0.35])
    res = posterior_predictive_check(toy, toy, x_o, n_samples=500, seed=1, n_calibration=20)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert [r["measurement"] for r in d["measurements"]] == ["m0", "m1", "m2"]
    assert {"p_value", "p_value_calibrated", "ci_low", "ci_high", "z"} <= set(d["measurements"][0])
    assert res.x_pred.shape == (500, 3) and res.n_dropped == 0
    np.testing.assert_allclose(res.mean, res.x_pred.mean(axis=0))
    assert res.figure is not None
    ax = res.figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["m0", "m1", "m2"]
    assert ax.get_ylabel() == "connection probability"
    # the measured values are drawn as red bars at x_o
    bars = ax.collections[-1]
    assert isinstance(bars, LineCollection)
    segs = bars.get_segments()
    np.testing.assert_allclose([s[0][1] for s in segs], x_o)


def test_off_domain_samples_are_dropped() -> None:
    class Wide(BinomialToy):
        def sample(self, n, x_o, *, seed):
            return np.random.default_rng(seed).uniform(-0.5, 1.0, size=(n, 1))

    toy = Wide(n_pairs=(30,))
    res = posterior_predictive_check(toy, toy, [0.3], n_samples=1000, seed=0, n_calibration=0,
                                     plot=False)
    assert 250 < res.n_dropped < 420 and res.n_samples == 1000 - res.n_dropped
    assert res.p_value_calibrated is None


def test_bad_input() -> None:
    toy = BinomialToy(n_pairs=(30, 40))
    with pytest.raises(ShapeMismatchError, match="x_o has 3 value"):
        posterior_predictive_check(toy, toy, [0.1, 0.2, 0.3])
    with pytest.raises(InvalidParameterError, match=r"not finite for measurement.*m1"):
        posterior_predictive_check(toy, toy, [0.1, np.nan])
    with pytest.raises(InvalidParameterError, match="n_samples"):
        posterior_predictive_check(toy, toy, [0.1, 0.2], n_samples=1)

    class Outside(BinomialToy):
        def sample(self, n, x_o, *, seed):
            return np.full((n, 1), 2.0)

    bad = Outside(n_pairs=(30, 40))
    with pytest.raises(WiringError, match="inside the rule's domain"):
        posterior_predictive_check(bad, bad, [0.1, 0.2], n_calibration=0)
