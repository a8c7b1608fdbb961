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
    "DEFAULT_MAX_VOXELS",
    "Densities",
    "SWCNeuron",
    "import_swc",
    "read_manifest",
    "voxelize_segments",
]

log = logging.getLogger(__name__)

DepthAxis = Literal["-y", "y", "-z", "z"]

#: Largest voxel grid an import builds unless told otherwise (2·10^7 voxels of 50 µm is a
#: 13.6 mm cube; a whole rat barrel field needs well under 10^6). A stray sample far away
#: (a typo'd coordinate) would otherwise build a grid that takes hours and gigabytes.
DEFAULT_MAX_VOXELS = 20_000_000


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


@dataclass(frozen=True, slots=True)
class _Samples:
    """Id, parent, position and line of every sample of an SWC file (for tree checks)."""

    ids: npt.NDArray[np.int64]
    parents: npt.NDArray[np.int64]
    xyz: npt.NDArray[np.float64]
    lines: npt.NDArray[np.int64]


def _read_samples(path: Path) -> _Samples | None:
    """The samples of an SWC file, or None when it does not parse (MorphIO then reports the
    line)."""
    ids, parents, xyz, lines = [], [], [], []
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line_no, line in enumerate(fh, start=1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                f = text.split()
                ids.append(int(f[0]))
                xyz.append((float(f[2]), float(f[3]), float(f[4])))
                parents.append(int(f[6]))
                lines.append(line_no)
    except (ValueError, IndexError):
        return None
    return _Samples(
        ids=np.asarray(ids, dtype=np.int64),
        parents=np.asarray(parents, dtype=np.int64),
        xyz=np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
        lines=np.asarray(lines, dtype=np.int64),
    )


def _check_tree(path: Path, samples: _Samples) -> None:
    """Raise :class:`FormatError` naming the file and line of a sample on a parent cycle.

    Every sample has one parent, so following parents from any sample either reaches a root
    (parent -1), a missing parent (MorphIO reports that) or a cycle. MorphIO drops the samples
    of a cycle without a word, which would silently change the neuron.
    """
    index = {int(i): k for k, i in enumerate(samples.ids)}
    state = np.zeros(len(samples.ids), dtype=np.int8)  # 0 new, 1 on the current path, 2 done
    for start in range(len(samples.ids)):
        if state[start]:
            continue
        path_nodes: list[int] = []
        k: int | None = start
        while k is not None and state[k] == 0:
            state[k] = 1
            path_nodes.append(k)
            k = index.get(int(samples.parents[k]))
        if k is not None and state[k] == 1:
            loop = path_nodes[path_nodes.index(k):]
            chain = " -> ".join(str(int(samples.ids[j])) for j in loop[:6])
            more = " -> ..." if len(loop) > 6 else ""
            raise FormatError(
                f"{path}, line {int(samples.lines[k])}: sample {int(samples.ids[k])} lies on a "
                f"cycle of parents ({chain}{more} -> {int(samples.ids[k])}); an SWC file must "
                f"describe a tree"
            )
        for j in path_nodes:
            state[j] = 2


def _farthest_sample(samples: _Samples) -> tuple[int, float]:
    """Line and distance (µm) of the sample farthest from the first root sample."""
    roots = np.flatnonzero(samples.parents < 0)
    origin = samples.xyz[roots[0]] if len(roots) else samples.xyz[0]
    dist = np.linalg.norm(samples.xyz - origin, axis=1)
    k = int(np.argmax(dist))
    return int(samples.lines[k]), float(dist[k])


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
    samples = _read_samples(neuron.swc)
    if samples is not None:
        _check_tree(neuron.swc, samples)
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
    max_voxels: int = DEFAULT_MAX_VOXELS,
) -> StructuralModel:
    """Build a structural model from SWC morphologies listed in a manifest.

    ``grid`` defaults to the bounding box of all cable, aligned to ``spacing_um`` from the pia.
    ``post_all`` is the sum of the imported target sites plus ``background_targets_per_voxel``
    (target sites of neurons that were not reconstructed).

    Raises
    ------
    FormatError
        A malformed manifest or SWC file, a cycle of parents in an SWC file (file and line
        named), or a grid (or a voxelization) larger than ``max_voxels`` voxels: the message
        names the file and line of the sample farthest from its soma.
    """
    if max_voxels < 1:
        raise FormatError(f"max_voxels must be a positive integer, got {max_voxels!r}")
    if not (math.isfinite(spacing_um) and spacing_um > 0):
        raise FormatError(f"spacing_um must be a positive number, got {spacing_um!r}")
    neurons = read_manifest(manifest) if isinstance(manifest, str | Path) else list(manifest)
    dens = {**DEFAULT_DENSITIES, **(densities or {})}
    segs = [_segments(nrn, depth_axis) for nrn in neurons]
    _check_size(neurons, segs, grid, spacing_um, max_voxels)
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


def _check_size(
    neurons: Sequence[SWCNeuron],
    segs: Sequence[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], Any]],
    grid: VoxelGrid | None,
    spacing_um: float,
    max_voxels: int,
) -> None:
    """Refuse, before any voxelization, a grid or a cable that would need more than
    ``max_voxels`` voxels, naming the neuron file and line of its farthest sample."""
    if grid is None:
        lo = np.min([np.minimum(s[0].min(0), s[1].min(0)) for s in segs], axis=0)
        hi = np.max([np.maximum(s[0].max(0), s[1].max(0)) for s in segs], axis=0)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            need = math.inf
        else:
            need = float(np.prod(np.floor((hi - lo) / spacing_um) + 2.0))
        what = f"a bounding grid of {need:.3g} voxels of {spacing_um:g} µm"
    else:
        spacing_um = grid.spacing_um
        # pieces the voxelization creates: one per voxel face a segment crosses
        need = float(sum(np.abs((s[1] - s[0]) / spacing_um).sum() for s in segs))
        what = f"{need:.3g} voxel crossings of {spacing_um:g} µm"
    if need <= max_voxels:
        return
    worst, where, far = 0, "", -1.0
    for k, nrn in enumerate(neurons):
        samples = _read_samples(nrn.swc)
        if samples is None or not len(samples.ids):
            continue
        line, dist = _farthest_sample(samples)
        if dist > far:
            worst, far, where = k, dist, f"{nrn.swc}, line {line}"
    raise FormatError(
        f"{where or neurons[worst].swc}: a sample lies {far:.3g} µm from the soma, so the "
        f"import would need {what}, more than the limit of {max_voxels:,}; fix the "
        f"coordinates or raise the limit (max_voxels / --max-voxels)"
    )
