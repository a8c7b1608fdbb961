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

Draw order within simulation ``i``: measurements in set order, and for sampled pair ``s`` of a
measurement with ``P`` eligible pairs, draw ``2s`` picks the pair ``min(floor(u * P), P - 1)``
and draw ``2s + 1`` gives the exponential threshold ``E = -log(u)``; the pair is connected when
its expected synapse count exceeds ``E`` (probability ``1 - exp(-lambda)``).

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

__all__ = ["kernels", "run_key", "stream_keys", "uniforms"]

from wiring._drawkernels import SPLITMIX_M1 as _M1
from wiring._drawkernels import SPLITMIX_M2 as _M2
from wiring._drawkernels import SPLITMIX_SHIFTS, splitmix64

_G = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = SPLITMIX_SHIFTS
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_LOG2E = 1.4426950408889634
_LN2HI = 6.93147180369123816490e-01
_LN2LO = 1.90821492927058770002e-10
_CHUNK = 64
_FCHUNK = 256

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

    @njit
    def sample_pairs(
        keys: Any, pair_lo: Any, pair_n: Any, n_sample: Any, pairs: Any, thr: Any
    ) -> None:
        n_b = keys.shape[0]
        n_m = pair_lo.shape[0]
        for b in range(n_b):
            key = keys[b]
            j = 0
            col = 0
            for m in range(n_m):
                n_p = pair_n[m]
                for _s in range(n_sample[m]):
                    u = uniform(key, j)
                    thr[b, col] = -np.log(uniform(key, j + 1))
                    j += 2
                    k = int(u * n_p)
                    if k >= n_p:
                        k = n_p - 1
                    pairs[b, col] = pair_lo[m] + k
                    col += 1

    @njit
    def fexp_array(x: Any, out: Any) -> None:
        for i in range(x.shape[0]):
            out[i] = fexp(x[i])

    return {"fexp": fexp, "uniform": uniform, "sample_pairs": sample_pairs,
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
    _cache[ck] = out
    return out


def _table_kernels(base: dict[str, Any], nk: int) -> dict[str, Any]:
    """Kernels over a CSR table; row features f0..f3 (the first ``nk`` are used)."""
    fexp, uniform, njit, inline = base["fexp"], base["uniform"], base["njit"], base["inline"]

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
    def simulate(keys: Any, valid: Any, coef: Any, offset: Any, f0: Any, f1: Any, f2: Any,
                 f3: Any, indptr: Any, pair_lo: Any, pair_n: Any, n_sample: Any,
                 out: Any) -> int:
        n_bad = 0
        n_b = coef.shape[0]
        n_m = pair_lo.shape[0]
        for b in range(n_b):
            if not valid[b]:
                for m in range(n_m):
                    out[b, m] = np.nan
                continue
            key = keys[b]
            c = coef[b]
            off = offset[b]
            j = 0
            bad = False
            for m in range(n_m):
                n_s = n_sample[m]
                n_p = pair_n[m]
                hits = 0
                for _s in range(n_s):
                    u = uniform(key, j)
                    thr = -np.log(uniform(key, j + 1))
                    j += 2
                    k = int(u * n_p)
                    if k >= n_p:
                        k = n_p - 1
                    p = pair_lo[m] + k
                    lam = pair_lambda(c, off, f0, f1, f2, f3, indptr[p], indptr[p + 1], thr)
                    if lam != lam:
                        bad = True
                    elif lam > thr:
                        hits += 1
                out[b, m] = hits / n_s
            if bad:
                n_bad += 1
                for m in range(n_m):
                    out[b, m] = np.nan
        return n_bad

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

    return {"simulate": simulate, "expected": expected}


def _factored_kernels(base: dict[str, Any], use_depth: bool) -> dict[str, Any]:
    """Kernels over the factored form: dense log pre (n_pre, V; NaN = absent) × post CSR
    (voxel, log post and log postAll per entry); the depth term only when ``use_depth``."""
    fexp, uniform, njit, inline = base["fexp"], base["uniform"], base["njit"], base["inline"]

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
    def simulate(keys: Any, valid: Any, coef: Any, offset: Any, dense: Any, pre_row: Any,
                 post_row: Any, post_ptr: Any, vox: Any, lq: Any, lpa: Any, depth: Any,
                 pair_lo: Any, pair_n: Any, n_sample: Any, out: Any) -> int:
        n_bad = 0
        n_b = coef.shape[0]
        n_m = pair_lo.shape[0]
        buf = np.empty(_FCHUNK, dtype=np.float64)
        ibuf = np.empty(_FCHUNK, dtype=np.int64)
        for b in range(n_b):
            if not valid[b]:
                for m in range(n_m):
                    out[b, m] = np.nan
                continue
            key = keys[b]
            c = coef[b]
            off = offset[b]
            j = 0
            bad = False
            for m in range(n_m):
                n_s = n_sample[m]
                n_p = pair_n[m]
                hits = 0
                for _s in range(n_s):
                    u = uniform(key, j)
                    thr = -np.log(uniform(key, j + 1))
                    j += 2
                    k = int(u * n_p)
                    if k >= n_p:
                        k = n_p - 1
                    p = pair_lo[m] + k
                    q = post_row[p]
                    lam = pair_lambda(c, off, dense, pre_row[p], vox, lq, lpa, depth,
                                      post_ptr[q], post_ptr[q + 1], thr, buf, ibuf)
                    if lam != lam:
                        bad = True
                    elif lam > thr:
                        hits += 1
                out[b, m] = hits / n_s
            if bad:
                n_bad += 1
                for m in range(n_m):
                    out[b, m] = np.nan
        return n_bad

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
    def simulate_sorted(keys: Any, valid: Any, coef: Any, offset: Any, dense: Any,
                        pre_row: Any, post_row: Any, post_ptr: Any, vox: Any, lq: Any,
                        lpa: Any, depth: Any, pair_lo: Any, pair_n: Any, n_sample: Any,
                        n_pre: int, out: Any) -> int:
        """Like ``simulate``, but all sampled pairs of the batch are evaluated grouped by
        presynaptic neuron (counting sort), so each dense row stays in cache; same result."""
        n_b = coef.shape[0]
        n_m = pair_lo.shape[0]
        n_s_tot = 0
        for m in range(n_m):
            n_s_tot += n_sample[m]
        total = n_b * n_s_tot
        pair = np.empty(total, dtype=np.int64)
        thr = np.empty(total, dtype=np.float64)
        cnt = np.zeros(n_pre + 1, dtype=np.int64)
        for b in range(n_b):
            key = keys[b]
            j = 0
            col = b * n_s_tot
            for m in range(n_m):
                n_p = pair_n[m]
                for _s in range(n_sample[m]):
                    u = uniform(key, j)
                    thr[col] = -np.log(uniform(key, j + 1))
                    j += 2
                    k = int(u * n_p)
                    if k >= n_p:
                        k = n_p - 1
                    p = pair_lo[m] + k
                    pair[col] = p
                    if valid[b]:
                        cnt[pre_row[p] + 1] += 1
                    col += 1
        for i in range(n_pre):
            cnt[i + 1] += cnt[i]
        # counting sort by post row, then (stable) by pre row: (pre, post) order
        n_post = post_ptr.shape[0] - 1
        cq = np.zeros(n_post + 1, dtype=np.int64)
        for t in range(total):
            if valid[t // n_s_tot]:
                cq[post_row[pair[t]] + 1] += 1
        for i in range(n_post):
            cq[i + 1] += cq[i]
        by_post = np.empty(cq[n_post], dtype=np.int64)
        for t in range(total):
            if valid[t // n_s_tot]:
                r = post_row[pair[t]]
                by_post[cq[r]] = t
                cq[r] += 1
        order = np.empty(cnt[n_pre], dtype=np.int64)
        for t in by_post:
            r = pre_row[pair[t]]
            order[cnt[r]] = t
            cnt[r] += 1
        hit = np.zeros(total, dtype=np.bool_)
        nan = np.zeros(n_b, dtype=np.bool_)
        buf = np.empty(_FCHUNK, dtype=np.float64)
        ibuf = np.empty(_FCHUNK, dtype=np.int64)
        for t in order:
            b = t // n_s_tot
            p = pair[t]
            q = post_row[p]
            lam = pair_lambda(coef[b], offset[b], dense, pre_row[p], vox, lq, lpa, depth,
                              post_ptr[q], post_ptr[q + 1], thr[t], buf, ibuf)
            if lam != lam:
                nan[b] = True
            hit[t] = lam > thr[t]
        n_bad = 0
        for b in range(n_b):
            if not valid[b] or nan[b]:
                for m in range(n_m):
                    out[b, m] = np.nan
                n_bad += nan[b]
                continue
            col = b * n_s_tot
            for m in range(n_m):
                h = 0
                for _s in range(n_sample[m]):
                    h += hit[col]
                    col += 1
                out[b, m] = h / n_sample[m]
        return n_bad

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

    return {"simulate": simulate, "simulate_sorted": simulate_sorted, "expected": expected,
            "count_rows": count_rows,
            "gather_rows": gather_rows}
