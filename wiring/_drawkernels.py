"""Scalar kernels of the counter-based synapse draws, compiled with numba.

One implementation of the keyed uniform and of the Poisson inverse-CDF search, called from
:func:`wiring.rules.draw.poisson_quantile` (vectorized over arrays) and from the fused
connectome kernel (:mod:`wiring.connectome.dso`): both paths therefore draw bit-identical counts for the
same rates and uniforms. The hash is the one of :func:`wiring.rules.draw.keyed_uniforms`
(splitmix64 finalizer per id), which is exact integer arithmetic in numpy and here alike.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = [
    "SEARCH_MAX_MEAN",
    "SPLITMIX_M1",
    "SPLITMIX_M2",
    "SPLITMIX_SHIFTS",
    "id_multiplier",
    "keyed_uniform2",
    "poisson_quantiles",
    "poisson_search",
    "splitmix64",
]

#: Up to this mean the Poisson inverse CDF is a sequential search; above it scipy's ppf.
SEARCH_MAX_MEAN = 64.0
#: Steps of the sequential search before it gives up (rounding) and defers to scipy.
_MAX_STEPS = 1024

_MASK = (1 << 64) - 1
#: The splitmix64 finalizer's multipliers and shifts (30, 27, 31; 11 turns 64 bits into 53),
#: shared with the simulator's streams (:mod:`wiring.simulation._kernels`).
SPLITMIX_M1 = np.uint64(0xBF58476D1CE4E5B9)
SPLITMIX_M2 = np.uint64(0x94D049BB133111EB)
SPLITMIX_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11))
_M1, _M2 = SPLITMIX_M1, SPLITMIX_M2
_S30, _S27, _S31, _S11 = SPLITMIX_SHIFTS


def splitmix64(z: Any) -> Any:
    """The splitmix64 finalizer on uint64 numpy values (wrapping; a new array)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def id_multiplier(pos: int) -> int:
    """The odd multiplier applied to the ``pos``-th id (1-based) before it is mixed in."""
    return (0x9E3779B97F4A7C15 * (2 * pos + 1)) & _MASK | 1


_ID1 = np.uint64(id_multiplier(1))
_ID2 = np.uint64(id_multiplier(2))


@numba.njit(nogil=True, cache=False, inline="always")
def _mix(z: Any) -> Any:  # pragma: no cover - compiled
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


@numba.njit(nogil=True, cache=False, inline="always")
def keyed_uniform2(h0: Any, a: Any, b: Any) -> float:  # pragma: no cover - compiled
    """Uniform in (0, 1) hashed from the key state ``h0`` (uint64) and two non-negative ids."""
    h = h0 ^ (np.uint64(a) * _ID1)
    h = _mix(h)
    h ^= np.uint64(b) * _ID2
    h = _mix(h)
    return (float(h >> _S11) + 0.5) * 1.1102230246251565e-16  # 2**-53


@numba.njit(nogil=True, cache=False)
def poisson_search(u: float, lam: float) -> int:  # pragma: no cover - compiled
    """Smallest k with ``P(Poisson(lam) <= k) >= u``, or -1 when it must be left to scipy."""
    if not lam <= SEARCH_MAX_MEAN:
        return -1
    if u <= 1.0 - lam:  # P(0) = exp(-lam) >= 1 - lam: most draws of small means end here
        return 0
    pmf = np.exp(-lam)
    cdf = pmf
    if u <= cdf:
        return 0
    for step in range(1, _MAX_STEPS):
        pmf = pmf * lam / step
        cdf = cdf + pmf
        if u <= cdf:
            return step
        if not pmf > 0.0:
            break
    return -1


@numba.njit(nogil=True, cache=False)
def poisson_quantiles(u: Any, lam: Any) -> Any:  # pragma: no cover - compiled
    """:func:`poisson_search` over two flat float64 arrays; int64 result, -1 where deferred."""
    out = np.empty(u.shape[0], dtype=np.int64)
    for i in range(u.shape[0]):
        out[i] = poisson_search(u[i], lam[i])
    return out
