"""Populations and experiment emulation: the neurons and eligible (pre, post) pairs of a measurement
in a model, in vivo or in a slice (:class:`SliceConfig`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from anatomy.model import StructuralModel
from wiring._typing import IntArray
from wiring.errors import MeasurementError, SelectionError
from wiring.measurements.io import is_real
from wiring.measurements.selectors import select
from wiring.measurements.sets import Measurement, MeasurementSet

__all__ = [
    "Population",
    "SliceConfig",
    "population",
    "populations",
]

logger = logging.getLogger(__name__)


# -- populations and experiment emulation ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceConfig:
    """How an in vitro slice restricts the pairs of a slice measurement.

    The slab is cut perpendicular to the pia: its normal is the tangential ``axis`` (``"x"`` or
    ``"y"`` of ``soma_um``), it is ``thickness_um`` thick and centred at ``center_um``, or, by
    default, at the median soma coordinate along ``axis`` of the population's neurons (pre ∪
    post) - a fixed slab through the middle of the recorded population, as when a slice is cut
    through the barrel of interest. A pair (i, j) is eligible when both somata lie in the slab
    at a distance from the nearer slab surface within ``soma_depth_um`` (the soma-depth
    criterion of patched cells: 31-130 µm in 300 µm slices, as in Udvary et al. 2022; ``None``:
    anywhere in the slab), their intersomatic distance is at most ``max_distance_um``
    (``math.inf`` for no limit) and i != j. ``distance="euclidean"`` (default) measures the 3-d
    distance; ``"lateral"`` only the tangential (x, y) offset, as for vertically aligned
    interlaminar pairs (e.g. L4 -> L2/3).

    ``cut_arbors`` (default true) removes the arbors outside the slab: a shared voxel counts
    for a pair of a slice measurement only when the voxel's centre lies in the slab, so
    synapses the slicing cut off are not counted (see ``docs/architecture.md`` for what a
    50 µm voxel grid can and cannot emulate of a 300 µm slice).
    """

    thickness_um: float = 300.0
    max_distance_um: float = 100.0
    axis: Literal["x", "y"] = "x"
    center_um: float | None = None
    distance: Literal["euclidean", "lateral"] = "euclidean"
    soma_depth_um: tuple[float, float] | None = (31.0, 130.0)
    cut_arbors: bool = True

    def __post_init__(self) -> None:
        t = self.thickness_um
        if not is_real(t) or not (math.isfinite(float(t)) and float(t) > 0):
            raise MeasurementError(
                f"SliceConfig.thickness_um must be a positive number of µm, got {t!r}"
            )
        d = self.max_distance_um
        if not is_real(d) or math.isnan(float(d)) or float(d) <= 0:
            raise MeasurementError(
                f"SliceConfig.max_distance_um must be > 0 (math.inf for no limit), got {d!r}"
            )
        if self.axis not in ("x", "y"):
            raise MeasurementError(
                f"SliceConfig.axis must be 'x' or 'y' (the slab normal, tangential to the pia), "
                f"got {self.axis!r}"
            )
        c = self.center_um
        if c is not None and (not is_real(c) or not math.isfinite(float(c))):
            raise MeasurementError(f"SliceConfig.center_um must be a finite number or None, got {c!r}")
        if self.distance not in ("euclidean", "lateral"):
            raise MeasurementError(
                f"SliceConfig.distance must be 'euclidean' or 'lateral', got {self.distance!r}"
            )
        sd = self.soma_depth_um
        if sd is not None:
            ok = (isinstance(sd, (tuple, list)) and len(sd) == 2
                  and all(is_real(v) and math.isfinite(float(v)) for v in sd))
            if not ok or not 0.0 <= float(sd[0]) < float(sd[1]):
                raise MeasurementError(
                    f"SliceConfig.soma_depth_um must be None or (min, max) µm from the nearer "
                    f"slab surface with 0 <= min < max, got {sd!r}"
                )
            object.__setattr__(self, "soma_depth_um", (float(sd[0]), float(sd[1])))
        if not isinstance(self.cut_arbors, bool):
            raise MeasurementError(
                f"SliceConfig.cut_arbors must be True or False, got {self.cut_arbors!r}"
            )
        object.__setattr__(self, "thickness_um", float(t))
        object.__setattr__(self, "max_distance_um", float(d))

    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (``max_distance_um`` may be ``inf``: written as ``None``)."""
        return {
            "thickness_um": self.thickness_um,
            "max_distance_um": None if math.isinf(self.max_distance_um) else self.max_distance_um,
            "axis": self.axis,
            "center_um": self.center_um,
            "distance": self.distance,
            "soma_depth_um": None if self.soma_depth_um is None else list(self.soma_depth_um),
            "cut_arbors": self.cut_arbors,
        }


