"""The dask side of the connectome engine: inputs, block plan, per-block tasks and scheduling.

:func:`wiring.connectome.compute_connectome` validates its arguments and then calls
:func:`run_engine`. The work is split into coarse tasks by *blocks of postsynaptic neurons*:
every task computes a disjoint set of output columns, so there is no reduction (splitting one θ
by voxel blocks never beat the serial product, see ``STACK-NOTES.md``). Memory per task is
bounded by the block: the block's post rows, its expected counts and, in the generic path, its
pair table.

In memory or streamed from the store
------------------------------------
*In memory* (the default when the counts fit, see :data:`MAX_IN_MEMORY_BYTES`): the selected
presynaptic counts are loaded once, transposed to voxel-major CSR (``Aᵀ``, V × n_pre) and shared
by all tasks (threads share it; on a distributed client it is the result of one small task that
the scheduler recomputes if the workers holding it are lost, see ``wiring._dask``); every task
slices its rows of the postsynaptic CSR.

*Streamed* (``in_memory=False``, or counts too large): nothing model-sized is loaded. Each task
receives the lazily backed (zarr) counts, reads the post store voxel block by voxel block keeping
only its own neurons' entries (neuron-major transposition of its block), and then reads from the
pre store only the voxel blocks its neurons occupy, keeping the selected presynaptic neurons.
Memory is bounded by one voxel block plus the block's own data; the price is that every task
scans the post store once (I/O = number of blocks × post store).
"""

from __future__ import annotations

import itertools
import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES
from anatomy.model import StructuralModel, VoxelMajorCounts
from wiring._typing import FloatArray, IntArray
from wiring.connectome.dso import (
    VoxelFactors,
    expected_row_synapses,
    factorized_draw_block,
    kernel_arrays,
    pair_table_block,
)
from wiring.pairs import segment_sum
from wiring.rules.base import WiringRule
from wiring.rules.draw import draw_synapse_counts

__all__ = [
    "FACTORIZED_TARGET_PRODUCTS",
    "GENERIC_TARGET_ROWS",
    "MAX_IN_MEMORY_BYTES",
    "EngineResult",
    "plan_blocks",
    "run_engine",
]

logger = logging.getLogger(__name__)

#: Load the counts into memory when ``(nnz_pre + nnz_post) * 12 bytes`` is below this.
MAX_IN_MEMORY_BYTES = 4 * 1024**3
#: Pair-voxel products per task in the factorized path (about a second of SpGEMM).
FACTORIZED_TARGET_PRODUCTS = 100_000_000
#: Shared-voxel rows per task in the generic path (~150 bytes per row at the peak).
GENERIC_TARGET_ROWS = 4_000_000


@dataclass(frozen=True, slots=True)
class EngineResult:
    """Output of :func:`run_engine` (positions are into the pre/post selections)."""

    expected: sp.csc_array | None  # (n_pre, n_post) float32; None with a sink
    synapses: sp.csc_array | None  # (n_pre, n_post) int32
    depth_profile: FloatArray  # (n_cell_types, n_bins) expected synapses
    depth_edges_um: FloatArray  # (n_bins + 1,)
    voxels_per_bin: IntArray  # (n_bins,)
    n_blocks: int
    products: int
    path: str


@dataclass(frozen=True, slots=True)
class _BlockResult:
    expected: sp.csr_array  # (m, n_pre) float32, post-major
    synapses: sp.csr_array  # (m, n_pre) int32
    # depth profile per postsynaptic neuron, neuron-major: flat (cell type, depth bin) codes
    # and the neuron's expected synapses there (see :func:`_per_neuron_profile`)
    profile_codes: IntArray
    profile_values: FloatArray


