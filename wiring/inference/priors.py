"""Prior specifications built from a rule's parameter specs (plain data, no torch).

A :class:`PriorSpec` is a frozen value that names the parameters and holds either a diagonal
Gaussian (``loc``/``scale``, ``scale`` being the standard deviation), optionally truncated per
parameter to ``[low, high]`` (an infinite bound: no truncation on that side), or a box-uniform
prior (``low``/``high``). Rules whose parameters have a bounded domain get a Gaussian truncated to
their plausible range by default, so that no default prior puts mass where the rule is undefined. It round-trips through JSON and TOML, samples with a numpy ``Generator`` (the
simulation store draws θ with it), and is turned into a torch distribution by
:func:`wiring.inference.build_prior`.

The paper's prior for the three-parameter DSO rule (Boelts et al. 2023) is N((1, 1, 1), 0.05·I).
We read 0.05 as the **variance** (standard deviation √0.05 ≈ 0.224): the published research code
builds its Gaussian priors as ``MultivariateNormal(torch.ones(3), c * torch.eye(3))``, where the
second positional argument of torch's ``MultivariateNormal`` is the covariance matrix, and the
data files of that prior are named ``gaussian005``. :data:`PAPER_GAUSSIAN_VARIANCE` records this.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from wiring._typing import FloatArray
from wiring.errors import InvalidParameterError, ShapeMismatchError
from wiring.rules.base import ParamSpec, WiringRule

__all__ = [
    "GAUSSIAN_DOMAIN_TOLERANCE",
    "PAPER_GAUSSIAN_VARIANCE",
    "PRIOR_KINDS",
    "PriorSpec",
    "build_prior_spec",
    "check_prior_spec",
]

PriorKind = Literal["gaussian", "uniform"]
#: The prior families a :class:`PriorSpec` can describe.
PRIOR_KINDS: tuple[str, ...] = ("gaussian", "uniform")

#: Per-parameter variance of the default Gaussian prior of rules with a published prior
#: (Boelts et al. 2023: N((1, 1, 1), 0.05·I) for ``dso``; see the module docstring).
PAPER_GAUSSIAN_VARIANCE: dict[str, float] = {"dso": 0.05}

#: Largest prior mass a Gaussian may put outside a parameter's domain (where the rule is not
#: defined and every simulation would be wasted as a NaN row).
GAUSSIAN_DOMAIN_TOLERANCE = 1e-3

_KEYS = {"kind", "names", "loc", "scale", "low", "high"}


def _floats(name: str, values: Sequence[float] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise InvalidParameterError(
            f"prior {name} must be a list of numbers, got {values!r}"
        ) from err
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PriorSpec:
    """A prior over a rule's parameters: diagonal Gaussian or box-uniform.

    Parameters
    ----------
    kind : {"gaussian", "uniform"}
        The family.
    names : tuple of str
        Parameter names, in the rule's order (length d).
    loc, scale : tuple of float, optional
        Gaussian mean and standard deviation per parameter (``kind="gaussian"`` only).
    low, high : tuple of float, optional
        Box bounds per parameter (``kind="uniform"``, required), or truncation bounds of a
        Gaussian (optional; ``-inf``/``inf`` or ``None`` in JSON for an open side). A truncated
        Gaussian's ``loc``/``scale`` are those of the Gaussian before truncation.

    Examples
    --------
    >>> spec = PriorSpec(kind="uniform", names=("a", "b"), low=(0.0, 0.0), high=(2.0, 1.0))
    >>> PriorSpec.from_json(spec.to_json()) == spec
    True
    """

    kind: PriorKind
    names: tuple[str, ...]
    loc: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise InvalidParameterError(
                f"prior kind {self.kind!r} is not supported; use one of {list(PRIOR_KINDS)}"
            )
        names = tuple(str(n) for n in self.names)
        object.__setattr__(self, "names", names)
        if not names or len(set(names)) != len(names):
            raise InvalidParameterError(
                f"prior parameter names must be non-empty and unique, got {list(names)}"
            )
        if self.kind == "gaussian":
            for key in ("low", "high"):
                object.__setattr__(self, key, _bounds(key, getattr(self, key)))
            for key in ("loc", "scale"):
                object.__setattr__(self, key, _floats(key, getattr(self, key)))
        else:
            for key in ("loc", "scale", "low", "high"):
                object.__setattr__(self, key, _floats(key, getattr(self, key)))
        need, other = (("loc", "scale"), ("low", "high"))
        if self.kind == "uniform":
            need, other = other, need
            for key in other:
                if getattr(self, key) is not None:
                    raise InvalidParameterError(
                        f"a {self.kind} prior takes {need[0]}/{need[1]}, not {key!r}; remove it"
                    )
        d = len(names)
        for key in need:
            vals = getattr(self, key)
            if vals is None:
                raise InvalidParameterError(
                    f"a {self.kind} prior needs {need[0]!r} and {need[1]!r} (one value per "
                    f"parameter {list(names)}); {key!r} is missing"
                )
            if len(vals) != d:
                raise ShapeMismatchError(
                    f"prior {key} has {len(vals)} value(s) but there are {d} parameter(s) "
                    f"{list(names)}; give one value per parameter"
                )
            if not all(math.isfinite(v) for v in vals):
                raise InvalidParameterError(f"prior {key} must be finite numbers, got {list(vals)}")
        if self.kind == "gaussian":
            for n, s in zip(names, self.scale or (), strict=True):
                if s <= 0:
                    raise InvalidParameterError(
                        f"prior scale (standard deviation) of {n!r} is {s!r}; it must be > 0"
                    )
            self._check_truncation()
        else:
            for n, lo, hi in zip(names, self.low or (), self.high or (), strict=True):
                if not lo < hi:
                    raise InvalidParameterError(
                        f"uniform prior bounds of {n!r} are low={lo!r}, high={hi!r}; need low < high"
                    )

    def _check_truncation(self) -> None:
        """Fill open truncation bounds, drop them when nothing is truncated, check the rest."""
        d = len(self.names)
        low = self.low if self.low is not None else (-math.inf,) * d
        high = self.high if self.high is not None else (math.inf,) * d
        for key, vals in (("low", low), ("high", high)):
            if len(vals) != d:
                raise ShapeMismatchError(
                    f"prior {key} has {len(vals)} value(s) but there are {d} parameter(s) "
                    f"{list(self.names)}; give one value per parameter"
                )
        if all(math.isinf(v) for v in low + high):
            object.__setattr__(self, "low", None)
            object.__setattr__(self, "high", None)
            return
        object.__setattr__(self, "low", tuple(low))
        object.__setattr__(self, "high", tuple(high))
        for k, n in enumerate(self.names):
            lo, hi = low[k], high[k]
            if lo == math.inf or hi == -math.inf or not lo < hi:
                raise InvalidParameterError(
                    f"truncation bounds of {n!r} are low={lo!r}, high={hi!r}; need low < high"
                )
            if self._z(k) <= 1e-12:
                raise InvalidParameterError(
                    f"the Gaussian prior of {n!r}, N({self.loc[k]}, {self.scale[k]}²), has no "  # type: ignore[index]
                    f"mass between its truncation bounds [{lo}, {hi}]; move loc inside them"
                )

    @property
    def truncated(self) -> bool:
        """Whether this is a Gaussian truncated on at least one side."""
        return self.kind == "gaussian" and self.low is not None

    def _ab(self, k: int) -> tuple[float, float]:
        """Standardized truncation bounds of parameter ``k`` (±inf when open)."""
        assert self.loc is not None and self.scale is not None
        lo = self.low[k] if self.low is not None else -math.inf
        hi = self.high[k] if self.high is not None else math.inf
        return (lo - self.loc[k]) / self.scale[k], (hi - self.loc[k]) / self.scale[k]

    def _z(self, k: int) -> float:
        """Mass of the untruncated Gaussian of parameter ``k`` between its bounds."""
        a, b = self._ab(k)
        if a > 0:  # upper tail: use the symmetric form for accuracy
            return _ndtr(-a) - _ndtr(-b)
        return _ndtr(b) - _ndtr(a)

    def _gaussian_ppf(self, u: FloatArray) -> FloatArray:
        """Inverse CDF of the (truncated) Gaussian marginals applied to uniforms (n, d)."""
        from scipy.special import ndtri
        from scipy.stats import truncnorm

        loc = np.asarray(self.loc, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        if not self.truncated:
            return np.asarray(loc + scale * ndtri(u), dtype=np.float64)
        a = np.array([self._ab(k)[0] for k in range(self.d)])
        b = np.array([self._ab(k)[1] for k in range(self.d)])
        out = truncnorm.ppf(u, a, b, loc=loc, scale=scale)
        low = np.asarray(self.low, dtype=np.float64)
        high = np.asarray(self.high, dtype=np.float64)
        return np.asarray(np.clip(out, low, high), dtype=np.float64)

    def moments(self) -> tuple[FloatArray, FloatArray]:
        """Mean and variance (d,) of each marginal (truncation included)."""
        if self.kind == "uniform":
            low = np.asarray(self.low, dtype=np.float64)
            high = np.asarray(self.high, dtype=np.float64)
            return (low + high) / 2.0, (high - low) ** 2 / 12.0
        loc = np.asarray(self.loc, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        if not self.truncated:
            return loc, scale**2
        from scipy.stats import truncnorm

        mean, var = np.empty(self.d), np.empty(self.d)
        for k in range(self.d):
            a, b = self._ab(k)
            m, v = truncnorm.stats(a, b, loc=loc[k], scale=scale[k], moments="mv")
            mean[k], var[k] = float(m), float(v)
        return mean, var

    @property
    def d(self) -> int:
        """Number of parameters."""
        return len(self.names)

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        """Draw ``n`` parameter vectors, shape (n, d) float64, from this prior with ``rng``."""
        if self.kind == "gaussian":
            loc = np.asarray(self.loc, dtype=np.float64)
            scale = np.asarray(self.scale, dtype=np.float64)
            if self.truncated:
                return self._gaussian_ppf(rng.random((n, self.d)))
            return loc + scale * rng.standard_normal((n, self.d))
        low = np.asarray(self.low, dtype=np.float64)
        high = np.asarray(self.high, dtype=np.float64)
        return low + (high - low) * rng.random((n, self.d))

    def sample_rows(self, key: int, start: int, stop: int) -> FloatArray:
        """Parameter vectors of rows ``start:stop`` (shape (stop - start, d)), keyed per row.

        Row ``j`` is a function of ``(key, j)`` only (counter-based uniforms keyed by the row
        and the parameter index, then the inverse CDF), so any split of the rows into batches
        gives the same vectors.
        """
        from wiring.rules.draw import keyed_uniforms

        rows = np.arange(start, stop, dtype=np.int64)[:, None]
        u = keyed_uniforms(key, rows, np.arange(self.d, dtype=np.int64)[None, :])
        if self.kind == "gaussian":
            return self._gaussian_ppf(u)
        low = np.asarray(self.low, dtype=np.float64)
        high = np.asarray(self.high, dtype=np.float64)
        return np.asarray(low + (high - low) * u, dtype=np.float64)

    def mass_outside(self, k: int, lo: float, hi: float) -> float:
        """Prior mass of parameter ``k`` outside the closed interval [lo, hi]."""
        if self.kind == "uniform":
            assert self.low is not None and self.high is not None
            a, b = self.low[k], self.high[k]
            inside = max(0.0, min(b, hi) - max(a, lo))
            return 1.0 - inside / (b - a)
        assert self.loc is not None and self.scale is not None
        mu, s = self.loc[k], self.scale[k]

        def cdf(v: float) -> float:
            if math.isinf(v):
                return 0.0 if v < 0 else 1.0
            return 0.5 * math.erfc(-(v - mu) / (s * math.sqrt(2.0)))

        if not self.truncated:
            return cdf(lo) + (1.0 - cdf(hi))
        a, b = self._ab(k)
        tlo, thi = mu + s * a, mu + s * b
        ilo, ihi = max(lo, tlo), min(hi, thi)
        if not ilo < ihi:
            return 1.0
        za, zb = (ilo - mu) / s, (ihi - mu) / s
        inside = _ndtr(-za) - _ndtr(-zb) if za > 0 else _ndtr(zb) - _ndtr(za)
        return max(0.0, 1.0 - inside / self._z(k))

    # -- serialization ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (only the keys of this kind)."""
        out: dict[str, Any] = {"kind": self.kind, "names": list(self.names)}
        keys = ("loc", "scale") if self.kind == "gaussian" else ("low", "high")
        for key in keys:
            out[key] = list(getattr(self, key))
        if self.truncated:  # open sides are None (JSON has no infinity)
            for key in ("low", "high"):
                out[key] = [None if math.isinf(v) else v for v in getattr(self, key)]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PriorSpec:
        """Inverse of :meth:`to_dict`; unknown keys are rejected."""
        if not isinstance(d, Mapping):
            raise InvalidParameterError(f"a prior spec must be a table/dict, got {d!r}")
        unknown = set(d) - _KEYS
        if unknown:
            raise InvalidParameterError(
                f"unknown prior key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}"
            )
        if "kind" not in d or "names" not in d:
            raise InvalidParameterError("a prior spec needs 'kind' and 'names'")
        names = d["names"]
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise InvalidParameterError(f"prior 'names' must be a list of strings, got {names!r}")
        return cls(
            kind=cast(PriorKind, str(d["kind"])),
            names=tuple(str(n) for n in names),
            loc=d.get("loc"),
            scale=d.get("scale"),
            low=d.get("low"),
            high=d.get("high"),
        )

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> PriorSpec:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidParameterError(f"prior spec is not valid JSON: {err}") from err
        return cls.from_dict(data)

    def to_toml(self) -> str:
        """TOML text (a flat table) of :meth:`to_dict`.

        Examples
        --------
        >>> print(PriorSpec(kind="gaussian", names=("a",), loc=(1.0,), scale=(0.5,)).to_toml())
        kind = "gaussian"
        names = ["a"]
        loc = [1.0]
        scale = [0.5]
        <BLANKLINE>
        """
        lines = []
        for key, value in self.to_dict().items():
            if key in ("low", "high"):
                value = list(getattr(self, key))  # TOML writes open sides as -inf / inf
            if isinstance(value, str):
                lines.append(f"{key} = {json.dumps(value)}")
            elif value and isinstance(value[0], str):
                lines.append(f"{key} = [{', '.join(json.dumps(v) for v in value)}]")
            else:
                lines.append(f"{key} = [{', '.join(repr(float(v)) for v in value)}]")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> PriorSpec:
        """Inverse of :meth:`to_toml`; also accepts a document with a ``[prior]`` table."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise InvalidParameterError(f"prior spec is not valid TOML: {err}") from err
        table: Mapping[str, Any] = data
        if "prior" in data and isinstance(data["prior"], Mapping):
            table = data["prior"]
        return cls.from_dict(table)


def _ndtr(v: float) -> float:
    """Standard normal CDF."""
    if math.isinf(v):
        return 0.0 if v < 0 else 1.0
    return 0.5 * math.erfc(-v / math.sqrt(2.0))


def _bounds(name: str, values: Sequence[float | None] | None) -> tuple[float, ...] | None:
    """Truncation bounds: numbers, ``None`` or ±inf for an open side (NaN refused)."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidParameterError(f"prior {name} must be a list of numbers, got {values!r}")
    open_side = -math.inf if name == "low" else math.inf
    out = []
    for v in values:
        try:
            f = open_side if v is None else float(v)
        except (TypeError, ValueError) as err:
            raise InvalidParameterError(
                f"prior {name} must be a list of numbers, got {values!r}"
            ) from err
        if math.isnan(f):
            raise InvalidParameterError(f"prior {name} must not be NaN, got {list(values)}")
        out.append(f)
    return tuple(out)


