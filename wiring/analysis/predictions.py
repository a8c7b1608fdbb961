"""Predicted connection probabilities for every presynaptic × postsynaptic cell type.

For each type pair (a, b) of the model the eligible pairs are all (pre of type a, post of type
b) with pre != post, in every region; at most ``max_pairs`` of them are drawn (seeded, without
replacement) per type pair. Their shared-voxel rows (the same features as :mod:`wiring.simulation.features`:
log pre, log post, log postAll and depth per shared voxel) are gathered from neuron-major copies
of the pre/post counts, so the cost grows with the sampled pairs, not with the size of the type
populations; one presynaptic type is held in memory at a time. For every posterior
sample θ the expected connection probability of the type pair is the mean over its pairs of
``1 - exp(-lambda_ij(θ))``, computed by :meth:`wiring.simulation.simulator.Simulator.expected` (compiled
for log-linear rules; :func:`connection_probability` is the plain-numpy equivalent), i.e. what
the connectome engine gives for that θ. The subsample's standard error is at most ``0.5 / sqrt(max_pairs)`` (0.011
for the default 2,000 pairs), well below the posterior spread of typical predictions; it is
the same for every θ (common random pairs), so it shifts, rather than widens, the credible
interval. Posterior samples outside the rule's domain are dropped (logged).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from anatomy.catalogue import CELL_TYPES
from wiring._typing import BoolArray, FloatArray, IntArray
from wiring.analysis._common import PosteriorLike, child_seeds, jsonable
from wiring.errors import InvalidParameterError, SelectionError, WiringError
from wiring.pairs import PairTable, pair_rate
from wiring.rules.base import WiringRule, check_theta, in_domain

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from anatomy.model import StructuralModel

__all__ = ["ConnectivityPrediction", "connection_probability", "predict_connectivity"]

logger = logging.getLogger(__name__)

_THETA_BATCH_ROWS = 4_000_000  # θ-batch size x rows per rate evaluation (bounds memory)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectivityPrediction:
    """Result of :func:`predict_connectivity`. Arrays are (n_pre, n_post) over ``pre_types`` ×
    ``post_types``; ``samples`` is (n_theta, n_pre, n_post); ``covered`` flags type pairs that
    some measurement's population contains (``measurements`` names them)."""

    title: ClassVar[str] = "Predicted connectivity"

    rule: str
    pre_types: tuple[str, ...]
    post_types: tuple[str, ...]
    samples: FloatArray = field(repr=False)
    mean: FloatArray
    median: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    level: float
    n_pairs_total: IntArray
    n_pairs_used: IntArray
    covered: BoolArray
    measurements: tuple[tuple[tuple[str, ...], ...], ...]
    n_theta: int
    n_dropped: int
    max_pairs: int
    figure: Figure | None = field(default=None, repr=False, compare=False)

    def table(self) -> list[dict[str, Any]]:
        """One row per type pair (JSON-native; NaN for type pairs without eligible pairs)."""
        rows = []
        for a, pre in enumerate(self.pre_types):
            for b, post in enumerate(self.post_types):
                rows.append(jsonable({
                    "pre_type": pre,
                    "post_type": post,
                    "mean": self.mean[a, b],
                    "median": self.median[a, b],
                    "ci_low": self.ci_low[a, b],
                    "ci_high": self.ci_high[a, b],
                    "n_pairs_total": self.n_pairs_total[a, b],
                    "n_pairs_used": self.n_pairs_used[a, b],
                    "measured": self.covered[a, b],
                    "measurements": ";".join(self.measurements[a][b]),
                }))
        return rows

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """The table as CSV text; also written to ``path`` when given."""
        rows = self.table()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-native summary (no figure, no per-sample values)."""
        return dict(jsonable({
            "rule": self.rule,
            "level": self.level,
            "n_theta": self.n_theta,
            "n_dropped": self.n_dropped,
            "max_pairs": self.max_pairs,
            "pre_types": list(self.pre_types),
            "post_types": list(self.post_types),
            "type_pairs": self.table(),
        }))

    def figures(self) -> dict[str, Figure]:
        """Figures by file stem."""
        return {"connectivity": self.figure} if self.figure is not None else {}


def _types_present(model: StructuralModel, counts: Any) -> tuple[str, ...]:
    """Cell types with at least one neuron that has a nonzero count in ``counts`` (N × V CSR,
    zeros eliminated)."""
    indptr = np.asarray(counts.indptr)
    has = np.diff(indptr) > 0
    codes = np.unique(np.asarray(model.neurons.cell_type)[has])
    return tuple(CELL_TYPES[int(c)] for c in sorted(codes))


def _check_types(types: Sequence[str], what: str) -> tuple[str, ...]:
    out = tuple(types)
    bad = [t for t in out if t not in CELL_TYPES]
    if bad or not out:
        raise SelectionError(
            f"unknown or no {what} cell type(s) {bad or list(out)!r}; known: {', '.join(CELL_TYPES)}"
        )
    return out


def _coverage(model: StructuralModel, measurement_set: Any, pre_types: Sequence[str],
              post_types: Sequence[str]) -> list[list[list[str]]]:
    """Ids of the measurements whose population contains type pair (a, b), per (a, b)."""
    from wiring.measurements.selectors import select

    cov: list[list[list[str]]] = [[[] for _ in post_types] for _ in pre_types]
    if measurement_set is None:
        return cov
    names = np.asarray(CELL_TYPES)[np.asarray(model.neurons.cell_type, dtype=np.int64)]
    for meas in measurement_set.measurements:
        try:
            pre_t = set(names[select(model, meas.pre)].tolist())
            post_t = set(names[select(model, meas.post)].tolist())
        except SelectionError:
            continue
        for a, pa in enumerate(pre_types):
            for b, pb in enumerate(post_types):
                if pa in pre_t and pb in post_t:
                    cov[a][b].append(str(meas.id))
    return cov


class _PairTableBuilder:
    """Pair tables of arbitrary (pre, post) pair lists from neuron-major (CSR) counts."""

    def __init__(self, model: StructuralModel) -> None:
        self.pre = model.pre.load().tocsr()
        self.post = model.post.load().tocsr()
        for mat in (self.pre, self.post):
            mat.eliminate_zeros()
            mat.sort_indices()
        with np.errstate(divide="ignore"):
            self.log_post_all = np.log(np.asarray(model.post_all, np.float64)).astype(np.float32)
        self.depth = np.asarray(model.depth_um(), dtype=np.float32)
        self.soma = np.asarray(model.neurons.soma_um, dtype=np.float64)

    def table(self, i: IntArray, j: IntArray) -> PairTable:
        """Pairs (i[p], j[p]) with one row per voxel where i has boutons and j target sites
        (voxels in increasing order), found by merging the two neurons' sorted voxel lists."""
        i = np.ascontiguousarray(i, dtype=np.int64)
        j = np.ascontiguousarray(j, dtype=np.int64)
        indptr, voxel, pre_c, post_c = _shared_voxel_rows(
            self.pre.indptr, self.pre.indices, self.pre.data,
            self.post.indptr, self.post.indices, self.post.data, i, j)
        rows = {
            "log_pre": np.log(pre_c).astype(np.float32),
            "log_post": np.log(post_c).astype(np.float32),
            "log_post_all": self.log_post_all[voxel],
            "depth_um": self.depth[voxel],
        }
        dist = np.linalg.norm(self.soma[i] - self.soma[j], axis=1) if len(i) else np.zeros(0)
        return PairTable(pre=i, post=j, indptr=indptr, voxel=voxel, rows=rows,
                         pair_features={"soma_distance_um": np.asarray(dist, np.float64)})


