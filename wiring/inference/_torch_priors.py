"""A truncated Gaussian as a torch distribution (torch has none), for sbi priors.

``TruncatedNormal`` has independent marginals N(loc, scale²) restricted to ``[low, high]``
(either side may be infinite). Sampling is by the inverse CDF, as
:meth:`wiring.inference.priors.PriorSpec.sample_rows` does, and the support is the box, so sbi rejects
posterior samples outside it. Computations are done in float64 and returned in the dtype of
``loc``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

__all__ = ["TruncatedNormal"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class TruncatedNormal(Distribution):  # type: ignore[misc]
    """Element-wise N(loc, scale²) truncated to [low, high]; wrap in ``Independent`` for a
    d-dimensional prior."""

    arg_constraints: ClassVar[dict[str, Any]] = {
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    has_rsample = True

    def __init__(
        self, loc: Any, scale: Any, low: Any, high: Any, validate_args: bool | None = None
    ) -> None:
        self.loc, self.scale, self.low, self.high = broadcast_all(loc, scale, low, high)
        f64 = {"dtype": torch.float64}
        loc64, scale64 = self.loc.to(**f64), self.scale.to(**f64)
        a = (self.low.to(**f64) - loc64) / scale64
        b = (self.high.to(**f64) - loc64) / scale64
        # upper-tail truncations are computed on the mirrored side for accuracy
        self._flip = a > 0
        lo = torch.where(self._flip, -b, a)
        hi = torch.where(self._flip, -a, b)
        self._cdf_lo = torch.special.ndtr(lo)
        self._cdf_hi = torch.special.ndtr(hi)
        self._z = self._cdf_hi - self._cdf_lo
        if bool((self._z <= 0).any()):
            raise ValueError("TruncatedNormal: no mass between low and high")
        self._a, self._b = a, b
        super().__init__(batch_shape=self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)  # type: ignore[untyped-decorator]
    def support(self) -> Any:
        return constraints.interval(self.low, self.high)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        """Quantile function: values in [low, high] for ``value`` in [0, 1]."""
        u = value.to(torch.float64)
        p = (self._cdf_lo + u * self._z).clamp(1e-300, 1.0 - 1e-16)
        z = torch.special.ndtri(p)
        z = torch.where(self._flip, -z, z)
        x = self.loc.to(torch.float64) + self.scale.to(torch.float64) * z
        x = torch.maximum(torch.minimum(x, self.high.to(torch.float64)),
                          self.low.to(torch.float64))
        return x.to(self.loc.dtype)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        z = (value.to(torch.float64) - self.loc.to(torch.float64)) / self.scale.to(torch.float64)
        phi = torch.where(self._flip, 1.0 - torch.special.ndtr(-z), torch.special.ndtr(z))
        lo = torch.where(self._flip, 1.0 - self._cdf_hi, self._cdf_lo)
        out = ((phi - lo) / self._z).clamp(0.0, 1.0)
        return out.to(self.loc.dtype)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        u = torch.rand(shape, dtype=torch.float64, device=self.loc.device)
        return self.icdf(u)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        v = value.to(torch.float64)
        z = (v - self.loc.to(torch.float64)) / self.scale.to(torch.float64)
        lp = -0.5 * z**2 - torch.log(self.scale.to(torch.float64)) - _LOG_SQRT_2PI
        lp = lp - torch.log(self._z)
        inside = (v >= self.low.to(torch.float64)) & (v <= self.high.to(torch.float64))
        lp = torch.where(inside, lp, torch.full_like(lp, -math.inf))
        return lp.to(value.dtype if value.is_floating_point() else self.loc.dtype)

    @property
    def mean(self) -> torch.Tensor:
        a, b = self._a, self._b
        pa, pb = _pdf(a), _pdf(b)
        m = self.loc.to(torch.float64) + self.scale.to(torch.float64) * (pa - pb) / self._z
        return m.to(self.loc.dtype)

    @property
    def variance(self) -> torch.Tensor:
        a, b = self._a, self._b
        pa, pb = _pdf(a), _pdf(b)
        aa = torch.where(torch.isinf(a), torch.zeros_like(a), a * pa)
        bb = torch.where(torch.isinf(b), torch.zeros_like(b), b * pb)
        r = (pa - pb) / self._z
        v = self.scale.to(torch.float64) ** 2 * (1.0 + (aa - bb) / self._z - r**2)
        return v.to(self.loc.dtype)


def _pdf(z: torch.Tensor) -> torch.Tensor:
    out = torch.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return torch.where(torch.isinf(z), torch.zeros_like(z), out)