@dataclass(slots=True)
class _Inputs:
    """Everything a block task needs; shared by all tasks (broadcast once)."""

    rule: WiringRule
    theta: FloatArray  # (1, d)
    seed: int
    factors: VoxelFactors | None
    pre_ids: IntArray
    post_ids: IntArray
    post_all: FloatArray  # (V,) float64
    depth_um: FloatArray  # (V,)
    depth_bin: IntArray  # (V,)
    n_bins: int
    soma_um: FloatArray  # (N, 3)
    post_type: IntArray  # (n_post,) cell-type codes
    autapses: bool
    # in-memory inputs
    a_t: sp.csr_array | None = None  # (V, n_pre) raw pre counts (generic path)
    b: sp.csr_array | None = None  # (n_post, V) raw post counts
    # streamed inputs
    pre_counts: VoxelMajorCounts | None = None
    post_counts: VoxelMajorCounts | None = None
    voxel_blocks: tuple[tuple[int, int], ...] = ()
    # factorized: sum over the selected pre neurons of f_pre(pre) per voxel
    pre_sum: FloatArray | None = None
    # factorized, in memory: Aᵀ = f_pre(pre) as (indptr int64, indices int32, data float64)
    a_arrays: Any = None

    def post_rows(self, start: int, stop: int) -> sp.csr_array:
        """Raw post counts (stop - start, V) of selected post neurons ``start:stop``."""
        if self.b is not None:
            return sp.csr_array(self.b[start:stop])
        assert self.post_counts is not None
        rows = self.post_ids[start:stop]
        n, v = self.post_counts.shape
        local = np.full(n, -1, dtype=np.int64)
        local[rows] = np.arange(len(rows))
        parts_r, parts_c, parts_d = [], [], []
        for a, z in self.voxel_blocks:
            blk = self.post_counts.voxel_block(a, z)
            coo = blk.tocoo()
            loc = local[coo.row]
            keep = loc >= 0
            parts_r.append(loc[keep])
            parts_c.append(coo.col[keep].astype(np.int64) + a)
            parts_d.append(coo.data[keep])
        return _csr(parts_r, parts_c, parts_d, (len(rows), v))

    def pre_voxels(self, b: sp.csr_array) -> sp.csr_array:
        """``Aᵀ`` (V, n_pre) covering at least the voxels where ``b`` has entries."""
        if self.a_t is not None:
            return self.a_t
        assert self.pre_counts is not None
        n, v = self.pre_counts.shape
        needed = np.zeros(v, dtype=bool)
        needed[b.indices] = True
        local = np.full(n, -1, dtype=np.int64)
        local[self.pre_ids] = np.arange(len(self.pre_ids))
        parts_r, parts_c, parts_d = [], [], []
        for a, z in self.voxel_blocks:
            if not needed[a:z].any():
                continue
            coo = self.pre_counts.voxel_block(a, z).tocoo()
            vox = coo.col.astype(np.int64) + a
            loc = local[coo.row]
            keep = (loc >= 0) & needed[vox]
            data = coo.data[keep].astype(np.float64)
            if self.factors is not None:
                data = self.factors.pre(data)
            parts_r.append(vox[keep])
            parts_c.append(loc[keep])
            parts_d.append(data)
        return _csr(parts_r, parts_c, parts_d, (v, len(self.pre_ids)))


def _csr(
    rows: list[IntArray], cols: list[IntArray], data: list[Any], shape: tuple[int, int]
) -> sp.csr_array:
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    d = np.concatenate(data) if data else np.zeros(0, np.float64)
    m = sp.csr_array((d, (r, c)), shape=shape)
    m.sum_duplicates()
    m.sort_indices()
    return m