def _shared_voxel_rows(pre_ptr: Any, pre_idx: Any, pre_val: Any, post_ptr: Any, post_idx: Any,
                       post_val: Any, i: IntArray, j: IntArray
                       ) -> tuple[IntArray, Any, FloatArray, FloatArray]:
    """CSR rows of the voxels shared by pre neuron i[p] and post neuron j[p], every p: indptr
    (P+1,), voxel (R,) int32, pre and post counts (R,) float64 (compiled merge of sorted rows;
    the scipy equivalent, an element-wise product of the row selections, costs 3-4x more)."""
    kernel = _merge_kernel()
    n = len(i)
    indptr = np.zeros(n + 1, dtype=np.int64)
    kernel(pre_ptr, pre_idx, pre_val, post_ptr, post_idx, post_val, i, j, indptr,
           np.empty(0, np.int32), np.empty(0), np.empty(0), True)
    np.cumsum(indptr, out=indptr)
    total = int(indptr[-1])
    voxel = np.empty(total, dtype=np.int32)
    pre_c, post_c = np.empty(total), np.empty(total)
    kernel(pre_ptr, pre_idx, pre_val, post_ptr, post_idx, post_val, i, j, indptr, voxel,
           pre_c, post_c, False)
    return indptr, voxel, pre_c, post_c


_MERGE: list[Any] = []


