"""The wiring-rule contract: parameter specs and the rate protocol every rule implements.

A rule maps features of a (pre, post) pair to the expected number of synapses. *Voxel-level*
rules give a rate for every voxel the two neurons share (``rate`` is evaluated on feature rows of
a :class:`wiring.pairs.PairTable`); the pair's expected count is the sum over its rows.
*Pair-level* rules give the expected count of a pair directly from pair features. In both cases
a pair is connected with probability ``1 - exp(-lambda)``. A voxel where either neuron has
nothing never appears as a row, so no rule can put a synapse there.

A voxel-level rule may also list pair features (:data:`PAIR_FEATURES`) in ``features``; they
are repeated onto each of the pair's rows (see :func:`wiring.pairs.rule_features`), so that a
per-voxel rate can depend on, e.g., the intersomatic distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from wiring._typing import BoolArray, FloatArray, IntArray
from wiring.errors import InvalidParameterError, RuleRateError, ShapeMismatchError

__all__ = [
    "PAIR_FEATURES",
    "VOXEL_FEATURES",
    "ElementwiseFn",
    "Level",
    "LogLinearForm",
    "ParamSpec",
    "SupportsFactors",
    "SupportsLogLinear",
    "SynapseModel",
    "VoxelFactors",
    "WiringRule",
    "call_rate",
    "check_rates",
    "check_theta",
    "check_theta_in_domain",
    "in_domain",
    "theta_columns",
]

#: Features available per shared-voxel row: log pre boutons, log post target sites,
#: log of all target sites in the voxel, and the voxel's cortical depth (µm).
VOXEL_FEATURES: tuple[str, ...] = ("log_pre", "log_post", "log_post_all", "depth_um")
#: Features available per pair: number of shared voxels and intersomatic distance (µm).
PAIR_FEATURES: tuple[str, ...] = ("n_shared", "soma_distance_um")

Level = Literal["voxel", "pair"]
SynapseModel = Literal["poisson", "binomial", "deterministic"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One rule parameter: its name, unit, plausible range, default and mathematical domain.

    ``low``/``high`` bound the plausible range (the box-uniform prior); ``domain`` is where the
    rule is defined at all (closed interval). ``default`` is the a-priori value of the rule
    (e.g. 1 for every DSO exponent).

    Examples
    --------
    >>> ParamSpec(name="theta_pre", default=1.0, low=0.0, high=2.0).name
    'theta_pre'
    """

    name: str
    default: float
    low: float
    high: float
    domain: tuple[float, float] = (-math.inf, math.inf)
    unit: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise InvalidParameterError(
                f"parameter name {self.name!r} must be a Python identifier (e.g. 'theta_pre')"
            )
        lo, hi = float(self.domain[0]), float(self.domain[1])
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise InvalidParameterError(
                f"parameter {self.name!r}: need finite low < high, got low={self.low!r}, "
                f"high={self.high!r}"
            )
        if not (lo <= self.low and self.high <= hi):
            raise InvalidParameterError(
                f"parameter {self.name!r}: range [{self.low}, {self.high}] must lie inside the "
                f"domain [{lo}, {hi}]"
            )
        if not (self.low <= self.default <= self.high):
            raise InvalidParameterError(
                f"parameter {self.name!r}: default {self.default!r} must lie in "
                f"[{self.low}, {self.high}]"
            )

    def to_dict(self) -> dict[str, object]:
        """JSON-native representation (infinite domain ends become None)."""
        return {
            "name": self.name,
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "domain": [None if math.isinf(v) else v for v in self.domain],
            "unit": self.unit,
            "doc": self.doc,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ParamSpec:
        """Inverse of :meth:`to_dict`."""
        dom: Sequence[float | None] = d.get("domain", [None, None])  # type: ignore[assignment]
        lo, hi = dom[0], dom[1]
        return cls(
            name=str(d["name"]),
            default=float(d["default"]),  # type: ignore[arg-type]
            low=float(d["low"]),  # type: ignore[arg-type]
            high=float(d["high"]),  # type: ignore[arg-type]
            domain=(-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi)),
            unit=str(d.get("unit", "")),
            doc=str(d.get("doc", "")),
        )


