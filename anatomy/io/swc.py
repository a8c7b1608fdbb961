"""Import SWC morphologies (read with MorphIO) placed at soma positions into a structural model.

Each neuron's cable is cut exactly at voxel faces; the cable length per voxel times the cell
type's bouton density (axon) or target-site density (dendrites) gives ``pre`` and ``post``. The
total cable length inside the grid is conserved to floating-point precision.

Coordinates: SWC files are read as (x, y, z) µm with **y pointing towards the pia** (the usual
orientation of cortical reconstructions); a neuron is translated so that its soma lands on the
manifest's soma position (x, y, depth), with depth = soma depth − (y − y_soma) and the SWC z
axis as the model's y axis. ``depth_axis`` chooses another convention.

The manifest is a CSV file with a header ``id,swc,cell_type,x,y,depth`` and optional
``region,column`` columns; ``swc`` paths are relative to the manifest.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES, REGIONS, code_of, layer_of_depth
from anatomy.errors import FormatError
from anatomy.grid import VoxelGrid
from anatomy.hashing import content_hash
from anatomy.model import Neurons, StructuralModel, VoxelMajorCounts

__all__ = [
    "DEFAULT_DENSITIES",
    "Densities",
    "SWCNeuron",
    "import_swc",
    "read_manifest",
    "voxelize_segments",
]

log = logging.getLogger(__name__)

DepthAxis = Literal["-y", "y", "-z", "z"]


@dataclass(frozen=True, slots=True)
class Densities:
    """Boutons per µm of axon and postsynaptic target sites per µm of dendrite."""

    boutons_per_um: float
    targets_per_um: float


#: Default densities per cell type. Spiny excitatory dendrites carry ~1-2 spines per µm and
#: cortical axons ~0.1-0.3 boutons per µm; aspiny interneuron dendrites are counted with their
#: shaft synapses (~0.5 per µm). Override per study through ``densities=``.
DEFAULT_DENSITIES: Mapping[str, Densities] = {
    **{t: Densities(0.2, 1.5) for t in CELL_TYPES},
    "L4ss": Densities(0.2, 1.2),
    "L5PT": Densities(0.15, 2.0),
    "INH": Densities(0.25, 0.5),
    "VPM": Densities(0.2, 0.5),
}


@dataclass(frozen=True, slots=True)
class SWCNeuron:
    """One manifest row: a morphology, its cell type and where its soma goes."""

    id: int
    swc: Path
    cell_type: str
    soma_um: tuple[float, float, float]
    region: str = "column"
    column: str = "C2"
    line: int = 0


def read_manifest(path: str | Path) -> list[SWCNeuron]:
    """Read a manifest CSV; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: manifest file not found")
    required = ("id", "swc", "cell_type", "x", "y", "depth")
    out: list[SWCNeuron] = []
    seen: dict[int, int] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise FormatError(
                f"{path}, line 1: missing column(s) {', '.join(missing)}; the header must "
                f"contain {', '.join(required)} (and optionally region, column)"
            )
        for row in reader:
            line = reader.line_num
            try:
                nid = int(row["id"])
            except (TypeError, ValueError):
                raise FormatError(f"{path}, line {line}: id {row['id']!r} is not an integer") from None
            if nid in seen:
                raise FormatError(
                    f"{path}, line {line}: duplicate id {nid} (first on line {seen[nid]})"
                )
            seen[nid] = line
            pos = []
            for key in ("x", "y", "depth"):
                try:
                    value = float(row[key])
                except (TypeError, ValueError):
                    raise FormatError(
                        f"{path}, line {line}: {key} {row[key]!r} is not a number"
                    ) from None
                if not math.isfinite(value):
                    raise FormatError(f"{path}, line {line}: {key} must be finite")
                pos.append(value)
            try:
                code_of(row["cell_type"], CELL_TYPES, kind="cell type")
                region = row.get("region") or "column"
                code_of(region, REGIONS, kind="region")
            except KeyError as err:
                raise FormatError(f"{path}, line {line}: {err}") from None
            swc = (path.parent / row["swc"]).resolve()
            out.append(
                SWCNeuron(
                    id=nid,
                    swc=swc,
                    cell_type=row["cell_type"],
                    soma_um=(pos[0], pos[1], pos[2]),
                    region=region,
                    column=row.get("column") or "C2",
                    line=line,
                )
            )
    if not out:
        raise FormatError(f"{path}: the manifest lists no neuron")
    return out


