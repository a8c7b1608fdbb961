"""Table size estimate and the factored form of the pair features, for populations whose table
is too large to hold (see :mod:`wiring.simulation.features`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from anatomy.model import StructuralModel
from wiring._typing import FloatArray, IntArray
from wiring.errors import WiringError
from wiring.simulation.features import Float32Array, PopulationPairs, _make_spec, _present

__all__ = [
    "FactoredFeatures",
    "extract_factored",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# table size estimate and the factored form (for populations whose table is too large)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class FactoredFeatures:
    """Pair features in factored form: rows of a pair are computed when the pair is sampled.

    Instead of one row per (pair, shared voxel), it keeps, for the union of the populations'
    presynaptic neurons, a dense (n_pre, V) float32 matrix of ``log_pre`` (NaN where the neuron
    has no boutons), and for the union of postsynaptic neurons their voxels, ``log_post`` and
    ``log_post_all`` as a CSR by neuron (only voxels where some presynaptic neuron is present:
    no other voxel can hold a row). The rows of pair (i, j) are the entries of j's list where i is present, in
    voxel order - exactly the rows of the table form. Pairs are in the same order as in
    :class:`FeatureBundle`, so both forms give the same simulations for a seed. Memory is
    ``n_pre · V · 4`` bytes plus 12 bytes per post entry, independent of the number of pairs.
    """

    names: tuple[str, ...]
    pair_offsets: IntArray
    pre: IntArray
    post: IntArray
    pre_row: npt.NDArray[np.int32]
    post_row: npt.NDArray[np.int32]
    dense_log_pre: Float32Array
    post_ptr: IntArray
    post_voxel: npt.NDArray[np.int32]
    post_log: Float32Array
    post_log_post_all: Float32Array
    voxel_log_post_all: Float32Array
    voxel_depth_um: Float32Array
    soma_distance_um: FloatArray
    key: str | None = None

    @property
    def n_measurements(self) -> int:
        """Number of measurements m."""
        return len(self.names)

    @property
    def n_pairs(self) -> IntArray:
        """Eligible pairs per measurement, shape (m,)."""
        return np.diff(self.pair_offsets)

    @property
    def nbytes(self) -> int:
        """Size of all arrays in bytes."""
        return int(sum(
            getattr(self, f.name).nbytes for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        ))


def extract_factored(
    model: StructuralModel,
    populations: Sequence[PopulationPairs],
    *,
    max_dense_bytes: int = 2 * 2**30,
    block_voxels: int = 4096,
) -> FactoredFeatures:
    """Build the :class:`FactoredFeatures` of ``populations`` (one pass over the voxels).

    Raises
    ------
    WiringError
        If the dense presynaptic matrix would exceed ``max_dense_bytes``.
    """
    t0 = time.perf_counter()
    n, v = model.n_neurons, model.n_voxels
    pres, posts = [], []
    for pop in populations:
        _, pre, post = _make_spec(pop, n)
        pres.append(pre)
        posts.append(post)
    pre_all = np.concatenate(pres) if pres else np.zeros(0, np.int64)
    post_all_pairs = np.concatenate(posts) if posts else np.zeros(0, np.int64)
    upre, upost = np.unique(pre_all), np.unique(post_all_pairs)
    dense_bytes = len(upre) * v * 4
    if dense_bytes > max_dense_bytes:
        raise WiringError(
            f"the factored pair features need a dense {len(upre)} x {v} presynaptic matrix "
            f"({dense_bytes / 2**30:.1f} GiB > {max_dense_bytes / 2**30:.1f} GiB allowed); "
            f"use fewer presynaptic neurons or raise max_dense_bytes"
        )
    rank_pre = np.full(n, -1, dtype=np.int64)
    rank_pre[upre] = np.arange(len(upre))
    rank_post = np.full(n, -1, dtype=np.int64)
    rank_post[upost] = np.arange(len(upost))
    pre_mask = rank_pre >= 0
    post_mask = rank_post >= 0
    dense = np.full((len(upre), v), np.nan, dtype=np.float32)
    q_rank, q_vox, q_log = [], [], []
    for a in range(0, v, block_voxels):
        b = min(a + block_voxels, v)
        pi, pd, pptr = _present(model.pre.voxel_block(a, b), pre_mask)
        vox = np.repeat(np.arange(a, b, dtype=np.int64), np.diff(pptr))
        dense[rank_pre[pi], vox] = np.log(np.asarray(pd, np.float64))
        qi, qd, qptr = _present(model.post.voxel_block(a, b), post_mask)
        qv = np.repeat(np.arange(a, b, dtype=np.int32), np.diff(qptr))
        # only voxels where some presynaptic neuron is present can hold a row
        useful = np.zeros(b - a, dtype=np.bool_)
        useful[vox - a] = True
        keep = useful[qv - a]
        q_rank.append(rank_post[qi[keep]])
        q_vox.append(qv[keep])
        q_log.append(np.log(np.asarray(qd[keep], np.float64)).astype(np.float32))
    qr = np.concatenate(q_rank) if q_rank else np.zeros(0, np.int64)
    order = np.argsort(qr, kind="stable")
    post_ptr = np.zeros(len(upost) + 1, dtype=np.int64)
    post_ptr[1:] = np.cumsum(np.bincount(qr, minlength=len(upost)))
    with np.errstate(divide="ignore"):
        lpa = np.log(np.asarray(model.post_all, np.float64)).astype(np.float32)
    post_voxel = (np.concatenate(q_vox) if q_vox else np.zeros(0, np.int32))[order]
    soma = np.asarray(model.neurons.soma_um, dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pres])]).astype(np.int64)
    dist = (np.linalg.norm(soma[pre_all] - soma[post_all_pairs], axis=1) if len(pre_all)
            else np.zeros(0))
    pre_row = rank_pre[pre_all]
    extra = []
    n_rows_dense = len(upre)
    for k, pop in enumerate(populations):
        if pop.voxels is None:
            continue
        # arbors cut at the slab: this population's pairs read masked copies of the dense rows
        # (a voxel outside the slab is absent for its presynaptic neurons, hence no row)
        rows_k = np.unique(pre_row[offsets[k]:offsets[k + 1]])
        copy = dense[rows_k].copy()
        copy[:, ~pop.voxels] = np.nan
        remap = np.full(len(upre), -1, dtype=np.int64)
        remap[rows_k] = n_rows_dense + np.arange(len(rows_k))
        pre_row[offsets[k]:offsets[k + 1]] = remap[pre_row[offsets[k]:offsets[k + 1]]]
        n_rows_dense += len(rows_k)
        extra.append(copy)
    if extra:
        if n_rows_dense * v * 4 > max_dense_bytes:
            raise WiringError(
                f"the factored pair features need a dense {n_rows_dense} x {v} presynaptic "
                f"matrix with the slice-cut copies ({n_rows_dense * v * 4 / 2**30:.1f} GiB > "
                f"{max_dense_bytes / 2**30:.1f} GiB allowed); raise max_dense_bytes"
            )
        dense = np.concatenate([dense, *extra])
    out = FactoredFeatures(
        names=tuple(p.name for p in populations),
        pair_offsets=offsets,
        pre=pre_all,
        post=post_all_pairs,
        pre_row=pre_row.astype(np.int32),
        post_row=rank_post[post_all_pairs].astype(np.int32),
        dense_log_pre=dense,
        post_ptr=post_ptr,
        post_voxel=post_voxel,
        post_log=(np.concatenate(q_log) if q_log else np.zeros(0, np.float32))[order],
        post_log_post_all=lpa[post_voxel],
        voxel_log_post_all=lpa,
        voxel_depth_um=np.asarray(model.depth_um(), dtype=np.float32),
        soma_distance_um=np.asarray(dist, np.float64),
    )
    logger.info(
        "factored pair features of %d population(s): %d pairs, %d pre x %d voxels dense, "
        "%d post entries, %.1f MB in %.2f s",
        len(populations), len(pre_all), len(upre), v, len(qr), out.nbytes / 1e6,
        time.perf_counter() - t0,
    )
    return out
