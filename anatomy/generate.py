"""The synthetic rat barrel cortex: a seeded generator of statistically realistic structural models.

The dense structural model of Udvary et al. (2022) is not downloadable, so this module builds a
model with the same kind of content from published statistics: neurons per layer and cell type
of a C2 barrel column (Meyer et al. 2010), cell-type-specific dendrites (postsynaptic target
sites) and axons (boutons), VPM thalamocortical axons, and the total target-site density
``post_all``. Every number comes from :mod:`anatomy.parameters` (rendered in
``docs/anatomy-model.md``).

Presets
-------
``tiny``
    Unit tests: 8 x 8 x 40 voxels, a scaled-down column (240 µm) with its septum, ~400 cortical
    neurons (1.5 % of the published counts in the column) and 20 VPM neurons. Builds in a
    fraction of a second.
``small``
    Demos: the geometry of `column` (20 x 20 x 40 voxels, so the wide VPM axons fit as in
    `column`), 6 % of the neurons (~1,600), 40 VPM.
``column``
    The default: the full-density C2 column (all 19,109 neurons, counts per layer exact), a
    100 µm septal ring (listed at 30 % density), the 275-neuron VPM barreloid; 20 x 20 x 40
    voxels (1 mm x 1 mm x 2 mm).
``field``
    Scale tests: a row of three full-density columns (C1, C2, C3, 450 µm apart) with their septa
    and barreloids; 38 x 20 x 40 voxels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from difflib import get_close_matches
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from anatomy._generate_arbors import CscBuilder, _depths, batch_bounds, sample_batch
from anatomy._generate_somata import PresetSpec, Somata, place_somata
from anatomy.catalogue import CELL_TYPES, LAYER_BOUNDS_UM
from anatomy.errors import GeneratorArgumentError, UnknownNameError
from anatomy.grid import VoxelGrid
from anatomy.hashing import content_hash
from anatomy.model import Neurons, StructuralModel, VoxelMajorCounts
from anatomy.parameters import AXONS, DENDRITES, LAYER_COMPOSITION, ArborSpec, scalar

__all__ = ["GENERATOR_VERSION", "PRESETS", "GeneratorArgumentError", "build_model", "preset_spec"]

logger = logging.getLogger(__name__)

#: Version of the generator's algorithm and parameters; part of every generated model's attrs.
GENERATOR_VERSION = "2"

#: Fixed seed and sample size of the Monte-Carlo integral of :func:`site_density_profile`.
_PROFILE_SEED = 20100
_PROFILE_SAMPLES = 40_000

_C2_DIAMETER = scalar("column_diameter_um")
_SEPTUM = scalar("septum_width_um")
_PITCH = scalar("column_pitch_um")

_SPECS: MappingProxyType[str, PresetSpec] = MappingProxyType({
    "tiny": PresetSpec(
        name="tiny",
        description="unit-test model: scaled-down C2 column (240 µm) with septum, 1.5 % of the "
        "neurons, 20 VPM; 8 x 8 x 40 voxels",
        column_names=("C2",), column_centers_um=((200.0, 200.0),),
        column_diameter_um=240.0, septum_width_um=60.0, grid_xy=(8, 8),
        column_fraction=0.015, septum_fraction=0.3, vpm_per_column=20,
    ),
    "small": PresetSpec(
        name="small",
        description="demo model: C2 column geometry, 6 % of the neurons, 40 VPM; 20 x 20 x 40 "
        "voxels",
        column_names=("C2",), column_centers_um=((500.0, 500.0),),
        column_diameter_um=_C2_DIAMETER, septum_width_um=_SEPTUM, grid_xy=(20, 20),
        column_fraction=0.06, septum_fraction=scalar("septum_listed_fraction"),
        vpm_per_column=40,
    ),
    "column": PresetSpec(
        name="column",
        description="full-density C2 column (19,109 neurons) with its septal surround and the "
        "VPM barreloid; 20 x 20 x 40 voxels",
        column_names=("C2",), column_centers_um=((500.0, 500.0),),
        column_diameter_um=_C2_DIAMETER, septum_width_um=_SEPTUM, grid_xy=(20, 20),
        column_fraction=1.0, septum_fraction=scalar("septum_listed_fraction"),
        vpm_per_column=int(scalar("vpm_per_barreloid")),
    ),
    "field": PresetSpec(
        name="field",
        description="a row of three full-density columns (C1, C2, C3) with septa and barreloids; "
        "38 x 20 x 40 voxels",
        column_names=("C1", "C2", "C3"),
        column_centers_um=((500.0, 500.0), (500.0 + _PITCH, 500.0), (500.0 + 2 * _PITCH, 500.0)),
        column_diameter_um=_C2_DIAMETER, septum_width_um=_SEPTUM, grid_xy=(38, 20),
        column_fraction=1.0, septum_fraction=scalar("septum_listed_fraction"),
        vpm_per_column=int(scalar("vpm_per_barreloid")),
    ),
})

#: Names of the presets :func:`build_model` accepts.
PRESETS: tuple[str, ...] = tuple(_SPECS)


def preset_spec(preset: str) -> PresetSpec:
    """The geometry and sampling fractions of a preset.

    Raises
    ------
    UnknownNameError
        If ``preset`` is not one of :data:`PRESETS`.
    """
    try:
        return _SPECS[preset]
    except (KeyError, TypeError):
        hint = get_close_matches(str(preset).lower(), PRESETS, n=1)
        suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UnknownNameError(
            f"unknown anatomy preset {preset!r}; available presets are {', '.join(PRESETS)} "
            f"('column' is the default model).{suggestion}"
        ) from None


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def _counts(
    kind: str,
    specs: dict[int, ArborSpec],
    somata: Somata,
    grid: VoxelGrid,
    seed: int,
    stream: int,
    tick: Callable[[], None],
) -> VoxelMajorCounts:
    """Sample the ``pre`` or ``post`` counts of every neuron whose cell type has a spec."""
    n = len(somata.cell_type)
    builder = CscBuilder(n, grid.n_voxels)
    xy = np.ascontiguousarray(somata.soma_um[:, :2])
    z = np.ascontiguousarray(somata.soma_um[:, 2])
    for code in range(len(CELL_TYPES)):
        members = np.flatnonzero(somata.cell_type == code)
        spec = specs.get(code)
        if spec is None or len(members) == 0:
            continue
        first = int(members[0])  # somata are ordered by cell type: members are contiguous
        batches = batch_bounds(len(members), spec.mean_count / spec.sites_per_segment)
        for bi, (a, b) in enumerate(batches):
            lo, hi = first + a, first + b
            voxel, local, count = sample_batch(spec, xy[lo:hi], z[lo:hi], grid,
                                               _rng(seed, stream, code, bi))
            builder.add(voxel, local + np.int32(lo), count)
        tick()
    indptr, indices, data = builder.build()
    return VoxelMajorCounts(indptr, indices, data, shape=(n, grid.n_voxels), name=kind)


def _column_sums(counts: VoxelMajorCounts) -> npt.NDArray[np.float64]:
    ptr = np.asarray(counts.indptr)
    per_voxel = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    sums = np.bincount(per_voxel, weights=np.asarray(counts.data, np.float64),
                       minlength=len(ptr) - 1)
    return np.asarray(sums, dtype=np.float64)


def site_density_profile(grid: VoxelGrid) -> npt.NDArray[np.float64]:
    """Expected target sites per voxel at each depth of ``grid`` in full-density cortex.

    The sum over all cortical cell types of (neurons per µm^2 of column footprint, Meyer et al.
    2010) x (target sites per neuron) x (the depth distribution of their dendrites, soma depths
    uniform in the layer). Tangential spread integrates out in laterally uniform tissue, so
    this is the target-site density by depth that the listed dendrites imply. It is a fixed
    property of :mod:`anatomy.parameters` (a Monte-Carlo integral with its own fixed seed),
    shape ``(nz,)`` for the grid's depth bins.
    """
    edges = grid.origin_um[2] + np.arange(grid.shape[2] + 1) * grid.spacing_um
    area = np.pi * (scalar("column_diameter_um") / 2) ** 2
    rng = np.random.default_rng(np.random.SeedSequence(entropy=_PROFILE_SEED))
    profile = np.zeros(grid.shape[2])
    for comp in LAYER_COMPOSITION:
        lo, hi = LAYER_BOUNDS_UM[comp.layer]
        z = rng.uniform(lo, hi, _PROFILE_SAMPLES).astype(np.float32)
        owner = np.arange(_PROFILE_SAMPLES, dtype=np.int32)
        for name, fraction in comp.type_fractions.items():
            spec = DENDRITES[name]
            weights = np.array([c.fraction for c in spec.compartments])
            weights /= weights.sum()
            for c, w in zip(spec.compartments, weights, strict=True):
                hist, _ = np.histogram(_depths(c, z, owner, rng), edges)
                profile += comp.n_neurons * fraction * spec.mean_count * w * hist / len(z)
    return profile * grid.spacing_um**2 / area


def _post_all(grid: VoxelGrid, post: VoxelMajorCounts) -> npt.NDArray[np.float32]:
    """Total target sites per voxel: the full-density site profile, never below the listed sum.

    ``post_all = max(site_density_profile(depth), listed sum)``: where neurons are listed at
    full density (the column) the listed sum is post_all, with its real variation by position;
    elsewhere (sparse septal listing, unmodelled neighbouring columns, the scaled-down presets)
    the difference is the background of target sites of neurons not listed individually.
    """
    listed = _column_sums(post)
    profile = site_density_profile(grid)
    total = np.broadcast_to(profile, grid.shape).reshape(-1)
    return np.maximum(np.rint(total), listed).astype(np.float32)


def build_model(preset: str, *, seed: int = 0, progress: bool = False) -> StructuralModel:
    """Build a synthetic rat barrel-cortex structural model.

    Parameters
    ----------
    preset : str
        One of :data:`PRESETS`: ``"tiny"``, ``"small"``, ``"column"`` (the default model) or
        ``"field"`` (see the module docstring).
    seed : int, default 0
        Seed of every random draw: the same seed gives identical arrays.
    progress : bool, default False
        Show a progress bar (tqdm, on stderr).

    Returns
    -------
    StructuralModel
        With ``attrs`` ``source="synthetic"``, ``preset``, ``seed``, ``generator_version``, the
        geometry (``columns``, ``septum_width_um``, ...) and ``content_hash``.

    Raises
    ------
    UnknownNameError
        For an unknown preset (the message lists the presets).

    Examples
    --------
    >>> m = build_model("tiny", seed=1)
    >>> m.attrs["preset"], m.grid.shape
    ('tiny', (8, 8, 40))
    """
    spec = preset_spec(preset)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GeneratorArgumentError(
            f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0"
        )
    seed = int(seed)
    t0 = time.perf_counter()
    grid = spec.grid()
    somata = place_somata(spec, _rng(seed, 0))
    n = len(somata.cell_type)
    dend = {CELL_TYPES.index(t): s for t, s in DENDRITES.items()}
    axon = {CELL_TYPES.index(t): s for t, s in AXONS.items()}
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dend) + len(axon), desc=f"anatomy {preset}", unit="type")

    def tick() -> None:
        if bar is not None:
            bar.update(1)

    try:
        post = _counts("post", dend, somata, grid, seed, 1, tick)
        pre = _counts("pre", axon, somata, grid, seed, 2, tick)
    finally:
        if bar is not None:
            bar.close()
    post_all = _post_all(grid, post)
    neurons = Neurons(
        cell_type=somata.cell_type,
        layer=somata.layer,
        region=somata.region,
        column=somata.column,
        soma_um=somata.soma_um,
        ids=np.arange(n, dtype=np.int64),
        column_names=spec.column_names,
    )
    attrs: dict[str, Any] = {
        "source": "synthetic",
        "preset": preset,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "description": spec.description,
        **spec.to_attrs(),
    }
    model = StructuralModel(grid=grid, neurons=neurons, pre=pre, post=post, post_all=post_all,
                            attrs=attrs)
    attrs["content_hash"] = content_hash(model)
    logger.info("built %s (seed %d): %d neurons, %d voxels, nnz pre %d, post %d in %.2f s",
                preset, seed, n, grid.n_voxels, pre.nnz, post.nnz, time.perf_counter() - t0)
    return model
