"""Connectomes: synapse counts of every (pre, post) pair for one θ, their zarr store and summaries.

:func:`compute_connectome` applies a wiring rule to a structural model: the expected synapse
count ``lambda_ij = sum_k rate_ijk`` over the voxels two neurons share, and a synapse count per
pair drawn according to ``rule.synapses`` (Poisson for ``dso``). The work is split into coarse
dask tasks by blocks of postsynaptic neurons (see :mod:`wiring.connectome._engine` for the partition and
for how models larger than memory are streamed from their store, and :mod:`wiring.connectome.dso` for the
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
    pre, post          (n,) int64     model neuron indices of the rows / columns; ``pre``'s
                                      attribute ``attrs_digest`` seals the root attributes
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES
from anatomy.model import StructuralModel
from wiring._json import json_native
from wiring._seal import field_digests
from wiring._typing import FloatArray, IntArray
from wiring.errors import (
    InvalidParameterError,
    OutputExistsError,
    ShapeMismatchError,
)
from wiring.measurements.selectors import Selector
from wiring.rules.base import WiringRule, check_theta_in_domain
from wiring.rules.registry import get_rule

__all__ = [
    "FORMAT_NAME",
    "SCHEMA_VERSION",
    "Connectome",
    "ConnectomeBlock",
    "compute_connectome",
]

logger = logging.getLogger(__name__)

#: Schema version written by :func:`write_connectome`.
SCHEMA_VERSION = 1
#: Attribute of the ``pre`` array holding a sha256 per root attribute (the attributes' seal).
ATTRS_SEAL = "attrs_digest"
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
    from wiring.measurements.selectors import select

    if sel is None:
        return np.arange(model.n_neurons, dtype=np.int64)
    return np.asarray(select(model, sel), dtype=np.int64)


def _selector_dict(sel: Selector | str | None) -> Any:
    if sel is None:
        return None
    if isinstance(sel, str):
        from wiring.measurements.selectors import parse_selector

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
        in memory when they fit (see :mod:`wiring.connectome._engine`).
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
    from wiring.connectome._engine import run_engine
    from wiring.connectome.dso import rule_factors

    rule_obj = get_rule(rule)
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
    from anatomy.hashing import anatomy_hash as _anatomy_hash

    anatomy_hash = _anatomy_hash(model)
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
        "rule": json_native(dict(conn.rule)),
        "theta": [float(v) for v in conn.theta],
        "seed": int(conn.seed),
        "anatomy_hash": conn.anatomy_hash,
        "voxel_volume_um3": float(conn.voxel_volume_um3),
        **{k: json_native(v) for k, v in conn.attrs.items()},
    }
    root.attrs.update(attrs)
    # the attributes as stored, sealed in another file (see wiring.connectome.store)
    stored = {k: v for k, v in dict(root.attrs).items() if k != "complete"}
    root["pre"].attrs[ATTRS_SEAL] = field_digests(stored)
    root.attrs["complete"] = True


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
