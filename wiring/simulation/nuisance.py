"""Anatomy nuisance parameters: uncertain scale factors of the structural model.

The structural model is itself a model: the number of boutons a VPM axon makes in the column,
or the density of target sites, is known to a factor, not exactly. A nuisance parameter ``ν``
is the log of such a factor. The simulator draws ``ν`` for every simulation from its prior
(keyed by the run seed and the simulation index, like θ), so NPE trained on θ only learns the
posterior with the anatomy's uncertainty *marginalised*; explicit values of ``ν`` give the
simulations of a fixed, changed anatomy (the sensitivity analysis).

Nuisance parameters (log-scale factors, ``ν ~ N(0, σ²)``):

``vpm_boutons``
    Multiplies the presynaptic bouton counts of VPM neurons: ``log_pre += ν`` on every row
    whose presynaptic neuron is a VPM neuron. σ = log 1.5.
``target_sites``
    Multiplies the postsynaptic target sites of every neuron, and with them the voxel's total
    (``post`` and ``postAll`` together): ``log_post += ν`` and ``log_post_all += ν``.
    σ = log 1.25.

Where the σ come from is documented in ``docs/anatomy-model.md`` (section "Anatomy nuisance
parameters").

Two paths apply ``ν``, with the same numbers: voxel-level rules read the shifted features
(:func:`shift_features`); rules with a log-linear form ``log rate = off + Σ_k c_k f_k`` get the
exact factor ``exp(Σ_k c_k Δf_k)`` per pair (for ``dso``: ``exp(θ_pre ν_b + (θ_post −
θ_postAll) ν_t)`` on VPM pairs) without rebuilding any feature (:func:`log_factors`).
Pair-level rules read no bouton or target-site counts: ``ν`` does not change them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from wiring._typing import BoolArray, FloatArray
from wiring.errors import InvalidParameterError, ShapeMismatchError

__all__ = [
    "NUISANCE_PARAMETERS",
    "NuisanceColumns",
    "NuisanceParameter",
    "NuisanceSpec",
    "check_nuisance_names",
    "log_factors",
    "resolve_nuisance",
    "shift_features",
    "vpm_pair_flags",
]

#: Nuisance values of a batch: one (b,) column per name of :data:`NUISANCE_PARAMETERS`.
NuisanceColumns = dict[str, FloatArray]

#: Key offset that separates the nuisance draws from every other keyed stream of a seed.
_NUISANCE_SALT = 0x6E75697361_6E6365  # "nuisance"


@dataclass(frozen=True, slots=True)
class NuisanceParameter:
    """One anatomy nuisance parameter: a log-scale factor with prior N(0, ``sd``²)."""

    name: str
    sd: float
    shifts: tuple[str, ...]
    """Voxel features the factor shifts (by ``ν``)."""
    vpm_only: bool
    """Whether only rows whose presynaptic neuron is a VPM neuron are shifted."""
    description: str


#: The known nuisance parameters, by name.
NUISANCE_PARAMETERS: dict[str, NuisanceParameter] = {
    "vpm_boutons": NuisanceParameter(
        "vpm_boutons", math.log(1.5), ("log_pre",), True,
        "log factor on the bouton counts of VPM neurons",
    ),
    "target_sites": NuisanceParameter(
        "target_sites", math.log(1.25), ("log_post", "log_post_all"), False,
        "log factor on the target sites of every neuron (post and postAll together)",
    ),
}


def check_nuisance_names(names: Sequence[str]) -> tuple[str, ...]:
    """The names as a tuple; an unknown or repeated name is an :class:`InvalidParameterError`."""
    if isinstance(names, str):
        raise InvalidParameterError(
            f"nuisance must be a list of names, got the string {names!r}"
        )
    out = tuple(str(n) for n in names)
    for n in out:
        if n not in NUISANCE_PARAMETERS:
            raise InvalidParameterError(
                f"unknown anatomy nuisance parameter {n!r}; known: "
                f"{', '.join(NUISANCE_PARAMETERS)}"
            )
    if len(set(out)) != len(out):
        raise InvalidParameterError(f"anatomy nuisance parameters repeat a name: {list(out)}")
    return out


@dataclass(frozen=True, slots=True)
class NuisanceSpec:
    """Which nuisance parameters a simulator draws, with their prior standard deviations."""

    names: tuple[str, ...]
    sd: tuple[float, ...]

    @classmethod
    def of(cls, value: NuisanceSpec | Sequence[str] | None) -> NuisanceSpec | None:
        """A spec from a spec, a list of names or None; None for no parameter."""
        if value is None:
            return None
        spec = value if isinstance(value, NuisanceSpec) else cls.from_names(value)
        return spec if spec.k else None

    @classmethod
    def from_names(cls, names: Sequence[str]) -> NuisanceSpec:
        """The spec of the named parameters with their documented priors."""
        checked = check_nuisance_names(names)
        return cls(checked, tuple(NUISANCE_PARAMETERS[n].sd for n in checked))

    def __post_init__(self) -> None:
        check_nuisance_names(self.names)
        if len(self.sd) != len(self.names) or not all(
            math.isfinite(s) and s >= 0 for s in self.sd
        ):
            raise InvalidParameterError(
                f"nuisance sd must be one finite non-negative value per name, got {self.sd!r}"
            )

    @property
    def k(self) -> int:
        """Number of nuisance parameters."""
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form (recorded in the simulator's protocol and in stores)."""
        return {
            "names": list(self.names),
            "prior": "normal on the log factor",
            "loc": [0.0] * self.k,
            "sd": [float(s) for s in self.sd],
        }

    def sample(self, seed: int, start: int, n: int) -> FloatArray:
        """ν (n, k) of simulations ``start .. start + n − 1`` of ``seed``: keyed by (seed,
        simulation index, parameter), so any split into batches gives the same values."""
        from scipy.special import ndtri

        from wiring.rules.draw import keyed_uniforms

        key = (int(seed) + _NUISANCE_SALT) % 2**64
        rows = np.arange(start, start + n, dtype=np.int64)[:, None]
        u = keyed_uniforms(key, rows, np.arange(self.k, dtype=np.int64)[None, :])
        return np.asarray(ndtri(u) * np.asarray(self.sd)[None, :], dtype=np.float64)

    def as_columns(self, nu: Any, b: int) -> NuisanceColumns:
        """``nu`` (b, k), (k,) or a mapping name → value(s) as one (b,) column per name of
        :data:`NUISANCE_PARAMETERS` (names absent from the spec are 0)."""
        cols = {n: np.zeros(b) for n in NUISANCE_PARAMETERS}
        if isinstance(nu, Mapping):
            for n, v in nu.items():
                check_nuisance_names([n])
                cols[n] = np.broadcast_to(np.asarray(v, np.float64), (b,)).copy()
            return cols
        arr = np.asarray(nu, dtype=np.float64)
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (b, arr.size))
        if arr.shape != (b, self.k):
            raise ShapeMismatchError(
                f"nuisance values have shape {arr.shape}; expected ({b}, {self.k}) for "
                f"{list(self.names)}"
            )
        for i, n in enumerate(self.names):
            cols[n] = arr[:, i].copy()
        return cols