def _params(rule: WiringRule | Sequence[ParamSpec]) -> tuple[str, tuple[ParamSpec, ...]]:
    if isinstance(rule, Sequence):
        return "", tuple(rule)
    return rule.name, tuple(rule.params)


def check_prior_spec(spec: PriorSpec, rule: WiringRule | Sequence[ParamSpec]) -> PriorSpec:
    """Raise unless ``spec`` is a usable prior for ``rule``; return it unchanged.

    Checks that the prior names exactly the rule's parameters (in order), puts no mass (uniform)
    or at most :data:`GAUSSIAN_DOMAIN_TOLERANCE` (Gaussian) outside each parameter's domain, and
    gives non-zero density to the rule's a-priori value (``ParamSpec.default``), which the
    analysis marks and tests.

    Raises
    ------
    ShapeMismatchError
        Wrong number of parameters.
    InvalidParameterError
        Other names, or a prior with mass where the rule is undefined or none where it is needed.
    """
    rule_name, params = _params(rule)
    label = f"rule {rule_name!r}" if rule_name else "the rule"
    names = tuple(p.name for p in params)
    if spec.d != len(names):
        raise ShapeMismatchError(
            f"the prior has {spec.d} parameter(s) {list(spec.names)} but {label} has "
            f"{len(names)} {list(names)}; build the prior from the rule "
            f"(build_prior_spec) or give one entry per parameter"
        )
    if spec.names != names:
        raise InvalidParameterError(
            f"the prior names parameters {list(spec.names)} but {label} has {list(names)}; "
            f"use the rule's parameter names in the rule's order"
        )
    for k, p in enumerate(params):
        lo, hi = p.domain
        outside = spec.mass_outside(k, lo, hi)
        limit = 0.0 if spec.kind == "uniform" else GAUSSIAN_DOMAIN_TOLERANCE
        if outside > limit:
            where = (
                f"[{spec.low[k]}, {spec.high[k]}]"  # type: ignore[index]
                if spec.kind == "uniform"
                else f"N({spec.loc[k]}, {spec.scale[k]}²)"  # type: ignore[index]
            )
            if spec.truncated:
                where += f" truncated to [{spec.low[k]}, {spec.high[k]}]"  # type: ignore[index]
            raise InvalidParameterError(
                f"prior for {p.name!r} is {where}, which puts {outside:.3g} of its mass outside "
                f"the parameter's domain [{lo}, {hi}] where {label} is undefined; move the "
                f"prior inside the domain (or truncate it: low/high)"
            )
        if spec.kind == "uniform":
            a, b = spec.low[k], spec.high[k]  # type: ignore[index]
            if not a <= p.default <= b:
                raise InvalidParameterError(
                    f"uniform prior for {p.name!r} is [{a}, {b}], which gives zero mass to the "
                    f"rule's a-priori value {p.default}; widen the bounds to include it"
                )
    return spec


