"""Arbor sampling for the synthetic generator: boutons / target sites per neuron and voxel (private).

Each neuron's sites are placed one by one as points drawn from its cell type's compartment
mixture (:class:`anatomy.parameters.ArborSpec`) and counted per voxel, so the counts are the
integer site counts a voxelized reconstruction would give. Work is vectorized over batches of
neurons of one cell type; batches are written straight into voxel-major (CSC) arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.grid import VoxelGrid
from anatomy.parameters import ArborSpec, Compartment

__all__ = ["CscBuilder", "sample_batch"]

F32 = npt.NDArray[np.float32]

#: Segments drawn per batch of neurons (bounds temporary memory to ~100 MB).
_MAX_POINTS = 2_000_000


def batch_bounds(n: int, mean_points: float) -> Iterator[tuple[int, int]]:
    """Contiguous batches ``[a, b)`` of ``n`` neurons drawing about ``mean_points`` each."""
    size = max(1, int(_MAX_POINTS / max(mean_points, 1.0)))
    for a in range(0, n, size):
        yield a, min(n, a + size)


def _reflect(z: F32, lo: float, hi: float) -> F32:
    """Reflect depths into [lo, hi] (once at each end, then clip what is still outside)."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    z = np.where(z < lo32, 2 * lo32 - z, z)
    if hi < 1e5:
        z = np.where(z > hi32, 2 * hi32 - z, z)
    return np.clip(z, lo32, hi32).astype(np.float32, copy=False)


def _depths(
    c: Compartment, soma_z: F32, owner: npt.NDArray[np.int32], rng: np.random.Generator
) -> F32:
    m = len(owner)
    if c.kind == "gauss":
        center = soma_z[owner] if c.center_um is None else np.float32(c.center_um)
        z = rng.standard_normal(m, dtype=np.float32)
        z *= np.float32(c.sigma_z_um)
        z += center
    else:
        lo = soma_z[owner] if c.lo_um is None else np.float32(c.lo_um)
        hi = soma_z[owner] if c.hi_um is None else np.float32(c.hi_um)
        z = rng.random(m, dtype=np.float32)
        z *= hi - lo
        z += lo
    return _reflect(z, *c.confine_um)


def _axis_index(
    center_vox: F32, owner: npt.NDArray[np.int32], sigma_vox: float, rng: np.random.Generator
) -> npt.NDArray[np.int32]:
    """Voxel index along one tangential axis of Gaussian-scattered points (may be outside)."""
    u = rng.standard_normal(len(owner), dtype=np.float32)
    u *= np.float32(sigma_vox)
    u += center_vox[owner]
    return np.floor(u, out=u).astype(np.int32)