def shift_features(feats: dict[str, FloatArray], nu: Mapping[str, FloatArray],
                   row_owner: npt.NDArray[np.int64], row_vpm: BoolArray) -> None:
    """Apply ν to gathered voxel features in place (the generic path).

    ``nu``: one (b,) column per nuisance name; ``row_owner``: the simulation row of each
    feature row; ``row_vpm``: whether its presynaptic neuron is a VPM neuron.
    """
    for name, par in NUISANCE_PARAMETERS.items():
        v = nu.get(name)
        if v is None or not np.any(v):
            continue
        delta = v[row_owner]
        if par.vpm_only:
            delta = np.where(row_vpm, delta, 0.0)
        for f in par.shifts:
            if f in feats:
                feats[f] = feats[f] + delta


def log_factors(names: Sequence[str], coef: FloatArray, nu: Mapping[str, FloatArray]
                ) -> tuple[FloatArray, FloatArray]:
    """The exact log factor of λ of a log-linear rule (the factor path).

    With ``log rate = off + Σ_k coef[:, k] · f_k`` over the features ``names``, shifting f by
    ν multiplies each pair's λ by ``exp(all + vpm · is_vpm_pair)``. Returns ``all`` (b,) and
    ``vpm`` (b,).
    """
    b = coef.shape[0]
    shift_all, shift_vpm = np.zeros(b), np.zeros(b)
    for name, par in NUISANCE_PARAMETERS.items():
        v = nu.get(name)
        if v is None:
            continue
        for f in par.shifts:
            if f in names:
                term = coef[:, list(names).index(f)] * v
                if par.vpm_only:
                    shift_vpm = shift_vpm + term
                else:
                    shift_all = shift_all + term
    return shift_all, shift_vpm


def vpm_pair_flags(model: Any, pre: npt.NDArray[np.int64], given: npt.ArrayLike | None,
                   spec: NuisanceSpec | None) -> FloatArray | None:
    """1.0 for pairs whose presynaptic neuron is a VPM neuron, else 0.0 (P,); None when not
    known (tables without a model and without ``given``: ``vpm_boutons`` is then refused)."""
    if given is not None:
        flags = np.asarray(given, dtype=np.bool_).reshape(-1)
        if flags.shape != pre.shape:
            raise ShapeMismatchError(
                f"pre_is_vpm has {flags.size} entries; expected one per pair ({pre.size})"
            )
        return flags.astype(np.float64)
    if model is None:
        if spec is not None and "vpm_boutons" in spec.names:
            raise InvalidParameterError(
                "the vpm_boutons nuisance parameter needs the presynaptic cell types: build "
                "the simulator from a structural model or pass pre_is_vpm"
            )
        return None
    from anatomy.catalogue import CELL_TYPES

    vpm = CELL_TYPES.index("VPM")
    types: npt.NDArray[np.int8] = np.asarray(model.neurons.cell_type)
    return np.asarray(types[pre] == vpm, dtype=np.float64)


def resolve_nuisance(spec: NuisanceSpec | None, nuisance: Any, seed: int, start: int, b: int,
                     vflag: FloatArray | None) -> NuisanceColumns | None:
    """The nuisance columns of a batch of ``b`` simulations: explicit ``nuisance`` values, or
    draws from ``spec`` keyed by (``seed``, simulation index); None when all are 0."""
    if nuisance is None:
        if spec is None:
            return None
        cols = spec.as_columns(spec.sample(seed, start, b), b)
    elif isinstance(nuisance, Mapping):
        cols = NuisanceSpec((), ()).as_columns(nuisance, b)
    elif spec is None:
        raise InvalidParameterError(
            "this simulator has no nuisance parameters: give nuisance values as a mapping "
            f"name -> value (names: {', '.join(NUISANCE_PARAMETERS)})"
        )
    else:
        cols = spec.as_columns(nuisance, b)
    if not all(np.all(np.isfinite(v)) for v in cols.values()):
        raise InvalidParameterError("nuisance values must be finite")
    if vflag is None and np.any(cols["vpm_boutons"]):
        raise InvalidParameterError(
            "vpm_boutons needs the presynaptic cell types: build the simulator from a "
            "structural model or pass pre_is_vpm"
        )
    if not any(np.any(v) for v in cols.values()):
        return None
    return cols
