"""Connectomes: synapse counts of every (pre, post) pair for one θ, their zarr store and summaries.

:func:`compute_connectome` applies a wiring rule to a structural model: the expected synapse
count ``lambda_ij = sum_k rate_ijk`` over the voxels two neurons share, and a synapse count per
pair drawn according to ``rule.synapses`` (Poisson for ``dso``). The work is split into coarse
dask tasks by blocks of postsynaptic neurons (see :mod:`wiring._engine` for the partition and
for how models larger than memory are streamed from their store, and :mod:`wiring.dso` for the
kernels). Random draws are keyed by the run seed and the (pre, post) model neuron indices, so the
result is the same for any number of workers, any block size and any selection containing the
pair.

Conventions
-----------
- Pairs of a neuron with itself (autapses) are excluded unless ``autapses=True``: paired
  recordings never test a cell with itself.
- A pair sharing no voxel has ``lambda = 0`` and no synapse, for every θ.
- The connectome records expected synapses per (postsynaptic cell type, voxel depth bin) for
  :func:`synapse_density_by_depth`: the sum over pairs of the expected synapses each shared voxel
  holds (the rate for Poisson rules, ``1 - exp(-rate)`` for binomial ones, ``1 - exp(-lambda)``
  per shared voxel for deterministic ones; pair-level Poisson rules spread ``lambda`` evenly
  over the shared voxels). Depth bins are one voxel (``grid.spacing_um``) thick.

Store layout (zarr v3, schema version 1)::

    /                            attrs: format, schema_version, rule, theta, seed, anatomy_hash,
                                        pre_selector, post_selector, synapse_model, autapses,
                                        cell_types, voxel_volume_um3, engine, complete (last)
    pre, post          (n,) int64     model neuron indices of the rows / columns
    synapses/{indptr (n_post+1,) int64, indices int32, data int32}    CSC synapse counts
    expected/{indptr (n_post+1,) int64, indices int32, data float32}  CSC expected counts

Matrices are pre × post in CSC (column = postsynaptic neuron, row indices = its presynaptic
partners, sorted): the engine produces them per block of postsynaptic neurons, so CSC needs no
transpose of the largest arrays, and it is the target-sorted edge order of SONATA.
    depth/expected_synapses (n_cell_types, n_bins) float64; depth/edges_um (n_bins+1,) float64;
    depth/voxels (n_bins,) int64
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.atomic import move_into_place
from anatomy.catalogue import CELL_TYPES
from anatomy.errors import SchemaVersionError, StoreValidationError
from anatomy.model import StructuralModel
from anatomy.storeguard import remove_leftovers, store_lock
from wiring._typing import FloatArray, IntArray
from wiring.errors import (
    InvalidParameterError,
    OutputExistsError,
    ShapeMismatchError,
)
from wiring.rules.base import WiringRule, check_theta_in_domain
from wiring.selectors import Selector

__all__ = [
    "FORMAT_NAME",
    "SCHEMA_VERSION",
    "Connectome",
    "ConnectomeBlock",
    "ConnectomeStore",
    "DepthDensity",
    "TypeProbability",
    "compute_connectome",
    "compute_connectome_to_store",
    "open_connectome",
    "synapse_density_by_depth",
    "type_probability_matrices",
    "type_probability_matrix",
    "write_connectome",
]

logger = logging.getLogger(__name__)

#: Schema version written by :func:`write_connectome`.
SCHEMA_VERSION = 1
#: Largest number of expected counts per block when a connectome is read block by block
#: (about 130 MB of arrays per block).
BLOCK_ENTRIES = 1 << 24
#: Value of the ``format`` attribute of a connectome store.
FORMAT_NAME = "wiring-sbi connectome"


class _Shape:
    """``n_pre`` and ``n_post`` of anything with ``pre`` and ``post`` index arrays."""

    pre: IntArray
    post: IntArray

    @property
    def n_pre(self) -> int:
        """Number of presynaptic neurons (rows)."""
        return len(self.pre)

    @property
    def n_post(self) -> int:
        """Number of postsynaptic neurons (columns)."""
        return len(self.post)


@dataclass(frozen=True, kw_only=True)
class Connectome(_Shape):
    """Synapse counts and expected counts of every (pre, post) pair for one θ.

    Attributes
    ----------
    synapses
        (n_pre, n_post) int32 CSC synapse counts (only pairs with at least one synapse stored).
    expected
        (n_pre, n_post) float32 CSC expected counts ``lambda`` (pairs with ``lambda > 0``;
        ``inf`` for pairs a rule connects with certainty).
    pre, post
        Model neuron indices of the rows and columns, sorted.
    rule
        Provenance: ``name``, ``distribution``, ``version`` and ``params`` (parameter names).
    theta
        The parameter vector (d,).
    seed
        Run seed of the synapse draws.
    anatomy_hash
        ``content_hash`` of the structural model.
    depth_profile
        (n_cell_types, n_bins) expected synapses per postsynaptic cell type (rows follow
        ``attrs["cell_types"]``) and voxel depth bin.
    depth_edges_um
        (n_bins + 1,) depth-bin edges below the pia (µm).
    voxels_per_bin
        (n_bins,) number of model voxels in each depth bin.
    voxel_volume_um3
        Volume of one voxel (µm³).
    attrs
        JSON-native metadata: selectors, synapse model, autapses, engine figures, cell types.
    """

    synapses: sp.csc_array
    expected: sp.csc_array
    pre: IntArray
    post: IntArray
    rule: Mapping[str, Any]
    theta: FloatArray
    seed: int
    anatomy_hash: str
    depth_profile: FloatArray
    depth_edges_um: FloatArray
    voxels_per_bin: IntArray
    voxel_volume_um3: float
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.pre), len(self.post))
        for name in ("synapses", "expected"):
            m = getattr(self, name)
            if m.shape != shape:
                raise ShapeMismatchError(
                    f"connectome {name} has shape {m.shape}, expected (n_pre, n_post) = {shape}"
                )
        n_bins = len(self.voxels_per_bin)
        if self.depth_profile.shape != (len(CELL_TYPES), n_bins) or self.depth_edges_um.shape != (
            n_bins + 1,
        ):
            raise ShapeMismatchError(
                f"connectome depth profile {self.depth_profile.shape} and edges "
                f"{self.depth_edges_um.shape} must have shapes (n_cell_types, n_bins) = "
                f"({len(CELL_TYPES)}, {n_bins}) and (n_bins + 1,)"
            )

    @property
    def n_pairs(self) -> int:
        """Number of pairs with a stored expected count (sharing at least one voxel)."""
        return int(self.expected.nnz)

    @property
    def n_connections(self) -> int:
        """Number of connected pairs (at least one synapse)."""
        return int(self.synapses.nnz)

    @property
    def n_synapses(self) -> int:
        """Total number of synapses."""
        return int(self.synapses.data.sum(dtype=np.int64))

    def iter_blocks(self, max_entries: int = BLOCK_ENTRIES) -> Iterator[ConnectomeBlock]:
        """The matrices by blocks of postsynaptic neurons (see :meth:`ConnectomeStore.iter_blocks`)."""
        exp = sp.csc_array(self.expected)
        syn = sp.csc_array(self.synapses)
        for a, z in _column_blocks(np.asarray(exp.indptr, np.int64), max_entries):
            yield ConnectomeBlock(start=a, stop=z, expected=sp.csc_array(exp[:, a:z]),
                                  synapses=sp.csc_array(syn[:, a:z]))


@dataclass(frozen=True, slots=True)
class ConnectomeBlock:
    """Columns ``start:stop`` (postsynaptic positions) of a connectome's two matrices."""

    start: int
    stop: int
    expected: sp.csc_array  # (n_pre, stop - start) float32
    synapses: sp.csc_array  # (n_pre, stop - start) int32


