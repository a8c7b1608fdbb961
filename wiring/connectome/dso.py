"""DSO kernels: factorized sparse products, pair tables and counter-based synapse draws.

This module owns the numerical kernels of the connectome engine (:mod:`wiring.connectome`). They
are pure functions on numpy/scipy arrays of *one block of postsynaptic neurons*: no I/O, no dask.

Two ways to get the expected synapse count ``lambda_ij = sum_k rate_ijk`` of every pair
-------------------------------------------------------------------------------------------
*Factorized* (:func:`factorized_block`): rules whose voxel rate factorizes into elementwise
functions of the counts, ``rate_ijk = f_pre(pre_ik) * f_post(post_jk) * f_voxel(postAll_k)``
(``dso``: ``pre^a * post^b * postAll^-c``), can say so by implementing :class:`SupportsFactors`.
Then ``Lambda = B · diag(g) · Aᵀ`` with ``A = f_pre(pre)`` and ``B = f_post(post)`` applied to the
*stored nonzeros only*, ``g = f_voxel(postAll)``: one sparse product (scipy CSR SpGEMM) per block.
The sparse structure is fixed once; only values change with θ. A voxel where either neuron has
nothing is not a stored nonzero, so it never contributes, for every θ.

*Generic* (:func:`pair_table_block`): for every other rule (``peters_*``, plugins) the block's
overlapping pairs and their shared-voxel rows are gathered into a :class:`~wiring.pairs.PairTable`
and the rule is evaluated on it. Both give the same ``lambda`` for a factorizable rule.

Synapse counts
--------------
Counts are drawn by :func:`wiring.rules.draw.draw_synapse_counts` (generic path) or with the same
counter-based uniforms (:func:`wiring.rules.draw.keyed_uniforms` keyed by the run seed and the
*model* indices of the pre and post neuron, plus the voxel for per-voxel draws) and
:func:`~wiring.rules.draw.poisson_quantile` (factorized path). Each presynaptic neuron therefore
owns one stream indexed by the postsynaptic neuron: a pair's draw does not depend on the block
size, the number of workers or the selection the pair was computed in, and both paths draw the
same counts for the same rates.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from wiring._typing import FloatArray, IntArray
from wiring.pairs import PairTable, rule_features, segment_sum
from wiring.rules.base import (
    SupportsFactors,
    VoxelFactors,
    WiringRule,
    call_rate,
    check_rates,
    check_theta,
    theta_columns,
)
from wiring.rules.dso import dso_factors
from wiring.rules.dso_linear import dso_linear_factors

__all__ = [
    "BlockDraw",
    "SupportsFactors",
    "VoxelFactors",
    "dso_factors",
    "dso_linear_factors",
    "expected_row_synapses",
    "factorized_block",
    "factorized_draw_block",
    "kernel_arrays",
    "pair_table_block",
    "products_per_row",
    "rule_factors",
]

def rule_factors(rule: WiringRule, theta: npt.ArrayLike) -> VoxelFactors | None:
    """The rule's :class:`VoxelFactors` for one θ, or None when the factorized path does not apply.

    It applies to voxel-level rules with Poisson synapses that implement
    :class:`SupportsFactors`.
    """
    if rule.level != "voxel" or rule.synapses != "poisson":
        return None
    if not isinstance(rule, SupportsFactors):
        return None
    th = check_theta(rule, theta)[0]
    return rule.factors(th)


# --------------------------------------------------------------------------------------------
# sparse kernels


def products_per_row(b: sp.csr_array, n_pre_per_voxel: IntArray) -> IntArray:
    """Pair-voxel products of every postsynaptic row: ``sum_k [post_jk > 0] * n_pre_k``.

    ``b`` is (P, V) post counts (CSR), ``n_pre_per_voxel`` (V,) the number of presynaptic
    neurons present in each voxel. The sum over rows is the total work of the connectome.
    """
    per_entry = n_pre_per_voxel[b.indices].astype(np.int64)
    if per_entry.size == 0:
        return np.zeros(b.shape[0], dtype=np.int64)
    return segment_sum(per_entry.astype(np.float64), b.indptr.astype(np.int64)).astype(np.int64)


def _scaled_post(b_block: sp.csr_array, post_all: FloatArray, factors: VoxelFactors) -> sp.csr_array:
    """``f_post(post_jk) * f_voxel(postAll_k)`` on the block's stored entries, float64 CSR sorted."""
    b = sp.csr_array(b_block, dtype=np.float64, copy=True)
    b.sort_indices()
    if b.nnz:
        g = factors.voxel(np.asarray(post_all, dtype=np.float64)[b.indices])
        b.data = factors.post(b.data) * g
    return b


