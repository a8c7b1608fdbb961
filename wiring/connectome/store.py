"""The connectome store: read a written connectome back, whole or block by block.

The root attributes (rule, θ, seed, anatomy hash, selectors, ...) say what the matrices are;
they live in the group's ``zarr.json``, which a text editor changes easily. The writer therefore
seals them: the ``pre`` array's attribute ``attrs_digest`` (another file) holds a sha256 of
each root attribute (:func:`wiring._seal.field_digests`, the function that also seals simulation
stores and posterior manifests), and opening a store refuses one whose attributes no longer
match, naming them. Stores written before the seal existed have no ``attrs_digest`` and open
unchecked (:attr:`ConnectomeStore.sealed` is False; ``wiring connectome info`` says so). Like
every seal of the package this catches edits and mix-ups, not a deliberate forgery of both
files.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.atomic import move_into_place
from anatomy.errors import SchemaVersionError
from anatomy.model import StructuralModel
from anatomy.storeguard import remove_leftovers, store_lock
from wiring._seal import changed_fields
from wiring._typing import FloatArray, IntArray
from wiring.connectome.compute import (
    ATTRS_SEAL,
    BLOCK_ENTRIES,
    FORMAT_NAME,
    SCHEMA_VERSION,
    Connectome,
    ConnectomeBlock,
    _BackgroundWriter,
    _BlockAppender,
    _check_target,
    _column_blocks,
    _compute,
    _put,
    _Shape,
    _write_meta,
)
from wiring.errors import ConnectomeStoreError, ShapeMismatchError
from wiring.measurements.selectors import Selector
from wiring.rules.base import WiringRule

__all__ = [
    "ConnectomeStore",
    "compute_connectome_to_store",
    "open_connectome",
    "write_connectome",
]

logger = logging.getLogger(__name__)


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
    ConnectomeStoreError
        Not a (complete) connectome store; missing arrays, wrong dtypes or shapes, a broken
        ``indptr``; root attributes changed after the store was written (they no longer match
        its seal). Row indices are checked as the blocks are read.
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
            raise ConnectomeStoreError(f"{self.path} is not a zarr v3 group: {err}") from err
        attrs = dict(self._root.attrs)
        if attrs.get("format") != FORMAT_NAME:
            raise ConnectomeStoreError(
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
            raise ConnectomeStoreError(
                f"{self.path} was not completely written (no completion marker); recompute it"
            )
        #: Whether the attributes carry a seal (False: written before seals existed).
        self.sealed: bool = _check_attrs_seal(self.path, self._root, attrs)
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
                raise ConnectomeStoreError(
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
            raise ConnectomeStoreError(
                f"{self.path}: inconsistent connectome store: attribute {err} missing or invalid"
            ) from err
        self.attrs: Mapping[str, Any] = {k: v for k, v in attrs.items() if k not in known}

    def _array(self, name: str, dtype: Any, ndim: int) -> Any:
        try:
            arr = self._root[name]
        except KeyError as err:
            raise ConnectomeStoreError(f"{self.path}: array {name!r} is missing") from err
        if np.dtype(arr.dtype) != np.dtype(dtype) or len(arr.shape) != ndim:
            raise ConnectomeStoreError(
                f"{self.path}: array {name!r} has dtype {arr.dtype} and {len(arr.shape)} dims, "
                f"expected {np.dtype(dtype)} with {ndim}"
            )
        return arr

    def _read(self, name: str, dtype: Any, ndim: int, sl: slice | None = None) -> Any:
        arr = self._array(name, dtype, ndim)
        try:
            return np.asarray(arr[...] if sl is None else arr[sl])
        except Exception as err:  # a deleted or corrupt chunk (truncated store)
            raise ConnectomeStoreError(
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
            raise ConnectomeStoreError(
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
            raise ConnectomeStoreError(
                f"{self.path}: inconsistent connectome store: {err}") from err


def _check_attrs_seal(path: Path, root: Any, attrs: Mapping[str, Any]) -> bool:
    """Refuse a store whose root attributes differ from the seal written with them; return
    whether there is a seal (stores written before it existed have none)."""
    try:
        sealed = dict(root["pre"].attrs).get(ATTRS_SEAL)
    except KeyError:  # no 'pre' array: reported as a missing array by the caller
        return False
    if sealed is None:
        return False
    if not isinstance(sealed, dict) or not all(isinstance(v, str) for v in sealed.values()):
        raise ConnectomeStoreError(
            f"{path}: the seal of its attributes (attribute {ATTRS_SEAL!r} of array 'pre') is "
            f"damaged; the store cannot be trusted: recompute it"
        )
    changed = changed_fields(sealed, {k: v for k, v in attrs.items() if k != "complete"})
    if changed:
        names = ", ".join(repr(k) for k in changed)
        raise ConnectomeStoreError(
            f"{path}: attribute{'s' if len(changed) > 1 else ''} {names} changed after the "
            f"store was written (no longer matching the seal in array 'pre'); the matrices "
            f"were not computed with the edited values: restore the original attributes or "
            f"recompute the connectome"
        )
    return True


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
    ConnectomeStoreError
        Not a (complete) connectome store, or arrays with the wrong shape, dtype or indices.
    SchemaVersionError
        Written by an incompatible version.
    """
    store = ConnectomeStore(path)
    return store if lazy else store.load()


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
        _write_connectome(conn, path)
    logger.info("wrote connectome to %s", path)
    return path


def _write_connectome(conn: Connectome, path: Path) -> None:
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