def _column_blocks(indptr: npt.NDArray[np.int64], max_entries: int) -> list[tuple[int, int]]:
    """Contiguous column ranges holding at most ``max_entries`` entries (at least one column)."""
    n = len(indptr) - 1
    out: list[tuple[int, int]] = []
    a = 0
    while a < n:
        z = int(np.searchsorted(indptr, indptr[a] + max_entries, side="right")) - 1
        z = min(n, max(z, a + 1))
        out.append((a, z))
        a = z
    return out


def _resolve_rule(rule: str | type[WiringRule] | WiringRule) -> WiringRule:
    from wiring.rules.registry import get_rule

    return get_rule(rule)


@functools.lru_cache(maxsize=64)
def _provenance_cached(cls: type[WiringRule]) -> str:
    from wiring.rules.registry import rule_provenance

    prov: dict[str, Any] = dict(rule_provenance(cls))
    prov["params"] = [p.name for p in cls.params]
    return json.dumps(prov)


def _provenance(cls: type[WiringRule]) -> dict[str, Any]:
    """Rule name, distribution, version and parameter names (cached per class: the lookup of
    the providing distribution scans the installed packages)."""
    out: dict[str, Any] = json.loads(_provenance_cached(cls))
    return out


def _selection(model: StructuralModel, sel: Selector | str | None) -> IntArray:
    from wiring.selectors import select

    if sel is None:
        return np.arange(model.n_neurons, dtype=np.int64)
    return np.asarray(select(model, sel), dtype=np.int64)