def factorized_block(
    a_t: sp.csr_array,
    b_block: sp.csr_array,
    post_all: FloatArray,
    factors: VoxelFactors,
    *,
    a_arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], FloatArray] | None = None,
) -> sp.csr_array:
    """Expected counts ``lambda`` (P_block, n_pre) of one block of postsynaptic neurons.

    Parameters
    ----------
    a_t
        (V, n_pre) CSR: ``f_pre(pre)`` of the selected presynaptic neurons, voxel-major (the
        transposed CSC of the pre counts), float64. Built once per θ.
    b_block
        (P_block, V) CSR raw post counts of the block's postsynaptic neurons.
    post_all
        (V,) target sites of all neurons per voxel.
    factors
        The rule's :class:`VoxelFactors`.
    a_arrays
        ``a_t``'s (indptr int64, indices int32, data float64), prepared once by the caller:
        scipy may hold the indices as int64, and converting them per block would copy the whole
        presynaptic matrix for every block.

    Returns
    -------
    scipy.sparse.csr_array
        float64 (P_block, n_pre), explicit zeros removed.
    """
    b = _scaled_post(b_block, post_all, factors)
    if a_arrays is None:
        a_arrays = kernel_arrays(a_t)
    m, n_pre = b.shape[0], a_t.shape[1]
    no_ids = np.zeros(0, dtype=np.int64)
    ptr, idx, val, *_ = _run_kernel(b, a_arrays, n_pre, no_ids, no_ids, np.uint64(0), True,
                                    False, np.inf)
    nnz = int(ptr[-1])
    return sp.csr_array((val[:nnz].copy(), idx[:nnz].copy(), ptr), shape=(m, n_pre))


class BlockDraw(NamedTuple):
    """Expected and drawn synapse counts of one block of postsynaptic neurons (post-major)."""

    expected: sp.csr_array  # (m, n_pre) float32: every pair with lambda > 0
    synapses: sp.csr_array  # (m, n_pre) int32: every pair with at least one synapse


