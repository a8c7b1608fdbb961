"""Synapse counts of neuron pairs drawn from a rule's rates, following its synapse model.

:func:`draw_synapse_counts` turns the rates of a rule on a :class:`~wiring.pairs.PairTable`
into integer synapse counts per pair, according to ``rule.synapses``:

``poisson``
    count ~ Poisson(lambda_pair), lambda_pair = sum of the pair's row rates;
``binomial``
    one Bernoulli draw per shared voxel, present with probability ``1 - exp(-rate_row)``;
``deterministic``
    the pair is connected with probability ``1 - exp(-lambda_pair)`` and then gets one synapse
    per shared voxel (``n_shared``).

In every case ``P(count > 0) = 1 - exp(-lambda_pair)``, and a pair with no shared voxel gets 0.

Two sources of randomness
-------------------------
- ``rng`` (a :class:`numpy.random.Generator` or a seed): one stream consumed in table order.
  Results depend on how pairs are grouped into tables.
- ``key`` (an integer run seed): counter-based uniforms hashed from ``(key, pre, post)`` per
  pair, or ``(key, pre, post, voxel)`` per row for binomial rules (see :func:`keyed_uniforms`);
  Poisson counts use the inverse CDF. A pair's count then depends only on the key, the two
  neuron ids and its rates, never on block sizes, table order or the number of workers, which
  is what the connectome engine needs.

``uniforms`` passes precomputed uniforms in (0, 1) instead: shape (P,) for poisson and
deterministic rules, (R,) for binomial ones.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wiring._drawkernels import id_multiplier, poisson_quantiles, splitmix64
from wiring._typing import FloatArray, IntArray
from wiring.errors import InvalidParameterError, ShapeMismatchError
from wiring.pairs import PairTable, pair_rate, rule_features, segment_sum
from wiring.rules.base import (
    WiringRule,
    call_rate,
    check_rates,
    check_theta_in_domain,
    theta_columns,
)

__all__ = [
    "MAX_POISSON_MEAN",
    "draw_synapse_counts",
    "key_state",
    "keyed_uniforms",
    "poisson_quantile",
]

#: Largest expected count a Poisson rule may produce for one pair (beyond it the rates have
#: overflowed for any anatomy: a pair of neurons holds at most thousands of synapses).
MAX_POISSON_MEAN = 1e12

_MASK = (1 << 64) - 1


def key_state(key: int) -> np.uint64:
    """The hash state of a run seed that :func:`keyed_uniforms` starts from (for kernels)."""
    start = np.uint64((key + 0x9E3779B97F4A7C15 * 0x632BE59BD9B4E019) & _MASK)
    with np.errstate(over="ignore"):
        return np.uint64(splitmix64(start))


def keyed_uniforms(key: int, *ids: npt.ArrayLike) -> FloatArray:
    """Uniforms in (0, 1), one per element of the broadcast ``ids``, hashed from ``(key, *ids)``.

    A counter-based generator: the value for given ids never depends on which other ids are
    drawn with it. Distinct ``key`` values give independent streams.

    Parameters
    ----------
    key
        Run seed (any integer; taken modulo 2**64).
    *ids
        Non-negative integer arrays (e.g. presynaptic ids, postsynaptic ids, voxel ids).

    Returns
    -------
    FloatArray
        Uniforms with the broadcast shape of ``ids``, strictly inside (0, 1).

    Examples
    --------
    >>> u = keyed_uniforms(7, [0, 1, 2], 5)
    >>> bool(np.all((u > 0) & (u < 1))), keyed_uniforms(7, [1], 5)[0] == u[1]
    (True, np.True_)
    """
    arrays = np.broadcast_arrays(*[np.asarray(i, dtype=np.int64) for i in ids])
    shape = arrays[0].shape if arrays else ()
    # h <- mix(h ^ (id * odd)) per id: each step is a bijection of the id for a fixed prefix
    h = np.full(shape, key_state(key), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for pos, arr in enumerate(arrays, start=1):
            step = arr.astype(np.uint64)
            step *= np.uint64(id_multiplier(pos))
            h ^= step
            h = splitmix64(h)
    out = (h >> np.uint64(11)).astype(np.float64)
    out += 0.5
    out *= 2.0**-53
    return out


def poisson_quantile(u: FloatArray, lam: FloatArray) -> IntArray:
    """Smallest k with ``P(Poisson(lam) <= k) >= u``, elementwise (inverse-CDF sampling).

    With ``u`` uniform on (0, 1) the result is Poisson(lam) distributed. A compiled sequential
    search for means up to 64 (shared with the connectome kernel, so both draw the same counts),
    :func:`scipy.stats.poisson.ppf` for the rest.

    Examples
    --------
    >>> poisson_quantile(np.array([0.1, 0.5, 0.99]), np.array([1.0, 1.0, 1.0])).tolist()
    [0, 1, 4]
    """
    u = np.asarray(u, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    u, lam = np.broadcast_arrays(u, lam)
    flat_u = np.ascontiguousarray(u).reshape(-1)
    flat_lam = np.ascontiguousarray(lam).reshape(-1)
    k: IntArray = np.asarray(poisson_quantiles(flat_u, flat_lam), dtype=np.int64)
    big = np.flatnonzero(k < 0)
    if big.size:
        from scipy import stats

        k[big] = stats.poisson.ppf(flat_u[big], flat_lam[big]).astype(np.int64)
    return k.reshape(u.shape)


def _check_uniforms(uniforms: npt.ArrayLike, n: int, what: str) -> FloatArray:
    u = np.asarray(uniforms, dtype=np.float64)
    if u.shape != (n,):
        raise ShapeMismatchError(
            f"uniforms have shape {u.shape}, expected ({n},): one per {what} of the table"
        )
    if not np.all((u > 0) & (u < 1)):
        raise InvalidParameterError("uniforms must lie strictly inside (0, 1)")
    return u


def draw_synapse_counts(
    rule: WiringRule,
    table: PairTable,
    theta: npt.ArrayLike,
    rng: np.random.Generator | int | None = None,
    *,
    key: int | None = None,
    uniforms: npt.ArrayLike | None = None,
    expected: FloatArray | None = None,
) -> IntArray:
    """Synapse count of every pair of ``table`` for one parameter vector.

    Parameters
    ----------
    rule
        The wiring rule (its ``synapses`` attribute selects the draw, see the module docs).
    table
        Pairs and their shared-voxel rows.
    theta
        One parameter vector, shape (d,) or (1, d); must lie in the rule's domain.
    rng
        Generator or seed for a sequential stream in table order.
    key
        Run seed for counter-based draws keyed by (pre, post[, voxel]); independent of how
        pairs are split into tables.
    uniforms
        Precomputed uniforms in (0, 1): (P,) for poisson/deterministic, (R,) for binomial.
    expected
        Optionally the pair rates (P,) from :func:`wiring.pairs.pair_rate`, to avoid computing
        them twice (ignored for binomial rules, which need the row rates).

    Exactly one of ``rng``, ``key`` and ``uniforms`` must be given.

    Returns
    -------
    IntArray
        (P,) int64 synapse counts; 0 for every pair without a shared voxel.

    Raises
    ------
    InvalidParameterError
        θ has the wrong length, is NaN or outside the domain; not exactly one randomness
        source; a Poisson mean is infinite or above :data:`MAX_POISSON_MEAN`.

    Examples
    --------
    >>> from wiring.rules.registry import get_rule
    >>> from wiring.testing import make_pair_table
    >>> t = make_pair_table(n_pairs=4, seed=1)
    >>> c = draw_synapse_counts(get_rule("dso"), t, [1.0, 1.0, 1.0], key=42)
    >>> c.shape, c.dtype
    ((4,), dtype('int64'))
    """
    n_given = sum(x is not None for x in (rng, key, uniforms))
    if n_given != 1:
        raise InvalidParameterError(
            f"draw_synapse_counts needs exactly one source of randomness (rng=, key= or "
            f"uniforms=), got {n_given}"
        )
    th = check_theta_in_domain(rule, theta)
    if th.shape[0] != 1:
        raise ShapeMismatchError(
            f"draw_synapse_counts takes one parameter vector, got theta of shape {th.shape}; "
            f"call it once per vector"
        )
    n_shared = np.diff(table.indptr).astype(np.int64)
    p = table.n_pairs
    if rule.synapses == "binomial":
        feats = rule_features(rule, table)
        rates = call_rate(rule, feats, theta_columns(th))
        check_rates(rule, rates, th)
        rates = np.broadcast_to(rates, (1, table.n_rows))[0]
        if uniforms is not None:
            u = _check_uniforms(uniforms, table.n_rows, "row")
        elif key is not None:
            row_pair = np.repeat(np.arange(p), n_shared)
            u = keyed_uniforms(key, table.pre[row_pair], table.post[row_pair], table.voxel)
        else:
            u = np.random.default_rng(rng).random(table.n_rows)
        present = (u < -np.expm1(-rates)).astype(np.float64)
        return segment_sum(present, table.indptr).astype(np.int64)

    lam = (
        pair_rate(rule, table, th)[0]
        if expected is None
        else np.asarray(expected, dtype=np.float64).reshape(p)
    )
    if rule.synapses == "deterministic":
        if uniforms is not None:
            u = _check_uniforms(uniforms, p, "pair")
        elif key is not None:
            u = keyed_uniforms(key, table.pre, table.post)
        else:
            u = np.random.default_rng(rng).random(p)
        connected = (u < -np.expm1(-lam)) & (n_shared > 0)
        return np.where(connected, n_shared, 0).astype(np.int64)

    bad = ~(lam <= MAX_POISSON_MEAN)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidParameterError(
            f"rule {rule.name!r} at theta {th[0].tolist()} gives an expected synapse count of "
            f"{lam[i]!r} for pair ({table.pre[i]}, {table.post[i]}); Poisson means must be "
            f"finite and at most {MAX_POISSON_MEAN:g}: choose theta inside the plausible range"
        )
    if uniforms is not None:
        counts = poisson_quantile(_check_uniforms(uniforms, p, "pair"), lam)
    elif key is not None:
        counts = poisson_quantile(keyed_uniforms(key, table.pre, table.post), lam)
    else:
        counts = np.random.default_rng(rng).poisson(lam).astype(np.int64)
    return np.where(n_shared > 0, counts, 0).astype(np.int64)