def _merge_kernel() -> Any:
    """The compiled merge (count pass: row counts into ``indptr[1:]``; fill pass: the rows)."""
    if _MERGE:
        return _MERGE[0]
    import numba

    @numba.njit(cache=False, nogil=True)
    def merge(pre_ptr: Any, pre_idx: Any, pre_val: Any, post_ptr: Any, post_idx: Any,
              post_val: Any, i: Any, j: Any, indptr: Any, voxel: Any, pre_c: Any, post_c: Any,
              count: bool) -> None:  # pragma: no cover - compiled
        for p in range(len(i)):
            a, a_end = pre_ptr[i[p]], pre_ptr[i[p] + 1]
            b, b_end = post_ptr[j[p]], post_ptr[j[p] + 1]
            k = 0 if count else indptr[p]
            while a < a_end and b < b_end:
                va, vb = pre_idx[a], post_idx[b]
                if va < vb:
                    a += 1
                elif vb < va:
                    b += 1
                else:
                    if not count:
                        voxel[k] = va
                        pre_c[k] = pre_val[a]
                        post_c[k] = post_val[b]
                    k += 1
                    a += 1
                    b += 1
            if count:
                indptr[p + 1] = k

    _MERGE.append(merge)
    return merge


@dataclass(frozen=True)
class _TypePairs:
    """The measurement-set stand-in :class:`wiring.simulation.simulator.Simulator` needs: names only."""

    names: tuple[str, ...]
    measurements: tuple[Any, ...] = ()


def _expected(rule: WiringRule, tables: Sequence[PairTable], theta: FloatArray,
              workers: int = 1) -> FloatArray:
    """Mean of ``1 - exp(-lambda)`` over each table's pairs, (B, len(tables)), through the
    simulator's exact-mean path (its compiled kernel for log-linear rules).

    With ``workers > 1`` the θ rows are split into that many slices evaluated in threads (the
    compiled kernel releases the GIL); the numbers are the same for any ``workers``, since
    every θ row is computed on its own.
    """
    from concurrent.futures import ThreadPoolExecutor

    from wiring.simulation.simulator import Simulator

    sim = Simulator(list(tables), rule, _TypePairs(tuple(f"t{k}" for k in range(len(tables)))),
                    n_pairs=1)
    if workers <= 1 or len(theta) < 2 * workers:
        return np.asarray(sim.expected(theta), dtype=np.float64)
    sim.expected(theta[:1])  # compile once, before the threads start
    parts = np.array_split(theta, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(sim.expected, parts))
    return np.asarray(np.concatenate(done), dtype=np.float64)


