"""Posterior summaries: statistics against numpy, conditional (sbi) and partial correlations,
HPD rank, pairplot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_toys import ExactPosterior, LinearGaussian
from scipy.stats import chi2

from wiring.analysis import partial_correlation, summarize_posterior
from wiring.analysis.summary import conditional_correlation, hpd_level
from wiring.errors import InvalidParameterError, ShapeMismatchError
from wiring.inference.priors import PriorSpec

NAMES = ("theta_pre", "theta_post", "theta_postall")
PRIOR = PriorSpec(kind="gaussian", names=NAMES, loc=(1.0, 1.0, 1.0), scale=(0.3, 0.3, 0.3))


def _samples(n: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.01]])
    return rng.multivariate_normal([1.1, 0.9, 1.0], cov, size=n)


def test_statistics_match_numpy() -> None:
    s = _samples()
    res = summarize_posterior(s, NAMES, prior_spec=PRIOR, plot=False)
    np.testing.assert_allclose(res.mean, s.mean(axis=0))
    np.testing.assert_allclose(res.std, s.std(axis=0, ddof=1))
    np.testing.assert_allclose(res.median, np.median(s, axis=0))
    np.testing.assert_allclose(res.interval, np.quantile(s, [0.025, 0.975], axis=0).T)
    np.testing.assert_allclose(res.correlation, np.corrcoef(s, rowvar=False))
    np.testing.assert_allclose(res.contraction, 1 - s.var(axis=0, ddof=1) / 0.09)
    assert res.reference is None and res.reference_in_hpd is None
    json.dumps(res.to_dict(), allow_nan=False)


def test_partial_correlation_matches_precision_matrix() -> None:
    prec = np.array([[2.0, -0.8, 0.3], [-0.8, 1.5, 0.5], [0.3, 0.5, 1.0]])
    cov = np.linalg.inv(prec)
    s = np.random.default_rng(1).multivariate_normal(np.zeros(3), cov, size=200_000)
    expected = -prec / np.sqrt(np.outer(np.diag(prec), np.diag(prec)))
    np.fill_diagonal(expected, 1.0)
    # Monte-Carlo sd of a sample (partial) correlation ~ (1 - rho^2) / sqrt(n) < 0.0023
    np.testing.assert_allclose(partial_correlation(s), expected, atol=0.01)


def _gaussian_with_partial(rho: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and covariance of a Gaussian whose correlations given the other parameters
    are ``rho`` (precision P_ij = -rho_ij sqrt(P_ii P_jj))."""
    prec = -rho.copy()
    np.fill_diagonal(prec, 1.0)
    prec = prec / np.outer(sd, sd)
    return prec, np.linalg.inv(prec)


def test_conditional_correlation_of_a_gaussian() -> None:
    """sbi's conditional_corrcoeff on a Gaussian equals its known conditional correlations
    (the paper's -0.9 / +0.9 / +0.96 pattern), at any condition; the partial correlation of
    samples agrees (exact for a Gaussian)."""
    rho = np.array([[1.0, -0.9, 0.9], [-0.9, 1.0, 0.96], [0.9, 0.96, 1.0]])
    prec, cov = _gaussian_with_partial(rho, np.array([0.05, 0.1, 0.2]))
    mu = np.ones(3)

    def log_prob(t: np.ndarray) -> np.ndarray:
        return np.asarray(-0.5 * np.einsum("ni,ij,nj->n", t - mu, prec, t - mu))

    samples = np.random.default_rng(0).multivariate_normal(mu, cov, size=4000)
    res = summarize_posterior(samples, NAMES, prior_spec=PRIOR, log_prob=log_prob, plot=False,
                              n_conditions=20)
    # the grid (50 points over the samples' range) resolves the conditionals to ~1e-3
    assert res.conditional_correlation is not None
    np.testing.assert_allclose(res.conditional_correlation, rho, atol=0.005)
    # partial correlations from 4000 samples: standard error ~(1 - rho^2)/sqrt(n) <= 0.003
    np.testing.assert_allclose(res.partial_correlation, rho, atol=0.02)
    d = res.to_dict()
    assert "conditional_corrcoeff" in d["conditional_correlation_method"]
    assert "precision matrix" in d["partial_correlation_method"]
    json.dumps(d, allow_nan=False)
    # the marginal correlations are very different: conditioning matters
    assert abs(res.correlation[0, 1] - rho[0, 1]) > 0.3
    # one condition far from the mean gives the same value for a Gaussian
    far = conditional_correlation(log_prob, [[1.1, 1.3, 0.5]],
                                  limits=[[0.5, 1.5], [-0.5, 2.5], [-2.0, 4.0]], resolution=80)
    np.testing.assert_allclose(far, rho, atol=0.01)