def sample_batch(
    spec: ArborSpec,
    center_xy: F32,
    soma_z: F32,
    grid: VoxelGrid,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], F32]:
    """Site counts of a batch of neurons of one cell type.

    Each neuron draws its total number of sites (log-normal, mean ``spec.mean_count``), which
    are grouped into segments of ``1 + Poisson(spec.sites_per_segment - 1)`` sites; segments
    are split over the compartments (multinomial) and each lands in the voxel of a point drawn
    from its compartment's density.

    Parameters
    ----------
    spec : ArborSpec
        Dendrite or axon specification of the cell type.
    center_xy : ndarray, shape (n, 2), float32
        Tangential centre of each arbor (µm).
    soma_z : ndarray, shape (n,), float32
        Soma depth (µm below the pia), used by compartments anchored at the soma.
    grid : VoxelGrid
        Sites outside the grid are dropped (they lie outside the modelled volume).
    rng : numpy.random.Generator

    Returns
    -------
    voxel, local, count : ndarray
        Nonzero entries sorted by voxel then neuron: voxel id (int32), neuron index within the
        batch (int32) and site count (float32).
    """
    n = len(soma_z)
    k = float(spec.sites_per_segment)
    sig = np.sqrt(np.log1p(spec.cv**2))
    totals = rng.lognormal(np.log(spec.mean_count) - sig**2 / 2, sig, n)
    n_seg = np.maximum(1, np.rint(totals / k)).astype(np.int64)
    fractions = np.array([c.fraction for c in spec.compartments], dtype=np.float64)
    per_comp = rng.multinomial(n_seg, fractions / fractions.sum())
    nx, ny, nz = grid.shape
    spacing = grid.spacing_um
    cv = ((center_xy - np.asarray(grid.origin_um[:2], np.float32)) / np.float32(spacing))
    cxv = np.ascontiguousarray(cv[:, 0], dtype=np.float32)
    cyv = np.ascontiguousarray(cv[:, 1], dtype=np.float32)
    inv_z = np.float32(1.0 / spacing)
    oz = np.float32(grid.origin_um[2])
    voxels: list[npt.NDArray[np.int32]] = []
    owners: list[npt.NDArray[np.int32]] = []
    for ci, c in enumerate(spec.compartments):
        owner = np.repeat(np.arange(n, dtype=np.int32), per_comp[:, ci])
        if len(owner) == 0:
            continue
        ix = _axis_index(cxv, owner, c.sigma_xy_um / spacing, rng)
        iy = _axis_index(cyv, owner, c.sigma_xy_um / spacing, rng)
        z = _depths(c, soma_z, owner, rng)
        z -= oz
        z *= inv_z
        iz = np.floor(z, out=z).astype(np.int32)
        ok = ix.view(np.uint32) < nx
        ok &= iy.view(np.uint32) < ny
        ok &= iz.view(np.uint32) < nz
        vox = ix[ok]
        vox *= ny
        vox += iy[ok]
        vox *= nz
        vox += iz[ok]
        voxels.append(vox)
        owners.append(owner[ok])
    vox_all = np.concatenate(voxels) if voxels else np.zeros(0, np.int32)
    own_all = np.concatenate(owners) if owners else np.zeros(0, np.int32)
    if len(owners) > 1:
        # merge the compartments' neuron-sorted runs, so the (stable) COO -> CSC conversion
        # below leaves neurons sorted within each voxel and needs no per-voxel sort
        order = np.argsort(own_all, kind="stable")
        own_all, vox_all = own_all[order], vox_all[order]
    # COO -> CSC sums duplicates: m = segments of one neuron in one voxel, in linear time
    ones = np.ones(len(vox_all), dtype=np.float32)
    m = sp.coo_array((ones, (own_all, vox_all)), shape=(n, grid.n_voxels)).tocsc()
    m.sum_duplicates()
    if k > 1.0:
        # m segments of 1 + Poisson(k - 1) sites each hold m + Poisson(m (k - 1)) sites
        m.data += rng.poisson((k - 1.0) * m.data.astype(np.float64)).astype(np.float32)
    voxel = np.repeat(np.arange(grid.n_voxels, dtype=np.int32), np.diff(m.indptr))
    return voxel, m.indices.astype(np.int32, copy=False), m.data.astype(np.float32, copy=False)


class CscBuilder:
    """Collects batches of (voxel, neuron, count) in increasing neuron order; emits CSC arrays.

    Batches must arrive in increasing neuron order, each sorted by voxel then neuron; then the
    neurons of every voxel come out sorted without any global sort (a counting sort by voxel).
    """

    def __init__(self, n_neurons: int, n_voxels: int) -> None:
        self.n_neurons = n_neurons
        self.n_voxels = n_voxels
        self._batches: list[tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], F32]] = []
        self._per_voxel = np.zeros(n_voxels, dtype=np.int64)

    def add(self, voxel: npt.NDArray[np.int32], neuron: npt.NDArray[np.int32], count: F32) -> None:
        """Append one batch (global neuron indices)."""
        self._per_voxel += np.bincount(voxel, minlength=self.n_voxels)
        self._batches.append((voxel, neuron, count))

    def build(
        self, progress: Callable[[], None] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], F32]:
        """``(indptr, indices, data)`` of the N x V matrix in CSC form; consumes the batches."""
        indptr = np.zeros(self.n_voxels + 1, dtype=np.int64)
        np.cumsum(self._per_voxel, out=indptr[1:])
        nnz = int(indptr[-1])
        indices = np.empty(nnz, dtype=np.int32)
        data = np.empty(nnz, dtype=np.float32)
        fill = indptr[:-1].copy()
        self._batches.reverse()
        while self._batches:
            voxel, neuron, count = self._batches.pop()
            bc = np.bincount(voxel, minlength=self.n_voxels)
            group_start = np.cumsum(bc) - bc
            rank = np.arange(len(voxel), dtype=np.int64) - group_start[voxel]
            pos = fill[voxel] + rank
            indices[pos] = neuron
            data[pos] = count
            fill += bc
            if progress is not None:
                progress()
        return indptr, indices, data