def default_workers() -> int:
    """Threads for the predictions: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        return max(1, os.cpu_count() or 1)


def connection_probability(rule: WiringRule, table: Any, theta: npt.ArrayLike) -> FloatArray:
    """Mean over the pairs of ``table`` of ``1 - exp(-lambda)`` for every θ row: (B,).

    The plain-numpy reference of what :func:`predict_connectivity` computes (through the
    simulator's exact mean). θ rows are processed in batches so memory stays bounded; a table
    without pairs gives NaN; for pair-level rules, pairs sharing no voxel never connect.
    """
    th = check_theta(rule, theta)
    if table.n_pairs == 0:
        return np.full(len(th), np.nan)
    step = max(1, _THETA_BATCH_ROWS // max(table.n_rows, table.n_pairs, 1))
    out = np.empty(len(th))
    shared = table.pair_features["n_shared"] > 0
    for s in range(0, len(th), step):
        lam = pair_rate(rule, table, th[s : s + step])
        if rule.level == "pair":  # no shared voxel, no synapse, whatever the rule says
            lam = np.where(shared, lam, 0.0)
        out[s : s + step] = (-np.expm1(-lam)).mean(axis=1)
    return out


def predict_connectivity(
    posterior: PosteriorLike | None,
    model: StructuralModel,
    rule: WiringRule | str,
    x_o: npt.ArrayLike | None,
    *,
    n_samples: int = 200,
    pre_types: Sequence[str] | None = None,
    post_types: Sequence[str] | None = None,
    seed: int = 0,
    max_pairs: int = 2000,
    measurement_set: Any = None,
    theta: npt.ArrayLike | None = None,
    level: float = 0.95,
    plot: bool = True,
    workers: int | None = None,
) -> ConnectivityPrediction:
    """Connection probability with credible intervals for every pre type × post type.

    Parameters
    ----------
    posterior
        Posterior with ``sample(n, x_o, seed=)``; may be None when ``theta`` is given.
    model
        The structural model.
    rule
        The wiring rule (instance or registered name).
    x_o
        Observation to condition the posterior on, shape (m,).
    n_samples
        Posterior samples (each gives one value per type pair).
    pre_types, post_types
        Cell types (catalogue names); default every type with presynaptic (resp.
        postsynaptic) sites in the model.
    seed
        Seed of the posterior samples and of the pair subsample.
    max_pairs
        Largest number of pairs evaluated per type pair (see the module docstring).
    measurement_set
        When given, type pairs contained in a measurement's population are flagged.
    theta
        Use these parameter samples (k, d) instead of sampling the posterior.
    level
        Credibility level of the intervals.
    plot
        Whether to draw the heatmap.
    workers
        Threads evaluating the θ samples (default: the CPUs available, see
        :func:`default_workers`); the result does not depend on it.

    Returns
    -------
    ConnectivityPrediction

    Raises
    ------
    SelectionError
        Unknown cell types.
    InvalidParameterError
        Bad counts or no posterior samples inside the rule's domain.
    """
    from wiring.rules.registry import get_rule

    rule_obj: WiringRule = get_rule(rule) if isinstance(rule, str) else rule
    if max_pairs < 1 or n_samples < 1:
        raise InvalidParameterError(
            f"max_pairs={max_pairs!r} and n_samples={n_samples!r} must be positive"
        )
    s_post, s_pairs = child_seeds(seed, 2)
    if theta is None:
        if posterior is None or x_o is None:
            raise InvalidParameterError("pass a posterior and x_o, or theta samples")
        th = np.asarray(posterior.sample(n_samples, x_o, seed=s_post), dtype=np.float64)
    else:
        th = np.asarray(theta, dtype=np.float64)
    th = check_theta(rule_obj, th)
    ok = in_domain(rule_obj, th)
    n_dropped = int((~ok).sum())
    if n_dropped:
        logger.info("predictions: dropped %d of %d posterior samples outside the domain of %r",
                    n_dropped, len(th), rule_obj.name)
    th = th[ok]
    if len(th) == 0:
        raise InvalidParameterError(
            f"no posterior sample lies inside the domain of rule {rule_obj.name!r}"
        )
    builder = _PairTableBuilder(model)  # neuron-major copies, made once for everything below
    pre_t = _check_types(pre_types, "presynaptic") if pre_types is not None else (
        _types_present(model, builder.pre))
    post_t = _check_types(post_types, "postsynaptic") if post_types is not None else (
        _types_present(model, builder.post))
    n_workers = default_workers() if workers is None else max(1, int(workers))
    codes = np.asarray(model.neurons.cell_type, dtype=np.int64)
    rng = np.random.default_rng(s_pairs)
    pops: list[tuple[IntArray, IntArray]] = []
    totals = np.zeros((len(pre_t), len(post_t)), np.int64)
    used = np.zeros_like(totals)
    for a, pa in enumerate(pre_t):
        pre_idx = np.flatnonzero(codes == CELL_TYPES.index(pa))
        for b, pb in enumerate(post_t):
            post_idx = np.flatnonzero(codes == CELL_TYPES.index(pb))
            total = len(pre_idx) * len(post_idx)
            flat = (rng.choice(total, size=max_pairs, replace=False) if total > max_pairs
                    else np.arange(total))
            flat = np.sort(flat)
            i, j = pre_idx[flat // max(len(post_idx), 1)], post_idx[flat % max(len(post_idx), 1)]
            distinct = i != j
            i, j = i[distinct], j[distinct]
            totals[a, b] = total - (len(np.intersect1d(pre_idx, post_idx)) if pa == pb else 0)
            used[a, b] = len(i)
            pops.append((i, j))
    samples = np.full((len(th), len(pre_t), len(post_t)), np.nan)
    for a in range(len(pre_t)):  # one presynaptic type at a time bounds the memory
        cols = [b for b in range(len(post_t)) if len(pops[a * len(post_t) + b][0])]
        if cols:
            tables = [builder.table(*pops[a * len(post_t) + b]) for b in cols]
            samples[:, a, cols] = _expected(rule_obj, tables, th, n_workers)
    tail = (1.0 - level) / 2
    if not np.isfinite(samples).any():
        raise WiringError("no type pair has eligible pairs; check pre_types/post_types")
    # type pairs without eligible pairs (e.g. a type with one neuron onto itself) are all-NaN
    lo, med, hi = np.quantile(samples, [tail, 0.5, 1 - tail], axis=0)
    cov = _coverage(model, measurement_set, pre_t, post_t)
    covered = np.array([[bool(c) for c in row] for row in cov], dtype=np.bool_)
    fig = None
    if plot:
        from wiring.analysis._plots import plot_connectivity_heatmap

        fig = plot_connectivity_heatmap(pre_t, post_t, med, lo, hi, covered)
    return ConnectivityPrediction(
        rule=rule_obj.name,
        pre_types=pre_t,
        post_types=post_t,
        samples=samples,
        mean=samples.mean(axis=0),
        median=med,
        ci_low=lo,
        ci_high=hi,
        level=level,
        n_pairs_total=totals,
        n_pairs_used=used,
        covered=covered,
        measurements=tuple(tuple(tuple(c) for c in row) for row in cov),
        n_theta=len(th),
        n_dropped=n_dropped,
        max_pairs=max_pairs,
        figure=fig,
    )