@runtime_checkable
class WiringRule(Protocol):
    """What every wiring rule provides; see the module docstring for the semantics.

    Rules are stateless, take no constructor arguments and are pure functions of their
    inputs. ``rate(features, theta)`` receives ``theta`` as one array per parameter, each
    broadcastable against the feature arrays (e.g. shape (B, 1) against rows of shape (R,)
    gives a (B, R) result), and returns non-negative expected synapse counts (``inf`` allowed:
    a certain synapse). ``synapses`` says how synapse counts are drawn given the rates:
    ``poisson`` (pair count ~ Poisson(lambda)), ``binomial`` (at most one synapse per shared
    voxel, present with probability ``1 - exp(-rate)``), or ``deterministic`` (pair level: a
    connected pair gets one synapse per shared voxel).
    """

    name: ClassVar[str]
    params: ClassVar[tuple[ParamSpec, ...]]
    level: ClassVar[Level]
    features: ClassVar[tuple[str, ...]]
    synapses: ClassVar[SynapseModel]

    def rate(self, features: Mapping[str, FloatArray], theta: Sequence[FloatArray]) -> FloatArray:
        """Expected synapse counts per row (voxel level) or per pair (pair level)."""
        ...


def check_theta(rule: WiringRule, theta: npt.ArrayLike) -> FloatArray:
    """``theta`` as a float64 (B, d) array; raise if it has the wrong number of parameters.

    A single vector of length d is accepted and returned as shape (1, d). NaN or out-of-domain
    values are *not* rejected here (see :func:`in_domain`).
    """
    arr = np.asarray(theta, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    d = len(rule.params)
    if arr.ndim != 2 or arr.shape[1] != d:
        names = ", ".join(p.name for p in rule.params)
        raise ShapeMismatchError(
            f"rule {rule.name!r} takes {d} parameter(s) ({names}); theta has shape "
            f"{np.shape(theta)}, expected (d,) or (batch, d) with d = {d}"
        )
    return arr


def in_domain(rule: WiringRule, theta: FloatArray) -> BoolArray:
    """Mask (B,) of parameter vectors that are finite and inside every parameter's domain."""
    ok = np.all(np.isfinite(theta), axis=1)
    for k, spec in enumerate(rule.params):
        lo, hi = spec.domain
        ok &= (theta[:, k] >= lo) & (theta[:, k] <= hi)
    return np.asarray(ok, dtype=np.bool_)


def check_theta_in_domain(rule: WiringRule, theta: npt.ArrayLike) -> FloatArray:
    """Like :func:`check_theta`, and raise :class:`InvalidParameterError` on NaN or
    out-of-domain values, naming the parameter, the value and the domain."""
    arr = check_theta(rule, theta)
    if not np.all(np.isfinite(arr)):
        b, k = np.argwhere(~np.isfinite(arr))[0]
        raise InvalidParameterError(
            f"rule {rule.name!r}: {rule.params[k].name} = {arr[b, k]!r} (theta row {b}) is not "
            f"a finite number"
        )
    for k, spec in enumerate(rule.params):
        lo, hi = spec.domain
        bad = (arr[:, k] < lo) | (arr[:, k] > hi)
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            raise InvalidParameterError(
                f"rule {rule.name!r}: {spec.name} = {arr[b, k]!r} (theta row {b}) is outside "
                f"its domain [{lo}, {hi}]"
            )
    return arr


def theta_columns(theta: FloatArray, *, trailing: int = 1) -> list[FloatArray]:
    """Split (B, d) ``theta`` into d arrays of shape (B, 1, ...) for broadcasting against rows."""
    shape = (theta.shape[0],) + (1,) * trailing
    return [theta[:, k].reshape(shape) for k in range(theta.shape[1])]


def call_rate(
    rule: WiringRule, features: Mapping[str, FloatArray], theta: Sequence[FloatArray]
) -> FloatArray:
    """``rule.rate(features, theta)`` as float64; an exception inside a rule's code becomes a
    :class:`RuleRateError` naming the rule (chained, so ``--debug`` shows where it came from).

    Errors of this package (:class:`wiring.errors.WiringError`) and ``MemoryError`` pass
    unchanged.
    """
    from wiring.errors import WiringError

    try:
        out = rule.rate(features, theta)
        return np.asarray(out, dtype=np.float64)
    except (WiringError, MemoryError):
        raise
    except Exception as err:
        msg = " ".join(str(err).split())
        raise RuleRateError(
            f"rule {rule.name!r}: rate() raised {type(err).__name__}: {msg}"
        ) from err


def check_rates(
    rule: WiringRule,
    rates: FloatArray,
    theta: FloatArray | Callable[[IntArray], FloatArray] | None = None,
    *,
    nan_outside_box: bool = False,
) -> None:
    """Raise :class:`RuleRateError` if ``rates`` holds a negative or NaN value (``inf`` is a
    valid rate: a certain synapse).

    ``theta`` names the parameters in the message: a (B, d) matrix whose rows belong to the
    leading axis of ``rates``, or a function from flat indices of ``rates`` to their θ rows
    (so that a per-row θ matrix is only built when something is wrong). With
    ``nan_outside_box`` a NaN is accepted where θ lies outside the rule's plausible range
    (the contract asks for non-NaN rates inside it; the simulator turns the others into NaN
    rows). The normal case costs one reduction over the array.
    """
    if rates.size == 0:
        return
    with np.errstate(invalid="ignore"):
        lowest = float(np.min(rates))
    if lowest >= 0:
        return
    flat = np.ravel(rates)
    neg = np.flatnonzero(flat < 0)
    nan = np.flatnonzero(np.isnan(flat))

    def theta_at(idx: IntArray) -> FloatArray | None:
        if theta is None:
            return None
        if callable(theta):
            return np.asarray(theta(idx), dtype=np.float64).reshape(len(idx), -1)
        rows = np.unravel_index(idx, rates.shape)[0] if rates.ndim >= 2 else np.zeros_like(idx)
        if theta.shape[0] == 1:
            rows = np.zeros_like(idx)
        return np.asarray(theta[rows], dtype=np.float64).reshape(len(idx), -1)

    if len(neg) == 0 and nan_outside_box:
        th = theta_at(nan)
        if th is not None:
            low = np.array([p.low for p in rule.params])
            high = np.array([p.high for p in rule.params])
            in_box = np.all((th >= low) & (th <= high), axis=1)
            nan = nan[in_box]
    bad = neg if len(neg) else nan
    if len(bad) == 0:
        return
    first = bad[:1]
    th = theta_at(first)
    at = f" at theta {th[0].tolist()}" if th is not None else ""
    raise RuleRateError(
        f"rule {rule.name!r}: rate() returned {float(flat[first[0]])!r}{at} ({len(bad)} such "
        f"value(s)); expected synapse counts must be >= 0 and not NaN (inf allowed); check "
        f"the rule with `wiring rules check {rule.name}`"
    )
# --------------------------------------------------------------------------------------------
# optional capabilities: a rule that implements one runs on a faster path with the same numbers
# --------------------------------------------------------------------------------------------
#: (feature names (K,), coefficients (B, K), offsets (B,)):
#: ``log rate = Σ_k coef[b, k] · features[names[k]] + offset[b]`` per row.
LogLinearForm = tuple[tuple[str, ...], FloatArray, FloatArray]


@runtime_checkable
class SupportsLogLinear(Protocol):
    """Optional rule capability: the per-row log rate is linear in the row features.

    ``log_linear(theta)`` takes (B, d) θ inside the domain and returns
    ``(names, coef (B, K), offset (B,))`` such that the rate of a row with features ``f`` is
    ``exp(Σ_k coef[b, k] f[names[k]] + offset[b])`` (``offset = -inf`` for a zero rate,
    ``+inf`` for an infinite one). Rules that provide it run in the compiled simulator kernel.
    """

    def log_linear(self, theta: FloatArray) -> LogLinearForm:
        """The log-linear form of the rate for every θ row."""
        ...


ElementwiseFn = Callable[[FloatArray], FloatArray]

class VoxelFactors(NamedTuple):
    """Elementwise factors of a voxel rate: ``rate = pre(pre_ik) * post(post_jk) * voxel(postAll_k)``.

    Each is applied to positive counts only (stored nonzeros), as float64 arrays of any shape.
    """

    pre: ElementwiseFn
    post: ElementwiseFn
    voxel: ElementwiseFn


@runtime_checkable
class SupportsFactors(Protocol):
    """Optional capability of a voxel-level rule whose rate factorizes over pre, post and voxel.

    ``factors(theta)`` takes one parameter vector, shape (d,), and returns :class:`VoxelFactors`
    such that ``rule.rate`` on a row equals ``pre(pre) * post(post) * voxel(postAll)`` of the
    row's counts (``pre = exp(log_pre)``, ...). The connectome engine then uses one sparse
    product per block instead of per-row evaluation (see :mod:`wiring.connectome.dso`). A rule that
    implements it must still implement ``rate``; :func:`dso_factors` is the ``dso`` case.
    """

    def factors(self, theta: FloatArray) -> VoxelFactors:
        """Elementwise factors of the rate for one parameter vector (d,)."""
        ...