def factorized_draw_block(
    a_arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], FloatArray],
    n_pre: int,
    b_block: sp.csr_array,
    post_all: FloatArray,
    factors: VoxelFactors,
    *,
    pre_ids: IntArray,
    post_ids: IntArray,
    seed: int,
    autapses: bool,
    rule_name: str = "rule",
    theta: Any = None,
) -> BlockDraw:
    """Expected counts and Poisson synapse counts of one post block, in one compiled pass.

    Fuses the sparse product of :func:`factorized_block` with the keyed draw of
    :func:`wiring.rules.draw.draw_synapse_counts` (uniform keyed by ``(seed, pre, post)`` model
    indices, Poisson inverse CDF): per pair a handful of operations and no temporary arrays.

    Parameters
    ----------
    a_arrays, n_pre
        ``Aᵀ`` = ``f_pre(pre)`` (V, n_pre) as (indptr, indices, data), see :func:`kernel_arrays`.
    b_block
        (m, V) CSR raw post counts of the block.
    post_all, factors
        As for :func:`factorized_block`.
    pre_ids, post_ids
        Model indices of the columns of ``Aᵀ`` (n_pre,) and of the block's rows (m,).
    seed
        Run seed of the counter-based draws.
    autapses
        Keep the pairs of a neuron with itself.
    rule_name, theta
        For the error message only.

    Raises
    ------
    InvalidParameterError
        An expected count is not finite or above :data:`~wiring.rules.draw.MAX_POISSON_MEAN`.
    """
    from wiring.errors import InvalidParameterError
    from wiring.rules.draw import MAX_POISSON_MEAN, key_state

    b = _scaled_post(b_block, post_all, factors)
    m = b.shape[0]
    ptr, idx, val, s_ptr, s_idx, s_cnt, bad = _run_kernel(
        b, a_arrays, n_pre, np.asarray(pre_ids, dtype=np.int64),
        np.asarray(post_ids, dtype=np.int64), key_state(seed), autapses, True, MAX_POISSON_MEAN,
    )
    if bad[0] >= 0:
        r, c = int(bad[0]), int(bad[1])
        th = None if theta is None else np.asarray(theta).reshape(-1).tolist()
        raise InvalidParameterError(
            f"rule {rule_name!r} at theta {th} gives an expected synapse count of "
            f"{float(bad[2])!r} for pair ({int(pre_ids[c])}, {int(post_ids[r])}); Poisson means "
            f"must be finite and at most {MAX_POISSON_MEAN:g}: choose theta inside the "
            f"plausible range"
        )
    nnz, n_syn = int(ptr[-1]), int(s_ptr[-1])
    counts, s_idx = s_cnt[:n_syn], s_idx[:n_syn]
    deferred = np.flatnonzero(counts < 0)
    if deferred.size:  # means above the search range: scipy's inverse CDF, same keyed uniforms
        from wiring.rules.draw import keyed_uniforms, poisson_quantile

        rows = np.searchsorted(s_ptr, deferred, side="right") - 1
        cols = s_idx[deferred]
        lam = val[_positions(ptr, idx, rows, cols)]
        u = keyed_uniforms(seed, np.asarray(pre_ids)[cols], np.asarray(post_ids)[rows])
        counts[deferred] = poisson_quantile(u, lam)
        if not counts.all():  # a deferred draw came out 0 (u below P(0)): drop it
            keep = counts > 0
            s_ptr = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])[s_ptr]
            counts, s_idx = counts[keep], s_idx[keep]
    expected = sp.csr_array(
        (val[:nnz].astype(np.float32), idx[:nnz].copy(), ptr), shape=(m, n_pre)
    )
    synapses = sp.csr_array((counts.astype(np.int32), s_idx.copy(), s_ptr), shape=(m, n_pre))
    return BlockDraw(expected, synapses)


def _positions(ptr: IntArray, idx: IntArray, rows: IntArray, cols: IntArray) -> IntArray:
    """Positions in a sorted CSR (ptr, idx) of the entries (rows, cols), which must exist."""
    out = np.empty(len(rows), dtype=np.int64)
    for n, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        lo, hi = int(ptr[r]), int(ptr[r + 1])
        out[n] = lo + int(np.searchsorted(idx[lo:hi], c))
    return out


def kernel_arrays(
    a_t: sp.csr_array,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], FloatArray]:
    """(indptr int64, indices int32, data float64) of ``a_t`` for :func:`factorized_block`."""
    return (
        np.asarray(a_t.indptr, dtype=np.int64),
        np.asarray(a_t.indices, dtype=np.int32),
        np.asarray(a_t.data, dtype=np.float64),
    )


_KERNELS: dict[str, Any] = {}
#: Initial length of the kernel's output buffers (pairs); they double when full.
_INITIAL_CAPACITY = 1 << 20
_SCRATCH = threading.local()