def build_prior_spec(
    rule: WiringRule | Sequence[ParamSpec],
    kind: str = "gaussian",
    *,
    loc: Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    variance: float | Sequence[float] | None = None,
    low: Sequence[float] | None = None,
    high: Sequence[float] | None = None,
) -> PriorSpec:
    """The prior spec of ``rule`` (a rule or its ``ParamSpec`` s), checked with
    :func:`check_prior_spec`.

    Gaussian defaults: ``loc`` = the parameters' a-priori values (``default``), standard deviation
    √:data:`PAPER_GAUSSIAN_VARIANCE` for rules with a published prior (``dso``: √0.05), otherwise a
    quarter of the plausible range (``(high - low) / 4``); a parameter whose domain is bounded
    (e.g. a probability, a non-negative factor) has its Gaussian truncated to the plausible range
    ``[low, high]``, so the prior never puts mass where the rule is undefined. ``low``/``high``
    given with ``kind="gaussian"`` are explicit truncation bounds (``-inf``/``inf``: open).
    ``variance`` may be given instead of ``scale``. Uniform defaults: the parameters' plausible ranges ``[low, high]``.

    Examples
    --------
    >>> from wiring.rules.base import ParamSpec
    >>> ps = [ParamSpec(name=n, default=1.0, low=0.0, high=2.0) for n in ("a", "b")]
    >>> build_prior_spec(ps, "uniform").high
    (2.0, 2.0)
    """
    rule_name, params = _params(rule)
    d = len(params)
    if kind not in PRIOR_KINDS:
        raise InvalidParameterError(
            f"prior kind {kind!r} is not supported; use one of {list(PRIOR_KINDS)}"
        )
    names = tuple(p.name for p in params)
    if kind == "gaussian":
        if scale is not None and variance is not None:
            raise InvalidParameterError("give either scale (std) or variance, not both")
        if variance is not None:
            var = np.broadcast_to(np.asarray(variance, dtype=np.float64), (d,))
            if np.any(var <= 0) or not np.all(np.isfinite(var)):
                raise InvalidParameterError(f"prior variance must be > 0, got {variance!r}")
            scale = tuple(float(v) for v in np.sqrt(var))
        elif scale is None:
            if rule_name in PAPER_GAUSSIAN_VARIANCE:
                scale = (math.sqrt(PAPER_GAUSSIAN_VARIANCE[rule_name]),) * d
            else:
                scale = tuple((p.high - p.low) / 4.0 for p in params)
        if loc is None:
            loc = tuple(p.default for p in params)
        if low is None and high is None:
            # truncate where needed: a parameter whose domain is bounded keeps its Gaussian
            # inside the plausible range, so that no mass falls where the rule is undefined
            bounded = [not (math.isinf(p.domain[0]) and math.isinf(p.domain[1])) for p in params]
            low = tuple(p.low if b else -math.inf for p, b in zip(params, bounded, strict=True))
            high = tuple(p.high if b else math.inf for p, b in zip(params, bounded, strict=True))
        spec = PriorSpec(
            kind="gaussian",
            names=names,
            loc=tuple(loc),
            scale=tuple(scale),
            low=None if low is None else tuple(low),
            high=None if high is None else tuple(high),
        )
    else:
        if loc is not None or scale is not None or variance is not None:
            raise InvalidParameterError("a uniform prior takes low/high, not loc/scale/variance")
        spec = PriorSpec(
            kind="uniform",
            names=names,
            low=tuple(low) if low is not None else tuple(p.low for p in params),
            high=tuple(high) if high is not None else tuple(p.high for p in params),
        )
    return check_prior_spec(spec, rule)
