"""Calibration targets of the synthetic anatomy, as shipped data, and the anatomy-only checks.

The targets live in ``anatomy/data/calibration/`` (``anatomy-targets.toml`` and the dense model's
VPM bouton depth profile ``vpm-boutons-by-depth.csv``), each with its source. Three kinds need
nothing but the structural model and are checked here:

* ``vpm_bouton_fraction`` - fraction of all VPM boutons in L2/3, L4, L5A, L5B and L6 (absolute
  tolerance), from the dense model's profile with the model's layer boundaries;
* ``neuron_count`` - neurons per layer of one column (relative tolerance, Meyer et al. 2010);
* ``post_all`` - mean total target sites per voxel by layer in the column (relative tolerance).

The connection-probability targets need the wiring rule and are checked by
:mod:`wiring.anatomy_calibration`, which combines both into the ``wiring anatomy calibrate`` table.
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from anatomy.catalogue import CELL_TYPES, LAYER_BOUNDS_UM, LAYERS, REGIONS, layer_of_depth
from anatomy.errors import CalibrationTargetError
from anatomy.model import StructuralModel

__all__ = [
    "BOUTON_LAYER_GROUPS",
    "CalibrationTargetError",
    "CheckResult",
    "Target",
    "bouton_depth_profile",
    "check_anatomy",
    "layer_group_fractions",
    "load_anatomy_targets",
    "read_profile_csv",
    "targets_path",
    "verdict",
]

#: Layer groups of the VPM bouton target, as (upper, lower) µm below the pia (model boundaries).
BOUTON_LAYER_GROUPS: dict[str, tuple[float, float]] = {
    "L2/3": (LAYER_BOUNDS_UM["L2"][0], LAYER_BOUNDS_UM["L3"][1]),
    "L4": LAYER_BOUNDS_UM["L4"],
    "L5A": LAYER_BOUNDS_UM["L5A"],
    "L5B": LAYER_BOUNDS_UM["L5B"],
    "L6": (LAYER_BOUNDS_UM["L6A"][0], LAYER_BOUNDS_UM["L6B"][1]),
}

_KINDS = ("neuron_count", "post_all")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One calibration target.

    ``key`` is the layer (group) or measurement it refers to; ``tolerance`` is absolute unless
    ``relative``; ``sd`` is the target's own spread where the source gives one.
    """

    id: str
    kind: str
    key: str
    value: float
    tolerance: float
    relative: bool
    source: str
    sd: float | None = None
    denominator: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """A target, the model's value and the verdict (``passed`` is None when not applicable)."""

    target: Target
    model_value: float | None
    passed: bool | None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form (the target's fields flattened in)."""
        return {**asdict(self.target), "model_value": self.model_value, "passed": self.passed,
                "reason": self.reason}


def targets_path(name: str = "anatomy-targets.toml") -> Path:
    """Path of a shipped anatomy calibration file."""
    return Path(str(resources.files("anatomy") / "data" / "calibration" / name))


def read_profile_csv(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Bin starts (µm) and weights of a depth profile CSV (``depth_um`` and ``boutons`` columns).

    ``#`` lines are comments; the header comment must say where the profile comes from.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise CalibrationTargetError(f"cannot read profile {path}: {err.strerror}") from None
    if not any(line.startswith("#") and line.strip("# ") for line in lines):
        raise CalibrationTargetError(f"{path}: no source (a '#' comment line) before the header")
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    depth, weight = [], []
    for i, row in enumerate(rows, start=1):
        try:
            d, w = float(row["depth_um"]), float(row["boutons"])
        except (KeyError, TypeError, ValueError):
            raise CalibrationTargetError(
                f"{path}, data row {i}: needs numeric depth_um and boutons columns"
            ) from None
        if not (math.isfinite(d) and math.isfinite(w)) or w < 0:
            raise CalibrationTargetError(f"{path}, data row {i}: boutons must be finite and >= 0")
        depth.append(d)
        weight.append(w)
    if not depth or sum(weight) <= 0:
        raise CalibrationTargetError(f"{path}: the profile has no boutons")
    return np.asarray(depth), np.asarray(weight)


def layer_group_fractions(
    bin_start_um: npt.ArrayLike, weight: npt.ArrayLike, bin_um: float = 50.0
) -> dict[str, float]:
    """Fraction of ``weight`` per :data:`BOUTON_LAYER_GROUPS` (each bin spread uniformly).

    Examples
    --------
    >>> layer_group_fractions([600.0, 900.0], [1.0, 1.0])
    {'L2/3': 0.0, 'L4': 0.5, 'L5A': 0.5, 'L5B': 0.0, 'L6': 0.0}
    """
    d = np.asarray(bin_start_um, np.float64)
    w = np.asarray(weight, np.float64)
    total = float(w.sum())
    out = {}
    for name, (lo, hi) in BOUTON_LAYER_GROUPS.items():
        overlap = np.clip(np.minimum(d + bin_um, hi) - np.maximum(d, lo), 0.0, bin_um) / bin_um
        out[name] = float((overlap * w).sum() / total) if total > 0 else 0.0
    return out


def _fail(path: Path, row: int, message: str) -> CalibrationTargetError:
    return CalibrationTargetError(f"{path}, target {row}: {message}")


def _number(path: Path, row: int, entry: dict[str, Any], key: str) -> float:
    v = entry.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _fail(path, row, f"{key!r} must be a finite number, got {v!r}")
    return float(v)


def _source(path: Path, row: int, entry: dict[str, Any]) -> str:
    s = entry.get("source")
    if not isinstance(s, str) or not s.strip():
        raise _fail(path, row, "missing source (every target must say where its value comes from)")
    return s.strip()


def read_toml(path: Path) -> dict[str, Any]:
    """A calibration TOML file, with a one-line error for unreadable or invalid files."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as err:
        raise CalibrationTargetError(f"cannot read {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise CalibrationTargetError(f"{path} is not valid TOML: {err}") from None
    if data.get("schema_version") != 1:
        raise CalibrationTargetError(
            f"{path}: schema_version must be 1, got {data.get('schema_version')!r}"
        )
    return data


def load_anatomy_targets(path: str | Path | None = None) -> list[Target]:
    """Read and validate an anatomy target file (default: the shipped one).

    Raises
    ------
    CalibrationTargetError
        One line naming the file and target: unknown kind or layer, missing source, a value
        outside [0, 1] (fractions), a negative value or tolerance.
    """
    p = targets_path() if path is None else Path(path)
    data = read_toml(p)
    out: list[Target] = []
    prof = data.get("vpm_bouton_profile")
    if prof is not None:
        if not isinstance(prof, dict):
            raise CalibrationTargetError(f"{p}: [vpm_bouton_profile] must be a table")
        src = _source(p, 0, prof)
        tol = _number(p, 0, prof, "tolerance")
        if not 0 < tol <= 1:
            raise _fail(p, 0, f"tolerance must be in (0, 1], got {tol}")
        depth, weight = read_profile_csv(p.parent / str(prof.get("profile", "")))
        fractions = layer_group_fractions(depth, weight)
        layers = prof.get("layers", list(fractions))
        for layer in layers:
            if layer not in fractions:
                raise _fail(p, 0, f"unknown layer group {layer!r}; known: "
                                  f"{', '.join(BOUTON_LAYER_GROUPS)}")
            out.append(Target(id=f"vpm-boutons-{layer}", kind="vpm_bouton_fraction", key=layer,
                              value=fractions[layer], tolerance=tol, relative=False, source=src))
    for row, entry in enumerate(data.get("target", []), start=1):
        kind = entry.get("kind")
        if kind not in _KINDS:
            raise _fail(p, row, f"unknown kind {kind!r}; known: {', '.join(_KINDS)}")
        layer = entry.get("layer")
        if layer not in LAYERS:
            raise _fail(p, row, f"unknown layer {layer!r}; known: {', '.join(LAYERS)}")
        src = _source(p, row, entry)
        value = _number(p, row, entry, "value")
        tol = _number(p, row, entry, "tolerance")
        if value < 0 or tol <= 0:
            raise _fail(p, row, f"value must be >= 0 and tolerance > 0, got {value}, {tol}")
        out.append(Target(id=f"{kind.replace('_', '-')}-{layer}", kind=kind, key=layer,
                          value=value, tolerance=tol, relative=True, source=src))
    return out


def bouton_depth_profile(model: StructuralModel) -> npt.NDArray[np.float64]:
    """VPM boutons summed per depth bin of the grid (shape ``(nz,)``); zeros without VPM."""
    vpm = model.neurons.cell_type == CELL_TYPES.index("VPM")
    nz = model.grid.shape[2]
    if not vpm.any():
        return np.zeros(nz)
    per_voxel = np.asarray(model.pre.load().T @ vpm.astype(np.float64)).ravel()
    return np.asarray(per_voxel.reshape(model.grid.shape).sum(axis=(0, 1)), np.float64)


def verdict(t: Target, value: float, slack: float = 0.0) -> bool:
    """Whether ``value`` lies within the target's tolerance (plus ``slack``, same unit)."""
    tol = t.tolerance * abs(t.value) if t.relative else t.tolerance
    return bool(abs(value - t.value) <= tol + slack + 1e-12)


def _column_index(model: StructuralModel) -> int | None:
    names = list(model.neurons.column_names)
    if not names:
        return None
    return names.index("C2") if "C2" in names else 0


def _column_voxels(model: StructuralModel) -> npt.NDArray[np.bool_] | None:
    """Voxels whose centre lies in the C2 (or first) column disc, from the model's attrs."""
    cols = model.attrs.get("columns")
    if not isinstance(cols, list) or not cols:
        return None
    col = next((c for c in cols if c.get("name") == "C2"), cols[0])
    g = model.grid
    ix, iy = np.meshgrid(np.arange(g.shape[0]), np.arange(g.shape[1]), indexing="ij")
    x = g.origin_um[0] + (ix + 0.5) * g.spacing_um
    y = g.origin_um[1] + (iy + 0.5) * g.spacing_um
    cx, cy = col["center_um"]
    inside = np.hypot(x - cx, y - cy) <= float(col["diameter_um"]) / 2
    return np.broadcast_to(inside[:, :, None], g.shape).reshape(-1)


def check_anatomy(model: StructuralModel, targets: list[Target] | None = None) -> list[CheckResult]:
    """Compare a structural model with the anatomy targets (default: the shipped ones).

    Targets the model cannot answer (no VPM neurons, no column region, no column geometry in
    its attrs) come back with ``passed=None`` and the reason.
    """
    targets = load_anatomy_targets() if targets is None else targets
    results: list[CheckResult] = []
    profile = bouton_depth_profile(model)
    g = model.grid
    starts = g.origin_um[2] + np.arange(g.shape[2]) * g.spacing_um
    fractions = (layer_group_fractions(starts, profile, g.spacing_um)
                 if profile.sum() > 0 else None)
    ci = _column_index(model)
    scale = float(model.attrs.get("column_fraction", 1.0))
    in_col = _column_voxels(model)
    layer_vox = layer_of_depth(g.depth_um())
    post_all = np.asarray(model.post_all, np.float64)
    n = model.neurons
    for t in targets:
        value: float | None = None
        reason = ""
        slack = 0.0
        if t.kind == "vpm_bouton_fraction":
            if fractions is None:
                reason = "the model has no VPM boutons"
            else:
                value = fractions[t.key]
        elif t.kind == "neuron_count":
            mask = ((n.region == REGIONS.index("column")) & (n.layer == LAYERS.index(t.key)))
            if ci is None or not (n.region == REGIONS.index("column")).any():
                reason = "the model has no neurons in a column region"
            else:
                value = float((mask & (n.column == ci)).sum()) / scale
                slack = 1.0 / scale  # a scaled-down preset rounds each layer to whole neurons
        elif t.kind == "post_all":
            sel = layer_vox == LAYERS.index(t.key)
            if in_col is None:
                reason = "the model's attrs do not give the column geometry"
            elif not (sel & in_col).any():
                reason = f"no voxel of the column lies in {t.key}"
            else:
                value = float(post_all[sel & in_col].mean())
        else:
            continue
        results.append(CheckResult(target=t, model_value=value,
                                   passed=None if value is None else verdict(t, value, slack),
                                   reason=reason))
    return results