def _readonly(a: IntArray) -> IntArray:
    a = np.ascontiguousarray(a, dtype=np.int64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Population:
    """The neurons and eligible pairs of one measurement in one model.

    Attributes
    ----------
    measurement_id
        The measurement's id.
    pre, post
        Sorted model neuron indices the selectors select, int64.
    pair_pre, pair_post
        Every eligible pair (i, j), i != j, int64 of equal length, in row-major order (by
        ``pre`` position, then ``post`` position). In vivo: the full product pre × post.
    slab
        For a slice measurement whose arbors are cut at the slab surfaces: ``(axis, low_um,
        high_um)`` (axis 0 = x, 1 = y), the part of the tissue whose voxels count; else None.
    """

    measurement_id: str
    pre: IntArray
    post: IntArray
    pair_pre: IntArray
    pair_post: IntArray
    slab: tuple[int, float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("pre", "post", "pair_pre", "pair_post"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        if self.pair_pre.shape != self.pair_post.shape or self.pair_pre.ndim != 1:
            raise MeasurementError(
                f"population {self.measurement_id!r}: pair_pre {self.pair_pre.shape} and "
                f"pair_post {self.pair_post.shape} must be 1-d of equal length"
            )

    @property
    def n_eligible(self) -> int:
        """Number of eligible pairs."""
        return int(self.pair_pre.size)

    def voxels_kept(self, model: StructuralModel) -> npt.NDArray[np.bool_] | None:
        """Voxels whose centre lies in the slab (None: every voxel counts)."""
        if self.slab is None:
            return None
        axis, lo, hi = self.slab
        grid = model.grid
        n_ax = grid.shape[axis]
        centre = grid.origin_um[axis] + (np.arange(n_ax) + 0.5) * grid.spacing_um
        keep_ax = (centre >= lo) & (centre <= hi)
        shape = [1, 1, 1]
        shape[axis] = n_ax
        full = np.broadcast_to(keep_ax.reshape(shape), grid.shape)
        return np.ascontiguousarray(full.reshape(-1))

    def pairs(self) -> tuple[IntArray, IntArray]:
        """``(pair_pre, pair_post)``: the eligible pairs as model neuron indices."""
        return self.pair_pre, self.pair_post


def _product_pairs(pre: IntArray, post: IntArray) -> tuple[IntArray, IntArray]:
    pp = np.repeat(pre, post.size)
    qq = np.tile(post, pre.size)
    keep = pp != qq
    return pp[keep], qq[keep]


def _slice_pairs(
    model: StructuralModel, pre: IntArray, post: IntArray, cfg: SliceConfig
) -> tuple[IntArray, IntArray, float]:
    from scipy.spatial import cKDTree

    pos = np.asarray(model.neurons.soma_um, dtype=np.float64)
    a = 0 if cfg.axis == "x" else 1
    if cfg.center_um is None:
        center = float(np.median(pos[np.union1d(pre, post), a]))
    else:
        center = float(cfg.center_um)
    half = cfg.thickness_um / 2.0
    from_surface = half - np.abs(pos[:, a] - center)  # distance to the nearer slab surface
    in_slab = from_surface >= 0
    if cfg.soma_depth_um is not None:
        lo, hi = cfg.soma_depth_um
        in_slab &= (from_surface >= lo) & (from_surface <= hi)
    pre_s, post_s = pre[in_slab[pre]], post[in_slab[post]]
    if math.isinf(cfg.max_distance_um) or pre_s.size == 0 or post_s.size == 0:
        pp, qq = _product_pairs(pre_s, post_s)
        return pp, qq, center
    dims = 3 if cfg.distance == "euclidean" else 2
    # All (a, b) within the distance, zero distances included, as a structured array (i, j, v).
    close = cKDTree(pos[pre_s, :dims]).sparse_distance_matrix(
        cKDTree(pos[post_s, :dims]), cfg.max_distance_um, output_type="ndarray"
    )
    # Row-major order (by pre, then post) via one sort of the flat pair key.
    key = np.sort(np.asarray(close["i"], np.int64) * post_s.size + np.asarray(close["j"], np.int64))
    pp = pre_s[key // post_s.size]
    qq = post_s[key % post_s.size]
    keep = pp != qq
    return pp[keep], qq[keep], center


def population(
    model: StructuralModel, measurement: Measurement, *, slice_config: SliceConfig | None = None
) -> Population:
    """The neurons and eligible pairs of ``measurement`` in ``model``.

    Parameters
    ----------
    model
        The structural model.
    measurement
        The measurement.
    slice_config
        Slice emulation for ``"slice"`` measurements (``None``: ``SliceConfig()``, a 300 µm slab
        and 100 µm intersomatic distance). Ignored for in vivo measurements and for
        ``eligibility="all"``.

    Raises
    ------
    SelectionError
        A selector is invalid for the model, selects nobody, or no pair is eligible.
    """
    try:
        pre = select(model, measurement.pre)
        post = select(model, measurement.post)
    except SelectionError as err:
        raise SelectionError(f"measurement {measurement.id!r}: {err}") from None
    slab: tuple[int, float, float] | None = None
    if measurement.protocol == "slice" and measurement.eligibility == "protocol":
        cfg = slice_config if slice_config is not None else SliceConfig()
        pp, qq, center = _slice_pairs(model, pre, post, cfg)
        if pp.size == 0:
            depth = ("" if cfg.soma_depth_um is None else
                     f", somata {cfg.soma_depth_um[0]:g}-{cfg.soma_depth_um[1]:g} µm from a "
                     "surface")
            raise SelectionError(
                f"measurement {measurement.id!r}: no eligible pair in the slice "
                f"({pre.size} pre and {post.size} post neurons; slab {cfg.thickness_um:g} µm "
                f"along {cfg.axis} centred at {center:.1f} µm{depth}, max {cfg.distance} "
                f"distance {cfg.max_distance_um:g} µm); use a thicker slab or a larger "
                "max_distance_um"
            )
        if cfg.cut_arbors:
            half = cfg.thickness_um / 2.0
            slab = (0 if cfg.axis == "x" else 1, center - half, center + half)
    elif measurement.eligibility == "listed":
        src = model.populations.get(measurement.source_population)
        if src is None:
            raise SelectionError(
                f"measurement {measurement.id!r}: the model has no population "
                f"{measurement.source_population!r} (eligibility 'listed'); it has "
                f"{', '.join(map(repr, model.populations)) or 'none'}"
            )
        if src.pair_pre is None or src.pair_post is None:
            pp, qq = _product_pairs(pre, post)
        else:
            key = np.unique(np.asarray(src.pair_pre, np.int64) * model.n_neurons
                            + np.asarray(src.pair_post, np.int64))
            pp, qq = key // model.n_neurons, key % model.n_neurons
            keep = (pp != qq) & np.isin(pp, pre) & np.isin(qq, post)
            pp, qq = pp[keep], qq[keep]
        if pp.size == 0:
            raise SelectionError(
                f"measurement {measurement.id!r}: population "
                f"{measurement.source_population!r} lists no eligible pair"
            )
    else:
        pp, qq = _product_pairs(pre, post)
        if pp.size == 0:
            raise SelectionError(
                f"measurement {measurement.id!r}: no eligible pair: pre and post are the same "
                "single neuron (autapses are never eligible)"
            )
    logger.debug(
        "population %s: %d pre, %d post, %d eligible pairs",
        measurement.id, pre.size, post.size, pp.size,
    )
    return Population(
        measurement_id=measurement.id, pre=pre, post=post, pair_pre=pp, pair_post=qq,
        slab=slab,
    )


def populations(
    model: StructuralModel,
    mset: MeasurementSet,
    *,
    slice_config: SliceConfig | None = None,
) -> list[Population]:
    """:func:`population` of every measurement of the set ``mset``, in order."""
    return [population(model, m, slice_config=slice_config) for m in mset]


