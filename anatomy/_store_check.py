"""Validation of structural models and voxel-block partitions (used by :mod:`anatomy.store`).

Public names are re-exported by :mod:`anatomy.store`; import them from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from anatomy import schema as S
from anatomy.errors import StoreValidationError
from anatomy.model import StructuralModel, VoxelMajorCounts

__all__ = ["POST_ALL_RTOL", "TARGET_BLOCK_ENTRIES", "validate_model", "voxel_blocks"]

#: Entries (nonzeros) per voxel block aimed at when choosing ``chunk_voxels`` automatically:
#: 4 Mi entries = 16 MB of float32 data + 16 MB of int32 indices, a good dask task size.
TARGET_BLOCK_ENTRIES = 1 << 22
#: Relative tolerance of the ``post_all >= column sums of post`` check (float32 rounding).
POST_ALL_RTOL = 1e-5
_POST_ALL_ATOL = 1e-6
_REBUILD_HINT = "the store is damaged or was not written by this package: rebuild or re-import it"


def _check_castable(name: str, src: np.dtype[Any], dst: np.dtype[Any]) -> None:
    """Refuse lossy dtypes; integers may be narrowed (their values are range-checked on write)."""
    if src.kind in "iu" and dst.kind in "iu":
        return
    if not np.can_cast(src, dst, casting="safe"):
        raise StoreValidationError(
            f"{name} has dtype {src}, which cannot be stored losslessly as {dst}; "
            f"convert it to {dst} first"
        )


def _read(arr: Any, name: str, path: Path | None = None, sl: slice = slice(None)) -> Any:
    try:
        return np.asarray(arr[sl])
    except Exception as err:
        where = f"{path}: " if path is not None else ""
        raise StoreValidationError(
            f"{where}cannot read array {name} [{sl.start}:{sl.stop}] "
            f"({type(err).__name__}: {err}); {_REBUILD_HINT}"
        ) from err


# --------------------------------------------------------------------------------- validation


def validate_model(model: StructuralModel, *, block_voxels: int | None = None) -> None:
    """Check a model (in memory or store-backed) against the schema; raise on the first problem.

    Checks shapes and dtypes of every array, that ``indptr`` starts at 0, is non-decreasing and
    ends at the number of entries, that indices are in range and strictly increasing within each
    voxel, that counts are finite and non-negative, and that ``post_all`` is finite,
    non-negative and at least the column sums of ``post`` (relative tolerance
    :data:`POST_ALL_RTOL`). ``pre``/``post`` are streamed by voxel block, so memory is bounded
    by the block, not the model.

    Parameters
    ----------
    model
        The model to check.
    block_voxels
        Voxels per streamed block (default: the store's chunking, or about
        :data:`TARGET_BLOCK_ENTRIES` entries per block).

    Raises
    ------
    StoreValidationError
        Naming the array, the bad value and its index, and what is expected.
    """
    n, v = model.n_neurons, model.n_voxels
    for name in S.NEURON_ARRAYS:
        key = S.neuron_array(name)
        _check_castable(key, np.asarray(getattr(model.neurons, name)).dtype, S.DTYPES[key])
    post_all = np.asarray(model.post_all)
    _check_castable(S.POST_ALL, post_all.dtype, S.DTYPES[S.POST_ALL])
    _check_finite_nonneg(S.POST_ALL, post_all, offset=0)
    if model.voxel_depth_um is not None:
        depth = np.asarray(model.voxel_depth_um)
        _check_castable(S.VOXEL_DEPTH, depth.dtype, S.DTYPES[S.VOXEL_DEPTH])
        if not np.isfinite(depth).all():
            i = int(np.flatnonzero(~np.isfinite(depth))[0])
            raise StoreValidationError(
                f"{S.VOXEL_DEPTH}[{i}] = {depth[i]!r}; expected finite depths in µm"
            )
    for name, pop in model.populations.items():
        if (pop.pair_pre is None) != (pop.pair_post is None) or (
            pop.pair_pre is not None and pop.pair_post is not None
            and np.shape(pop.pair_pre) != np.shape(pop.pair_post)
        ):
            raise StoreValidationError(
                f"{S.POPULATIONS}/{name}: pair_pre and pair_post must both be given, with equal "
                "lengths, or both be None"
            )
        sides = S.POPULATION_ARRAYS + (
            S.POPULATION_PAIR_ARRAYS if pop.pair_pre is not None else ())
        for side in sides:
            idx = np.asarray(getattr(pop, side))
            key = f"{S.POPULATIONS}/{name}/{side}"
            if idx.ndim != 1 or idx.dtype.kind not in "iu":
                raise StoreValidationError(
                    f"{key} has shape {idx.shape} and dtype {idx.dtype}, expected a 1-d integer "
                    "array of neuron indices"
                )
    for cname in S.COUNTS:
        counts: VoxelMajorCounts = getattr(model, cname)
        _validate_counts(
            cname, counts, n=n, v=v, block_voxels=block_voxels,
            post_all=post_all.astype(np.float64) if cname == "post" else None,
        )


def _validate_counts(
    cname: str,
    counts: VoxelMajorCounts,
    *,
    n: int,
    v: int,
    block_voxels: int | None,
    post_all: npt.NDArray[np.float64] | None,
) -> None:
    for aname in S.COUNT_ARRAYS:
        key = S.counts_array(cname, aname)
        _check_castable(key, np.dtype(getattr(counts, aname).dtype), S.DTYPES[key])
    ptr_len = counts.indptr.shape[0]
    if ptr_len != v + 1:
        raise StoreValidationError(
            f"{cname}/indptr has {ptr_len} entries, expected voxels + 1 = {v + 1}"
        )
    nnz = counts.indices.shape[0]
    if counts.data.shape[0] != nnz:
        raise StoreValidationError(
            f"{cname}/data has {counts.data.shape[0]} entries but {cname}/indices has {nnz}; "
            "expected equal lengths"
        )
    first = int(_read(counts.indptr, f"{cname}/indptr", sl=slice(0, 1))[0])
    if first != 0:
        raise StoreValidationError(f"{cname}/indptr[0] = {first}, expected 0")
    for a, b in voxel_blocks(counts, block_voxels):
        ptr = _read(counts.indptr, f"{cname}/indptr", sl=slice(a, b + 1)).astype(np.int64)
        step = np.diff(ptr)
        if (step < 0).any():
            k = a + int(np.flatnonzero(step < 0)[0])
            raise StoreValidationError(
                f"{cname}/indptr[{k + 1}] = {ptr[k - a + 1]} is smaller than "
                f"{cname}/indptr[{k}] = {ptr[k - a]}; expected non-decreasing column pointers"
            )
        lo, hi = int(ptr[0]), int(ptr[-1])
        if hi > nnz:
            k = a + int(np.flatnonzero(ptr > nnz)[0])
            raise StoreValidationError(
                f"{cname}/indptr[{k}] = {int(ptr[k - a])} exceeds the number of entries "
                f"{nnz} in {cname}/indices; expected at most {nnz}"
            )
        idx = _read(counts.indices, f"{cname}/indices", sl=slice(lo, hi))
        data = _read(counts.data, f"{cname}/data", sl=slice(lo, hi))
        local = ptr - lo

        def voxel_of(j: int, a: int = a, local: npt.NDArray[np.int64] = local) -> int:
            return a + int(np.searchsorted(local, j, side="right")) - 1

        # fast reductions first; locate the offending entry only when one exists
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
            j = int(np.flatnonzero((idx < 0) | (idx >= n))[0])
            raise StoreValidationError(
                f"{cname}/indices[{lo + j}] = {int(idx[j])} (voxel {voxel_of(j)}) is out of "
                f"range; expected neuron indices 0..{n - 1}"
            )
        if idx.size > 1:
            ok = idx[1:] > idx[:-1]  # int32 in 0..n-1: no overflow
            ends = local[1:-1] - 1  # last entry of each voxel but the block's last one
            ok[ends[(ends >= 0) & (ends < ok.size)]] = True
            if not ok.all():
                j = int(np.flatnonzero(~ok)[0])
                raise StoreValidationError(
                    f"{cname}/indices[{lo + j + 1}] = {int(idx[j + 1])} follows "
                    f"{int(idx[j])} in voxel {voxel_of(j)}; expected strictly increasing "
                    "neuron indices within each voxel (sorted, no duplicates)"
                )
        # min is NaN when any value is NaN, and NaN >= 0 is false
        if data.size and not (data.min() >= 0 and np.isfinite(data.max())):
            j = int(np.flatnonzero(~np.isfinite(data) | (data < 0))[0])
            raise StoreValidationError(
                f"{cname}/data[{lo + j}] = {data[j]!r} (neuron {int(idx[j])}, voxel "
                f"{voxel_of(j)}) is not a count; expected finite values >= 0"
            )
        if post_all is not None:
            csum = np.zeros(data.size + 1, dtype=np.float64)
            np.cumsum(data, dtype=np.float64, out=csum[1:])
            sums = csum[local[1:]] - csum[local[:-1]]
            pa = post_all[a:b]
            short = pa < sums * (1 - POST_ALL_RTOL) - _POST_ALL_ATOL
            if short.any():
                k = int(np.flatnonzero(short)[0])
                raise StoreValidationError(
                    f"post_all[{a + k}] = {pa[k]:.6g} is smaller than the sum of post over the "
                    f"neurons in voxel {a + k} ({sums[k]:.6g}); expected post_all >= column "
                    "sums of post, since it counts the target sites of all neurons"
                )
    last = int(_read(counts.indptr, f"{cname}/indptr", sl=slice(v, v + 1))[0])
    if last != nnz:
        raise StoreValidationError(
            f"{cname}/indptr[{v}] = {last}, expected the number of entries {nnz}"
        )


def _check_finite_nonneg(name: str, values: npt.NDArray[Any], *, offset: int) -> None:
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StoreValidationError(
            f"{name}[{offset + i}] = {values[i]!r}; expected finite values >= 0"
        )


def voxel_blocks(
    counts: StructuralModel | VoxelMajorCounts, block_voxels: int | None = None
) -> list[tuple[int, int]]:
    """Partition the voxels into contiguous blocks ``[(start, stop), ...]`` covering ``0..V``.

    Parameters
    ----------
    counts
        A model (its ``post`` counts set the default) or one of its count matrices.
    block_voxels
        Voxels per block. Default: the ``indptr`` chunk length when the counts are backed by a
        store (so one block reads whole chunks), else as many voxels as hold about
        :data:`TARGET_BLOCK_ENTRIES` entries on average.

    Examples
    --------
    >>> from anatomy.model import VoxelMajorCounts
    >>> import scipy.sparse as sp
    >>> c = VoxelMajorCounts.from_scipy(sp.random(4, 10, density=0.5, random_state=0))
    >>> voxel_blocks(c, 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    if isinstance(counts, StructuralModel):
        counts = counts.post
    v = counts.shape[1]
    if block_voxels is None:
        chunks = getattr(counts.indptr, "chunks", None)
        if chunks is not None and len(chunks) == 1:
            block_voxels = int(chunks[0])
        else:
            nnz = max(counts.indices.shape[0], 1)
            block_voxels = round(v * TARGET_BLOCK_ENTRIES / nnz)
    if int(block_voxels) != block_voxels or block_voxels < 1:
        raise StoreValidationError(f"block_voxels must be a positive integer, got {block_voxels!r}")
    step = max(1, min(int(block_voxels), v))
    return [(a, min(a + step, v)) for a in range(0, v, step)]
