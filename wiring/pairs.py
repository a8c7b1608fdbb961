"""Ragged (CSR-by-pair) tables of neuron pairs and the voxels they share.

A :class:`PairTable` is the common currency of both compute paths: the connectome engine builds
one per block of postsynaptic neurons, the simulator one per measured population. Row ``r`` of
pair ``p`` (``indptr[p] <= r < indptr[p + 1]``) is a voxel both neurons occupy; pairs that share
no voxel have no rows and never connect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from wiring._typing import FloatArray, IntArray
from wiring.errors import ShapeMismatchError, StoreMismatchError
from wiring.rules.base import WiringRule, call_rate, check_theta, theta_columns

__all__ = ["PairTable", "pair_rate", "rule_features", "segment_sum"]


@dataclass(frozen=True, kw_only=True)
class PairTable:
    """Pairs (``pre[p]``, ``post[p]``: model neuron indices) and their shared-voxel rows.

    ``rows`` maps voxel feature names (see :data:`wiring.rules.base.VOXEL_FEATURES`) to arrays
    of shape (R,); ``pair_features`` maps pair feature names to arrays of shape (P,)
    (``n_shared`` is always present); ``voxel`` (R,) holds the voxel id of each row.
    """

    pre: IntArray
    post: IntArray
    indptr: IntArray
    voxel: npt.NDArray[np.int32]
    rows: Mapping[str, npt.NDArray[np.floating[Any]]]
    pair_features: Mapping[str, FloatArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = len(self.pre)
        if self.post.shape != (p,) or self.indptr.shape != (p + 1,):
            raise ShapeMismatchError(
                f"pair table: pre {self.pre.shape}, post {self.post.shape} and indptr "
                f"{self.indptr.shape} must have shapes (P,), (P,), (P + 1,)"
            )
        r = int(self.indptr[-1]) if p else 0
        for name, arr in {"voxel": self.voxel, **self.rows}.items():
            if arr.shape != (r,):
                raise ShapeMismatchError(
                    f"pair table row feature {name!r} has shape {arr.shape}, expected ({r},)"
                )
        if "n_shared" not in self.pair_features:
            object.__setattr__(
                self,
                "pair_features",
                {**self.pair_features, "n_shared": np.diff(self.indptr).astype(np.float64)},
            )
        for name, arr in self.pair_features.items():
            if arr.shape != (p,):
                raise ShapeMismatchError(
                    f"pair table pair feature {name!r} has shape {arr.shape}, expected ({p},)"
                )

    @property
    def n_pairs(self) -> int:
        """Number of pairs P."""
        return len(self.pre)

    @property
    def n_rows(self) -> int:
        """Number of shared-voxel rows R."""
        return int(self.indptr[-1]) if self.n_pairs else 0


def segment_sum(values: FloatArray, indptr: IntArray) -> FloatArray:
    """Sum ``values[..., indptr[p]:indptr[p+1]]`` for every segment p (empty segments give 0).

    Examples
    --------
    >>> segment_sum(np.array([1.0, 2.0, 3.0]), np.array([0, 2, 2, 3])).tolist()
    [3.0, 0.0, 3.0]
    """
    n = len(indptr) - 1
    out = np.zeros((*values.shape[:-1], n), dtype=np.float64)
    nonempty = indptr[1:] > indptr[:-1]
    if nonempty.any():
        # reduceat over the starts of non-empty segments: segments are contiguous, so each
        # sum runs exactly to the next non-empty start (or the end)
        out[..., nonempty] = np.add.reduceat(values, indptr[:-1][nonempty], axis=-1)
    return out


def rule_features(rule: WiringRule, table: PairTable) -> dict[str, FloatArray]:
    """The float64 feature arrays ``rule.rate`` receives for ``table``.

    Pair-level rules get the pair features, shape (P,). Voxel-level rules get the row features,
    shape (R,), plus every pair feature named in ``rule.features`` repeated onto the pair's rows
    (so a voxel rule can be modulated by, e.g., ``soma_distance_um``).

    Raises
    ------
    StoreMismatchError
        ``table`` lacks a feature the rule needs.
    """
    have = set(table.pair_features) | (set(table.rows) if rule.level == "voxel" else set())
    missing = [f for f in rule.features if f not in have]
    if missing:
        raise StoreMismatchError(
            f"rule {rule.name!r} needs feature(s) {missing} but the pair table has only "
            f"{sorted(have)}; build the table with these features (e.g. extract_features(..., "
            f"rule_features=...))"
        )
    if rule.level == "pair":
        return {k: np.asarray(v, dtype=np.float64) for k, v in table.pair_features.items()}
    feats = {k: np.asarray(v, dtype=np.float64) for k, v in table.rows.items()}
    counts = np.diff(table.indptr)
    for f in rule.features:
        if f not in feats:
            feats[f] = np.repeat(np.asarray(table.pair_features[f], dtype=np.float64), counts)
    return feats


def pair_rate(rule: WiringRule, table: PairTable, theta: npt.ArrayLike) -> FloatArray:
    """Expected synapse count ``lambda`` (B, P) of every pair for every parameter vector.

    ``1 - exp(-lambda)`` is the connection probability. Domain checks are the caller's job.
    """
    th = check_theta(rule, theta)
    feats = rule_features(rule, table)
    if rule.level == "pair":
        return call_rate(rule, feats, theta_columns(th))
    per_row = call_rate(rule, feats, theta_columns(th))
    per_row = np.broadcast_to(per_row, (th.shape[0], table.n_rows))
    return segment_sum(per_row, table.indptr)