def _run_block(inputs: _Inputs, start: int, stop: int) -> _BlockResult:
    """One task: expected counts, synapse counts and depth profile of post block start:stop."""
    b = inputs.post_rows(start, stop)
    m, n_pre = b.shape[0], len(inputs.pre_ids)
    post_model = inputs.post_ids[start:stop]
    if inputs.factors is not None:
        a_arrays = inputs.a_arrays
        if a_arrays is None:  # streamed: this block's voxels of Aᵀ
            a_arrays = kernel_arrays(inputs.pre_voxels(b))
        block = factorized_draw_block(
            a_arrays, n_pre, b, inputs.post_all, inputs.factors,
            pre_ids=inputs.pre_ids, post_ids=post_model, seed=inputs.seed,
            autapses=inputs.autapses, rule_name=inputs.rule.name, theta=inputs.theta,
        )
        # expected synapses per (post cell type, depth bin): sum over pre of rate_ijk
        assert inputs.pre_sum is not None
        b_r = np.repeat(np.arange(m), np.diff(b.indptr))
        k = b.indices
        w = (
            inputs.factors.post(b.data.astype(np.float64))
            * inputs.factors.voxel(inputs.post_all[k])
            * inputs.pre_sum[k]
        )
        codes, values = _per_neuron_profile(
            b_r, inputs.depth_bin[k], w, inputs.post_type[start:stop], inputs.n_bins
        )
        return _BlockResult(expected=block.expected, synapses=block.synapses,
                            profile_codes=codes, profile_values=values)
    else:
        table = pair_table_block(
            inputs.pre_voxels(b),
            b,
            pre_ids=inputs.pre_ids,
            post_ids=post_model,
            post_all=inputs.post_all,
            depth_um=inputs.depth_um,
            soma_um=inputs.soma_um,
            autapses=inputs.autapses,
        )
        val, row_syn = expected_row_synapses(inputs.rule, table, inputs.theta)
        counts = draw_synapse_counts(
            inputs.rule, table, inputs.theta, key=inputs.seed, expected=val
        )
        pos_pre = np.full(0, 0, np.int64)
        if table.n_pairs:
            pos_pre = np.searchsorted(inputs.pre_ids, table.pre)
        r = np.searchsorted(post_model, table.post)
        c = pos_pre
        n_rows = np.diff(table.indptr)
        row_r = np.repeat(r, n_rows)
        codes, values = _per_neuron_profile(
            row_r, inputs.depth_bin[table.voxel], row_syn, inputs.post_type[start:stop],
            inputs.n_bins,
        )
    nz = val > 0
    expected = sp.csr_array(
        (val[nz].astype(np.float32), (r[nz], c[nz])), shape=(m, n_pre), dtype=np.float32
    )
    expected.sort_indices()
    hit = counts > 0
    synapses = sp.csr_array(
        (counts[hit].astype(np.int32), (r[hit], c[hit])), shape=(m, n_pre), dtype=np.int32
    )
    synapses.sort_indices()
    return _BlockResult(expected=expected, synapses=synapses,
                        profile_codes=codes, profile_values=values)


#: Largest (neurons x depth bins) buffer of :func:`_per_neuron_profile` (8 MiB of float64).
PROFILE_BUFFER = 1 << 20


