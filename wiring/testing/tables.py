"""Toy pair tables with realistic feature ranges, for testing rules without an anatomy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wiring.pairs import PairTable

__all__ = ["make_pair_table", "take_pairs"]


def make_pair_table(
    n_pairs: int = 40,
    *,
    n_empty: int | None = None,
    max_shared: int = 12,
    seed: int = 0,
) -> PairTable:
    """A random :class:`~wiring.pairs.PairTable` whose features look like a barrel-cortex model.

    Per shared voxel: 1-30 presynaptic boutons, 1-40 postsynaptic target sites, and
    ``postAll`` = post + 20-3000 target sites of other neurons (so ``postAll >= post``); depths
    in [0, 2000] µm. Pair features: ``n_shared`` and ``soma_distance_um`` in [0, 1500] µm.
    Every pair has distinct (pre, post) ids and distinct voxels.

    Parameters
    ----------
    n_pairs
        Number of pairs P.
    n_empty
        How many of them share no voxel (default: a fifth, at least one).
    max_shared
        Largest number of shared voxels of a pair.
    seed
        Seed of the generator (the table is a pure function of the arguments).

    Examples
    --------
    >>> t = make_pair_table(10, n_empty=3, seed=0)
    >>> t.n_pairs, int((t.pair_features["n_shared"] == 0).sum())
    (10, 3)
    """
    rng = np.random.default_rng(seed)
    if n_empty is None:
        n_empty = max(1, n_pairs // 5) if n_pairs else 0
    n_empty = min(n_empty, n_pairs)
    counts = rng.integers(1, max_shared + 1, size=n_pairs)
    counts[rng.permutation(n_pairs)[:n_empty]] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    r = int(indptr[-1])
    voxel = np.concatenate(
        [rng.choice(100_000, size=c, replace=False) for c in counts] or [np.zeros(0, int)]
    ).astype(np.int32)
    pre_cnt = rng.integers(1, 31, size=r).astype(np.float64)
    post_cnt = rng.integers(1, 41, size=r).astype(np.float64)
    post_all = post_cnt + rng.integers(20, 3001, size=r)
    flat = rng.choice(10_000 * 10_000, size=n_pairs, replace=False)
    return PairTable(
        pre=(flat // 10_000).astype(np.int64),
        post=(flat % 10_000).astype(np.int64),
        indptr=indptr,
        voxel=voxel,
        rows={
            "log_pre": np.log(pre_cnt).astype(np.float32),
            "log_post": np.log(post_cnt).astype(np.float32),
            "log_post_all": np.log(post_all).astype(np.float32),
            "depth_um": rng.uniform(0.0, 2000.0, size=r).astype(np.float32),
        },
        pair_features={
            "n_shared": counts.astype(np.float64),
            "soma_distance_um": rng.uniform(0.0, 1500.0, size=n_pairs),
        },
    )


def take_pairs(table: PairTable, idx: npt.ArrayLike) -> PairTable:
    """The sub-table of pairs ``idx`` (in that order), with their rows and pair features.

    Examples
    --------
    >>> t = make_pair_table(6, seed=1)
    >>> sub = take_pairs(t, [4, 0])
    >>> sub.pre.tolist() == [t.pre[4], t.pre[0]], sub.n_rows == t.indptr[5] - t.indptr[4] + t.indptr[1]
    (True, np.True_)
    """
    idx = np.asarray(idx, dtype=np.int64)
    counts = np.diff(table.indptr)[idx]
    starts = table.indptr[:-1][idx]
    # row indices of the selected pairs, in order, without a Python loop
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.repeat(starts, counts) + offsets
    return PairTable(
        pre=table.pre[idx],
        post=table.post[idx],
        indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        voxel=table.voxel[rows],
        rows={k: v[rows] for k, v in table.rows.items()},
        pair_features={k: v[idx] for k, v in table.pair_features.items()},
    )
