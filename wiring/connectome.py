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

import csv
import functools
import io
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.errors import SchemaVersionError, StoreValidationError
from anatomy.model import StructuralModel
from wiring._typing import FloatArray, IntArray
from wiring.errors import (
    InvalidParameterError,
    OutputExistsError,
    ShapeMismatchError,
    StoreMismatchError,
)
from wiring.rules.base import WiringRule, check_theta_in_domain
from wiring.selectors import Selector

__all__ = [
    "FORMAT_NAME",
    "SCHEMA_VERSION",
    "Connectome",
    "DepthDensity",
    "TypeProbability",
    "compute_connectome",
    "compute_connectome_to_store",
    "open_connectome",
    "synapse_density_by_depth",
    "type_probability_matrix",
    "write_connectome",
]

logger = logging.getLogger(__name__)

#: Schema version written by :func:`write_connectome`.
SCHEMA_VERSION = 1
#: Value of the ``format`` attribute of a connectome store.
FORMAT_NAME = "wiring-sbi connectome"


@dataclass(frozen=True, kw_only=True)
class Connectome:
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
    def n_pre(self) -> int:
        """Number of presynaptic neurons (rows)."""
        return len(self.pre)

    @property
    def n_post(self) -> int:
        """Number of postsynaptic neurons (columns)."""
        return len(self.post)

    @property
    def n_connections(self) -> int:
        """Number of connected pairs (at least one synapse)."""
        return int(self.synapses.nnz)

    @property
    def n_synapses(self) -> int:
        """Total number of synapses."""
        return int(self.synapses.data.sum(dtype=np.int64))


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


def _compressors() -> list[Any]:
    import zarr

    return [zarr.codecs.ZstdCodec(level=3)]