def _per_neuron_profile(
    rows: IntArray, bins: IntArray, weights: FloatArray, post_type: IntArray, n_bins: int
) -> tuple[IntArray, FloatArray]:
    """Sum ``weights`` per (block row, depth bin): the depth profile of each post neuron.

    ``rows`` are the block rows (post neurons) of the entries, ``bins`` their depth bins. A
    neuron's sums depend only on its own entries, in their order, so they are the same whatever
    block the neuron falls in; :func:`run_engine` adds them to the profile in neuron order,
    which makes the profile independent of the block plan (and so of the number of workers)
    bit for bit. Returns the non-zero sums, neuron-major, with their flat (cell type, bin)
    codes. The buffer is bounded by :data:`PROFILE_BUFFER` (rows are taken a slice at a time).
    """
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    bins = np.asarray(bins, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if np.any(rows[1:] < rows[:-1]):  # entries come row-sorted; stay exact if they do not
        order = np.argsort(rows, kind="stable")
        rows, bins, weights = rows[order], bins[order], weights[order]
    step = max(1, PROFILE_BUFFER // n_bins)
    n_rows = int(rows[-1]) + 1
    out_c: list[IntArray] = []
    out_v: list[FloatArray] = []
    for r0 in range(0, n_rows, step):
        a, z = np.searchsorted(rows, [r0, r0 + step])
        if a == z:
            continue
        key = (rows[a:z] - r0) * n_bins + bins[a:z]
        sums = np.bincount(key, weights=weights[a:z], minlength=min(step, n_rows - r0) * n_bins)
        nz = np.flatnonzero(sums)
        out_c.append(post_type[r0 + nz // n_bins] * n_bins + nz % n_bins)
        out_v.append(np.asarray(sums[nz], dtype=np.float64))
    return np.concatenate(out_c).astype(np.int64), np.concatenate(out_v)


def plan_blocks(
    products: IntArray, *, target: int, min_blocks: int = 1, block_size: int | None = None
) -> list[tuple[int, int]]:
    """Contiguous blocks ``[(start, stop), ...]`` of postsynaptic positions.

    With ``block_size`` the blocks hold that many neurons. Otherwise they are balanced to about
    ``target`` work units (pair-voxel products) each, and there are at least ``min_blocks`` of
    them (so that every worker gets work) when there are enough neurons.

    Examples
    --------
    >>> plan_blocks(np.array([5, 5, 5, 5]), target=10)
    [(0, 2), (2, 4)]
    >>> plan_blocks(np.array([5, 5, 5]), target=10, block_size=2)
    [(0, 2), (2, 3)]
    """
    n = len(products)
    if n == 0:
        return []
    if block_size is not None:
        return [(a, min(a + block_size, n)) for a in range(0, n, block_size)]
    total = float(np.sum(products))
    n_blocks = min(n, max(min_blocks, math.ceil(total / max(target, 1))))
    cum = np.cumsum(products, dtype=np.float64)
    cuts = np.searchsorted(cum, total * np.arange(1, n_blocks) / n_blocks, side="left") + 1
    bounds = np.unique(np.concatenate([[0], np.clip(cuts, 1, n), [n]]))
    return [(int(a), int(z)) for a, z in itertools.pairwise(bounds)]


def _depth_bins(model: StructuralModel) -> tuple[IntArray, int, FloatArray, IntArray]:
    depth = np.asarray(model.depth_um(), dtype=np.float64)
    spacing = float(model.grid.spacing_um)
    raw = np.floor(depth / spacing).astype(np.int64)
    lo = int(raw.min()) if raw.size else 0
    bins = raw - lo
    n_bins = int(bins.max()) + 1 if bins.size else 1
    edges = (lo + np.arange(n_bins + 1)) * spacing
    return bins, n_bins, edges.astype(np.float64), np.bincount(bins, minlength=n_bins)


def run_engine(
    model: StructuralModel,
    rule: WiringRule,
    theta: FloatArray,
    *,
    seed: int,
    pre_ids: IntArray,
    post_ids: IntArray,
    factors: VoxelFactors | None,
    block_size: int | None,
    client: Any,
    workers: int,
    autapses: bool,
    in_memory: bool | None,
    progress: bool,
    sink: Callable[[sp.csr_array, sp.csr_array], None] | None = None,
) -> EngineResult:
    """Compute a connectome on validated inputs (see :func:`wiring.connectome.compute_connectome`).

    With ``sink``, each block's post-major (expected, synapses) CSR pair is handed to it in block
    order and not kept: the result then has no matrices and memory is bounded by a wave of
    blocks (see :func:`wiring.connectome.compute_connectome_to_store`).
    """
    n_pre, n_post = len(pre_ids), len(post_ids)
    if in_memory is None:
        in_memory = (_loaded(model.pre) and _loaded(model.post)) or (
            (model.pre.nnz + model.post.nnz) * 12 <= MAX_IN_MEMORY_BYTES
        )
    depth_bin, n_bins, edges, voxels_per_bin = _depth_bins(model)
    inputs = _Inputs(
        rule=rule,
        theta=theta,
        seed=seed,
        factors=factors,
        pre_ids=pre_ids,
        post_ids=post_ids,
        post_all=np.asarray(model.post_all, dtype=np.float64),
        depth_um=np.asarray(model.depth_um(), dtype=np.float64),
        depth_bin=depth_bin,
        n_bins=n_bins,
        soma_um=np.asarray(model.neurons.soma_um, dtype=np.float64),
        post_type=model.neurons.cell_type[post_ids].astype(np.int64),
        autapses=autapses,
    )
    v = model.n_voxels
    if in_memory:
        pre = model.pre.load()
        a = pre if n_pre == model.n_neurons else sp.csc_array(pre[pre_ids])
        # the CSC (neurons x voxels) arrays are the CSR arrays of Aᵀ: no transpose, and the
        # indices are shared with the loaded model, not copied
        a_ptr = np.asarray(a.indptr, dtype=np.int64)
        a_idx = np.asarray(a.indices, dtype=np.int32)
        if factors is not None:
            a_val = _elementwise(factors.pre, a.data, threads=workers if client is None else 1)
            inputs.a_arrays = (a_ptr, a_idx, a_val)
            inputs.pre_sum = segment_sum(a_val, a_ptr)
        else:
            inputs.a_t = sp.csr_array(
                (np.asarray(a.data, dtype=np.float64), a_idx, a_ptr), shape=(v, n_pre)
            )
        post = model.post.load()
        b = post if n_post == model.n_neurons else sp.csc_array(post[post_ids])
        inputs.b = sp.csr_array(b)
        n_pre_vox = np.diff(a_ptr)
        products = _segment(n_pre_vox[inputs.b.indices], inputs.b.indptr)
    else:
        from anatomy.store import voxel_blocks

        inputs.pre_counts, inputs.post_counts = model.pre, model.post
        inputs.voxel_blocks = tuple(voxel_blocks(model.post))
        n_pre_vox, pre_sum = _stream_pre_stats(inputs)
        inputs.pre_sum = pre_sum if factors is not None else None
        products = _stream_products(inputs, n_pre_vox)
    total_products = int(products.sum())
    target = FACTORIZED_TARGET_PRODUCTS if factors is not None else GENERIC_TARGET_ROWS
    blocks = plan_blocks(
        products, target=target, min_blocks=4 * max(workers, 1), block_size=block_size
    )
    path = "factorized" if factors is not None else "generic"
    logger.info(
        "connectome: %d pre x %d post neurons, %.3g pair-voxel products, %d block(s), %s path, "
        "%s", n_pre, n_post, total_products, len(blocks), path,
        "in memory" if in_memory else "streamed from the store",
    )
    profile = np.zeros(len(CELL_TYPES) * n_bins, dtype=np.float64)
    kept: list[_BlockResult] = []

    def consume(res: _BlockResult) -> None:
        # unbuffered and in order: the profile is summed neuron by neuron, in neuron order
        np.add.at(profile, res.profile_codes, res.profile_values)
        if sink is None:
            kept.append(res)
        else:
            sink(res.expected, res.synapses)

    # the autapse terms of the depth profile are computed beside the blocks (one pass over
    # the model, otherwise serial time at the end of the job)
    autapse: dict[str, Any] = {}
    side = None
    if factors is not None and not autapses:
        import threading

        def autapse_terms() -> None:
            try:
                autapse["profile"] = _autapse_profile(model, inputs)
            except BaseException as exc:  # re-raised below, in the caller's thread
                autapse["error"] = exc

        side = threading.Thread(target=autapse_terms, name="connectome-autapses", daemon=True)
        side.start()
    try:
        _execute(inputs, blocks, consume, client=client, workers=workers, progress=progress,
                 wave=None if sink is None else 4 * max(workers, 1))
    finally:
        if side is not None:
            side.join()
    if "error" in autapse:
        raise autapse["error"]
    if "profile" in autapse:
        profile -= autapse["profile"]
    profile_2d = np.maximum(profile, 0.0).reshape(len(CELL_TYPES), n_bins)
    expected = synapses = None
    if sink is None:
        expected = _assemble([r.expected for r in kept], n_pre, n_post, np.float32)
        synapses = _assemble([r.synapses for r in kept], n_pre, n_post, np.int32)
    return EngineResult(
        expected=expected,
        synapses=synapses,
        depth_profile=profile_2d,
        depth_edges_um=edges,
        voxels_per_bin=voxels_per_bin.astype(np.int64),
        n_blocks=len(blocks),
        products=total_products,
        path=path,
    )


def _elementwise(
    f: Callable[[FloatArray], FloatArray], data: npt.NDArray[Any], *, threads: int = 1
) -> FloatArray:
    """``f`` on ``data`` as float64, a slice at a time (no model-sized float64 temporaries).

    With ``threads > 1`` the slices run on that many threads (numpy releases the GIL).
    """
    out = np.empty(data.shape, dtype=np.float64)
    step = 1 << 22

    def one(a: int) -> None:
        out[a : a + step] = f(np.asarray(data[a : a + step], dtype=np.float64))

    starts = range(0, data.shape[0], step)
    if threads > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, starts))
    else:
        for a in starts:
            one(a)
    return out


def _loaded(counts: VoxelMajorCounts) -> bool:
    return isinstance(counts.indices, np.ndarray) and isinstance(counts.data, np.ndarray)


def _segment(values: npt.NDArray[Any], indptr: npt.NDArray[Any]) -> IntArray:
    cum = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
    return np.asarray(cum[indptr[1:]] - cum[indptr[:-1]], dtype=np.int64)


def _stream_pre_stats(inputs: _Inputs) -> tuple[IntArray, FloatArray]:
    assert inputs.pre_counts is not None
    n, v = inputs.pre_counts.shape
    sel = np.zeros(n, dtype=bool)
    sel[inputs.pre_ids] = True
    n_pre_vox = np.zeros(v, dtype=np.int64)
    pre_sum = np.zeros(v, dtype=np.float64)
    for a, z in inputs.voxel_blocks:
        coo = inputs.pre_counts.voxel_block(a, z).tocoo()
        keep = sel[coo.row]
        vox = coo.col[keep].astype(np.int64)
        n_pre_vox[a:z] = np.bincount(vox, minlength=z - a)
        if inputs.factors is not None:
            w = inputs.factors.pre(coo.data[keep].astype(np.float64))
            pre_sum[a:z] = np.bincount(vox, weights=w, minlength=z - a)
    return n_pre_vox, pre_sum


def _stream_products(inputs: _Inputs, n_pre_vox: IntArray) -> IntArray:
    assert inputs.post_counts is not None
    n = inputs.post_counts.shape[0]
    local = np.full(n, -1, dtype=np.int64)
    local[inputs.post_ids] = np.arange(len(inputs.post_ids))
    out = np.zeros(len(inputs.post_ids), dtype=np.int64)
    for a, z in inputs.voxel_blocks:
        coo = inputs.post_counts.voxel_block(a, z).tocoo()
        loc = local[coo.row]
        keep = loc >= 0
        out += np.bincount(
            loc[keep], weights=n_pre_vox[coo.col[keep] + a], minlength=len(out)
        ).astype(np.int64)
    return out


def _autapse_profile(model: StructuralModel, inputs: _Inputs) -> FloatArray:
    """Depth profile of the i == j terms included by the factorized per-voxel sums."""
    assert inputs.factors is not None
    common = np.intersect1d(inputs.pre_ids, inputs.post_ids)
    out = np.zeros(len(CELL_TYPES) * inputs.n_bins, dtype=np.float64)
    if common.size == 0:
        return out
    from anatomy.store import voxel_blocks

    ctype = model.neurons.cell_type[common].astype(np.int64)
    f = inputs.factors
    for a, z in voxel_blocks(model.post):
        pre = sp.csr_array(sp.csc_array(model.pre.voxel_block(a, z))[common])
        post = sp.csr_array(sp.csc_array(model.post.voxel_block(a, z))[common])
        pre.data = f.pre(pre.data.astype(np.float64))
        post.data = f.post(post.data.astype(np.float64))
        prod = sp.coo_array(pre.multiply(post))
        if prod.nnz == 0:
            continue
        k = prod.col.astype(np.int64) + a
        w = prod.data * f.voxel(inputs.post_all[k])
        code = ctype[prod.row] * inputs.n_bins + inputs.depth_bin[k]
        out += np.bincount(code, weights=w, minlength=out.size)
    return out


def _assemble(
    blocks: Sequence[sp.csr_array], n_pre: int, n_post: int, dtype: type[np.generic]
) -> sp.csc_array:
    """Concatenate post-major blocks (m_b, n_pre) into a pre × post CSC matrix.

    A block's CSR rows are exactly the CSC columns of its postsynaptic neurons, so the result
    needs no transpose and no sort: one copy of the data.
    """
    if not blocks:
        return sp.csc_array((n_pre, n_post), dtype=dtype)
    nnz = np.array([b.nnz for b in blocks], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(nnz)])
    indptr = np.concatenate(
        [[0]] + [np.asarray(b.indptr[1:], np.int64) + off for b, off in
                 zip(blocks, offsets[:-1], strict=True)]
    )
    indices = np.concatenate([np.asarray(b.indices, np.int32) for b in blocks])
    data = np.concatenate([np.asarray(b.data, dtype) for b in blocks])
    return sp.csc_array((data, indices, indptr), shape=(n_pre, n_post))


def _execute(
    inputs: _Inputs,
    blocks: list[tuple[int, int]],
    consume: Callable[[_BlockResult], None],
    *,
    client: Any,
    workers: int,
    progress: bool,
    wave: int | None = None,
) -> None:
    """Run one task per block; ``consume`` receives the results in block order.

    With ``wave`` the local scheduler runs that many blocks at a time, so only one wave of
    results is held in memory; a distributed client keeps computing while results are consumed.
    """
    if not blocks:
        return
    bar = _progress_bar(len(blocks)) if progress else None
    try:
        if client is not None:
            from wiring._dask import share

            # recomputable, not scattered: the inputs survive the loss of any worker
            shared = share(client, inputs, "connectome-inputs")
            token = uuid.uuid4().hex[:8]
            futures = [
                client.submit(_run_block, shared, a, z, key=f"connectome-{a}-{z}-{token}")
                for a, z in blocks
            ]
            try:
                for fut in futures:
                    consume(fut.result())
                    fut.release()
                    if bar is not None:
                        bar.update(1)
            finally:
                client.cancel([*futures, shared])
            return
        import dask
        from dask.callbacks import Callback

        token = uuid.uuid4().hex[:8]
        shared_d = dask.delayed(inputs, name=f"connectome-inputs-{token}", traverse=False)
        scheduler = "threads" if workers > 1 else "synchronous"

        class _Tick(Callback):  # type: ignore[misc]
            def _posttask(self, key: Any, *_: Any) -> None:
                if bar is not None and isinstance(key, str) and key.startswith("connectome-"):
                    if "inputs" not in key:
                        bar.update(1)

        step = len(blocks) if wave is None else max(1, wave)
        for w0 in range(0, len(blocks), step):
            tasks = [
                dask.delayed(_run_block, pure=False)(
                    shared_d, a, z, dask_key_name=f"connectome-{a}-{z}-{token}"
                )
                for a, z in blocks[w0 : w0 + step]
            ]
            with _Tick():
                out = dask.compute(*tasks, scheduler=scheduler, num_workers=workers)
            for res in out:
                consume(res)
            del out, tasks
    finally:
        if bar is not None:
            bar.close()


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="connectome blocks", unit="block")

