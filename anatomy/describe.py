"""Summary statistics of a structural model (JSON-native), for tests, ``wiring anatomy info`` and plots.

The statistics are the ones the published facts are stated in: neurons per layer, cell type and
region, the depth profile of VPM boutons, the total target sites per voxel inside the column,
sites per neuron by cell type, and the sparsity (nnz) of ``pre`` and ``post``. Sparse arrays are
read one voxel block at a time, so a store-backed model is summarized in bounded memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.model import StructuralModel, VoxelMajorCounts
from anatomy.parameters import CORTEX_BOTTOM_UM

__all__ = ["column_voxel_mask", "depth_profile", "describe_model", "type_voxel_sums"]

F64 = npt.NDArray[np.float64]

#: Voxels read per block when summing store-backed counts.
_BLOCK_VOXELS = 4096


def type_voxel_sums(model: StructuralModel, which: str) -> F64:
    """Sites per cell type and voxel: array (len(CELL_TYPES), V) of summed ``pre`` or ``post``.

    Parameters
    ----------
    model : StructuralModel
    which : {"pre", "post"}
    """
    counts: VoxelMajorCounts = getattr(model, which)
    n, v = counts.shape
    onehot = sp.csr_array(
        (np.ones(n), (np.asarray(model.neurons.cell_type, np.int64), np.arange(n))),
        shape=(len(CELL_TYPES), n),
    )
    out = np.zeros((len(CELL_TYPES), v))
    for a in range(0, v, _BLOCK_VOXELS):
        b = min(v, a + _BLOCK_VOXELS)
        out[:, a:b] = (onehot @ counts.voxel_block(a, b).astype(np.float64)).toarray()
    return out


def _neuron_sums(counts: VoxelMajorCounts) -> F64:
    """Sites per neuron (row sums), read by voxel blocks."""
    n, v = counts.shape
    total = np.zeros(n)
    for a in range(0, v, _BLOCK_VOXELS):
        blk = counts.voxel_block(a, min(v, a + _BLOCK_VOXELS))
        total += np.bincount(blk.indices, weights=blk.data.astype(np.float64), minlength=n)
    return total


def depth_profile(
    model: StructuralModel, per_voxel: npt.ArrayLike, *, bin_um: float = 50.0
) -> tuple[F64, F64]:
    """Sum a per-voxel quantity over depth bins: (bin centres in µm, sums per bin)."""
    depth = np.asarray(model.depth_um(), dtype=np.float64)
    values = np.asarray(per_voxel, dtype=np.float64)
    top = max(float(depth.max()) if depth.size else 0.0, CORTEX_BOTTOM_UM)
    edges = np.arange(0.0, top + bin_um, bin_um)
    idx = np.clip(np.digitize(depth, edges) - 1, 0, len(edges) - 2)
    sums = np.bincount(idx, weights=values, minlength=len(edges) - 1)
    return (edges[:-1] + bin_um / 2), np.asarray(sums, dtype=np.float64)


def column_voxel_mask(model: StructuralModel) -> npt.NDArray[np.bool_] | None:
    """Voxels whose centre lies in a column footprint and in the cortex, or None if unknown.

    Uses the ``columns`` geometry generated models record in ``attrs``; imported models have
    none.
    """
    columns = model.attrs.get("columns")
    if not columns or model.voxel_depth_um is not None:
        return None
    centers = model.grid.voxel_center_um(np.arange(model.n_voxels))
    mask = np.zeros(model.n_voxels, dtype=bool)
    for col in columns:
        cx, cy = (float(v) for v in col["center_um"])
        r = float(col["diameter_um"]) / 2
        mask |= np.hypot(centers[:, 0] - cx, centers[:, 1] - cy) <= r
    return mask & (centers[:, 2] < CORTEX_BOTTOM_UM)


def _stats(values: F64) -> dict[str, float]:
    if values.size == 0:
        return {"n": 0}
    q = np.percentile(values, [5, 50, 95])
    return {"n": int(values.size), "min": float(values.min()), "p5": float(q[0]),
            "median": float(q[1]), "p95": float(q[2]), "max": float(values.max()),
            "mean": float(values.mean())}


def _vpm_profile(model: StructuralModel, vpm_per_voxel: F64) -> dict[str, Any]:
    centers, sums = depth_profile(model, vpm_per_voxel)
    total = float(sums.sum())
    out: dict[str, Any] = {
        "total": total,
        "depth_bins_um": centers.tolist(),
        "boutons_per_bin": sums.tolist(),
    }
    if total <= 0:
        return out
    peak = int(np.argmax(sums))
    # the second peak: the largest bin at least 300 µm away from the main peak
    far = np.abs(centers - centers[peak]) >= 300.0
    second = int(np.flatnonzero(far)[np.argmax(sums[far])]) if far.any() else peak
    lo, hi = sorted((peak, second))
    trough = lo + int(np.argmin(sums[lo : hi + 1]))
    out.update({
        "peak_depth_um": float(centers[peak]),
        "secondary_peak_depth_um": float(centers[second]),
        "secondary_to_peak_ratio": float(sums[second] / sums[peak]),
        "trough_depth_um": float(centers[trough]),
        "trough_to_peak_ratio": float(sums[trough] / sums[peak]),
        "fraction_above_250_um": float(sums[centers < 250.0].sum() / total),
        "fraction_below_1750_um": float(sums[centers > 1750.0].sum() / total),
    })
    return out


def describe_model(model: StructuralModel) -> dict[str, Any]:
    """JSON-native summary of a structural model.

    Parameters
    ----------
    model : StructuralModel
        In memory or store-backed.

    Returns
    -------
    dict
        ``n_neurons``, ``n_voxels``, ``grid``, ``attrs`` (provenance), ``neurons_per_layer``
        (all cortical neurons), ``column_neurons_per_layer`` (region ``column`` only),
        ``neurons_per_cell_type``, ``neurons_per_region``, ``column_names``, ``populations``
        (names of source-defined populations), ``inhibitory_fraction`` (of the
        cortical neurons), ``target_sites_per_neuron`` and ``boutons_per_neuron`` (per cell
        type: mean, min, max), ``vpm_boutons`` (depth profile in 50 µm bins with peak, second
        peak, trough and tail fractions; per-entry percentiles), ``post_all_in_column``
        (percentiles over cortical voxels in the column footprint, or over all voxels when the
        footprint is unknown; ``basis`` says which) and ``nnz`` of ``pre`` and ``post``.

    Examples
    --------
    >>> from anatomy.generate import build_model
    >>> d = describe_model(build_model("tiny"))
    >>> d["neurons_per_cell_type"]["VPM"]
    20
    """
    nrn = model.neurons
    ct = np.asarray(nrn.cell_type, np.int64)
    layer = np.asarray(nrn.layer, np.int64)
    region = np.asarray(nrn.region, np.int64)
    cortical = layer >= 0
    col_region = region == REGIONS.index("column")
    post_n = _neuron_sums(model.post)
    pre_n = _neuron_sums(model.pre)

    def per_type(values: F64) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for code, name in enumerate(CELL_TYPES):
            sel = values[ct == code]
            if sel.size:
                out[name] = {"mean": float(sel.mean()), "min": float(sel.min()),
                             "max": float(sel.max())}
        return out

    pre_types = type_voxel_sums(model, "pre")
    vpm_voxel = pre_types[CELL_TYPES.index("VPM")]
    vpm = _vpm_profile(model, vpm_voxel)
    vpm_rows = np.flatnonzero(ct == CELL_TYPES.index("VPM"))
    if vpm_rows.size:
        entries: list[F64] = []
        v = model.n_voxels
        is_vpm = np.zeros(len(ct), dtype=bool)
        is_vpm[vpm_rows] = True
        for a in range(0, v, _BLOCK_VOXELS):
            blk = model.pre.voxel_block(a, min(v, a + _BLOCK_VOXELS))
            entries.append(blk.data[is_vpm[blk.indices]].astype(np.float64))
        allv = np.concatenate(entries)
        if allv.size:
            q = np.percentile(allv, [5, 50, 95, 99])
            vpm["per_entry"] = {"p5": float(q[0]), "median": float(q[1]), "p95": float(q[2]),
                                "p99": float(q[3]), "max": float(allv.max())}
        vpm["per_neuron_mean"] = float(pre_n[vpm_rows].mean())

    post_all = np.asarray(model.post_all, dtype=np.float64)
    mask = column_voxel_mask(model)
    basis = "column footprint, cortical depth"
    if mask is None:
        mask = np.ones(model.n_voxels, dtype=bool)
        basis = "all voxels (no column geometry recorded)"
    n_cort = int(cortical.sum())
    n_inh = int((cortical & (ct == CELL_TYPES.index("INH"))).sum())
    return {
        "n_neurons": len(ct),
        "n_voxels": int(model.n_voxels),
        "grid": model.grid.to_dict(),
        "attrs": {k: v for k, v in model.attrs.items() if isinstance(v, (str, int, float))},
        "neurons_per_layer": {
            name: int((layer == i).sum()) for i, name in enumerate(LAYERS)
        } | {"outside_cortex": int((~cortical).sum())},
        "column_neurons_per_layer": {
            name: int(((layer == i) & col_region).sum()) for i, name in enumerate(LAYERS)
        },
        "neurons_per_cell_type": {
            name: int((ct == i).sum()) for i, name in enumerate(CELL_TYPES) if (ct == i).any()
        },
        "neurons_per_region": {name: int((region == i).sum()) for i, name in enumerate(REGIONS)},
        "column_names": list(nrn.column_names),
        "populations": sorted(model.populations),
        "inhibitory_fraction": float(n_inh / n_cort) if n_cort else 0.0,
        "target_sites_per_neuron": per_type(post_n),
        "boutons_per_neuron": per_type(pre_n),
        "vpm_boutons": vpm,
        "post_all_in_column": {"basis": basis, **_stats(post_all[mask])},
        "nnz": {"pre": int(model.pre.nnz), "post": int(model.post.nnz)},
    }