def _put(group: Any, name: str, arr: npt.NDArray[Any]) -> None:
    arr = np.ascontiguousarray(arr)
    chunks = tuple(max(1, min(s, 1 << 22)) for s in arr.shape) if arr.ndim else ()
    a = group.create_array(
        name, shape=arr.shape, dtype=arr.dtype, chunks=chunks, compressors=_compressors()
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
    import zarr

    path = Path(path)
    _check_target(path, overwrite=overwrite)
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
        _move_into_place(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote connectome to %s", path)
    return path


class _BlockAppender:
    """Append post-major CSR blocks (m, n_pre) of one matrix to a store group as CSC."""

    def __init__(self, root: Any, name: str, dtype: type[np.generic]) -> None:
        self.group = root.create_group(name)
        chunk = 1 << 22
        self.indices = self.group.create_array(
            "indices", shape=(0,), dtype=np.int32, chunks=(chunk,), compressors=_compressors())
        self.data = self.group.create_array(
            "data", shape=(0,), dtype=dtype, chunks=(chunk,), compressors=_compressors())
        self.dtype = dtype
        self.ptr: list[npt.NDArray[np.int64]] = [np.zeros(1, dtype=np.int64)]
        self.nnz = 0

    def append(self, block: sp.csr_array) -> None:
        k = int(block.nnz)
        self.ptr.append(np.asarray(block.indptr[1:], dtype=np.int64) + self.nnz)
        if k:
            self.indices.resize((self.nnz + k,))
            self.indices[self.nnz :] = np.asarray(block.indices, dtype=np.int32)
            self.data.resize((self.nnz + k,))
            self.data[self.nnz :] = np.asarray(block.data, dtype=self.dtype)
        self.nnz += k

    def finish(self) -> None:
        _put(self.group, "indptr", np.concatenate(self.ptr))


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
) -> Path:
    """Like :func:`compute_connectome`, but write each block to a store as soon as it is done.

    The matrices never exist in memory as a whole: memory is bounded by the (loaded) model plus
    one wave of blocks (4 per worker), whatever the size of the connectome. The store is the
    same as ``write_connectome(compute_connectome(...), path)`` writes, and appears atomically
    (temporary sibling, then rename) once complete. Parameters as for
    :func:`compute_connectome` and :func:`write_connectome`.
    """
    import zarr

    out = Path(path)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    state: dict[str, Any] = {}

    def before_work() -> None:  # arguments are valid: claim the output
        _check_target(out, overwrite=overwrite)
        root = zarr.open_group(tmp, mode="w-", zarr_format=3)
        state["root"] = root
        state["expected"] = _BlockAppender(root, "expected", np.float32)
        state["synapses"] = _BlockAppender(root, "synapses", np.int32)

    def sink(expected: sp.csr_array, synapses: sp.csr_array) -> None:
        state["expected"].append(expected)
        state["synapses"].append(synapses)

    try:
        meta = _compute(model, rule, theta, seed=seed, pre=pre, post=post,
                        block_size=block_size, client=client, workers=workers,
                        autapses=autapses, in_memory=in_memory, progress=progress,
                        before_work=before_work, sink=sink)
        state["expected"].finish()
        state["synapses"].finish()
        _write_meta(state["root"], meta)
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote connectome to %s", out)
    return out


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


def _move_into_place(tmp: Path, path: Path) -> None:
    if not path.exists():
        os.rename(tmp, path)
        return
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except OSError:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def open_connectome(path: str | os.PathLike[str]) -> Connectome:
    """Read and validate a connectome store written by :func:`write_connectome`.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    StoreValidationError
        Not a (complete) connectome store, or arrays with the wrong shape, dtype or indices.
    SchemaVersionError
        Written by an incompatible version.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no connectome store at {path}")
    try:
        root = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as err:  # zarr raises several unrelated types for non-stores
        raise StoreValidationError(f"{path} is not a zarr v3 group: {err}") from err
    attrs = dict(root.attrs)
    if attrs.get("format") != FORMAT_NAME:
        raise StoreValidationError(
            f"{path} is not a connectome store (format {attrs.get('format')!r}, expected "
            f"{FORMAT_NAME!r})"
        )
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has connectome schema version {attrs.get('schema_version')!r}; this "
            f"package reads version {SCHEMA_VERSION}: upgrade the package or recompute it"
        )
    if attrs.get("complete") is not True:
        raise StoreValidationError(
            f"{path} was not completely written (no completion marker); recompute it"
        )

    def read(name: str, dtype: Any, ndim: int) -> Any:
        try:
            arr = root[name]
        except KeyError as err:
            raise StoreValidationError(f"{path}: array {name!r} is missing") from err
        if np.dtype(arr.dtype) != np.dtype(dtype) or len(arr.shape) != ndim:
            raise StoreValidationError(
                f"{path}: array {name!r} has dtype {arr.dtype} and {len(arr.shape)} dims, "
                f"expected {np.dtype(dtype)} with {ndim}"
            )
        return np.asarray(arr[...])

    pre = read("pre", np.int64, 1)
    post = read("post", np.int64, 1)
    mats = {}
    for name, dtype in (("synapses", np.int32), ("expected", np.float32)):
        indptr = read(f"{name}/indptr", np.int64, 1)
        indices = read(f"{name}/indices", np.int32, 1)
        data = read(f"{name}/data", dtype, 1)
        ok = (
            indptr.shape == (len(post) + 1,)
            and indptr[0] == 0
            and indptr[-1] == len(indices) == len(data)
            and np.all(np.diff(indptr) >= 0)
            and (indices.size == 0 or (indices.min() >= 0 and indices.max() < len(pre)))
        )
        if not ok:
            raise StoreValidationError(
                f"{path}: {name} is not a valid CSC matrix of shape ({len(pre)}, {len(post)}) "
                f"(indptr length, ordering or row indices out of range)"
            )
        mats[name] = sp.csc_array((data, indices, indptr), shape=(len(pre), len(post)))
    profile = read("depth/expected_synapses", np.float64, 2)
    edges = read("depth/edges_um", np.float64, 1)
    voxels = read("depth/voxels", np.int64, 1)
    known = {"format", "schema_version", "rule", "theta", "seed", "anatomy_hash",
             "voxel_volume_um3", "complete"}
    try:
        return Connectome(
            synapses=mats["synapses"],
            expected=mats["expected"],
            pre=pre,
            post=post,
            rule=attrs["rule"],
            theta=np.asarray(attrs["theta"], dtype=np.float64),
            seed=int(attrs["seed"]),
            anatomy_hash=str(attrs["anatomy_hash"]),
            depth_profile=profile,
            depth_edges_um=edges,
            voxels_per_bin=voxels,
            voxel_volume_um3=float(attrs["voxel_volume_um3"]),
            attrs={k: v for k, v in attrs.items() if k not in known},
        )
    except (KeyError, ShapeMismatchError) as err:
        raise StoreValidationError(f"{path}: inconsistent connectome store: {err}") from err


# ------------------------------------------------------------------------------- summaries


@dataclass(frozen=True, kw_only=True)
class TypeProbability:
    """Connection probabilities between groups of neurons (cell types or layers).

    Arrays have shape (n_pre_groups, n_post_groups). ``observed`` is the fraction of pairs with
    at least one synapse in this connectome, ``expected`` the mean of ``1 - exp(-lambda)`` (the
    probability the rule gives), ``mean_synapses`` the mean synapse count per pair; all are NaN
    where a group pair has no pairs.
    """

    by: str
    pre_labels: tuple[str, ...]
    post_labels: tuple[str, ...]
    n_pairs: IntArray
    n_connected: IntArray
    observed: FloatArray
    expected: FloatArray
    mean_synapses: FloatArray

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form (NaN becomes None)."""

        def mat(a: npt.NDArray[Any]) -> list[list[Any]]:
            return [[None if isinstance(v, float) and np.isnan(v) else v for v in row]
                    for row in a.tolist()]

        return {
            "by": self.by,
            "pre_labels": list(self.pre_labels),
            "post_labels": list(self.post_labels),
            "n_pairs": mat(self.n_pairs),
            "n_connected": mat(self.n_connected),
            "observed": mat(self.observed),
            "expected": mat(self.expected),
            "mean_synapses": mat(self.mean_synapses),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The JSON text of :meth:`to_dict`; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """Long-format CSV (one row per group pair); also written to ``path`` when given."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["pre", "post", "n_pairs", "n_connected", "observed", "expected",
                    "mean_synapses"])
        for a, pl in enumerate(self.pre_labels):
            for b, ql in enumerate(self.post_labels):
                w.writerow([pl, ql, int(self.n_pairs[a, b]), int(self.n_connected[a, b]),
                            _fmt(self.observed[a, b]), _fmt(self.expected[a, b]),
                            _fmt(self.mean_synapses[a, b])])
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text


def _fmt(v: float) -> str:
    return "" if np.isnan(v) else repr(float(v))


def _check_same_anatomy(conn: Connectome, model: StructuralModel) -> None:
    h = model.attrs.get("content_hash")
    if h and conn.anatomy_hash and h != conn.anatomy_hash:
        raise StoreMismatchError(
            f"the connectome was computed on anatomy {conn.anatomy_hash[:12]}..., not on this "
            f"model ({str(h)[:12]}...); pass the model it was computed from"
        )
    top = int(max(conn.pre.max(initial=-1), conn.post.max(initial=-1)))
    if top >= model.n_neurons:
        raise StoreMismatchError(
            f"the connectome refers to neuron {top} but the model has {model.n_neurons} neurons"
        )


def _groups(model: StructuralModel, by: str) -> tuple[IntArray, tuple[str, ...]]:
    """Group code of every model neuron and the labels, in catalogue order."""
    if by == "cell_type":
        return model.neurons.cell_type.astype(np.int64), CELL_TYPES
    if by == "layer":
        layer = model.neurons.layer.astype(np.int64)
        region = model.neurons.region.astype(np.int64)
        # neurons outside the cortex (layer -1) are grouped by their region, e.g. barreloid
        code = np.where(layer >= 0, layer, len(LAYERS) + region)
        return code, LAYERS + REGIONS
    raise InvalidParameterError(f"by = {by!r} is not allowed; expected 'cell_type' or 'layer'")


def type_probability_matrix(
    conn: Connectome, model: StructuralModel, *, by: Literal["cell_type", "layer"] = "cell_type"
) -> TypeProbability:
    """Connection probability between cell types (or layers) with the number of pairs behind it.

    Only groups present in the pre (rows) and post (columns) selections appear. Pairs of a neuron
    with itself are not counted unless the connectome includes autapses.

    Raises
    ------
    StoreMismatchError
        The connectome was computed on another model.
    """
    _check_same_anatomy(conn, model)
    code, labels = _groups(model, by)
    g_pre_all, g_post_all = code[conn.pre], code[conn.post]
    pre_groups = np.unique(g_pre_all)
    post_groups = np.unique(g_post_all)
    gp = np.searchsorted(pre_groups, g_pre_all)
    gq = np.searchsorted(post_groups, g_post_all)
    na, nb = len(pre_groups), len(post_groups)
    n_pairs = np.outer(np.bincount(gp, minlength=na), np.bincount(gq, minlength=nb))
    if not conn.attrs.get("autapses", False):
        both, ip, iq = np.intersect1d(conn.pre, conn.post, return_indices=True)
        if both.size:
            np.subtract.at(n_pairs, (gp[ip], gq[iq]), 1)

    def by_group(m: sp.csc_array, values: npt.NDArray[Any]) -> FloatArray:
        cols = np.repeat(np.arange(m.shape[1]), np.diff(m.indptr))
        flat = gp[m.indices] * nb + gq[cols]
        out = np.bincount(flat, weights=values, minlength=na * nb).reshape(na, nb)
        return np.asarray(out, dtype=np.float64)

    syn = sp.csc_array(conn.synapses)
    n_conn = by_group(syn, np.ones(syn.nnz)).round().astype(np.int64)
    n_syn = by_group(syn, syn.data.astype(np.float64))
    lam = sp.csc_array(conn.expected)
    p_exp = by_group(lam, -np.expm1(-lam.data.astype(np.float64)))
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.where(n_pairs > 0, n_pairs, np.nan)
        return TypeProbability(
            by=by,
            pre_labels=tuple(labels[int(g)] for g in pre_groups),
            post_labels=tuple(labels[int(g)] for g in post_groups),
            n_pairs=n_pairs.astype(np.int64),
            n_connected=n_conn,
            observed=n_conn / denom,
            expected=p_exp / denom,
            mean_synapses=n_syn / denom,
        )


@dataclass(frozen=True, kw_only=True)
class DepthDensity:
    """Expected synapse density by cortical depth, per postsynaptic cell type.

    ``density_per_mm3`` (n_types, n_bins) is the expected number of synapses onto neurons of a
    type in the voxels of a depth bin divided by the bins' volume; ``expected_synapses`` the
    undivided sums; ``depth_um`` (n_bins,) the bin centers below the pia.
    """

    cell_types: tuple[str, ...]
    depth_um: FloatArray
    density_per_mm3: FloatArray
    expected_synapses: FloatArray


def synapse_density_by_depth(
    conn: Connectome, *, cell_types: Sequence[str] | None = None
) -> DepthDensity:
    """Expected synapse density per depth bin for each postsynaptic cell type of the selection.

    The profile is computed with the connectome (see the module docstring); bins without voxels
    give NaN.
    """
    names = tuple(conn.attrs.get("cell_types", CELL_TYPES))
    wanted = tuple(cell_types) if cell_types is not None else tuple(
        conn.attrs.get("post_cell_types", names)
    )
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise InvalidParameterError(
            f"unknown cell type(s) {unknown}; known cell types are {', '.join(names)}"
        )
    rows = [names.index(c) for c in wanted]
    syn = conn.depth_profile[rows]
    vol_mm3 = conn.voxels_per_bin * conn.voxel_volume_um3 * 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        density = syn / np.where(vol_mm3 > 0, vol_mm3, np.nan)
    edges = conn.depth_edges_um
    return DepthDensity(
        cell_types=wanted,
        depth_um=0.5 * (edges[:-1] + edges[1:]),
        density_per_mm3=density,
        expected_synapses=syn,
    )
