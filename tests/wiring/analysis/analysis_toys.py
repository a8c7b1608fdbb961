"""Analytic toy problems for the analysis tests: exact posteriors with the Posterior and
Simulator interfaces of :mod:`wiring.inference` and :mod:`wiring.simulation.simulator`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wiring.inference.priors import PriorSpec


@dataclass
class LinearGaussian:
    """θ ~ N(loc, diag(scale²)), x = A θ + N(0, sigma² I): the posterior is Gaussian."""

    A: np.ndarray
    sigma: float
    loc: np.ndarray
    scale: np.ndarray
    names: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        m, d = self.A.shape
        self.names = self.names or tuple(f"x{k}" for k in range(m))
        self.param_names = self.param_names or tuple(f"t{k}" for k in range(d))

    @property
    def prior_spec(self) -> PriorSpec:
        return PriorSpec(kind="gaussian", names=self.param_names, loc=tuple(self.loc),
                         scale=tuple(self.scale))

    def __call__(self, theta: Any, *, rng: np.random.Generator) -> np.ndarray:
        th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        noise = self.sigma * rng.standard_normal((len(th), self.A.shape[0]))
        return np.asarray(th @ self.A.T + noise, dtype=np.float64)

    def posterior_moments(self, x_o: Any) -> tuple[np.ndarray, np.ndarray]:
        p0 = np.diag(1.0 / self.scale**2)
        prec = p0 + self.A.T @ self.A / self.sigma**2
        cov = np.linalg.inv(prec)
        mean = cov @ (p0 @ self.loc + self.A.T @ np.asarray(x_o) / self.sigma**2)
        return mean, cov


@dataclass
class ExactPosterior:
    """Posterior of a :class:`LinearGaussian` (optionally over-confident by ``shrink``)."""

    toy: LinearGaussian
    shrink: float = 1.0
    calls: list[int] = field(default_factory=list)

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.toy.param_names

    def sample(self, n: int, x_o: Any, *, seed: int) -> np.ndarray:
        self.calls.append(n)
        mean, cov = self.toy.posterior_moments(x_o)
        rng = np.random.default_rng(seed)
        return rng.multivariate_normal(mean, cov * self.shrink**2, size=n)

    def log_prob(self, theta: Any, x_o: Any) -> np.ndarray:
        from scipy.stats import multivariate_normal

        mean, cov = self.toy.posterior_moments(x_o)
        return np.atleast_1d(multivariate_normal(mean, cov * self.shrink**2).logpdf(theta))


@dataclass
class BetaPrior:
    """A Beta(a, b) prior with the ``sample(n, rng)`` of a prior spec (one parameter ``p``)."""

    a: float
    b: float
    names: tuple[str, ...] = ("p",)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.beta(self.a, self.b, size=(n, 1))


@dataclass
class BinomialToy:
    """m measurements of one connection probability θ ~ Beta(a, b): x_j = k_j / n_j,
    k_j ~ Binomial(n_j, θ); the posterior is Beta(a + Σk, b + Σ(n − k))."""

    n_pairs: tuple[int, ...]
    a: float = 2.0
    b: float = 5.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"m{k}" for k in range(len(self.n_pairs)))

    param_names: tuple[str, ...] = ("p",)

    @property
    def prior_spec(self) -> BetaPrior:
        return BetaPrior(self.a, self.b)

    def __call__(self, theta: Any, *, rng: np.random.Generator) -> np.ndarray:
        th = np.asarray(theta, dtype=np.float64).reshape(-1, 1)
        n = np.asarray(self.n_pairs)
        x = rng.binomial(n[None, :], np.clip(th, 0, 1)) / n[None, :]
        bad = (th[:, 0] < 0) | (th[:, 0] > 1)
        x[bad] = np.nan
        return np.asarray(x, dtype=np.float64)

    def sample(self, n: int, x_o: Any, *, seed: int) -> np.ndarray:
        k = np.round(np.asarray(x_o) * np.asarray(self.n_pairs))
        rng = np.random.default_rng(seed)
        return rng.beta(self.a + k.sum(), self.b + (np.asarray(self.n_pairs) - k).sum(),
                        size=(n, 1))

    def log_prob(self, theta: Any, x_o: Any) -> np.ndarray:
        from scipy.stats import beta

        k = np.round(np.asarray(x_o) * np.asarray(self.n_pairs))
        return np.asarray(beta(self.a + k.sum(), self.b + (np.asarray(self.n_pairs) - k).sum())
                          .logpdf(np.asarray(theta)[:, 0]))


@dataclass
class BinomialRule:
    """A one-parameter 'rule' for m binomial measurements: P_j(θ) = clip(f_j(θ)), with
    ``f_j(θ) = θ`` (a correct model of :class:`BinomialToy` data) or a constant (a wrong one).
    Has ``expected`` and ``n_sample`` like :class:`wiring.simulation.simulator.Simulator`."""

    n_pairs: tuple[int, ...]
    constant: float | None = None
    a: float = 2.0
    b: float = 5.0
    param_names: tuple[str, ...] = ("p",)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"m{k}" for k in range(len(self.n_pairs)))

    @property
    def n_sample(self) -> np.ndarray:
        return np.asarray(self.n_pairs)

    def expected(self, theta: Any) -> np.ndarray:
        th = np.asarray(theta, dtype=np.float64).reshape(-1, 1)
        p = np.repeat(th if self.constant is None else np.full_like(th, self.constant),
                      len(self.n_pairs), axis=1)
        p[(th[:, 0] < 0) | (th[:, 0] > 1)] = np.nan
        return p

    def __call__(self, theta: Any, *, rng: np.random.Generator) -> np.ndarray:
        p = self.expected(theta)
        n = np.asarray(self.n_pairs)[None, :]
        bad = ~np.isfinite(p)
        x = rng.binomial(n, np.where(bad, 0.0, p)) / n
        x[bad] = np.nan
        return np.asarray(x, dtype=np.float64)

    def posterior(self) -> BinomialToy:
        return BinomialToy(n_pairs=self.n_pairs, a=self.a, b=self.b)