def test_conditional_correlation_needs_the_density() -> None:
    res = summarize_posterior(_samples(), NAMES, prior_spec=PRIOR, plot=False)
    assert res.conditional_correlation is None
    assert res.to_dict()["conditional_correlation"] is None
    assert "not computed" in res.to_dict()["conditional_correlation_method"]


@pytest.mark.parametrize("use_log_prob", [True, False])
def test_reference_hpd_level(use_log_prob: bool) -> None:
    toy = LinearGaussian(A=np.eye(2), sigma=0.2, loc=np.ones(2), scale=np.full(2, 0.5))
    post = ExactPosterior(toy)
    x_o = np.array([1.3, 0.7])
    mean, cov = toy.posterior_moments(x_o)
    n = 4000
    s = post.sample(n, x_o, seed=3)
    lp = (lambda t: post.log_prob(t, x_o)) if use_log_prob else None
    # a point at squared Mahalanobis distance chi2_2(0.9): its HPD level is 0.9
    direction = np.linalg.cholesky(cov) @ np.array([1.0, 0.0])
    ref = mean + np.sqrt(chi2.ppf(0.9, 2)) * direction
    res = summarize_posterior(s, ("a", "b"), prior_spec=toy.prior_spec, reference=ref,
                              log_prob=lp, plot=False)
    tol = 3 * np.sqrt(0.9 * 0.1 / n) + (0.0 if use_log_prob else 0.03)  # KDE smooths
    assert res.reference_hpd_level is not None
    assert abs(res.reference_hpd_level - 0.9) < tol
    assert res.reference_in_hpd is True
    assert res.density_method == ("log_prob" if use_log_prob else "kde")
    far = summarize_posterior(s, ("a", "b"), prior_spec=toy.prior_spec, reference=mean + 5 * (
        direction), log_prob=lp, plot=False)
    assert far.reference_hpd_level is not None and far.reference_in_interval is not None
    assert far.reference_hpd_level > 0.99 and far.reference_in_hpd is False
    assert not far.reference_in_interval.all()


def test_hpd_level_counts_ties_half() -> None:
    assert hpd_level(np.array([0.0, 1.0, 2.0, 3.0]), 1.0) == pytest.approx(0.625)


def test_pairplot_axes_and_labels() -> None:
    s = _samples(2000)
    res = summarize_posterior(s, NAMES, prior_spec=PRIOR, reference=[1.0, 1.0, 1.0],
                              labels=["pre", "post", "postAll"])
    fig = res.figure
    assert fig is not None and len(fig.axes) == 9
    bottom = [ax.get_xlabel() for ax in fig.axes[6:9]]
    assert bottom == ["pre", "post", "postAll"]
    assert fig.axes[3].get_ylabel() == "post"
    legend = fig.axes[0].get_legend()
    assert legend is not None
    assert {t.get_text() for t in legend.get_texts()} >= {"posterior", "prior", "a-priori rule"}
    assert "pairplot" in res.figures()
    upper = fig.axes[1].texts[0].get_text()  # row 0, column 1
    assert upper == (f"r = {res.correlation[0, 1]:+.2f}\n"
                     f"partial r = {res.partial_correlation[0, 1]:+.2f}")
    # the reference is marked in every 2-D panel (a star at the reference)
    for ax in (fig.axes[3], fig.axes[6], fig.axes[7]):
        assert any(line.get_marker() == "*" for line in ax.get_lines())


def test_uniform_prior_box_is_drawn() -> None:
    prior = PriorSpec(kind="uniform", names=("a", "b"), low=(0.0, 0.0), high=(2.0, 2.0))
    res = summarize_posterior(_samples(500)[:, :2], ("a", "b"), prior_spec=prior)
    assert res.prior_std == pytest.approx(np.full(2, 2 / np.sqrt(12)))
    assert res.figure is not None
    assert len(res.figure.axes[2].patches) == 1  # the prior box in the 2-D panel


def test_bad_inputs() -> None:
    with pytest.raises(ShapeMismatchError, match=r"expected \(n_samples, 3\)"):
        summarize_posterior(np.zeros((10, 2)), NAMES, prior_spec=PRIOR)
    with pytest.raises(ShapeMismatchError, match="reference has 2 value"):
        summarize_posterior(_samples(50), NAMES, prior_spec=PRIOR, reference=[1, 1])
    s = _samples(50)
    s[3, 1] = np.nan
    with pytest.raises(InvalidParameterError, match="NaN"):
        summarize_posterior(s, NAMES, prior_spec=PRIOR)
    with pytest.raises(InvalidParameterError, match="prior kind"):
        summarize_posterior(_samples(50), NAMES, prior_spec={"kind": "cauchy"})
