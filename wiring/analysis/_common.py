"""Shared pieces of the analysis modules: duck-typed protocols, prior helpers and seeding.

The analysis layer consumes :class:`wiring.inference.Posterior`, :class:`wiring.inference.priors.PriorSpec`
and :class:`wiring.simulation.simulator.Simulator` through the small protocols below, so that tests (and
notebook users) can pass light stand-ins with the same methods.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from wiring._typing import BoolArray, FloatArray
from wiring.errors import InvalidParameterError, ShapeMismatchError

__all__ = [
    "PosteriorLike",
    "SimulatorLike",
    "as_generator",
    "check_samples",
    "check_x_o",
    "child_seeds",
    "drop_nan_rows",
    "jsonable",
    "prior_box",
    "prior_kind",
    "prior_marginal_pdf",
    "prior_sample",
    "sample_many",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class PosteriorLike(Protocol):
    """What the analysis needs from a posterior (see :class:`wiring.inference.Posterior`)."""

    def sample(self, n: int, x_o: Any, *, seed: int) -> Any:
        """``n`` samples (n, d) of the posterior conditioned on ``x_o`` (m,)."""
        ...

    def log_prob(self, theta: Any, x_o: Any) -> Any:
        """Log density (n,) of ``theta`` (n, d) under the posterior given ``x_o``."""
        ...


@runtime_checkable
class SimulatorLike(Protocol):
    """What the analysis needs from a simulator (see :class:`wiring.simulation.simulator.Simulator`)."""

    @property
    def names(self) -> Sequence[str]:
        """Measurement ids, one per column of x."""
        ...

    def __call__(self, theta: Any, *, rng: Any) -> Any:
        """Simulated summaries x (B, m) for parameters ``theta`` (B, d); NaN rows off-domain."""
        ...


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed or an existing Generator (passed through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def child_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 63-bit integer seeds derived from ``seed`` with SeedSequence."""
    states = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)
    return [int(s) >> 1 for s in states]


