"""Population pair features: every eligible (pre, post) pair of a measurement and its shared voxels.

For each measurement of a :class:`~wiring.measurements.MeasurementSet` the simulator needs every
eligible pair of the measured population (:func:`wiring.measurements.population`) and, per
pair, the features of the voxels both neurons occupy: ``log_pre``, ``log_post``,
``log_post_all`` and ``depth_um`` per shared-voxel row (float32), and ``n_shared`` and
``soma_distance_um`` per pair. Pairs that share no voxel stay in the table with zero rows; no
rule can connect them.

Extraction runs once per (anatomy, measurement set, slice configuration) with dask, one task per
block of voxels: each task reads the voxel block of ``pre`` and ``post`` once and, for every
measurement, forms the outer product of the population's pre and post neurons present in each
voxel. The rows are then sorted by pair (voxel order within a pair) into one CSR table.

Storage and memory
------------------
All measurements live in one concatenated CSR (:class:`FeatureBundle`); the per-measurement
:class:`~wiring.pairs.PairTable` objects are zero-copy slices of it. With ``cache_dir`` the
bundle is written atomically to a zarr v3 group named after the cache key (a hash of the anatomy
content hash, the measurement-set content hash, the slice configuration and the format version)
and reused whenever the key matches. Each array is one uncompressed chunk, so a cached bundle is
*memory-mapped* when opened: tables larger than RAM are paged in on demand by the operating
system (simulation then runs at disk speed instead of memory speed) and several worker processes
on one machine share a single copy in the page cache. Extraction itself holds the rows of the
table in memory (about 2.5 times the table size at its peak, during the sort by pair). Every array
carries a CRC-32 checksum in the group attributes; a cache entry that is incomplete, inconsistent
or fails its checksums is logged, removed and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from anatomy.hashing import anatomy_hash
from anatomy.model import StructuralModel
from wiring._json import json_native
from wiring._typing import FloatArray, IntArray
from wiring.errors import ShapeMismatchError, WiringError
from wiring.pairs import PairTable
from wiring.rules.base import VOXEL_FEATURES

__all__ = [
    "FEATURES_SCHEMA_VERSION",
    "FeatureBundle",
    "PopulationFeatures",
    "PopulationPairs",
    "anatomy_hash",
    "estimate_table",
    "feature_cache_key",
    "measurement_set_hash",
    "population_pairs",
]

logger = logging.getLogger(__name__)

#: Version of the cached layout; part of the cache key, so a new layout never reads an old entry.
FEATURES_SCHEMA_VERSION = 1
#: The pair table of one measured population (all eligible pairs, CSR by pair).
PopulationFeatures = PairTable

_FORMAT = "wiring-pair-features"
_PAIR_ARRAYS = ("pre", "post", "soma_distance_um")
_ROW_ARRAYS = ("voxel", *VOXEL_FEATURES)
_DEFAULT_BLOCK_ROWS = 4_000_000  # target outer-product rows per dask task (~0.2-1 s of work)

Float32Array = npt.NDArray[np.float32]


# --------------------------------------------------------------------------------------------
# the concatenated table
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class FeatureBundle:
    """The pair tables of all measurements of a set, concatenated into one CSR by pair.

    Pairs of measurement ``i`` are ``pair_offsets[i]:pair_offsets[i + 1]``; the rows of global
    pair ``p`` are ``indptr[p]:indptr[p + 1]`` (voxel order). Arrays may be memory-mapped
    (cached bundles) and must be treated as read-only.

    Attributes
    ----------
    names
        Measurement ids, in set order.
    pair_offsets
        (m + 1,) int64 pair offsets per measurement.
    pre, post
        (P,) int64 model neuron indices of every pair.
    indptr
        (P + 1,) int64 row pointers (global).
    voxel
        (R,) int32 voxel id of every row.
    rows
        ``log_pre``, ``log_post``, ``log_post_all``, ``depth_um``: (R,) float32 each.
    soma_distance_um
        (P,) float64 intersomatic distance.
    key
        Cache key (hex) the bundle was built for, or None.
    path
        The cache entry it was read from, or None.
    """

    names: tuple[str, ...]
    pair_offsets: IntArray
    pre: IntArray
    post: IntArray
    indptr: IntArray
    voxel: npt.NDArray[np.int32]
    rows: Mapping[str, Float32Array]
    soma_distance_um: FloatArray
    key: str | None = None
    path: Path | None = None
    _tables: list[PairTable] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        m = len(self.names)
        if self.pair_offsets.shape != (m + 1,):
            raise ShapeMismatchError(
                f"feature bundle: pair_offsets has shape {self.pair_offsets.shape}, expected "
                f"({m + 1},) for {m} measurements"
            )
        p = int(self.pair_offsets[-1])
        for name in ("pre", "post", "soma_distance_um"):
            if getattr(self, name).shape != (p,):
                raise ShapeMismatchError(
                    f"feature bundle: {name} has shape {getattr(self, name).shape}, "
                    f"expected ({p},)"
                )
        if self.indptr.shape != (p + 1,):
            raise ShapeMismatchError(
                f"feature bundle: indptr has shape {self.indptr.shape}, expected ({p + 1},)"
            )
        r = int(self.indptr[-1])
        for name, arr in {"voxel": self.voxel, **self.rows}.items():
            if arr.shape != (r,):
                raise ShapeMismatchError(
                    f"feature bundle: row array {name!r} has shape {arr.shape}, expected ({r},)"
                )

    def __getstate__(self) -> dict[str, Any]:
        # the per-measurement views are rebuilt on demand; pickling them would copy the rows
        state = dict(self.__dict__)
        state["_tables"] = []
        return state

    @property
    def n_measurements(self) -> int:
        """Number of measurements m."""
        return len(self.names)

    @property
    def n_pairs(self) -> IntArray:
        """Eligible pairs per measurement, shape (m,)."""
        return np.diff(self.pair_offsets)

    @property
    def n_rows(self) -> int:
        """Total shared-voxel rows R over all measurements."""
        return int(self.indptr[-1])

    @property
    def nbytes(self) -> int:
        """Size of all arrays in bytes."""
        arrays: list[npt.NDArray[Any]] = [self.pair_offsets, self.pre, self.post, self.indptr, self.voxel,
                  self.soma_distance_um, *self.rows.values()]
        return int(sum(a.nbytes for a in arrays))

    @property
    def n_shared(self) -> FloatArray:
        """Shared voxels per pair, (P,) float64."""
        return np.diff(self.indptr).astype(np.float64)

    def table(self, i: int) -> PairTable:
        """The :class:`~wiring.pairs.PairTable` of measurement ``i`` (row arrays are views)."""
        return self.tables()[i]

    def tables(self) -> list[PairTable]:
        """One :class:`~wiring.pairs.PairTable` per measurement, in set order."""
        if not self._tables:
            n_shared = self.n_shared
            for i in range(self.n_measurements):
                a, b = int(self.pair_offsets[i]), int(self.pair_offsets[i + 1])
                lo, hi = int(self.indptr[a]), int(self.indptr[b])
                self._tables.append(
                    PairTable(
                        pre=self.pre[a:b],
                        post=self.post[a:b],
                        indptr=np.asarray(self.indptr[a : b + 1] - lo, dtype=np.int64),
                        voxel=self.voxel[lo:hi],
                        rows={k: v[lo:hi] for k, v in self.rows.items()},
                        pair_features={
                            "n_shared": n_shared[a:b],
                            "soma_distance_um": self.soma_distance_um[a:b],
                        },
                    )
                )
        return list(self._tables)

    @classmethod
    def from_tables(cls, names: Sequence[str], tables: Sequence[PairTable]) -> FeatureBundle:
        """Concatenate per-measurement tables (copies). Missing row features must not be used.

        Raises
        ------
        ShapeMismatchError
            If ``names`` and ``tables`` differ in length.
        """
        if len(names) != len(tables):
            raise ShapeMismatchError(
                f"{len(names)} measurement names but {len(tables)} pair tables; give one name "
                f"per table"
            )
        offsets = np.zeros(len(tables) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([t.n_pairs for t in tables])
        row_base = np.cumsum([0] + [t.n_rows for t in tables])
        indptr = np.concatenate(
            [np.zeros(1, np.int64)]
            + [np.asarray(t.indptr[1:], np.int64) + row_base[i] for i, t in enumerate(tables)]
        )
        row_names = sorted(set().union(*(t.rows.keys() for t in tables))) if tables else []
        rows: dict[str, Float32Array] = {}
        for name in row_names:
            parts = []
            for t in tables:
                arr = t.rows.get(name)
                if arr is None:
                    arr = np.full(t.n_rows, np.nan, dtype=np.float32)
                parts.append(np.asarray(arr, dtype=np.float32))
            rows[name] = np.concatenate(parts) if parts else np.zeros(0, np.float32)

        def _cat(get: Callable[[PairTable], Any], dtype: Any) -> Any:
            if not tables:
                return np.zeros(0, dtype)
            return np.concatenate([np.asarray(get(t), dtype=dtype) for t in tables])

        dist = _cat(
            lambda t: t.pair_features.get("soma_distance_um", np.full(t.n_pairs, np.nan)),
            np.float64,
        )
        return cls(
            names=tuple(str(n) for n in names),
            pair_offsets=offsets,
            pre=_cat(lambda t: t.pre, np.int64),
            post=_cat(lambda t: t.post, np.int64),
            indptr=indptr,
            voxel=_cat(lambda t: t.voxel, np.int32),
            rows=rows,
            soma_distance_um=dist,
        )


# --------------------------------------------------------------------------------------------
# hashing and the cache key
# --------------------------------------------------------------------------------------------
def measurement_set_hash(mset: Any) -> str:
    """Content hash of a measurement set (its own ``content_hash``, else of its TOML form)."""
    h = getattr(mset, "content_hash", None)
    if callable(h):
        h = h()
    if isinstance(h, str) and h:
        return h
    if hasattr(mset, "to_dict"):
        text = json.dumps(mset.to_dict(), sort_keys=True, default=str)
    else:
        text = repr(mset)
    return hashlib.sha256(text.encode()).hexdigest()


def _slice_dict(slice_config: Any) -> dict[str, Any]:
    if slice_config is None:
        from wiring.measurements.populations import SliceConfig

        slice_config = SliceConfig()
    if hasattr(slice_config, "to_dict"):
        return {str(k): json_native(v) for k, v in slice_config.to_dict().items()}
    if dataclasses.is_dataclass(slice_config) and not isinstance(slice_config, type):
        return {k: json_native(v) for k, v in dataclasses.asdict(slice_config).items()}
    if isinstance(slice_config, Mapping):
        return {str(k): json_native(v) for k, v in slice_config.items()}
    raise WiringError(
        f"slice_config must be a wiring.measurements.SliceConfig (or None for the default), "
        f"got {slice_config!r}"
    )


def feature_cache_key(
    model: StructuralModel, mset: Any, *, slice_config: Any = None
) -> tuple[str, dict[str, Any]]:
    """The cache key (sha256 hex) of a feature extraction and the JSON description it hashes."""
    desc = {
        "format": _FORMAT,
        "schema_version": FEATURES_SCHEMA_VERSION,
        "anatomy": anatomy_hash(model),
        "measurement_set": measurement_set_hash(mset),
        "slice": _slice_dict(slice_config),
    }
    listed = _listed_pairs_hashes(model, mset)
    if listed:  # the pairs of source populations are not part of the anatomy hash
        desc["listed_pairs"] = listed
    key = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()
    return key, desc


def _listed_pairs_hashes(model: StructuralModel, mset: Any) -> dict[str, str]:
    """sha256 of the listed pairs of every source population a measurement takes its pairs
    from (``eligibility = "listed"``)."""
    out: dict[str, str] = {}
    for meas in getattr(mset, "measurements", ()):
        name = getattr(meas, "source_population", "")
        if getattr(meas, "eligibility", "") != "listed" or not name:
            continue
        pop = model.populations.get(name)
        if pop is None or pop.pair_pre is None or pop.pair_post is None:
            out[name] = ""
            continue
        h = hashlib.sha256()
        for arr in (pop.pair_pre, pop.pair_post):
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        out[name] = h.hexdigest()
    return out


# --------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PopulationPairs:
    """The eligible pairs of one population: ``pair_pre[p]``, ``pair_post[p]`` (model indices),
    and, for slice measurements whose arbors are cut, ``voxels``: the voxels that count (a
    shared voxel outside them is no row of the pair)."""

    name: str
    pair_pre: IntArray
    pair_post: IntArray
    voxels: npt.NDArray[np.bool_] | None = None


@dataclass(frozen=True, slots=True)
class _Spec:
    """What a block task needs to map (pre, post, voxel) entries to pair indices."""

    pre_mask: npt.NDArray[np.bool_]
    post_mask: npt.NDArray[np.bool_]
    keys: IntArray  # sorted pre * N + post of every eligible pair (pair order)
    product: bool
    rank_pre: IntArray
    rank_post: IntArray
    n_post: int
    voxels: npt.NDArray[np.bool_] | None = None


def _make_spec(pop: PopulationPairs, n_neurons: int) -> tuple[_Spec, IntArray, IntArray]:
    pre = np.asarray(pop.pair_pre, dtype=np.int64)
    post = np.asarray(pop.pair_post, dtype=np.int64)
    if pre.shape != post.shape or pre.ndim != 1:
        raise ShapeMismatchError(
            f"population {pop.name!r}: pair_pre {pre.shape} and pair_post {post.shape} must be "
            f"1-d arrays of equal length"
        )
    if pre.size and (min(pre.min(), post.min()) < 0 or max(pre.max(), post.max()) >= n_neurons):
        raise ShapeMismatchError(
            f"population {pop.name!r}: neuron index out of range 0..{n_neurons - 1}"
        )
    keys = pre * n_neurons + post
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if keys.size > 1 and np.any(keys[1:] == keys[:-1]):
        keys, first = np.unique(keys, return_index=True)
        order = order[first]
    pre, post = pre[order], post[order]
    upre, upost = np.unique(pre), np.unique(post)
    product = len(keys) == len(upre) * len(upost)
    rank_pre = np.full(n_neurons, -1, dtype=np.int64)
    rank_pre[upre] = np.arange(len(upre))
    rank_post = np.full(n_neurons, -1, dtype=np.int64)
    rank_post[upost] = np.arange(len(upost))
    pre_mask = np.zeros(n_neurons, dtype=np.bool_)
    pre_mask[upre] = True
    post_mask = np.zeros(n_neurons, dtype=np.bool_)
    post_mask[upost] = True
    spec = _Spec(pre_mask, post_mask, keys, product, rank_pre, rank_post, len(upost),
                 pop.voxels)
    return spec, pre, post


def _present(block: Any, mask: npt.NDArray[np.bool_]) -> tuple[IntArray, Any, IntArray]:
    """Entries (neuron, value) of a CSC voxel block restricted to ``mask``, with per-voxel ptr."""
    nb = block.shape[1]
    indptr = np.asarray(block.indptr, dtype=np.int64)
    indices = np.asarray(block.indices, dtype=np.int64)
    data = np.asarray(block.data)
    col = np.repeat(np.arange(nb, dtype=np.int64), np.diff(indptr))
    keep = mask[indices] & (data > 0)
    ptr = np.zeros(nb + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(np.bincount(col[keep], minlength=nb))
    return indices[keep], data[keep], ptr


def _block_rows(
    model: StructuralModel, start: int, stop: int, specs: Sequence[_Spec]
) -> list[tuple[IntArray, npt.NDArray[np.int32], Float32Array, Float32Array]]:
    """Rows (pair index, voxel, log pre, log post) of every population in voxels start:stop."""
    pre_block = model.pre.voxel_block(start, stop)
    post_block = model.post.voxel_block(start, stop)
    n = model.n_neurons
    out = []
    for spec in specs:
        pi, pd, pptr = _present(pre_block, spec.pre_mask)
        qi, qd, qptr = _present(post_block, spec.post_mask)
        cpre, cpost = np.diff(pptr), np.diff(qptr)
        n_v = cpre * cpost
        total = int(n_v.sum())
        vloc = np.repeat(np.arange(stop - start, dtype=np.int64), n_v)
        first = np.cumsum(n_v) - n_v
        o = np.arange(total, dtype=np.int64) - np.repeat(first, n_v)
        cp = np.repeat(cpost, n_v)
        ipre = np.repeat(pptr[:-1], n_v) + o // np.maximum(cp, 1)
        ipost = np.repeat(qptr[:-1], n_v) + o % np.maximum(cp, 1)
        i, j = pi[ipre], qi[ipost]
        if spec.product:
            pair = spec.rank_pre[i] * spec.n_post + spec.rank_post[j]
            keep = None
        else:
            key = i * n + j
            pos = np.searchsorted(spec.keys, key)
            pos_c = np.minimum(pos, max(len(spec.keys) - 1, 0))
            keep = (pos < len(spec.keys)) & (spec.keys[pos_c] == key) if len(spec.keys) else (
                np.zeros(total, dtype=np.bool_)
            )
            pair = pos
        lpre = np.log(pd[ipre].astype(np.float64)).astype(np.float32)
        lpost = np.log(qd[ipost].astype(np.float64)).astype(np.float32)
        voxel = (vloc + start).astype(np.int32)
        if spec.voxels is not None:
            cut = spec.voxels[voxel]
            keep = cut if keep is None else keep & cut
        if keep is not None:
            pair, voxel, lpre, lpost = pair[keep], voxel[keep], lpre[keep], lpost[keep]
        out.append((pair.astype(np.int64), voxel, lpre, lpost))
    return out


def _voxel_blocks(model: StructuralModel, pops: Sequence[_Spec], block_voxels: int | None) -> list[
    tuple[int, int]
]:
    v = model.n_voxels
    if block_voxels is None:
        # rough rows per voxel from the mean occupancy of pre/post (no data read beyond indptr)
        pre_nnz, post_nnz = max(model.pre.nnz, 1), max(model.post.nnz, 1)
        n = max(model.n_neurons, 1)
        est = sum(
            (pre_nnz * s.pre_mask.sum() / n) * (post_nnz * s.post_mask.sum() / n) / max(v, 1)
            for s in pops
        )
        block_voxels = int(np.clip(_DEFAULT_BLOCK_ROWS * max(v, 1) / max(est, 1.0), 64, 1 << 20))
    if block_voxels < 1:
        raise WiringError(f"block_voxels must be a positive integer, got {block_voxels!r}")
    return [(a, min(a + block_voxels, v)) for a in range(0, v, block_voxels)]


def _run_blocks(
    model: StructuralModel,
    blocks: Sequence[tuple[int, int]],
    specs: Sequence[_Spec],
    *,
    client: Any,
    progress: bool,
) -> list[list[tuple[IntArray, npt.NDArray[np.int32], Float32Array, Float32Array]]]:
    """Run one dask task per voxel block (threads, or the given distributed client)."""
    if client is not None:
        from wiring._dask import share

        # recomputable shared inputs, not scattered ones: a lost worker loses nothing
        model_f = share(client, model, "features-model")
        specs_f = share(client, list(specs), "features-specs")
        try:
            futures = [
                client.submit(_block_rows, model_f, a, b, specs_f, pure=False)
                for a, b in blocks
            ]
            if progress:
                from distributed import progress as dist_progress

                dist_progress(futures)
            return list(client.gather(futures))
        finally:
            client.cancel([model_f, specs_f])
    import dask

    model_d = dask.delayed(model, traverse=False, name=f"model-{uuid.uuid4().hex}")
    specs_d = dask.delayed(list(specs), traverse=False, name=f"specs-{uuid.uuid4().hex}")
    tasks = [dask.delayed(_block_rows, pure=False)(model_d, a, b, specs_d) for a, b in blocks]
    if progress:
        with _TqdmCallback(len(tasks)):
            return list(dask.compute(*tasks, scheduler="threads"))
    return list(dask.compute(*tasks, scheduler="threads"))


class _TqdmCallback:
    """A dask local-scheduler callback that advances a tqdm bar per finished block task."""

    def __init__(self, total: int) -> None:
        from dask.callbacks import Callback
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="pair features", unit="block")
        self._bar = bar

        class _CB(Callback):  # type: ignore[misc]
            def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
                if isinstance(result, list) and (not result or isinstance(result[0], tuple)):
                    bar.update(1)  # a block's rows (not the broadcast specs list)

        self._cb = _CB()

    def __enter__(self) -> _TqdmCallback:
        self._cb.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cb.__exit__(*exc)
        self._bar.close()


def _extract(
    model: StructuralModel,
    populations: Sequence[PopulationPairs],
    *,
    client: Any = None,
    progress: bool = False,
    block_voxels: int | None = None,
) -> FeatureBundle:
    """Build the bundle of ``populations`` from the model (no caching)."""
    t0 = time.perf_counter()
    n = model.n_neurons
    specs, pairs = [], []
    for pop in populations:
        spec, pre, post = _make_spec(pop, n)
        specs.append(spec)
        pairs.append((pre, post))
    blocks = _voxel_blocks(model, specs, block_voxels)
    results = _run_blocks(model, blocks, specs, client=client, progress=progress) if blocks else []

    post_all = np.asarray(model.post_all, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_post_all_v = np.log(post_all).astype(np.float32)
    depth_v = np.asarray(model.depth_um(), dtype=np.float32)
    soma = np.asarray(model.neurons.soma_um, dtype=np.float64)

    m = len(populations)
    n_pairs = np.array([len(p[0]) for p in pairs], dtype=np.int64)
    n_rows = np.array([sum(len(r[i][0]) for r in results) for i in range(m)], dtype=np.int64)
    pair_offsets = np.concatenate([[0], np.cumsum(n_pairs)]).astype(np.int64)
    row_offsets = np.concatenate([[0], np.cumsum(n_rows)]).astype(np.int64)
    r_total, p_total = int(row_offsets[-1]), int(pair_offsets[-1])
    indptr = np.zeros(p_total + 1, dtype=np.int64)
    voxel = np.empty(r_total, dtype=np.int32)
    rows = {name: np.empty(r_total, dtype=np.float32) for name in VOXEL_FEATURES}
    for i in range(m):
        parts = [r[i] for r in results]
        pair = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        order = np.argsort(pair, kind="stable")  # blocks are voxel-ordered: stable keeps that
        lo, hi = int(row_offsets[i]), int(row_offsets[i + 1])
        v = (np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32))[order]
        voxel[lo:hi] = v
        rows["log_pre"][lo:hi] = np.concatenate([p[2] for p in parts])[order] if parts else []
        rows["log_post"][lo:hi] = np.concatenate([p[3] for p in parts])[order] if parts else []
        rows["log_post_all"][lo:hi] = log_post_all_v[v]
        rows["depth_um"][lo:hi] = depth_v[v]
        counts = np.bincount(pair, minlength=int(n_pairs[i]))
        a, b = int(pair_offsets[i]), int(pair_offsets[i + 1])
        indptr[a + 1 : b + 1] = lo + np.cumsum(counts)
        del parts, pair, order
    pre = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, np.int64)
    post = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.int64)
    dist = np.linalg.norm(soma[pre] - soma[post], axis=1) if p_total else np.zeros(0)
    bundle = FeatureBundle(
        names=tuple(p.name for p in populations),
        pair_offsets=pair_offsets,
        pre=pre,
        post=post,
        indptr=indptr,
        voxel=voxel,
        rows=rows,
        soma_distance_um=np.asarray(dist, dtype=np.float64),
    )
    logger.info(
        "extracted pair features of %d population(s): %d pairs, %d rows, %.1f MB in %.2f s "
        "(%d voxel blocks)",
        m, p_total, r_total, bundle.nbytes / 1e6, time.perf_counter() - t0, len(blocks),
    )
    return bundle


def population_pairs(
    model: StructuralModel, mset: Any, slice_config: Any = None
) -> list[PopulationPairs]:
    """The eligible pairs of every measurement of ``mset`` (:func:`wiring.measurements.population`)."""
    from wiring.measurements.populations import population

    out = []
    for meas in mset.measurements:
        pop = population(model, meas, slice_config=slice_config)
        pre, post = pop.pairs()
        out.append(PopulationPairs(name=str(meas.id), pair_pre=pre, pair_post=post,
                                   voxels=pop.voxels_kept(model)))
    return out


def _checked_pairs(
    model: StructuralModel, mset: Any, slice_config: Any, max_bytes: int | None
) -> list[PopulationPairs]:
    pops = population_pairs(model, mset, slice_config)
    if max_bytes is not None:
        rows, nbytes = estimate_table(model, pops)
        if nbytes > max_bytes:
            raise WiringError(
                f"the pair table of {len(pops)} population(s) would hold {int(rows.sum())} "
                f"shared-voxel rows ({nbytes / 1e9:.1f} GB > max_bytes = {max_bytes / 1e9:.1f} "
                f"GB); simulate with Simulator(..., representation='factored') (rows computed "
                f"for sampled pairs only) or raise max_bytes"
            )
    return pops


def estimate_table(
    model: StructuralModel, populations: Sequence[PopulationPairs], *, block_voxels: int = 4096
) -> tuple[IntArray, int]:
    """Shared-voxel rows per population (exact for product populations, an upper bound
    otherwise) and the table size in bytes, from one pass over the voxel-major indices."""
    n = model.n_neurons
    specs = [_make_spec(pop, n)[0] for pop in populations]
    rows = np.zeros(len(specs), dtype=np.int64)
    for a in range(0, model.n_voxels, block_voxels):
        b = min(a + block_voxels, model.n_voxels)
        pre_block = model.pre.voxel_block(a, b)
        post_block = model.post.voxel_block(a, b)
        for i, spec in enumerate(specs):
            cpre = np.diff(_present(pre_block, spec.pre_mask)[2])
            cpost = np.diff(_present(post_block, spec.post_mask)[2])
            rows[i] += int((cpre * cpost).sum())
    n_pairs = sum(len(s.keys) for s in specs)
    nbytes = int(rows.sum()) * 20 + n_pairs * 32
    return rows, nbytes
