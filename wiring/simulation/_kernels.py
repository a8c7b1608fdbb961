"""Compiled kernels of the batched simulator (numba, single-threaded, compiled on first use).

Random numbers
--------------
Random numbers come from a counter-based generator, so that simulation ``i`` of a run sees the
same numbers whatever batch it is computed in:

* the run key ``K`` is ``SeedSequence(seed).generate_state(1, uint64)[0]``;
* the stream key of global simulation index ``i`` is ``k_i = mix(K ^ mix((i + 1) * G))``;
* draw ``j`` (0, 1, 2, ...) of simulation ``i`` is ``mix(k_i + (j + 1) * G)``,

where ``G = 0x9E3779B97F4A7C15`` and ``mix`` is the SplitMix64 output function (Stafford's
"mix13"): each simulation's draws are exactly a SplitMix64 sequence seeded with ``k_i``.
A 64-bit draw ``z`` becomes the uniform ``((z >> 11) + 1) * 2**-53`` in (0, 1].

Draw order within simulation ``i``: measurements with pooled ones after their parts
(:func:`wiring.measurements.pooling_order`), and for every pair a measurement samples itself
(all of them, or the ``n - t`` beyond the ``t`` pairs of its parts for a pooled one) one draw:
with replacement the pick ``min(floor(u * P), P - 1)`` among the ``P`` eligible pairs; without
replacement one step of Floyd's algorithm (step ``s`` of ``n'`` picks among ``M - n' + s + 1``
values, ``M`` = eligible pairs not taken by the parts; a value already taken is replaced by the
step's largest), which gives a uniformly random subset of ``n'`` distinct pairs in exactly
``n'`` draws. The values are then mapped past the parts' pairs (sorted merge).

One connectome per simulation
-----------------------------
Whether a pair is connected does not use the stream's draws: simulation ``i`` has the
connectome key ``h_i = mix(k_i ^ C)`` (a fixed constant ``C``), and pair (pre ``a``, post ``b``,
model neuron indices) gets the uniform ``u = keyed_uniform2(h_i, a, b)``
(:mod:`wiring._drawkernels`); it is connected when its expected synapse count exceeds
``E = -log(u)`` (probability ``1 - exp(-lambda)``), which is the same as its Poisson synapse
count at ``u`` (inverse CDF) being at least one. A pair sampled twice, or in two measurements,
therefore has one outcome in a simulation, whatever the batch, chunk or worker.
Rates
-----
Log-linear rates ``exp(Σ_k c_k f_k + offset)`` are evaluated with a branch-free exponential
(range reduction by powers of two and a degree-9 polynomial; relative error below 1e-11, exact
0 below -708 and ``inf`` above 709) that the compiler vectorizes; rows are summed in chunks of
64, and the sum stops at the first chunk that makes the pair connected.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

__all__ = ["CONNECTOME_SALT", "kernels", "run_key", "stream_keys", "uniforms"]

from wiring._drawkernels import SPLITMIX_M1 as _M1
from wiring._drawkernels import SPLITMIX_M2 as _M2
from wiring._drawkernels import SPLITMIX_SHIFTS, keyed_uniform2, splitmix64

_G = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = SPLITMIX_SHIFTS
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_LOG2E = 1.4426950408889634
_LN2HI = 6.93147180369123816490e-01
_LN2LO = 1.90821492927058770002e-10
_CHUNK = 64
_FCHUNK = 256
#: Salt of the connectome key of a simulation (see the module docstring).
CONNECTOME_SALT = np.uint64(0xC0FFEE5EED5A17ED)
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)

# approximate math functions allowed, NaN/inf semantics kept (no 'nnan'/'ninf')
_FASTMATH = {"contract", "afn", "reassoc", "arcp", "nsz"}

_cache: dict[Any, Any] = {}
_lock = threading.RLock()  # one compilation per kernel even when threads race to first use


def run_key(seed: int) -> np.uint64:
    """The 64-bit run key of a non-negative integer seed."""
    return np.uint64(np.random.SeedSequence(int(seed)).generate_state(1, dtype=np.uint64)[0])


def stream_keys(seed: int, start: int, n: int) -> Any:
    """Stream keys ``k_i`` (uint64) of global simulation indices ``start .. start + n - 1``."""
    k = run_key(seed)
    with np.errstate(over="ignore"):
        i = np.arange(start, start + n, dtype=np.uint64) + _ONE
        return splitmix64(k ^ splitmix64(i * _G))


def uniforms(keys: Any, n_draws: int) -> Any:
    """The first ``n_draws`` uniforms in (0, 1] of each stream key (numpy reference)."""
    with np.errstate(over="ignore"):
        j = np.arange(1, n_draws + 1, dtype=np.uint64)
        z = splitmix64(np.asarray(keys, dtype=np.uint64)[:, None] + j[None, :] * _G)
    return ((z >> _S11).astype(np.float64) + 1.0) * _INV53


def _base() -> dict[str, Any]:
    """Helpers shared by all kernels (compiled once)."""
    with _lock:
        if "base" not in _cache:
            _cache["base"] = _compile_base()
        return _cache["base"]  # type: ignore[no-any-return]


def _compile_base() -> dict[str, Any]:
    import numba as nb
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def _i64_as_f64(typingctx: Any, x: Any) -> Any:
        sig = types.float64(types.int64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return sig, codegen

    inline = nb.njit(cache=False, nogil=True, fastmath=_FASTMATH, inline="always")

    @inline
    def fexp(x: float) -> float:
        xc = min(max(x, -708.0), 709.0)
        kf = np.floor(xc * _LOG2E + 0.5)
        r = xc - kf * _LN2HI - kf * _LN2LO
        p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (
            1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (
                1.0 / 362880)))))))))
        v = p * _i64_as_f64((np.int64(kf) + 1023) << 52)  # type: ignore[call-arg]
        if x < -708.0:
            v = 0.0
        if x > 709.0:
            v = np.inf
        return v

    @inline
    def mix(z: Any) -> Any:
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)

    @inline
    def uniform(key: Any, j: int) -> float:
        z = mix(key + np.uint64(j + 1) * _G)
        return (float(z >> _S11) + 1.0) * _INV53

    njit = nb.njit(cache=False, nogil=True, fastmath=_FASTMATH)

    @inline
    def set_add(table: Any, stamp: Any, gen: int, shift: Any, v: int) -> bool:
        """Insert ``v`` into the open-addressing set of generation ``gen``; False if present."""
        mask = np.int64(table.shape[0] - 1)
        h = np.int64((np.uint64(v) * _HASH_MUL) >> shift)
        while stamp[h] == gen:
            if table[h] == v:
                return False
            h = (h + 1) & mask
        stamp[h] = gen
        table[h] = v
        return True

    @njit
    def sample_pairs(keys: Any, pair_lo: Any, pair_n: Any, n_sample: Any,
                     col_lo: Any, order: Any, edge_ptr: Any, edge_part: Any, edge_map_lo: Any,
                     pool_map: Any, replace: bool, pairs: Any) -> None:
        """Sampled pairs (global pair indices) of every stream key."""
        n_b = keys.shape[0]
        n_m = pair_lo.shape[0]
        n_max = 1
        for m in range(n_m):
            n_max = max(n_max, n_sample[m])
        size = 16
        bits = 4
        while size < 2 * n_max:
            size *= 2
            bits += 1
        shift = np.uint64(64 - bits)
        table = np.empty(size, dtype=np.int64)
        stamp = np.zeros(size, dtype=np.int64)
        taken = np.empty(n_max, dtype=np.int64)
        picks = np.empty(n_max, dtype=np.int64)
        gen = 0
        for b in range(n_b):
            key = keys[b]
            j = 0
            for mi in range(n_m):
                m = order[mi]
                lo = pair_lo[m]
                n_p = pair_n[m]
                c = col_lo[m]
                t = 0
                for e in range(edge_ptr[m], edge_ptr[m + 1]):
                    q = edge_part[e]
                    base = edge_map_lo[e] - pair_lo[q]
                    for s in range(n_sample[q]):
                        local = pool_map[base + pairs[b, col_lo[q] + s]]
                        pairs[b, c] = lo + local
                        taken[t] = local
                        t += 1
                        c += 1
                n_x = n_sample[m] - t
                if replace:
                    for _s in range(n_x):
                        k = int(uniform(key, j) * n_p)
                        j += 1
                        if k >= n_p:
                            k = n_p - 1
                        pairs[b, c] = lo + k
                        c += 1
                    continue
                gen += 1
                span = n_p - t  # values 0 .. span - 1: the pairs the parts did not take
                for s in range(n_x):
                    top = span - n_x + s
                    k = int(uniform(key, j) * (top + 1))
                    j += 1
                    if k > top:
                        k = top
                    if not set_add(table, stamp, gen, shift, k):
                        k = top
                        set_add(table, stamp, gen, shift, k)
                    picks[s] = k
                if t > 0:
                    tk = np.sort(taken[:t])
                    pk = np.sort(picks[:n_x])
                    ti = 0
                    for s in range(n_x):
                        v = pk[s] + ti
                        while ti < t and tk[ti] <= v:
                            ti += 1
                            v += 1
                        picks[s] = v
                for s in range(n_x):
                    pairs[b, c] = lo + picks[s]
                    c += 1

    @inline
    def threshold(h0: Any, a: Any, b: Any) -> float:
        """``E = -log(u)`` of pair (a, b) in the connectome of key ``h0``."""
        return -np.log(keyed_uniform2(h0, a, b))  # type: ignore[no-any-return]

    @inline
    def connectome_key(key: Any) -> Any:
        return mix(key ^ CONNECTOME_SALT)

    @njit
    def thresholds(keys: Any, pre: Any, post: Any, pairs: Any, thr: Any) -> None:
        """Connection thresholds of the sampled pairs (the numpy path's reference)."""
        for b in range(pairs.shape[0]):
            h0 = connectome_key(keys[b])
            for c in range(pairs.shape[1]):
                p = pairs[b, c]
                thr[b, c] = threshold(h0, pre[p], post[p])

    @njit
    def tally(valid: Any, hit: Any, nan: Any, root: Any, col_lo: Any, n_sample: Any,
              per_pre: Any, pairs: Any, pre: Any, out: Any) -> int:
        """Statistic per measurement from per-column hits (copies read from ``root``): the
        connected fraction, or (``per_pre``) the mean over the presynaptic neurons of the
        sample of each one's connected fraction."""
        n_b = hit.shape[0]
        n_m = n_sample.shape[0]
        n_bad = 0
        n_max = 1
        for m in range(n_m):
            n_max = max(n_max, n_sample[m])
        who = np.empty(n_max, dtype=np.int64)
        for b in range(n_b):
            if not valid[b] or nan[b]:
                for m in range(n_m):
                    out[b, m] = np.nan
                if valid[b]:
                    n_bad += 1
                continue
            for m in range(n_m):
                lo = col_lo[m]
                n = n_sample[m]
                if not per_pre[m]:
                    h = 0
                    for c in range(lo, lo + n):
                        r = root[c]
                        h += hit[b, c if r < 0 else r]
                    out[b, m] = h / n
                    continue
                for s in range(n):
                    who[s] = pre[pairs[b, lo + s]]
                order = np.argsort(who[:n], kind="mergesort")
                acc = 0.0
                groups = 0
                s = 0
                while s < n:
                    e = s
                    h = 0
                    while e < n and who[order[e]] == who[order[s]]:
                        c = lo + order[e]
                        r = root[c]
                        h += hit[b, c if r < 0 else r]
                        e += 1
                    acc += h / (e - s)
                    groups += 1
                    s = e
                out[b, m] = acc / groups
        return n_bad

    @njit
    def fexp_array(x: Any, out: Any) -> None:
        for i in range(x.shape[0]):
            out[i] = fexp(x[i])

    return {"fexp": fexp, "uniform": uniform, "sample_pairs": sample_pairs, "tally": tally,
            "thresholds": thresholds, "threshold": threshold, "connectome_key": connectome_key,
            "fexp_array": fexp_array, "njit": njit, "inline": inline}


def kernels(kind: str, n_features: int = 0) -> dict[str, Any]:
    """The compiled kernels of ``kind`` (``"table"`` with ``n_features`` row features, or
    ``"factored"``, with ``n_features`` = 1 when the depth term is used); compiled on first
    use and kept for the process."""
    ck = (kind, n_features)
    if ck in _cache:
        return _cache[ck]  # type: ignore[no-any-return]
    with _lock:
        if ck in _cache:
            return _cache[ck]  # type: ignore[no-any-return]
        return _compile(kind, n_features)


def _compile(kind: str, n_features: int) -> dict[str, Any]:
    ck = (kind, n_features)
    base = _base()
    if kind == "table":
        out = _table_kernels(base, n_features)
    elif kind == "factored":
        out = _factored_kernels(base, bool(n_features))
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    out["sample_pairs"] = base["sample_pairs"]
    out["tally"] = base["tally"]
    out["thresholds"] = base["thresholds"]
    _cache[ck] = out
    return out


def _table_kernels(base: dict[str, Any], nk: int) -> dict[str, Any]:
    """Kernels over a CSR table; row features f0..f3 (the first ``nk`` are used)."""
    fexp, njit, inline = base["fexp"], base["njit"], base["inline"]
    threshold, connectome_key = base["threshold"], base["connectome_key"]

    @inline  # type: ignore[untyped-decorator]
    def lin(c: Any, f0: Any, f1: Any, f2: Any, f3: Any, r: int) -> float:
        t = 0.0
        if nk > 0:
            t += c[0] * f0[r]
        if nk > 1:
            t += c[1] * f1[r]
        if nk > 2:
            t += c[2] * f2[r]
        if nk > 3:
            t += c[3] * f3[r]
        return t

    @inline  # type: ignore[untyped-decorator]
    def pair_lambda(c: Any, off: float, f0: Any, f1: Any, f2: Any, f3: Any, lo: int, hi: int,
                    thr: float) -> float:
        lam = 0.0
        r = lo
        while r < hi:
            e = min(r + _CHUNK, hi)
            acc = 0.0
            for rr in range(r, e):
                acc += fexp(lin(c, f0, f1, f2, f3, rr) + off)
            lam += acc
            if lam > thr:
                break
            r = e
        return lam

    @njit  # type: ignore[untyped-decorator]
    def evaluate(keys: Any, pre: Any, post: Any, valid: Any, coef: Any, offset: Any, f0: Any,
                 f1: Any, f2: Any, f3: Any, indptr: Any, pairs: Any, root: Any, hit: Any,
                 nan: Any) -> None:
        """``hit[b, c]``: whether sampled pair ``pairs[b, c]`` is connected in the connectome
        of stream ``keys[b]`` (columns with a ``root`` are copies and are skipped; a pair
        without rows never connects); ``nan[b]`` when a rate is NaN."""
        n_b = coef.shape[0]
        n_c = pairs.shape[1]
        for b in range(n_b):
            nan[b] = False
            if not valid[b]:
                continue
            c = coef[b]
            off = offset[b]
            h0 = connectome_key(keys[b])
            for col in range(n_c):
                if root[col] >= 0:
                    continue
                p = pairs[b, col]
                lo = indptr[p]
                hi = indptr[p + 1]
                if lo == hi:
                    hit[b, col] = False
                    continue
                t = threshold(h0, pre[p], post[p])
                lam = pair_lambda(c, off, f0, f1, f2, f3, lo, hi, t)
                if lam != lam:
                    nan[b] = True
                hit[b, col] = lam > t

    @njit  # type: ignore[untyped-decorator]
    def expected(coef: Any, offset: Any, f0: Any, f1: Any, f2: Any, f3: Any, indptr: Any,
                 pair_lo: Any, pair_n: Any, out: Any) -> None:
        n_b = coef.shape[0]
        n_m = pair_lo.shape[0]
        for b in range(n_b):
            c = coef[b]
            off = offset[b]
            for m in range(n_m):
                acc = 0.0
                for p in range(pair_lo[m], pair_lo[m] + pair_n[m]):
                    lam = pair_lambda(c, off, f0, f1, f2, f3, indptr[p], indptr[p + 1], np.inf)
                    acc += -np.expm1(-lam)
                out[b, m] = acc / pair_n[m]

    return {"evaluate": evaluate, "expected": expected}


def _factored_kernels(base: dict[str, Any], use_depth: bool) -> dict[str, Any]:
    """Kernels over the factored form: dense log pre (n_pre, V; NaN = absent) × post CSR
    (voxel, log post and log postAll per entry); the depth term only when ``use_depth``."""
    fexp, njit, inline = base["fexp"], base["njit"], base["inline"]
    threshold, connectome_key = base["threshold"], base["connectome_key"]

    @inline  # type: ignore[untyped-decorator]
    def pair_lambda(c: Any, off: float, dense: Any, ri: int, vox: Any, lq: Any, lpa: Any,
                    depth: Any, lo: int, hi: int, thr: float, buf: Any, ibuf: Any) -> float:
        # per chunk: compact the entries where the pre neuron is present (branch-free), then
        # evaluate the rates of those only
        c0, c1, c2, c3 = c[0], c[1], c[2], c[3]
        row = dense[ri]
        lam = 0.0
        r = lo
        while r < hi:
            e = min(r + _FCHUNK, hi)
            n = 0
            for rr in range(r, e):
                lp = row[vox[rr]]
                buf[n] = lp
                ibuf[n] = rr
                n += lp == lp
            acc = 0.0
            for k in range(n):
                i = ibuf[k]
                t = off + c0 * buf[k] + c1 * lq[i] + c2 * lpa[i]
                if use_depth:
                    t += c3 * depth[vox[i]]
                acc += fexp(t)
            lam += acc
            if lam > thr:
                break
            r = e
        return lam

    @njit  # type: ignore[untyped-decorator]
    def expected(coef: Any, offset: Any, dense: Any, pre_row: Any, post_row: Any,
                 post_ptr: Any, vox: Any, lq: Any, lpa: Any, depth: Any, pair_lo: Any,
                 pair_n: Any, out: Any) -> None:
        n_b = coef.shape[0]
        n_m = pair_lo.shape[0]
        buf = np.empty(_FCHUNK, dtype=np.float64)
        ibuf = np.empty(_FCHUNK, dtype=np.int64)
        for b in range(n_b):
            c = coef[b]
            off = offset[b]
            for m in range(n_m):
                acc = 0.0
                for p in range(pair_lo[m], pair_lo[m] + pair_n[m]):
                    q = post_row[p]
                    lam = pair_lambda(c, off, dense, pre_row[p], vox, lq, lpa, depth,
                                      post_ptr[q], post_ptr[q + 1], np.inf, buf, ibuf)
                    acc += -np.expm1(-lam)
                out[b, m] = acc / pair_n[m]

    @njit  # type: ignore[untyped-decorator]
    def evaluate_sorted(keys: Any, pre: Any, post: Any, valid: Any, coef: Any, offset: Any,
                        dense: Any, pre_row: Any, post_row: Any, post_ptr: Any, vox: Any,
                        lq: Any, lpa: Any, depth: Any, pairs: Any, root: Any, n_pre: int,
                        hit: Any, nan: Any) -> None:
        """Like the table form's ``evaluate``; the sampled pairs of the whole batch are
        evaluated grouped by presynaptic neuron (counting sort), so each dense row stays in
        cache."""
        n_b = coef.shape[0]
        n_c = pairs.shape[1]
        total = n_b * n_c
        cnt = np.zeros(n_pre + 1, dtype=np.int64)
        n_post = post_ptr.shape[0] - 1
        cq = np.zeros(n_post + 1, dtype=np.int64)
        for t in range(total):
            b = t // n_c
            if valid[b] and root[t % n_c] < 0:
                p = pairs[b, t % n_c]
                cnt[pre_row[p] + 1] += 1
                cq[post_row[p] + 1] += 1
        for i in range(n_pre):
            cnt[i + 1] += cnt[i]
        for i in range(n_post):
            cq[i + 1] += cq[i]
        # counting sort by post row, then (stable) by pre row: (pre, post) order
        by_post = np.empty(cq[n_post], dtype=np.int64)
        for t in range(total):
            b = t // n_c
            if valid[b] and root[t % n_c] < 0:
                r = post_row[pairs[b, t % n_c]]
                by_post[cq[r]] = t
                cq[r] += 1
        order = np.empty(cnt[n_pre], dtype=np.int64)
        for t in by_post:
            r = pre_row[pairs[t // n_c, t % n_c]]
            order[cnt[r]] = t
            cnt[r] += 1
        for b in range(n_b):
            nan[b] = False
        buf = np.empty(_FCHUNK, dtype=np.float64)
        ibuf = np.empty(_FCHUNK, dtype=np.int64)
        h0 = np.empty(n_b, dtype=np.uint64)
        for b in range(n_b):
            h0[b] = connectome_key(keys[b])
        for t in order:
            b = t // n_c
            col = t % n_c
            p = pairs[b, col]
            q = post_row[p]
            if post_ptr[q] == post_ptr[q + 1]:
                hit[b, col] = False
                continue
            thr = threshold(h0[b], pre[p], post[p])
            lam = pair_lambda(coef[b], offset[b], dense, pre_row[p], vox, lq, lpa, depth,
                              post_ptr[q], post_ptr[q + 1], thr, buf, ibuf)
            if lam != lam:
                nan[b] = True
            hit[b, col] = lam > thr

    @njit  # type: ignore[untyped-decorator]
    def count_rows(dense: Any, pre_row: Any, post_row: Any, post_ptr: Any, vox: Any,
                   pairs: Any, counts: Any) -> None:
        for t in range(pairs.shape[0]):
            p = pairs[t]
            row = dense[pre_row[p]]
            q = post_row[p]
            n = 0
            for rr in range(post_ptr[q], post_ptr[q + 1]):
                lp = row[vox[rr]]
                if lp == lp:
                    n += 1
            counts[t] = n

    @njit  # type: ignore[untyped-decorator]
    def gather_rows(dense: Any, pre_row: Any, post_row: Any, post_ptr: Any, vox: Any,
                    lq: Any, pairs: Any, ptr: Any, out_vox: Any, out_lp: Any,
                    out_lq: Any) -> None:
        for t in range(pairs.shape[0]):
            p = pairs[t]
            row = dense[pre_row[p]]
            q = post_row[p]
            w = ptr[t]
            for rr in range(post_ptr[q], post_ptr[q + 1]):
                v = vox[rr]
                lp = row[v]
                if lp == lp:
                    out_vox[w] = v
                    out_lp[w] = lp
                    out_lq[w] = lq[rr]
                    w += 1

    return {"evaluate_sorted": evaluate_sorted, "expected": expected,
            "count_rows": count_rows,
            "gather_rows": gather_rows}