def _selector_dict(sel: Selector | str | None) -> Any:
    if sel is None:
        return None
    if isinstance(sel, str):
        from wiring.selectors import parse_selector

        sel = parse_selector(sel)
    return sel.to_dict()


def compute_connectome(
    model: StructuralModel,
    rule: str | type[WiringRule] | WiringRule,
    theta: npt.ArrayLike,
    *,
    seed: int,
    pre: Selector | str | None = None,
    post: Selector | str | None = None,
    block_size: int | None = None,
    client: Any = None,
    workers: int = 1,
    autapses: bool = False,
    in_memory: bool | None = None,
    progress: bool = False,
) -> Connectome:
    """Apply a wiring rule with parameters θ to every (pre, post) pair of a structural model.

    Parameters
    ----------
    model
        The structural model (in memory, or opened lazily with :func:`anatomy.store.open_model`,
        which validates it).
    rule
        A rule name, class or instance (see :func:`wiring.rules.registry.get_rule`).
    theta
        One parameter vector (d,) inside the rule's domain.
    seed
        Run seed (non-negative integer) of the synapse draws.
    pre, post
        Selectors (or their text form) of the pre- and postsynaptic neurons; None: all neurons.
    block_size
        Postsynaptic neurons per dask task; default: balanced by work (pair-voxel products).
    client
        A ``dask.distributed.Client``; default: dask's local scheduler with ``workers`` threads
        (synchronous for one worker).
    workers
        Threads of the local scheduler (ignored with ``client``).
    autapses
        Include pairs of a neuron with itself (default: excluded).
    in_memory
        Load the counts into memory (True) or stream them from the store (False); default:
        in memory when they fit (see :mod:`wiring._engine`).
    progress
        Show a progress bar over the blocks.

    Returns
    -------
    Connectome

    Raises
    ------
    ShapeMismatchError, InvalidParameterError
        θ has the wrong length, is NaN or outside the domain; bad ``seed``, ``block_size`` or
        ``workers``.
    SelectionError
        A selector names unknown cell types etc. or selects nobody.
    RuleNotFoundError
        Unknown rule name.

    Examples
    --------
    >>> from anatomy.generate import build_model
    >>> conn = compute_connectome(build_model("tiny"), "dso", [1.0, 1.0, 1.0], seed=1,
    ...                           pre="VPM", post="L4ss")
    >>> conn.synapses.shape == (conn.n_pre, conn.n_post)
    True
    """
    conn = _compute(model, rule, theta, seed=seed, pre=pre, post=post, block_size=block_size,
                    client=client, workers=workers, autapses=autapses, in_memory=in_memory,
                    progress=progress)
    return conn