def _run_kernel(
    b: sp.csr_array,
    a_arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], FloatArray],
    n_pre: int,
    pre_ids: IntArray,
    post_ids: IntArray,
    h0: np.uint64,
    autapses: bool,
    draw: bool,
    max_mean: float,
) -> tuple[Any, ...]:
    """Call the block kernel with this thread's scratch buffers (kept, and grown, for reuse).

    Reusing the accumulator and the output buffers across blocks avoids touching fresh memory
    (page faults cost as much as the product itself on dense outputs); results are copied out.
    """
    sc = _SCRATCH
    if getattr(sc, "cap0", None) != _INITIAL_CAPACITY:  # first use in this thread (or a test)
        sc.cap0 = _INITIAL_CAPACITY
        cap = max(16, _INITIAL_CAPACITY)
        sc.out_idx = np.empty(cap, dtype=np.int32)
        sc.out_val = np.empty(cap, dtype=np.float64)
        sc.s_idx = np.empty(max(16, cap // 8), dtype=np.int32)
        sc.s_cnt = np.empty(max(16, cap // 8), dtype=np.int64)
        sc.acc = np.zeros(0, dtype=np.float64)
    if sc.acc.shape[0] < n_pre:
        sc.acc = np.zeros(n_pre, dtype=np.float64)
    out = _block_kernel()(
        b.indptr.astype(np.int64, copy=False), b.indices.astype(np.int64, copy=False), b.data,
        *a_arrays, n_pre, pre_ids, post_ids, h0, autapses, draw, max_mean,
        sc.acc[:n_pre], sc.out_idx, sc.out_val, sc.s_idx, sc.s_cnt,
    )
    ptr, sc.out_idx, sc.out_val, s_ptr, sc.s_idx, sc.s_cnt, bad = out
    return ptr, sc.out_idx, sc.out_val, s_ptr, sc.s_idx, sc.s_cnt, bad


def _block_kernel() -> Any:
    """Gustavson's row-by-row product with a dense accumulator and the draw, compiled (lazily).

    For every post row: ``acc[i] += b_jk * a_ki`` over the row's voxels k and the pre neurons i
    present there; then, over the touched range of ``acc`` in ascending i, every nonzero is an
    output pair (sorted without a sort). With ``draw`` the pair's synapse count is drawn right
    there: a keyed uniform of (pre, post) and the Poisson search of
    :mod:`wiring._drawkernels` (-1 marks a mean left to scipy). Outputs grow by doubling. The
    first pair whose mean is not finite or above ``max_mean`` stops the kernel (``bad``).
    Releases the GIL, so dask threads run in parallel.
    """
    if "block" in _KERNELS:
        return _KERNELS["block"]
    import numba

    from wiring._drawkernels import keyed_uniform2, poisson_search

    @numba.njit(nogil=True, cache=False)
    def grow(arr: Any, size: int) -> Any:  # pragma: no cover - compiled
        out = np.empty(max(size, 2 * arr.shape[0]), dtype=arr.dtype)
        out[: arr.shape[0]] = arr
        return out

    @numba.njit(nogil=True, cache=False)
    def accumulate(
        b_ptr: Any, b_idx: Any, b_val: Any, a_ptr: Any, a_idx: Any, a_val: Any, acc: Any, r: int,
    ) -> Any:  # pragma: no cover - compiled
        # post row r into acc; returns the range of pre indices touched
        lo = acc.shape[0]
        hi = -1
        for e in range(b_ptr[r], b_ptr[r + 1]):
            k = b_idx[e]
            w = b_val[e]
            q0 = a_ptr[k]
            q1 = a_ptr[k + 1]
            if q1 > q0:
                lo = min(lo, a_idx[q0])
                hi = max(hi, a_idx[q1 - 1])
            for q in range(q0, q1):
                acc[a_idx[q]] += w * a_val[q]
        return lo, hi

    @numba.njit(nogil=True, cache=False)
    def extract(
        acc: Any, lo: int, hi: int, out_idx: Any, out_val: Any, pos: int,
    ) -> int:  # pragma: no cover - compiled
        # nonzeros of acc[lo:hi+1] to the outputs (capacity ensured by the caller); resets acc
        for i in range(lo, hi + 1):
            v = acc[i]
            if v != 0.0:
                acc[i] = 0.0
                out_idx[pos] = i
                out_val[pos] = v
                pos += 1
        return pos

    @numba.njit(nogil=True, cache=False)
    def extract_draw(
        acc: Any, lo: int, hi: int, out_idx: Any, out_val: Any, pos: int, s_idx: Any,
        s_cnt: Any, s_pos: int, pre_ids: Any, post: int, h0: Any, autapses: bool,
        max_mean: float,
    ) -> Any:  # pragma: no cover - compiled
        # as extract, plus the keyed draw of every pair; returns (pos, s_pos, bad i, its mean)
        for i in range(lo, hi + 1):
            v = acc[i]
            if v == 0.0:
                continue
            acc[i] = 0.0
            pre = pre_ids[i]
            if not autapses and pre == post:
                continue
            if not v <= max_mean:
                acc[i:] = 0.0
                return pos, s_pos, i, v
            out_idx[pos] = i
            out_val[pos] = v
            pos += 1
            c = poisson_search(keyed_uniform2(h0, pre, post), v)
            if c != 0:
                s_idx[s_pos] = i
                s_cnt[s_pos] = c
                s_pos += 1
        return pos, s_pos, -1, 0.0

    @numba.njit(nogil=True, cache=False)
    def block(
        b_ptr: Any, b_idx: Any, b_val: Any, a_ptr: Any, a_idx: Any, a_val: Any, n_pre: int,
        pre_ids: Any, post_ids: Any, h0: Any, autapses: bool, draw: bool, max_mean: float,
        acc: Any, out_idx: Any, out_val: Any, s_idx: Any, s_cnt: Any,
    ) -> Any:  # pragma: no cover - compiled
        m = len(b_ptr) - 1
        out_ptr = np.zeros(m + 1, dtype=np.int64)
        s_ptr = np.zeros(m + 1, dtype=np.int64)
        bad = np.full(3, -1.0)
        pos = 0
        s_pos = 0
        for r in range(m):
            lo, hi = accumulate(b_ptr, b_idx, b_val, a_ptr, a_idx, a_val, acc, r)
            need = max(hi - lo + 1, 0)  # at most this many pairs in the row
            if pos + need > out_idx.shape[0]:
                out_idx = grow(out_idx, pos + need)
                out_val = grow(out_val, pos + need)
            if not draw:
                pos = extract(acc, lo, hi, out_idx, out_val, pos)
            else:
                if s_pos + need > s_idx.shape[0]:
                    s_idx = grow(s_idx, s_pos + need)
                    s_cnt = grow(s_cnt, s_pos + need)
                pos, s_pos, i_bad, v_bad = extract_draw(
                    acc, lo, hi, out_idx, out_val, pos, s_idx, s_cnt, s_pos, pre_ids,
                    post_ids[r], h0, autapses, max_mean,
                )
                if i_bad >= 0:
                    bad[0] = r
                    bad[1] = i_bad
                    bad[2] = v_bad
                    out_ptr[r + 1 :] = pos
                    s_ptr[r + 1 :] = s_pos
                    return out_ptr, out_idx, out_val, s_ptr, s_idx, s_cnt, bad
            out_ptr[r + 1] = pos
            s_ptr[r + 1] = s_pos
        return out_ptr, out_idx, out_val, s_ptr, s_idx, s_cnt, bad

    _KERNELS["block"] = block
    return block


def pair_table_block(
    a_t: sp.csr_array,
    b_block: sp.csr_array,
    *,
    pre_ids: IntArray,
    post_ids: IntArray,
    post_all: FloatArray,
    depth_um: FloatArray,
    soma_um: FloatArray,
    autapses: bool = False,
) -> PairTable:
    """Every overlapping (pre, post) pair of a block with its shared-voxel rows.

    Parameters
    ----------
    a_t
        (V, n_pre) CSR raw pre counts of the selected presynaptic neurons (voxel-major).
    b_block
        (P_block, V) CSR raw post counts of the block's postsynaptic neurons.
    pre_ids, post_ids
        Model neuron indices of the columns of ``a_t`` (n_pre,) and rows of ``b_block``.
    post_all, depth_um
        (V,) per-voxel target sites of all neurons and depth below the pia (µm).
    soma_um
        (N, 3) soma positions of all model neurons (µm), for ``soma_distance_um``.
    autapses
        Keep pairs of a neuron with itself (default: drop them).

    Returns
    -------
    PairTable
        Pairs ordered by (post, pre) with model indices; rows ordered by voxel within a pair.
        Row features ``log_pre``, ``log_post``, ``log_post_all``, ``depth_um`` (float32) and pair
        features ``n_shared``, ``soma_distance_um``.
    """
    b = sp.csr_array(b_block)
    b.sort_indices()
    n_pre = a_t.shape[1]
    a_ptr = a_t.indptr.astype(np.int64)
    ent_row = np.repeat(np.arange(b.shape[0], dtype=np.int64), np.diff(b.indptr))
    ent_vox = b.indices.astype(np.int64)
    reps = a_ptr[ent_vox + 1] - a_ptr[ent_vox]
    total = int(reps.sum())
    starts = np.cumsum(reps) - reps
    ent = np.repeat(np.arange(len(ent_vox), dtype=np.int64), reps)
    a_pos = a_ptr[ent_vox][ent] + (np.arange(total, dtype=np.int64) - starts[ent])
    row_post = ent_row[ent]
    row_pre = a_t.indices[a_pos].astype(np.int64)
    if not autapses:
        keep = pre_ids[row_pre] != post_ids[row_post]
        ent, a_pos, row_post, row_pre = ent[keep], a_pos[keep], row_post[keep], row_pre[keep]
    key = row_post * n_pre + row_pre
    order = np.argsort(key, kind="stable")  # stable: voxels stay ascending within a pair
    key, ent, a_pos = key[order], ent[order], a_pos[order]
    bounds = np.flatnonzero(np.diff(key)) + 1 if key.size else np.zeros(0, np.int64)
    first = np.concatenate([[0], bounds]).astype(np.int64) if key.size else bounds
    indptr = np.concatenate([first, [key.size]]).astype(np.int64)
    pair_key = key[first]
    pre = pre_ids[pair_key % n_pre] if n_pre else np.zeros(0, np.int64)
    post = post_ids[pair_key // n_pre] if n_pre else np.zeros(0, np.int64)
    vox = ent_vox[ent]
    rows = {
        "log_pre": np.log(a_t.data[a_pos]).astype(np.float32),
        "log_post": np.log(b.data[ent]).astype(np.float32),
        "log_post_all": np.log(np.asarray(post_all, dtype=np.float64)[vox]).astype(np.float32),
        "depth_um": np.asarray(depth_um, dtype=np.float32)[vox],
    }
    diff = np.asarray(soma_um, dtype=np.float64)[pre] - np.asarray(soma_um, dtype=np.float64)[post]
    return PairTable(
        pre=pre.astype(np.int64),
        post=post.astype(np.int64),
        indptr=indptr,
        voxel=vox.astype(np.int32),
        rows=rows,
        pair_features={"soma_distance_um": np.sqrt(np.sum(diff * diff, axis=1))},
    )


def expected_row_synapses(
    rule: WiringRule, table: PairTable, theta: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Expected counts per pair ``lambda`` (P,) and expected synapses per row (R,) for one θ.

    Voxel-level rules: ``lambda`` is the segment sum of the row rates (as in
    :func:`wiring.pairs.pair_rate`). Expected synapses per row follow ``rule.synapses``: the rate
    (``poisson``), ``1 - exp(-rate)`` (``binomial``, at most one per voxel) or, for
    ``deterministic``, ``1 - exp(-lambda)`` on every row of the pair (a connected pair gets one
    synapse per shared voxel). Pair-level rules with Poisson synapses spread ``lambda`` evenly
    over the pair's shared voxels.
    """
    th = check_theta(rule, theta)[:1]
    n_rows = np.diff(table.indptr)
    feats = rule_features(rule, table)
    if rule.level == "pair":
        lam = call_rate(rule, feats, theta_columns(th))
        lam = np.broadcast_to(lam, (1, table.n_pairs))[0].copy()
        per_row = None
    else:
        per_row = call_rate(rule, feats, theta_columns(th))
        per_row = np.broadcast_to(per_row, (1, table.n_rows))[0].copy()
        check_rates(rule, per_row, th)
        lam = segment_sum(per_row, table.indptr)
    check_rates(rule, lam, th)
    pair_of_row = np.repeat(np.arange(table.n_pairs), n_rows)
    if rule.synapses == "binomial" and per_row is not None:
        row_syn = -np.expm1(-per_row)
    elif rule.synapses == "poisson" and per_row is not None:
        row_syn = per_row
    elif rule.synapses == "poisson":
        with np.errstate(invalid="ignore", divide="ignore"):
            row_syn = (lam / np.maximum(n_rows, 1))[pair_of_row]
    else:  # deterministic
        row_syn = (-np.expm1(-lam))[pair_of_row]
    return lam, row_syn