def voxelize_segments(
    start: npt.NDArray[np.float64], end: npt.NDArray[np.float64], grid: VoxelGrid
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], float]:
    """Cable length per voxel of straight segments, cut exactly at voxel faces.

    Returns (voxel ids, lengths in µm, length outside the grid). ``start``/``end`` are (S, 3)
    in model coordinates (x, y, depth).

    Examples
    --------
    >>> g = VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=50.0, shape=(1, 1, 3))
    >>> v, length, outside = voxelize_segments(np.array([[25., 25., 10.]]),
    ...                                        np.array([[25., 25., 130.]]), g)
    >>> v.tolist(), length.round(6).tolist(), outside
    ([0, 1, 2], [40.0, 50.0, 30.0], 0.0)
    """
    origin = np.asarray(grid.origin_um)
    a = (np.asarray(start, np.float64) - origin) / grid.spacing_um
    b = (np.asarray(end, np.float64) - origin) / grid.spacing_um
    seg_len = np.linalg.norm((b - a) * grid.spacing_um, axis=1)
    keep = seg_len > 0
    a, b, seg_len = a[keep], b[keep], seg_len[keep]
    s = len(a)
    # crossings of integer planes along each axis: t = (plane - a) / (b - a)
    seg_ids, ts = [np.arange(s), np.arange(s)], [np.zeros(s), np.ones(s)]
    for axis in range(3):
        i0, i1 = np.floor(a[:, axis]), np.floor(b[:, axis])
        lo, hi = np.minimum(i0, i1), np.maximum(i0, i1)
        n = (hi - lo).astype(np.int64)
        if n.sum() == 0:
            continue
        seg = np.repeat(np.arange(s), n)
        offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        plane = lo[seg] + 1 + offset
        denom = b[seg, axis] - a[seg, axis]
        seg_ids.append(seg)
        ts.append((plane - a[seg, axis]) / denom)
    seg_all = np.concatenate(seg_ids)
    t_all = np.clip(np.concatenate(ts), 0.0, 1.0)
    order = np.lexsort((t_all, seg_all))
    seg_all, t_all = seg_all[order], t_all[order]
    same = seg_all[1:] == seg_all[:-1]
    t0, t1, seg = t_all[:-1][same], t_all[1:][same], seg_all[:-1][same]
    piece = (t1 - t0) * seg_len[seg]
    mid = a[seg] + ((t0 + t1) / 2)[:, None] * (b[seg] - a[seg])
    idx = np.floor(mid).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=1) & (piece > 0)
    outside = float(piece[~inside & (piece > 0)].sum())
    voxel = np.ravel_multi_index(tuple(idx[inside].T), grid.shape).astype(np.int64)
    uq, inv = np.unique(voxel, return_inverse=True)
    length = np.bincount(inv, weights=piece[inside], minlength=len(uq))
    return uq.astype(np.int64), np.asarray(length, dtype=np.float64), outside