def _compute(
    model: StructuralModel,
    rule: str | type[WiringRule] | WiringRule,
    theta: npt.ArrayLike,
    *,
    seed: int,
    pre: Selector | str | None,
    post: Selector | str | None,
    block_size: int | None,
    client: Any,
    workers: int,
    autapses: bool,
    in_memory: bool | None,
    progress: bool,
    before_work: Any = None,
    sink: Any = None,
) -> Connectome:
    """Validate, then run the engine; with ``sink`` the matrices go to it and stay empty here."""
    from wiring._engine import run_engine
    from wiring.dso import rule_factors

    rule_obj = _resolve_rule(rule)
    th = check_theta_in_domain(rule_obj, theta)
    if th.shape[0] != 1:
        raise ShapeMismatchError(
            f"compute_connectome takes one parameter vector, got theta of shape {th.shape}; "
            f"call it once per vector"
        )
    _check_int("seed", seed, low=0)
    if block_size is not None:
        _check_int("block_size", block_size, low=1)
    _check_int("workers", workers, low=1)
    pre_ids = _selection(model, pre)
    post_ids = _selection(model, post)
    factors = rule_factors(rule_obj, th[0])
    provenance = _provenance(type(rule_obj))
    if before_work is not None:
        before_work()
    result = run_engine(
        model,
        rule_obj,
        th,
        seed=int(seed),
        pre_ids=pre_ids,
        post_ids=post_ids,
        factors=factors,
        block_size=block_size,
        client=client,
        workers=int(workers),
        autapses=bool(autapses),
        in_memory=in_memory,
        progress=progress,
        sink=sink,
    )
    anatomy_hash = str(model.attrs.get("content_hash", ""))
    if not anatomy_hash:
        from anatomy.store import content_hash

        anatomy_hash = content_hash(model)
    post_types = np.unique(model.neurons.cell_type[post_ids])
    shape = (len(pre_ids), len(post_ids))
    return Connectome(
        synapses=result.synapses if result.synapses is not None else sp.csc_array(
            shape, dtype=np.int32),
        expected=result.expected if result.expected is not None else sp.csc_array(
            shape, dtype=np.float32),
        pre=pre_ids,
        post=post_ids,
        rule=provenance,
        theta=th[0].copy(),
        seed=int(seed),
        anatomy_hash=anatomy_hash,
        depth_profile=result.depth_profile,
        depth_edges_um=result.depth_edges_um,
        voxels_per_bin=result.voxels_per_bin,
        voxel_volume_um3=float(model.grid.spacing_um) ** 3,
        attrs={
            "pre_selector": _selector_dict(pre),
            "post_selector": _selector_dict(post),
            "synapse_model": rule_obj.synapses,
            "autapses": bool(autapses),
            "cell_types": list(CELL_TYPES),
            "post_cell_types": [CELL_TYPES[int(c)] for c in post_types],
            "engine": {
                "path": result.path,
                "blocks": result.n_blocks,
                "pair_voxel_products": result.products,
            },
        },
    )


