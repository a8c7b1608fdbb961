"""How the pairs of one simulation are chosen: the sampling plan of a
:class:`~wiring.simulation.simulator.Simulator`.

Measurements are sampled in pooling order (a pooled measurement after its parts, see
:func:`wiring.measurements.pooling_order`); a pooled measurement's first columns are the pairs
its parts sampled, mapped into its own population, and are evaluated once (their *root*
column). The compiled sampler (:mod:`wiring.simulation._kernels`) reads the arrays built here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wiring._typing import IntArray
from wiring.errors import MeasurementError

__all__ = ["SamplingPlan"]


class SamplingPlan:
    """How the columns of one simulation are sampled: measurement order (pooled ones after
    their parts), column offsets, the parts of each pooled measurement with the map from a
    part's pairs to the pooled population's, and the copy root of every column."""

    def __init__(self, *, order: IntArray, col_lo: IntArray, edge_ptr: IntArray,
                 edge_part: IntArray, edge_map_lo: IntArray, pool_map: IntArray,
                 root: IntArray, parts: dict[int, list[int]]) -> None:
        self.order, self.col_lo, self.edge_ptr = order, col_lo, edge_ptr
        self.edge_part, self.edge_map_lo, self.pool_map = edge_part, edge_map_lo, pool_map
        self.root, self.parts = root, parts

    @property
    def n_columns(self) -> int:
        """Pairs tested per simulation, all measurements together."""
        return int(self.col_lo[-1])

    @classmethod
    def build(cls, sim: Any) -> SamplingPlan:
        from wiring.measurements import pooling_order

        names, n_s, p_n = sim.names, sim.n_sample, sim._pair_n
        ms = list(getattr(sim.mset, "measurements", ()))
        includes = [tuple(getattr(m, "includes", ())) if sim.pooling else () for m in ms]
        if len(includes) != len(names):
            includes = [()] * len(names)
        pos = {nm: k for k, nm in enumerate(names)}
        if any(includes):
            order = pooling_order(ms, set_name=str(getattr(sim.mset, "name", "")))
        else:
            order = list(range(len(names)))
        if not sim.replace:
            over = [(nm, int(n), int(p)) for nm, n, p in zip(names, n_s, p_n, strict=True)
                    if n > p]
            if over:
                nm, n, p = over[0]
                raise MeasurementError(
                    f"measurement {nm!r}: {n} pairs tested, but its population has only {p} "
                    f"eligible pair(s) in this model, and pairs are sampled without "
                    f"replacement; sample with replacement (replace=True, --replace) or fewer "
                    f"pairs (n_pairs)"
                )
        col_lo = np.concatenate([[0], np.cumsum(n_s)]).astype(np.int64)
        root = np.full(int(col_lo[-1]), -1, dtype=np.int64)
        k_id = int(max(sim._pre.max(initial=0), sim._post.max(initial=0))) + 1
        keys = sim._pre * k_id + sim._post
        edge_ptr = np.zeros(len(names) + 1, dtype=np.int64)
        edge_part: list[int] = []
        edge_map_lo: list[int] = []
        maps: list[IntArray] = []
        n_map = 0
        parts: dict[int, list[int]] = {}
        for m in range(len(names)):
            if includes[m]:
                qs = [pos[q] for q in includes[m]]
                parts[m] = qs
                lo, hi = int(sim._pair_lo[m]), int(sim._pair_lo[m] + p_n[m])
                km = keys[lo:hi]
                srt = np.argsort(km, kind="stable")
                t = int(sum(int(n_s[q]) for q in qs))
                if t > n_s[m]:
                    raise MeasurementError(
                        f"measurement {names[m]!r}: its parts ({', '.join(includes[m])}) test "
                        f"{t} pairs, more than its own {int(n_s[m])}"
                    )
                seen = np.zeros(hi - lo, dtype=np.bool_)
                c = int(col_lo[m])
                for q in qs:
                    kq = keys[sim._pair_lo[q]:sim._pair_lo[q] + p_n[q]]
                    at = np.searchsorted(km, kq, sorter=srt)
                    at_c = np.minimum(at, len(km) - 1)
                    found = (at < len(km)) & (km[srt[at_c]] == kq)
                    if not found.all():
                        raise MeasurementError(
                            f"measurement {names[m]!r} includes {names[q]!r}, but "
                            f"{int((~found).sum())} of the {int(p_n[q])} eligible pairs of "
                            f"{names[q]!r} are not eligible pairs of {names[m]!r}; a pooled "
                            f"measurement's population must contain its parts'"
                        )
                    local = srt[at_c].astype(np.int64)
                    if not sim.replace and seen[local].any():
                        other = [names[r] for r in qs if r != q]
                        raise MeasurementError(
                            f"measurement {names[m]!r}: its parts overlap ({names[q]!r} shares "
                            f"eligible pairs with {', '.join(map(repr, other))}); the parts of "
                            f"a pooled measurement must have disjoint populations"
                        )
                    seen[local] = True
                    edge_part.append(q)
                    edge_map_lo.append(n_map)
                    maps.append(local)
                    n_map += len(local)
                    for s_ in range(int(n_s[q])):
                        src = int(col_lo[q]) + s_
                        root[c] = src if root[src] < 0 else root[src]
                        c += 1
            edge_ptr[m + 1] = len(edge_part)
        # roots must point at columns that are themselves evaluated: resolve in pooling order
        for m in order:
            for c in range(int(col_lo[m]), int(col_lo[m + 1])):
                r = root[c]
                if r >= 0 and root[r] >= 0:
                    root[c] = root[r]
        return cls(
            order=np.asarray(order, dtype=np.int64), col_lo=col_lo, edge_ptr=edge_ptr,
            edge_part=np.asarray(edge_part, dtype=np.int64),
            edge_map_lo=np.asarray(edge_map_lo, dtype=np.int64),
            pool_map=np.concatenate(maps) if maps else np.zeros(1, dtype=np.int64),
            root=root, parts=parts,
        )
