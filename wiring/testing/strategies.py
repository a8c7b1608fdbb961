"""Hypothesis strategies for wiring-rule inputs: feature rows, pair tables and parameter vectors.

Requires ``hypothesis`` (in the ``test`` extra).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from wiring._typing import FloatArray
from wiring.pairs import PairTable
from wiring.rules.base import WiringRule

__all__ = ["pair_tables", "thetas"]


@st.composite
def pair_tables(draw: st.DrawFn, *, max_pairs: int = 12, max_shared: int = 8) -> PairTable:
    """Pair tables with 0..``max_pairs`` pairs (some without shared voxels) and counts like a
    barrel-cortex model: 1-100 boutons, 1-100 target sites, postAll = post + 0-5000."""
    counts = draw(st.lists(st.integers(0, max_shared), min_size=0, max_size=max_pairs))
    n = len(counts)
    r = int(sum(counts))
    ints = st.integers(1, 100)
    pre = np.array(draw(st.lists(ints, min_size=r, max_size=r)), dtype=np.float64)
    post = np.array(draw(st.lists(ints, min_size=r, max_size=r)), dtype=np.float64)
    extra = np.array(draw(st.lists(st.integers(0, 5000), min_size=r, max_size=r)), dtype=np.float64)
    depth = np.array(
        draw(st.lists(st.floats(0.0, 2500.0), min_size=r, max_size=r)), dtype=np.float32
    )
    dist = np.array(draw(st.lists(st.floats(0.0, 2000.0), min_size=n, max_size=n)))
    indptr = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
    return PairTable(
        pre=np.arange(n, dtype=np.int64),
        post=np.arange(n, dtype=np.int64) + n,
        indptr=indptr,
        voxel=np.arange(r, dtype=np.int32),
        rows={
            "log_pre": np.log(pre).astype(np.float32),
            "log_post": np.log(post).astype(np.float32),
            "log_post_all": np.log(post + extra).astype(np.float32),
            "depth_um": depth,
        },
        pair_features={"n_shared": np.asarray(counts, dtype=np.float64), "soma_distance_um": dist},
    )


@st.composite
def thetas(draw: st.DrawFn, rule: WiringRule, *, max_batch: int = 4) -> FloatArray:
    """(B, d) parameter vectors inside the rule's plausible range (bounds included)."""
    b = draw(st.integers(1, max_batch))
    cols = [
        draw(
            st.lists(
                st.floats(p.low, p.high, allow_nan=False, allow_infinity=False),
                min_size=b,
                max_size=b,
            )
        )
        for p in rule.params
    ]
    return np.asarray(cols, dtype=np.float64).T.reshape(b, len(rule.params))