def _check_int(name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InvalidParameterError(
            f"{name} = {value!r} is not allowed; expected an integer >= {low}"
        )


# ------------------------------------------------------------------------------------ store


def _compressors(dtype: Any = None) -> list[Any]:
    """Blosc-LZ4 with byte shuffle (bit shuffle for floats), then a crc32c checksum.

    LZ4 encodes at about 1.5-2 GB/s per core, so compressing a large connectome costs a small
    fraction of computing it (zstd took about a third as long as the kernel), and it compresses
    the sorted indices and the float32 expected counts better than zstd level 3 after the
    shuffle. The checksum makes a damaged chunk an error instead of wrong numbers.
    """
    from zarr.codecs import BloscCodec, Crc32cCodec

    floats = dtype is not None and np.issubdtype(np.dtype(dtype), np.floating)
    shuffle = "bitshuffle" if floats else "shuffle"
    return [BloscCodec(cname="lz4", clevel=5, shuffle=shuffle), Crc32cCodec()]


def _put(group: Any, name: str, arr: npt.NDArray[Any]) -> None:
    arr = np.ascontiguousarray(arr)
    chunks = tuple(max(1, min(s, 1 << 22)) for s in arr.shape) if arr.ndim else ()
    a = group.create_array(
        name, shape=arr.shape, dtype=arr.dtype, chunks=chunks,
        compressors=_compressors(arr.dtype),
    )
    if arr.size:
        a[...] = arr


def write_connectome(
    conn: Connectome, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write a connectome to a zarr store, atomically (temporary sibling, then rename).

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False, or it exists and is not a connectome store
        (never replaced).
    """

    path = Path(path)
    _check_target(path, overwrite=overwrite)
    with store_lock(path, what="connectome store"):
        remove_leftovers(path)
        _check_target(path, overwrite=overwrite)
        _write_connectome(conn, path, overwrite=overwrite)
    logger.info("wrote connectome to %s", path)
    return path


def _write_connectome(conn: Connectome, path: Path, *, overwrite: bool) -> None:
    import zarr

    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        root = zarr.open_group(tmp, mode="w-", zarr_format=3)
        for name, mat, dtype in (
            ("synapses", conn.synapses, np.int32),
            ("expected", conn.expected, np.float32),
        ):
            g = root.create_group(name)
            m = sp.csc_array(mat)
            m.sort_indices()
            _put(g, "indptr", m.indptr.astype(np.int64))
            _put(g, "indices", m.indices.astype(np.int32))
            _put(g, "data", m.data.astype(dtype))
        _write_meta(root, conn)
        open_connectome(tmp)
        move_into_place(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _BlockAppender:
    """Append post-major CSR blocks (m, n_pre) of one matrix to a store group as CSC.

    Entries are buffered and written in whole chunks at chunk-aligned offsets, so no chunk is
    ever read back and rewritten; :meth:`finish` writes the last partial chunk and ``indptr``.
    """

    def __init__(self, root: Any, name: str, dtype: type[np.generic]) -> None:
        self.group = root.create_group(name)
        self.chunk = _APPEND_CHUNK
        self.indices = self.group.create_array(
            "indices", shape=(0,), dtype=np.int32, chunks=(self.chunk,),
            compressors=_compressors())
        self.data = self.group.create_array(
            "data", shape=(0,), dtype=dtype, chunks=(self.chunk,),
            compressors=_compressors(dtype))
        self.dtype = dtype
        self.ptr: list[npt.NDArray[np.int64]] = [np.zeros(1, dtype=np.int64)]
        self.nnz = 0
        self.written = 0
        self.pending: list[tuple[npt.NDArray[np.int32], npt.NDArray[Any]]] = []
        self.n_pending = 0

    def append(self, block: sp.csr_array) -> None:
        k = int(block.nnz)
        self.ptr.append(np.asarray(block.indptr[1:], dtype=np.int64) + self.nnz)
        if k:
            self.pending.append((np.asarray(block.indices, dtype=np.int32),
                                 np.asarray(block.data, dtype=self.dtype)))
            self.n_pending += k
        self.nnz += k
        if self.n_pending >= self.chunk:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self.pending:
            return
        idx = np.concatenate([i for i, _ in self.pending])
        val = np.concatenate([v for _, v in self.pending])
        n = len(idx) if final else (len(idx) // self.chunk) * self.chunk
        if n:
            end = self.written + n
            self.indices.resize((end,))
            self.data.resize((end,))
            self.indices[self.written : end] = idx[:n]
            self.data[self.written : end] = val[:n]
            self.written = end
        self.pending = [(idx[n:], val[n:])] if n < len(idx) else []
        self.n_pending = len(idx) - n

    def finish(self) -> None:
        self._flush(final=True)
        _put(self.group, "indptr", np.concatenate(self.ptr))


#: Entries per chunk of the streamed connectome arrays.
_APPEND_CHUNK = 1 << 22


class _BackgroundWriter:
    """Runs ``write(item)`` for queued items in order on one thread, beside the computation.

    At most ``depth`` items wait; :meth:`put` blocks beyond that (bounded memory) and re-raises
    a failure of the writer thread, as does :meth:`close`.
    """

    def __init__(self, write: Any, *, depth: int) -> None:
        import queue
        import threading

        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="connectome-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc

    def put(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self, *, reraise: bool = True) -> None:
        """Wait for every queued item to be written; re-raise the writer's failure."""
        self._queue.put(None)
        self._thread.join()
        if reraise and self._error is not None:
            raise self._error


def compute_connectome_to_store(
    model: StructuralModel,
    rule: str | type[WiringRule] | WiringRule,
    theta: npt.ArrayLike,
    path: str | os.PathLike[str],
    *,
    seed: int,
    pre: Selector | str | None = None,
    post: Selector | str | None = None,
    block_size: int | None = None,
    client: Any = None,
    workers: int = 1,
    autapses: bool = False,
    in_memory: bool | None = None,
    progress: bool = False,
    overwrite: bool = False,
    announce: bool = True,
) -> Path:
    """Like :func:`compute_connectome`, but write each block to a store as soon as it is done.

    The matrices never exist in memory as a whole: memory is bounded by the (loaded) model plus
    one wave of blocks (4 per worker), whatever the size of the connectome. The store is the
    same as ``write_connectome(compute_connectome(...), path)`` writes, and appears atomically
    (temporary sibling, then rename) once complete; the store's lock is held throughout.
    Parameters as for :func:`compute_connectome` and :func:`write_connectome`; ``announce=False``
    logs the finished store at debug level only (for a caller that moves it elsewhere).
    """
    out = Path(path)
    with store_lock(out, what="connectome store"):
        remove_leftovers(out)
        _compute_to_store(model, rule, theta, out, seed=seed, pre=pre, post=post,
                          block_size=block_size, client=client, workers=workers,
                          autapses=autapses, in_memory=in_memory, progress=progress,
                          overwrite=overwrite)
    logger.log(logging.INFO if announce else logging.DEBUG, "wrote connectome to %s", out)
    return out


def _compute_to_store(model: Any, rule: Any, theta: Any, out: Path, *, seed: int, pre: Any,
                      post: Any, block_size: int | None, client: Any, workers: int,
                      autapses: bool, in_memory: bool | None, progress: bool,
                      overwrite: bool) -> None:
    import zarr

    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    state: dict[str, Any] = {}

    def before_work() -> None:  # arguments are valid: claim the output
        _check_target(out, overwrite=overwrite)
        root = zarr.open_group(tmp, mode="w-", zarr_format=3)
        state["root"] = root
        state["expected"] = _BlockAppender(root, "expected", np.float32)
        state["synapses"] = _BlockAppender(root, "synapses", np.int32)

    def write(blocks: tuple[sp.csr_array, sp.csr_array]) -> None:
        state["expected"].append(blocks[0])
        state["synapses"].append(blocks[1])

    def sink(expected: sp.csr_array, synapses: sp.csr_array) -> None:
        if "writer" not in state:  # compression and I/O overlap the next blocks' work
            state["writer"] = _BackgroundWriter(write, depth=8 * max(int(workers), 1))
        state["writer"].put((expected, synapses))

    try:
        try:
            meta = _compute(model, rule, theta, seed=seed, pre=pre, post=post,
                            block_size=block_size, client=client, workers=workers,
                            autapses=autapses, in_memory=in_memory, progress=progress,
                            before_work=before_work, sink=sink)
        except BaseException:
            if "writer" in state:
                state["writer"].close(reraise=False)
            raise
        if "writer" in state:
            state["writer"].close()
        state["expected"].finish()
        state["synapses"].finish()
        _write_meta(state["root"], meta)
        move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_meta(root: Any, conn: Connectome) -> None:
    """Everything but the two matrices, then the completion marker (last)."""
    _put(root, "pre", conn.pre.astype(np.int64))
    _put(root, "post", conn.post.astype(np.int64))
    d = root.create_group("depth")
    _put(d, "expected_synapses", conn.depth_profile.astype(np.float64))
    _put(d, "edges_um", conn.depth_edges_um.astype(np.float64))
    _put(d, "voxels", conn.voxels_per_bin.astype(np.int64))
    attrs = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "rule": _json(dict(conn.rule)),
        "theta": [float(v) for v in conn.theta],
        "seed": int(conn.seed),
        "anatomy_hash": conn.anatomy_hash,
        "voxel_volume_um3": float(conn.voxel_volume_um3),
        **{k: _json(v) for k, v in conn.attrs.items()},
    }
    root.attrs.update(attrs)
    root.attrs["complete"] = True


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-native: {obj!r}")


def _is_connectome_store(path: Path) -> bool:
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return bool(attrs.get("format") == FORMAT_NAME)


def _check_target(path: Path, *, overwrite: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        if not path.parent.is_dir():
            raise FileNotFoundError(f"output folder {path.parent} does not exist; create it first")
        return
    if not overwrite:
        raise OutputExistsError(
            f"{path} exists; choose another output path or pass overwrite=True (--overwrite) "
            f"to replace it"
        )
    if not _is_connectome_store(path):
        raise OutputExistsError(
            f"{path} exists and is not a connectome store; refusing to replace it even with "
            f"overwrite: remove it yourself or choose another path"
        )


class ConnectomeStore(_Shape):
    """A connectome store opened for reading block by block: metadata now, matrices on demand.

    It carries the same metadata attributes as :class:`Connectome` (``pre``, ``post``, ``rule``,
    ``theta``, ``seed``, ``anatomy_hash``, ``depth_profile``, ``depth_edges_um``,
    ``voxels_per_bin``, ``voxel_volume_um3``, ``attrs``) and is accepted wherever the summaries
    and the SONATA export take a connectome; :meth:`iter_blocks` reads a bounded slice of the
    matrices at a time, so a connectome larger than memory can be summarized and exported.
    :meth:`load` reads everything into a :class:`Connectome`.

    Raises (on opening)
    -------------------
    FileNotFoundError
        Nothing at ``path``.
    StoreValidationError
        Not a (complete) connectome store; missing arrays, wrong dtypes or shapes, a broken
        ``indptr``. Row indices are checked as the blocks are read.
    SchemaVersionError
        Written by an incompatible version.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import zarr

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no connectome store at {self.path}")
        try:
            self._root = zarr.open_group(self.path, mode="r", zarr_format=3)
        except Exception as err:  # zarr raises several unrelated types for non-stores
            raise StoreValidationError(f"{self.path} is not a zarr v3 group: {err}") from err
        attrs = dict(self._root.attrs)
        if attrs.get("format") != FORMAT_NAME:
            raise StoreValidationError(
                f"{self.path} is not a connectome store (format {attrs.get('format')!r}, "
                f"expected {FORMAT_NAME!r})"
            )
        if attrs.get("schema_version") != SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has connectome schema version {attrs.get('schema_version')!r}; "
                f"this package reads version {SCHEMA_VERSION}: upgrade the package or "
                f"recompute it"
            )
        if attrs.get("complete") is not True:
            raise StoreValidationError(
                f"{self.path} was not completely written (no completion marker); recompute it"
            )
        self.pre: IntArray = self._read("pre", np.int64, 1)
        self.post: IntArray = self._read("post", np.int64, 1)
        self._indptr: dict[str, npt.NDArray[np.int64]] = {}
        for name, dtype in (("synapses", np.int32), ("expected", np.float32)):
            indptr = self._read(f"{name}/indptr", np.int64, 1)
            n_idx = self._array(f"{name}/indices", np.int32, 1).shape[0]
            n_data = self._array(f"{name}/data", dtype, 1).shape[0]
            ok = (
                indptr.shape == (len(self.post) + 1,)
                and indptr[0] == 0
                and indptr[-1] == n_idx == n_data
                and bool(np.all(np.diff(indptr) >= 0))
            )
            if not ok:
                raise StoreValidationError(
                    f"{self.path}: {name} is not a valid CSC matrix of shape "
                    f"({len(self.pre)}, {len(self.post)}) (indptr length or ordering)"
                )
            self._indptr[name] = indptr
        self.depth_profile: FloatArray = self._read("depth/expected_synapses", np.float64, 2)
        self.depth_edges_um: FloatArray = self._read("depth/edges_um", np.float64, 1)
        self.voxels_per_bin: IntArray = self._read("depth/voxels", np.int64, 1)
        known = {"format", "schema_version", "rule", "theta", "seed", "anatomy_hash",
                 "voxel_volume_um3", "complete"}
        try:
            self.rule: Mapping[str, Any] = attrs["rule"]
            self.theta: FloatArray = np.asarray(attrs["theta"], dtype=np.float64)
            self.seed = int(attrs["seed"])
            self.anatomy_hash = str(attrs["anatomy_hash"])
            self.voxel_volume_um3 = float(attrs["voxel_volume_um3"])
        except (KeyError, TypeError, ValueError) as err:
            raise StoreValidationError(
                f"{self.path}: inconsistent connectome store: attribute {err} missing or invalid"
            ) from err
        self.attrs: Mapping[str, Any] = {k: v for k, v in attrs.items() if k not in known}

    def _array(self, name: str, dtype: Any, ndim: int) -> Any:
        try:
            arr = self._root[name]
        except KeyError as err:
            raise StoreValidationError(f"{self.path}: array {name!r} is missing") from err
        if np.dtype(arr.dtype) != np.dtype(dtype) or len(arr.shape) != ndim:
            raise StoreValidationError(
                f"{self.path}: array {name!r} has dtype {arr.dtype} and {len(arr.shape)} dims, "
                f"expected {np.dtype(dtype)} with {ndim}"
            )
        return arr

    def _read(self, name: str, dtype: Any, ndim: int, sl: slice | None = None) -> Any:
        arr = self._array(name, dtype, ndim)
        try:
            return np.asarray(arr[...] if sl is None else arr[sl])
        except Exception as err:  # a deleted or corrupt chunk (truncated store)
            raise StoreValidationError(
                f"{self.path}: array {name!r} cannot be read ({type(err).__name__}: {err}); "
                f"the store is damaged: recompute it"
            ) from err

    @property
    def n_pairs(self) -> int:
        """Number of pairs with a stored expected count (sharing at least one voxel)."""
        return int(self._indptr["expected"][-1])

    @property
    def n_connections(self) -> int:
        """Number of connected pairs (at least one synapse)."""
        return int(self._indptr["synapses"][-1])

    @property
    def n_synapses(self) -> int:
        """Total number of synapses (reads the synapse counts, a block at a time)."""
        return sum(int(b.synapses.data.sum(dtype=np.int64)) for b in self.iter_blocks(
            which=("synapses",)))

    def _matrix(self, name: str, dtype: Any, a: int, z: int) -> sp.csc_array:
        indptr = self._indptr[name]
        lo, hi = int(indptr[a]), int(indptr[z])
        indices = self._read(f"{name}/indices", np.int32, 1, slice(lo, hi))
        data = self._read(f"{name}/data", dtype, 1, slice(lo, hi))
        if indices.size and (indices.min() < 0 or indices.max() >= len(self.pre)):
            raise StoreValidationError(
                f"{self.path}: {name} has row indices outside [0, {len(self.pre)})"
            )
        return sp.csc_array((data, indices, indptr[a : z + 1] - lo), shape=(len(self.pre), z - a))

    #: Default largest number of expected counts per block of :meth:`iter_blocks`.
    block_entries: int = BLOCK_ENTRIES
    #: Show a progress bar of the blocks read by :meth:`iter_blocks` (long summaries, exports).
    progress: bool = False

    def iter_blocks(
        self, max_entries: int | None = None, *,
        which: tuple[str, ...] = ("expected", "synapses"),
    ) -> Iterator[ConnectomeBlock]:
        """The matrices by contiguous blocks of postsynaptic neurons, read one block at a time.

        A block holds at most ``max_entries`` (default :attr:`block_entries`) expected counts,
        or one column; matrices not in ``which`` come as empty matrices of the block's shape.
        """
        from tqdm.auto import tqdm

        limit = self.block_entries if max_entries is None else int(max_entries)
        blocks = _column_blocks(self._indptr["expected"], limit)
        with tqdm(total=len(blocks), desc="reading connectome blocks", unit="block",
                  disable=not self.progress, dynamic_ncols=True) as bar:
            for a, z in blocks:
                mats = {
                    name: self._matrix(name, dtype, a, z) if name in which
                    else sp.csc_array((len(self.pre), z - a), dtype=dtype)
                    for name, dtype in (("expected", np.float32), ("synapses", np.int32))
                }
                yield ConnectomeBlock(start=a, stop=z, **mats)
                bar.update(1)

    def load(self) -> Connectome:
        """Everything in memory, as a :class:`Connectome`."""
        mats = {name: self._matrix(name, dtype, 0, len(self.post))
                for name, dtype in (("expected", np.float32), ("synapses", np.int32))}
        try:
            return Connectome(
                synapses=mats["synapses"], expected=mats["expected"], pre=self.pre,
                post=self.post, rule=self.rule, theta=self.theta, seed=self.seed,
                anatomy_hash=self.anatomy_hash, depth_profile=self.depth_profile,
                depth_edges_um=self.depth_edges_um, voxels_per_bin=self.voxels_per_bin,
                voxel_volume_um3=self.voxel_volume_um3, attrs=self.attrs,
            )
        except ShapeMismatchError as err:
            raise StoreValidationError(
                f"{self.path}: inconsistent connectome store: {err}") from err


@overload
def open_connectome(
    path: str | os.PathLike[str], *, lazy: Literal[False] = ...
) -> Connectome: ...
@overload
def open_connectome(path: str | os.PathLike[str], *, lazy: Literal[True]) -> ConnectomeStore: ...
def open_connectome(
    path: str | os.PathLike[str], *, lazy: bool = False
) -> Connectome | ConnectomeStore:
    """Read and validate a connectome store written by :func:`write_connectome`.

    With ``lazy=True`` returns a :class:`ConnectomeStore` (metadata now, matrices block by
    block); otherwise a :class:`Connectome` with everything in memory.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    StoreValidationError
        Not a (complete) connectome store, or arrays with the wrong shape, dtype or indices.
    SchemaVersionError
        Written by an incompatible version.
    """
    store = ConnectomeStore(path)
    return store if lazy else store.load()


# the summaries live in a private module to keep this one small; re-exported here
from wiring._summaries import (  # noqa: E402
    DepthDensity,
    TypeProbability,
    synapse_density_by_depth,
    type_probability_matrices,
    type_probability_matrix,
)