def check_samples(samples: npt.ArrayLike, param_names: Sequence[str]) -> FloatArray:
    """Posterior samples as float64 (n, d); raise if d differs from ``param_names`` or values
    are not finite."""
    arr = np.asarray(samples, dtype=np.float64)
    d = len(param_names)
    if arr.ndim != 2 or arr.shape[1] != d or arr.shape[0] < 2:
        raise ShapeMismatchError(
            f"posterior samples have shape {np.shape(samples)}; expected (n_samples, {d}) with "
            f"n_samples >= 2 and one column per parameter ({', '.join(param_names)})"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(
            "posterior samples contain NaN or infinite values; drop those rows before summarizing"
        )
    return arr


def check_x_o(x_o: npt.ArrayLike, names: Sequence[str]) -> FloatArray:
    """Observed summaries as float64 (m,); raise on a wrong length or NaN, naming the
    measurements."""
    arr = np.asarray(x_o, dtype=np.float64).reshape(-1)
    if arr.shape != (len(names),):
        raise ShapeMismatchError(
            f"x_o has {arr.size} value(s) but the simulator returns {len(names)} measurement(s) "
            f"({', '.join(names)}); pass one value per measurement in that order"
        )
    if not np.all(np.isfinite(arr)):
        bad = [n for n, v in zip(names, arr, strict=True) if not math.isfinite(v)]
        raise InvalidParameterError(
            f"x_o is not finite for measurement(s) {', '.join(bad)}; every observed value must be "
            f"a finite connection probability"
        )
    return arr


def drop_nan_rows(
    theta: FloatArray, x: FloatArray, *, what: str = "simulations"
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Remove rows whose x has a NaN (off-domain θ), logging the count; returns the mask kept."""
    keep = np.all(np.isfinite(x), axis=1)
    n_bad = int((~keep).sum())
    if n_bad:
        logger.info("dropped %d of %d %s with NaN x (parameters outside the rule's domain)",
                    n_bad, len(keep), what)
    return theta[keep], x[keep], np.asarray(keep, dtype=np.bool_)


def _field(spec: Any, name: str) -> Any:
    if isinstance(spec, Mapping):
        return spec.get(name)
    return getattr(spec, name, None)


def prior_kind(prior_spec: Any) -> str:
    """``"gaussian"`` or ``"uniform"``; raise for anything else."""
    kind = str(_field(prior_spec, "kind") or "").lower()
    if kind in ("normal", "gauss"):
        kind = "gaussian"
    if kind not in ("gaussian", "uniform"):
        raise InvalidParameterError(
            f"prior kind {kind!r} is not supported by the analysis; allowed: 'gaussian', 'uniform'"
        )
    return kind


def _vec(spec: Any, name: str, d: int) -> FloatArray:
    val = _field(spec, name)
    if val is None:
        raise InvalidParameterError(
            f"prior specification lacks {name!r}; a {prior_kind(spec)} prior needs it"
        )
    arr = np.broadcast_to(np.asarray(val, dtype=np.float64).reshape(-1), (d,))
    return np.array(arr, dtype=np.float64)


def _gaussian_scale(spec: Any, d: int) -> FloatArray:
    """Standard deviation per parameter of a Gaussian prior (``scale`` is a standard deviation)."""
    return _vec(spec, "scale", d)


def _truncation(spec: Any, d: int) -> tuple[FloatArray, FloatArray] | None:
    """Truncation bounds (low, high) of a Gaussian prior (±inf where open), or None."""
    low, high = _field(spec, "low"), _field(spec, "high")
    if low is None and high is None:
        return None
    lo = np.full(d, -np.inf) if low is None else np.array(
        [-np.inf if v is None else float(v) for v in np.ravel(np.asarray(low, dtype=object))])
    hi = np.full(d, np.inf) if high is None else np.array(
        [np.inf if v is None else float(v) for v in np.ravel(np.asarray(high, dtype=object))])
    return np.broadcast_to(lo, (d,)).astype(np.float64), np.broadcast_to(hi, (d,)).astype(
        np.float64)


def _truncnorm(spec: Any, d: int) -> Any:
    """scipy's frozen ``truncnorm`` of a truncated Gaussian prior (vectorized over d)."""
    from scipy.stats import truncnorm

    lo, hi = _truncation(spec, d)  # type: ignore[misc]
    loc, scale = _vec(spec, "loc", d), _gaussian_scale(spec, d)
    return truncnorm((lo - loc) / scale, (hi - loc) / scale, loc=loc, scale=scale)


def prior_box(prior_spec: Any, d: int, *, level: float = 0.95) -> tuple[FloatArray, FloatArray]:
    """Per-parameter central interval holding ``level`` of the prior mass (the whole box for a
    uniform prior); used to mark the prior in plots."""
    kind = prior_kind(prior_spec)
    if kind == "uniform":
        return _vec(prior_spec, "low", d), _vec(prior_spec, "high", d)
    from scipy.stats import norm

    if _truncation(prior_spec, d) is not None:
        dist = _truncnorm(prior_spec, d)
        return (np.asarray(dist.ppf(0.5 - level / 2), dtype=np.float64),
                np.asarray(dist.ppf(0.5 + level / 2), dtype=np.float64))
    z = float(norm.ppf(0.5 + level / 2))
    loc, scale = _vec(prior_spec, "loc", d), _gaussian_scale(prior_spec, d)
    return loc - z * scale, loc + z * scale


def prior_marginal_pdf(prior_spec: Any, d: int, k: int, grid: FloatArray) -> FloatArray:
    """Marginal prior density of parameter ``k`` on ``grid``."""
    kind = prior_kind(prior_spec)
    if kind == "uniform":
        lo, hi = _vec(prior_spec, "low", d)[k], _vec(prior_spec, "high", d)[k]
        return np.asarray(np.where((grid >= lo) & (grid <= hi), 1.0 / (hi - lo), 0.0),
                          dtype=np.float64)
    if _truncation(prior_spec, d) is not None:
        from scipy.stats import truncnorm

        dist = _truncnorm(prior_spec, d)
        a, b = np.ravel(dist.args[0])[k], np.ravel(dist.args[1])[k]
        loc_k, scale_k = dist.kwds["loc"][k], dist.kwds["scale"][k]
        return np.asarray(truncnorm.pdf(grid, a, b, loc=loc_k, scale=scale_k), dtype=np.float64)
    loc, scale = _vec(prior_spec, "loc", d)[k], _gaussian_scale(prior_spec, d)[k]
    pdf = np.exp(-0.5 * ((grid - loc) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
    return np.asarray(pdf, dtype=np.float64)


def prior_sample(prior_spec: Any, n: int, d: int, rng: np.random.Generator) -> FloatArray:
    """``n`` prior samples (n, d); uses ``prior_spec.sample(n, rng)`` when the spec has it."""
    sampler = getattr(prior_spec, "sample", None)
    if callable(sampler):
        out = np.asarray(sampler(n, rng), dtype=np.float64)
    elif prior_kind(prior_spec) == "uniform":
        lo, hi = _vec(prior_spec, "low", d), _vec(prior_spec, "high", d)
        out = lo + (hi - lo) * rng.random((n, d))
    elif _truncation(prior_spec, d) is not None:
        out = np.asarray(_truncnorm(prior_spec, d).ppf(rng.random((n, d))), dtype=np.float64)
    else:
        loc, scale = _vec(prior_spec, "loc", d), _gaussian_scale(prior_spec, d)
        out = loc + scale * rng.standard_normal((n, d))
    if out.shape != (n, d):
        raise ShapeMismatchError(
            f"prior sampler returned shape {out.shape}; expected ({n}, {d})"
        )
    return out


def jsonable(value: Any) -> Any:
    """Recursively convert numpy scalars/arrays (and NaN/inf) to JSON-native values."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def sample_many(posterior: PosteriorLike, xs: FloatArray, n: int, seed: int) -> FloatArray:
    """Posterior samples (n, k, d) for each of the k rows of ``xs`` (k, m).

    Uses sbi's batched sampling when the posterior exposes its sbi posterior
    (``posterior.sbi_posterior``, as :class:`wiring.inference.Posterior` does), with torch's
    random state forked and seeded (the global state is untouched); otherwise one
    ``posterior.sample(n, x, seed=...)`` call per row with seeds derived from ``seed``.
    """
    xs = np.atleast_2d(np.asarray(xs, dtype=np.float64))
    sbi_post = getattr(posterior, "sbi_posterior", None)
    if sbi_post is not None and hasattr(sbi_post, "sample_batched") and len(xs):
        import torch

        try:
            with torch.random.fork_rng(), torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Capping max_sampling_batch_size")
                torch.manual_seed(seed)
                out = sbi_post.sample_batched(
                    (n,), x=torch.as_tensor(xs, dtype=torch.float32), show_progress_bars=False
                )
            return np.asarray(out.numpy(), dtype=np.float64).reshape(n, len(xs), -1)
        except (NotImplementedError, AssertionError):
            logger.debug("batched sampling unavailable; sampling one x at a time")
    rows = [np.asarray(posterior.sample(n, x, seed=s), dtype=np.float64)
            for x, s in zip(xs, child_seeds(seed, len(xs)), strict=True)]
    if not rows:
        return np.empty((n, 0, 0))
    return np.stack(rows, axis=1)
