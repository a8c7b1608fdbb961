"""Presets' geometry and soma placement for the synthetic barrel-cortex generator (private)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from anatomy.catalogue import CELL_TYPES, LAYER_BOUNDS_UM, LAYERS, REGIONS
from anatomy.grid import VoxelGrid
from anatomy.parameters import LAYER_COMPOSITION, scalar

__all__ = ["PresetSpec", "Somata", "place_somata", "region_of_xy", "split_counts"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class PresetSpec:
    """Geometry and sampling fractions of one preset (see ``docs/anatomy-model.md``).

    ``column_fraction`` scales the per-layer neuron counts of each column (1.0 = the published
    19,109); ``septum_fraction`` is the density of listed septal neurons relative to the listed
    column density; ``grid_xy`` is the tangential grid size in voxels (the grid always spans
    the whole cortical depth).
    """

    name: str
    description: str
    column_names: tuple[str, ...]
    column_centers_um: tuple[tuple[float, float], ...]
    column_diameter_um: float
    septum_width_um: float
    grid_xy: tuple[int, int]
    column_fraction: float
    septum_fraction: float
    vpm_per_column: int

    def grid(self) -> VoxelGrid:
        """The voxel grid of this preset (origin at the pia, corner at x = y = 0)."""
        s = scalar("voxel_um")
        nz = round(scalar("grid_depth_um") / s)
        return VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=s,
                         shape=(self.grid_xy[0], self.grid_xy[1], nz))

    def to_attrs(self) -> dict[str, object]:
        """JSON-native description of the geometry (stored in the model's attrs)."""
        return {
            "columns": [
                {"name": n, "center_um": [float(c[0]), float(c[1])],
                 "diameter_um": float(self.column_diameter_um)}
                for n, c in zip(self.column_names, self.column_centers_um, strict=True)
            ],
            "septum_width_um": float(self.septum_width_um),
            "column_fraction": float(self.column_fraction),
            "septum_fraction": float(self.septum_fraction),
            "vpm_per_column": int(self.vpm_per_column),
        }


@dataclass(frozen=True, slots=True)
class Somata:
    """Soma attributes of the generated neurons, ordered by cell type (VPM last)."""

    cell_type: npt.NDArray[np.int8]
    layer: npt.NDArray[np.int8]
    region: npt.NDArray[np.int8]
    column: npt.NDArray[np.int16]
    soma_um: npt.NDArray[np.float32]


def split_counts(total: float, weights: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Integer counts summing to ``round(total)``, proportional to ``weights`` (largest remainder).

    Examples
    --------
    >>> split_counts(10, [1, 1, 1]).tolist()
    [4, 3, 3]
    """
    w = np.asarray(weights, dtype=np.float64)
    n = round(total)
    if n <= 0 or w.sum() <= 0:
        return np.zeros(len(w), dtype=np.int64)
    exact = n * w / w.sum()
    out = np.floor(exact).astype(np.int64)
    rest = n - int(out.sum())
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:rest]] += 1
    return np.asarray(out, dtype=np.int64)


def region_of_xy(spec: PresetSpec, x: F64, y: F64) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int16]]:
    """Region code (column / septum, -1 outside both) and nearest column of tangential points."""
    centers = np.asarray(spec.column_centers_um, dtype=np.float64)
    d = np.hypot(x[:, None] - centers[None, :, 0], y[:, None] - centers[None, :, 1])
    nearest = np.argmin(d, axis=1).astype(np.int16)
    dmin = d[np.arange(len(x)), nearest]
    r = spec.column_diameter_um / 2
    region = np.full(len(x), -1, dtype=np.int8)
    region[dmin <= r + spec.septum_width_um] = REGIONS.index("septum")
    region[dmin <= r] = REGIONS.index("column")
    return region, nearest


def _septum_area_um2(spec: PresetSpec) -> float:
    """Area of the septal region (union of rings minus columns), on a 2 µm raster."""
    step = 2.0
    r_out = spec.column_diameter_um / 2 + spec.septum_width_um
    centers = np.asarray(spec.column_centers_um)
    xs = np.arange(centers[:, 0].min() - r_out, centers[:, 0].max() + r_out, step) + step / 2
    ys = np.arange(centers[:, 1].min() - r_out, centers[:, 1].max() + r_out, step) + step / 2
    xx, yy = np.meshgrid(xs, ys, indexing="ij")
    region, _ = region_of_xy(spec, xx.ravel(), yy.ravel())
    return float((region == REGIONS.index("septum")).sum() * step * step)


def _layer_type_counts(n_layer: int, fractions: dict[str, float]) -> dict[str, int]:
    names = list(fractions)
    counts = split_counts(n_layer, [fractions[t] for t in names])
    return {t: int(c) for t, c in zip(names, counts, strict=True)}


def place_somata(spec: PresetSpec, rng: np.random.Generator) -> Somata:
    """Place every neuron of a preset: cortical somata by layer and region, then VPM.

    Column neurons: per column and layer exactly ``column_fraction`` x the published count
    (largest-remainder rounding over layers, then over cell types), uniform in the column's
    disc and the layer's depth range. Septal neurons: the column's listed density times
    ``septum_fraction``, uniform in the septal ring. VPM: ``vpm_per_column`` per column, soma
    at the nominal thalamic depth with a tangential offset (the centre of its cortical axon).
    """
    r = spec.column_diameter_um / 2
    area_col = np.pi * r * r
    area_sept = _septum_area_um2(spec)
    published = np.array([c.n_neurons for c in LAYER_COMPOSITION], dtype=np.float64)
    col_layer_counts = split_counts(published.sum() * spec.column_fraction, published)
    sept_layer_counts = split_counts(
        col_layer_counts.sum() * spec.septum_fraction * area_sept / area_col,
        col_layer_counts,
    )
    centers = np.asarray(spec.column_centers_um, dtype=np.float64)
    xs: list[F64] = []
    ys: list[F64] = []
    zs: list[F64] = []
    types: list[npt.NDArray[np.int64]] = []
    layers: list[npt.NDArray[np.int64]] = []
    regions: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []

    def add_types(n_layer: int, comp_index: int) -> npt.NDArray[np.int64]:
        comp = LAYER_COMPOSITION[comp_index]
        counts = _layer_type_counts(n_layer, dict(comp.type_fractions))
        t = np.concatenate([np.full(c, CELL_TYPES.index(name), np.int64)
                            for name, c in counts.items()]) if n_layer else np.zeros(0, np.int64)
        return rng.permutation(t)

    col_code = REGIONS.index("column")
    sept_code = REGIONS.index("septum")
    for li, comp in enumerate(LAYER_COMPOSITION):
        lo, hi = LAYER_BOUNDS_UM[comp.layer]
        lcode = LAYERS.index(comp.layer)
        for ci in range(len(spec.column_names)):
            n = int(col_layer_counts[li])
            rad = r * np.sqrt(rng.random(n))
            ang = 2 * np.pi * rng.random(n)
            xs.append(centers[ci, 0] + rad * np.cos(ang))
            ys.append(centers[ci, 1] + rad * np.sin(ang))
            zs.append(rng.uniform(lo, hi, n))
            types.append(add_types(n, li))
            layers.append(np.full(n, lcode, np.int64))
            regions.append(np.full(n, col_code, np.int64))
            cols.append(np.full(n, ci, np.int64))
        n = int(sept_layer_counts[li])
        if n:
            sx, sy, scol = _sample_septum(spec, n, rng)
            xs.append(sx)
            ys.append(sy)
            zs.append(rng.uniform(lo, hi, n))
            types.append(add_types(n, li))
            layers.append(np.full(n, lcode, np.int64))
            regions.append(np.full(n, sept_code, np.int64))
            cols.append(scol.astype(np.int64))
    # VPM, one barreloid per column
    sigma = scalar("vpm_offset_sigma_um")
    for ci in range(len(spec.column_names)):
        n = spec.vpm_per_column
        off = rng.normal(0.0, sigma, (n, 2))
        norm = np.hypot(off[:, 0], off[:, 1])
        scale = np.minimum(1.0, r / np.maximum(norm, 1e-9))  # axon centres stay in the barrel
        xs.append(centers[ci, 0] + off[:, 0] * scale)
        ys.append(centers[ci, 1] + off[:, 1] * scale)
        zs.append(np.full(n, scalar("vpm_soma_depth_um")))
        types.append(np.full(n, CELL_TYPES.index("VPM"), np.int64))
        layers.append(np.full(n, -1, np.int64))
        regions.append(np.full(n, REGIONS.index("barreloid"), np.int64))
        cols.append(np.full(n, ci, np.int64))

    x, y, z = np.concatenate(xs), np.concatenate(ys), np.concatenate(zs)
    t, lay = np.concatenate(types), np.concatenate(layers)
    reg, col = np.concatenate(regions), np.concatenate(cols)
    order = np.lexsort((z, reg, col, t))  # by cell type, then column, region, depth
    soma = np.stack([x, y, z], axis=1)[order].astype(np.float32)
    return Somata(
        cell_type=t[order].astype(np.int8),
        layer=lay[order].astype(np.int8),
        region=reg[order].astype(np.int8),
        column=col[order].astype(np.int16),
        soma_um=soma,
    )


def _sample_septum(
    spec: PresetSpec, n: int, rng: np.random.Generator
) -> tuple[F64, F64, npt.NDArray[np.int16]]:
    """``n`` points uniform in the septal region (rejection sampling from the bounding box)."""
    r_out = spec.column_diameter_um / 2 + spec.septum_width_um
    centers = np.asarray(spec.column_centers_um)
    lo = centers.min(axis=0) - r_out
    hi = centers.max(axis=0) + r_out
    xs: list[F64] = []
    ys: list[F64] = []
    cs: list[npt.NDArray[np.int16]] = []
    have = 0
    while have < n:
        m = max(64, 4 * (n - have))
        px = rng.uniform(lo[0], hi[0], m)
        py = rng.uniform(lo[1], hi[1], m)
        region, col = region_of_xy(spec, px, py)
        keep = region == REGIONS.index("septum")
        xs.append(px[keep])
        ys.append(py[keep])
        cs.append(col[keep])
        have += int(keep.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n], np.concatenate(cs)[:n]