def _morphio_message(err: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _segments(
    neuron: SWCNeuron, depth_axis: DepthAxis
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """(start, end, is_axon) of every cable segment, in model coordinates."""
    import morphio

    if not neuron.swc.is_file():
        raise FormatError(f"line {neuron.line} of the manifest: SWC file {neuron.swc} not found")
    try:
        morph = morphio.Morphology(str(neuron.swc))
    except morphio.MorphioError as err:
        raise FormatError(f"{neuron.swc}: {_morphio_message(err)}") from err
    soma = np.asarray(morph.soma.center if len(morph.soma.points) else [0.0, 0.0, 0.0])
    starts, ends, axon = [], [], []
    for sec in morph.iter():
        pts = np.asarray(sec.points, dtype=np.float64)
        if len(pts) < 2:
            continue
        starts.append(pts[:-1])
        ends.append(pts[1:])
        axon.append(np.full(len(pts) - 1, sec.type == morphio.SectionType.axon))
    if not starts:
        raise FormatError(f"{neuron.swc}: the morphology has no neurite segments")
    p0, p1 = np.concatenate(starts) - soma, np.concatenate(ends) - soma
    return _to_model(p0, neuron, depth_axis), _to_model(p1, neuron, depth_axis), np.concatenate(axon)


def _to_model(p: npt.NDArray[np.float64], neuron: SWCNeuron, depth_axis: DepthAxis
              ) -> npt.NDArray[np.float64]:
    axis = {"y": 1, "-y": 1, "z": 2, "-z": 2}[depth_axis]
    other = 2 if axis == 1 else 1
    sign = -1.0 if depth_axis.startswith("-") else 1.0
    x, y, d = neuron.soma_um
    return np.column_stack([x + p[:, 0], y + p[:, other], d + sign * p[:, axis]])


@dataclass
class _Accumulator:
    rows: list[npt.NDArray[np.int64]] = field(default_factory=list)
    cols: list[npt.NDArray[np.int64]] = field(default_factory=list)
    vals: list[npt.NDArray[np.float64]] = field(default_factory=list)

    def add(self, i: int, voxels: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> None:
        self.rows.append(np.full(len(voxels), i, dtype=np.int64))
        self.cols.append(voxels)
        self.vals.append(values)

    def matrix(self, n: int, v: int) -> sp.csc_array:
        if not self.rows:
            return sp.csc_array((n, v), dtype=np.float32)
        return sp.csc_array(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(n, v),
            dtype=np.float32,
        )


def import_swc(
    manifest: str | Path | Sequence[SWCNeuron],
    *,
    grid: VoxelGrid | None = None,
    spacing_um: float = 50.0,
    densities: Mapping[str, Densities] | None = None,
    background_targets_per_voxel: float = 0.0,
    depth_axis: DepthAxis = "-y",
) -> StructuralModel:
    """Build a structural model from SWC morphologies listed in a manifest.

    ``grid`` defaults to the bounding box of all cable, aligned to ``spacing_um`` from the pia.
    ``post_all`` is the sum of the imported target sites plus ``background_targets_per_voxel``
    (target sites of neurons that were not reconstructed).
    """
    neurons = read_manifest(manifest) if isinstance(manifest, str | Path) else list(manifest)
    dens = {**DEFAULT_DENSITIES, **(densities or {})}
    segs = [_segments(nrn, depth_axis) for nrn in neurons]
    if grid is None:
        lo = np.min([np.minimum(s[0].min(0), s[1].min(0)) for s in segs], axis=0)
        hi = np.max([np.maximum(s[0].max(0), s[1].max(0)) for s in segs], axis=0)
        origin = np.floor(lo / spacing_um) * spacing_um
        shape = np.maximum(np.ceil((hi - origin) / spacing_um).astype(int), 1)
        shape = np.where(origin + shape * spacing_um <= hi, shape + 1, shape)
        grid = VoxelGrid(
            origin_um=(float(origin[0]), float(origin[1]), float(origin[2])),
            spacing_um=spacing_um,
            shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        )
    pre_acc, post_acc = _Accumulator(), _Accumulator()
    outside_total = 0.0
    for i, (nrn, (p0, p1, is_axon)) in enumerate(zip(neurons, segs, strict=True)):
        d = dens[nrn.cell_type]
        for acc, mask, density in ((pre_acc, is_axon, d.boutons_per_um),
                                   (post_acc, ~is_axon, d.targets_per_um)):
            if mask.any():
                vox, length, outside = voxelize_segments(p0[mask], p1[mask], grid)
                outside_total += outside
                acc.add(i, vox, length * density)
    if outside_total > 0:
        log.warning("%.1f µm of cable lies outside the grid and was not counted", outside_total)
    n, v = len(neurons), grid.n_voxels
    pre, post = pre_acc.matrix(n, v), post_acc.matrix(n, v)
    post_all = (np.asarray(post.sum(axis=0)).ravel() + background_targets_per_voxel).astype(
        np.float32
    )
    columns = tuple(dict.fromkeys(nrn.column for nrn in neurons))
    soma = np.array([nrn.soma_um for nrn in neurons], dtype=np.float32)
    types = [nrn.cell_type for nrn in neurons]
    layer = layer_of_depth(soma[:, 2])
    layer[np.asarray(types) == "VPM"] = -1
    model_neurons = Neurons(
        cell_type=np.array([CELL_TYPES.index(t) for t in types], dtype=np.int8),
        layer=layer.astype(np.int8),
        region=np.array([REGIONS.index(nrn.region) for nrn in neurons], dtype=np.int8),
        column=np.array([columns.index(nrn.column) for nrn in neurons], dtype=np.int16),
        soma_um=soma,
        ids=np.array([nrn.id for nrn in neurons], dtype=np.int64),
        column_names=columns,
    )
    attrs: dict[str, Any] = {
        "source": "swc",
        "depth_axis": depth_axis,
        "cable_outside_grid_um": outside_total,
        "densities": {t: [dd.boutons_per_um, dd.targets_per_um] for t, dd in dens.items()},
    }
    model = StructuralModel(
        grid=grid,
        neurons=model_neurons,
        pre=VoxelMajorCounts.from_scipy(pre, name="pre"),
        post=VoxelMajorCounts.from_scipy(post, name="post"),
        post_all=post_all,
        attrs=attrs,
    )
    attrs["content_hash"] = content_hash(model)
    return model
