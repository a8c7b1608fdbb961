"""The structural-model zarr v3 store: atomic writes, validated lazy reads and dask block views.

A :class:`~anatomy.model.StructuralModel` is stored as one zarr v3 group laid out as described in
:mod:`anatomy.schema`: neuron attribute arrays, ``pre`` and ``post`` as voxel-major (CSC) sparse
counts chunked by voxel blocks, ``post_all``, optional ``voxel_depth_um`` and source-defined
populations. Every vocabulary the codes refer to is written into the store, so a reader never
depends on the order of :mod:`anatomy.catalogue`.

Guarantees:

- :func:`write_model` is atomic. It writes into a hidden sibling directory, writes the completion
  marker last, validates the result and only then renames it into place. Without ``overwrite`` an
  existing path is never touched; with it the old store is replaced only once the new one is
  complete. An exception or a kill at any point never leaves a store at ``path`` that opens.
- :func:`open_model` refuses stores without the completion marker and, by default, validates
  everything (:func:`validate_model`), streaming voxel blocks so memory is bounded by the block.
  ``pre`` and ``post`` stay on disk: :class:`~anatomy.model.VoxelMajorCounts` reads a voxel block
  at a time from the zarr arrays.
- :func:`voxel_blocks` partitions the voxels into blocks aligned to the store's chunks;
  :func:`to_dask` and :func:`to_dask_array` give lazy dask views with one task per block.

Examples
--------
>>> import tempfile, pathlib
>>> from anatomy.store import open_model, write_model
>>> # path = write_model(model, pathlib.Path(tempfile.mkdtemp()) / "model.zarr")
>>> # model = open_model(path)   # validated, pre/post lazily backed by zarr
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy import schema as S
from anatomy._store_check import (
    _REBUILD_HINT,
    POST_ALL_RTOL,
    TARGET_BLOCK_ENTRIES,
    _check_castable,
    _read,
    validate_model,
    voxel_blocks,
)
from anatomy._store_digest import ATTR_CHUNK_DIGESTS, check_chunk_digests, chunk_digests
from anatomy.atomic import move_into_place
from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.errors import SchemaVersionError, StoreExistsError, StoreValidationError
from anatomy.grid import VoxelGrid
from anatomy.model import NeuronPopulation, Neurons, StructuralModel, VoxelMajorCounts
from anatomy.storeguard import refuse_foreign, remove_leftovers, store_lock

if TYPE_CHECKING:
    import zarr

__all__ = [
    "POST_ALL_RTOL",
    "TARGET_BLOCK_ENTRIES",
    "content_hash",
    "is_anatomy_store",
    "open_model",
    "to_dask",
    "to_dask_array",
    "validate_model",
    "voxel_blocks",
    "write_model",
]

logger = logging.getLogger(__name__)

#: zstd level of every array. Inside blosc with a byte shuffle, level 1 writes 2-5x faster than
#: plain zstd level 3 and compresses better (column model: indices 3.9x, data 6.1x smaller).
_ZSTD_LEVEL = 1
#: Entries written per slab (bounded memory when the source is itself lazy).
_WRITE_SLAB_ENTRIES = 1 << 24
_MAX_NEURON_CHUNK = 1 << 20


def content_hash(model: StructuralModel) -> str:
    """Sha256 hex digest over the model's arrays (see :func:`anatomy.hashing.content_hash`)."""
    from anatomy.hashing import content_hash as _content_hash

    return _content_hash(model)


# ------------------------------------------------------------------------------------ writing


def write_model(
    model: StructuralModel,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunk_voxels: int | None = None,
) -> Path:
    """Write ``model`` atomically to a zarr v3 store at ``path``.

    Parameters
    ----------
    model
        The structural model. ``pre``/``post`` may be in memory or lazily backed (e.g. another
        store); they are copied a slab at a time.
    path
        Target directory (conventionally ``*.zarr``).
    overwrite
        Replace an existing store at ``path``. The old store is moved aside only after the new one
        is complete and valid, and deleted after the new one is in place. A path that exists but
        is not a zarr store is never replaced.
    chunk_voxels
        Voxels per chunk of ``indptr`` (the voxel block of :func:`voxel_blocks`). Default: as many
        voxels as hold about :data:`TARGET_BLOCK_ENTRIES` entries on average.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    StoreExistsError
        ``path`` exists and ``overwrite`` is false (or ``path`` is not a zarr store).
    StoreValidationError
        The model violates the schema (dtype that cannot be cast losslessly, NaN or negative
        count, unsorted indices, ``post_all`` below the column sums of ``post``, ...). Nothing is
        left behind.
    """
    path = Path(path)
    _check_target(path, overwrite=overwrite)
    if chunk_voxels is not None and (int(chunk_voxels) != chunk_voxels or chunk_voxels < 1):
        raise StoreValidationError(
            f"chunk_voxels must be a positive integer, got {chunk_voxels!r}"
        )
    v = model.n_voxels
    if chunk_voxels is None:
        nnz = max(model.pre.nnz, model.post.nnz, 1)
        chunk_voxels = int(np.clip(round(v * TARGET_BLOCK_ENTRIES / nnz), 1, v))
    chunk_voxels = min(int(chunk_voxels), v)
    attrs = _json_native(dict(model.attrs), "model.attrs")
    for name, pop in model.populations.items():  # cheap checks before any expensive work
        _check_population_name(name)
        _json_native(dict(pop.attrs), f"population {name!r} attrs")
    attrs["content_hash"] = content_hash(model)
    if model.attrs.get("content_hash") not in (None, attrs["content_hash"]):
        logger.warning(
            "model.attrs['content_hash'] %s does not match the arrays; writing %s",
            model.attrs["content_hash"],
            attrs["content_hash"],
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    with store_lock(path, what="structural-model store"):
        remove_leftovers(path)
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            _write_group(model, tmp, attrs=attrs, chunk_voxels=chunk_voxels)
            open_model(tmp, validate=True)
            _move_into_place(tmp, path, overwrite=overwrite)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    logger.info("wrote structural model to %s (hash %s)", path, attrs["content_hash"][:12])
    return path


def _check_target(path: Path, *, overwrite: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise StoreExistsError(
            f"{path} already exists; choose another output path or pass overwrite=True "
            "(--overwrite) to replace it"
        )
    if not is_anatomy_store(path):
        raise refuse_foreign(path, "a structural-model store")


def is_anatomy_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zarr group with this package's structural-model ``format``
    attribute (complete or not): the only kind of directory ``overwrite`` may replace."""
    import json

    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return False
    try:
        meta = json.loads((p / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("attributes", {}).get(S.ATTR_FORMAT) == S.FORMAT_NAME


def _move_into_place(tmp: Path, path: Path, *, overwrite: bool) -> None:
    _check_target(path, overwrite=overwrite)
    move_into_place(tmp, path)


def _compressors() -> list[Any]:
    """zstd inside blosc (byte shuffle groups the bytes of each number), then a crc32c checksum
    so a damaged chunk file fails loudly instead of decoding to wrong counts."""
    from zarr.codecs import BloscCodec, Crc32cCodec

    return [BloscCodec(cname="zstd", clevel=_ZSTD_LEVEL, shuffle="shuffle"), Crc32cCodec()]


def _create(
    group: zarr.Group, name: str, values: npt.ArrayLike, dtype: np.dtype[Any], chunks: tuple[int, ...]
) -> None:
    arr = _cast(name, np.asarray(values), dtype)
    z = group.create_array(
        name,
        shape=arr.shape,
        chunks=tuple(max(1, c) for c in chunks),
        dtype=dtype,
        compressors=_compressors(),
        config={"write_empty_chunks": True},
    )
    if arr.size:
        z[...] = arr


def _cast(name: str, arr: npt.NDArray[Any], dst: np.dtype[Any]) -> npt.NDArray[Any]:
    """``arr`` as ``dst``; lossy float casts and integers out of ``dst``'s range are refused."""
    _check_castable(name, arr.dtype, dst)
    if arr.dtype.kind in "iu" and arr.dtype != dst and arr.size:
        info = np.iinfo(dst)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise StoreValidationError(
                f"{name} holds {bad}, outside the range {info.min}..{info.max} of its stored "
                f"dtype {dst}"
            )
    return arr.astype(dst, copy=False)


def _write_group(
    model: StructuralModel, tmp: Path, *, attrs: dict[str, Any], chunk_voxels: int
) -> None:
    import zarr

    root = zarr.open_group(tmp, mode="w-", zarr_format=3)
    # identify the store first, so a partial one reads as incomplete (no marker), not foreign
    root.attrs.update({S.ATTR_FORMAT: S.FORMAT_NAME, S.ATTR_SCHEMA_VERSION: S.SCHEMA_VERSION})
    n, v = model.n_neurons, model.n_voxels
    arrays: list[str] = []
    neurons = model.neurons
    nchunk = max(1, min(n, _MAX_NEURON_CHUNK))
    for name in S.NEURON_ARRAYS:
        key = S.neuron_array(name)
        values = getattr(neurons, name)
        chunks = (nchunk, 3) if name == "soma_um" else (nchunk,)
        _create(root, key, values, S.DTYPES[key], chunks)
        arrays.append(key)
    counts_attrs: dict[str, Any] = {}
    for cname in S.COUNTS:
        counts: VoxelMajorCounts = getattr(model, cname)
        counts_attrs[cname] = _write_counts(root, cname, counts, chunk_voxels=chunk_voxels)
        arrays += [S.counts_array(cname, a) for a in S.COUNT_ARRAYS]
    vchunk = max(1, min(v, 1 << 22))
    _create(root, S.POST_ALL, model.post_all, S.DTYPES[S.POST_ALL], (vchunk,))
    arrays.append(S.POST_ALL)
    if model.voxel_depth_um is not None:
        _create(root, S.VOXEL_DEPTH, model.voxel_depth_um, S.DTYPES[S.VOXEL_DEPTH], (vchunk,))
        arrays.append(S.VOXEL_DEPTH)
    pop_names = list(model.populations)
    for name, pop in model.populations.items():
        _check_population_name(name)
        gname = f"{S.POPULATIONS}/{name}"
        group = root.require_group(gname)
        group.attrs.update(_json_native(dict(pop.attrs), f"population {name!r} attrs"))
        sides = S.POPULATION_ARRAYS + (
            S.POPULATION_PAIR_ARRAYS if pop.pair_pre is not None else ())
        for side in sides:
            values = np.asarray(getattr(pop, side))
            key = f"{gname}/{side}"
            _create(root, key, values, S.DTYPES[f"{S.POPULATIONS}/*/{side}"],
                    (max(len(values), 1),))
            arrays.append(key)
    root.attrs.update(
        {
            S.ATTR_GRID: model.grid.to_dict(),
            S.ATTR_VOCABULARIES: {
                "cell_types": list(CELL_TYPES),
                "layers": list(LAYERS),
                "regions": list(REGIONS),
                "column_names": list(neurons.column_names),
            },
            S.ATTR_MODEL: attrs,
            S.ATTR_COUNTS: counts_attrs,
            S.ATTR_POPULATIONS: pop_names,
            "arrays": arrays,
        }
    )
    # seal the content: the chunk checksums of every array, with the content hash
    root.attrs.update({ATTR_CHUNK_DIGESTS: {"content_hash": attrs.get("content_hash"),
                                            "arrays": chunk_digests(tmp, arrays)}})
    # the completion marker goes last: a store without it never opens
    root.attrs.update({S.ATTR_COMPLETE: True})


def _write_counts(
    root: zarr.Group, cname: str, counts: VoxelMajorCounts, *, chunk_voxels: int
) -> dict[str, Any]:
    v = counts.shape[1]
    indptr = np.asarray(counts.indptr[:], dtype=None)
    if indptr.shape != (v + 1,):
        raise StoreValidationError(
            f"{cname}/indptr has shape {indptr.shape}, expected (voxels + 1,) = ({v + 1},)"
        )
    nnz = int(indptr[-1])
    n_blocks = max(1, math.ceil(v / chunk_voxels))
    chunk_entries = max(1, math.ceil(nnz / n_blocks))
    _create(root, S.counts_array(cname, "indptr"), indptr, S.DTYPES[f"{cname}/indptr"],
            (chunk_voxels + 1 if n_blocks == 1 else chunk_voxels,))
    for aname in ("indices", "data"):
        key = S.counts_array(cname, aname)
        src = getattr(counts, aname)
        src_dtype = np.dtype(src.dtype)
        _check_castable(key, src_dtype, S.DTYPES[key])
        if src.shape[0] != nnz:
            raise StoreValidationError(
                f"{key} has {src.shape[0]} entries, expected {cname}/indptr[-1] = {nnz}"
            )
        z = root.create_array(
            key,
            shape=(nnz,),
            chunks=(chunk_entries,),
            dtype=S.DTYPES[key],
            compressors=_compressors(),
            config={"write_empty_chunks": True},
        )
        slab = chunk_entries * max(1, _WRITE_SLAB_ENTRIES // chunk_entries)
        for lo in range(0, nnz, slab):
            hi = min(nnz, lo + slab)
            z[lo:hi] = _cast(key, np.asarray(src[lo:hi]), S.DTYPES[key])
    return {
        "shape": [int(s) for s in counts.shape],
        "nnz": nnz,
        "chunk_voxels": int(chunk_voxels),
        "chunk_entries": int(chunk_entries),
    }


def _check_population_name(name: str) -> None:
    if not name or "/" in name or name.startswith((".", "__")) or name != name.strip():
        raise StoreValidationError(
            f"population name {name!r} cannot be a zarr node name; use a non-empty name "
            "without '/', leading '.' or '__' and surrounding spaces"
        )


def _json_native(obj: Any, where: str) -> Any:
    """Convert numpy scalars and tuples to JSON-native values; reject anything else."""
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise StoreValidationError(f"{where}: key {k!r} is not a string; attrs need str keys")
            out[k] = _json_native(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, list | tuple):
        return [_json_native(v, where) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise StoreValidationError(f"{where} = {obj!r} is not finite; JSON attrs need finite numbers")
        return obj
    raise StoreValidationError(
        f"{where} = {obj!r} ({type(obj).__name__}) is not JSON-native; attrs may hold only "
        "dicts, lists, str, int, float, bool and None"
    )


# ------------------------------------------------------------------------------------ reading


def open_model(path: str | os.PathLike[str], *, validate: bool = True) -> StructuralModel:
    """Open a structural-model store; ``pre``/``post`` stay on disk and are read lazily.

    Parameters
    ----------
    path
        A store written by :func:`write_model`.
    validate
        Check every array (:func:`validate_model`, streamed by voxel block) and that no chunk
        file is missing. Without it, only the metadata, dtypes and shapes are checked.

    Raises
    ------
    FileNotFoundError
        Nothing exists at ``path``.
    SchemaVersionError
        The store's schema version is not one this package reads.
    StoreValidationError
        The store is incomplete, truncated or violates the schema; the message names the array.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no structural-model store at {path}; build one with `wiring anatomy build`"
        )
    try:
        root = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as err:
        raise StoreValidationError(
            f"{path} is not a zarr v3 group ({type(err).__name__}: {err}); expected a store "
            "written by anatomy.store.write_model"
        ) from err
    attrs = root.attrs.asdict()
    if attrs.get(S.ATTR_FORMAT) != S.FORMAT_NAME:
        raise StoreValidationError(
            f"{path} has format attribute {attrs.get(S.ATTR_FORMAT)!r}, expected "
            f"{S.FORMAT_NAME!r}: it is not a structural-model store"
        )
    version = attrs.get(S.ATTR_SCHEMA_VERSION)
    if isinstance(version, bool) or version not in S.SUPPORTED_SCHEMA_VERSIONS:
        raise SchemaVersionError(
            f"{path} has schema_version {version!r}; this package reads versions "
            f"{sorted(S.SUPPORTED_SCHEMA_VERSIONS)}: upgrade the package or rewrite the store"
        )
    if attrs.get(S.ATTR_COMPLETE) is not True:
        raise StoreValidationError(
            f"{path} has no completion marker (attribute {S.ATTR_COMPLETE!r}): it was not "
            "completely written; delete it and write it again"
        )
    grid = VoxelGrid.from_dict(_attr(attrs, S.ATTR_GRID, dict, path))
    listed = _attr(attrs, "arrays", list, path)
    arrays = {name: _open_array(root, name, path) for name in listed}
    required = [S.neuron_array(a) for a in S.NEURON_ARRAYS] + [
        S.counts_array(c, a) for c in S.COUNTS for a in S.COUNT_ARRAYS
    ] + [S.POST_ALL]
    for name in required:
        if name not in arrays:
            arrays[name] = _open_array(root, name, path)
    for name, arr in arrays.items():
        expected = S.DTYPES[_dtype_key(name)]
        if arr.dtype != expected:
            raise StoreValidationError(
                f"{path}: array {name} has dtype {arr.dtype}, expected {expected}; {_REBUILD_HINT}"
            )
    if validate:
        for name, arr in arrays.items():
            _check_chunks_present(arr, name, path)

    neurons = _read_neurons(arrays, _attr(attrs, S.ATTR_VOCABULARIES, dict, path), path)
    n, v = len(neurons), grid.n_voxels
    counts = {}
    for cname in S.COUNTS:
        parts = [arrays[S.counts_array(cname, a)] for a in S.COUNT_ARRAYS]
        if parts[0].shape != (v + 1,):
            raise StoreValidationError(
                f"{path}: array {cname}/indptr has shape {parts[0].shape}, expected "
                f"(voxels + 1,) = ({v + 1},); {_REBUILD_HINT}"
            )
        if parts[1].shape != parts[2].shape or parts[1].ndim != 1:
            raise StoreValidationError(
                f"{path}: arrays {cname}/indices {parts[1].shape} and {cname}/data "
                f"{parts[2].shape} must be 1-d of equal length; {_REBUILD_HINT}"
            )
        counts[cname] = VoxelMajorCounts(*parts, shape=(n, v), name=cname)
    post_all = _read(arrays[S.POST_ALL], S.POST_ALL, path)
    depth = _read(arrays[S.VOXEL_DEPTH], S.VOXEL_DEPTH, path) if S.VOXEL_DEPTH in arrays else None
    populations = {}
    for name in _attr(attrs, S.ATTR_POPULATIONS, list, path):
        gname = f"{S.POPULATIONS}/{name}"
        pre, post = (
            _read(
                arrays[f"{gname}/{s}"] if f"{gname}/{s}" in arrays
                else _open_array(root, f"{gname}/{s}", path),
                f"{gname}/{s}",
                path,
            )
            for s in S.POPULATION_ARRAYS
        )
        group = root[gname]
        listed = [
            _read(arrays[f"{gname}/{s}"], f"{gname}/{s}", path)
            for s in S.POPULATION_PAIR_ARRAYS if f"{gname}/{s}" in arrays
        ]
        pair_pre, pair_post = listed if len(listed) == 2 else (None, None)
        populations[str(name)] = NeuronPopulation(
            pre=pre, post=post, attrs=group.attrs.asdict(), pair_pre=pair_pre,
            pair_post=pair_post)
    model = StructuralModel(
        grid=grid,
        neurons=neurons,
        pre=counts["pre"],
        post=counts["post"],
        post_all=post_all,
        attrs=_attr(attrs, S.ATTR_MODEL, dict, path),
        voxel_depth_um=depth,
        populations=populations,
    )
    if validate:
        validate_model(model)
    # last: a store that passes every check above may still have been changed in place
    check_chunk_digests(path, attrs, _attr(attrs, "arrays", list, path))
    return model


def _attr(attrs: Mapping[str, Any], key: str, kind: type, path: Path) -> Any:
    value = attrs.get(key)
    if not isinstance(value, kind):
        raise StoreValidationError(
            f"{path}: root attribute {key!r} is {value!r}, expected a {kind.__name__}; "
            f"{_REBUILD_HINT}"
        )
    return value


def _dtype_key(name: str) -> str:
    if name.startswith(f"{S.POPULATIONS}/"):
        return f"{S.POPULATIONS}/*/{name.rsplit('/', 1)[1]}"
    return name


def _open_array(root: zarr.Group, name: str, path: Path) -> zarr.Array:
    import zarr

    try:
        arr = root[name]
    except Exception as err:
        raise StoreValidationError(
            f"{path}: array {name} is missing (the store is truncated); {_REBUILD_HINT}"
        ) from err
    if not isinstance(arr, zarr.Array):
        raise StoreValidationError(f"{path}: {name} is a group, expected an array; {_REBUILD_HINT}")
    return arr


def _check_chunks_present(arr: zarr.Array, name: str, path: Path) -> None:
    expected, present = arr.nchunks, arr.nchunks_initialized
    if present < expected:
        raise StoreValidationError(
            f"{path}: array {name} has {present} of {expected} chunk files (the store is "
            f"truncated); {_REBUILD_HINT}"
        )


def _read_neurons(arrays: Mapping[str, Any], vocab: Mapping[str, Any], path: Path) -> Neurons:
    values = {a: _read(arrays[S.neuron_array(a)], S.neuron_array(a), path) for a in S.NEURON_ARRAYS}
    for key in S.VOCABULARY_KEYS:
        if not (isinstance(vocab.get(key), list) and all(isinstance(s, str) for s in vocab[key])):
            raise StoreValidationError(
                f"{path}: vocabularies.{key} is {vocab.get(key)!r}, expected a list of names; "
                f"{_REBUILD_HINT}"
            )
    for key, array, current in (
        ("cell_types", "cell_type", CELL_TYPES),
        ("layers", "layer", LAYERS),
        ("regions", "region", REGIONS),
    ):
        values[array] = _recode(values[array], vocab[key], current, key, array, path)
    n = len(values["cell_type"])
    for a in S.NEURON_ARRAYS:
        want = (n, 3) if a == "soma_um" else (n,)
        if values[a].shape != want:
            raise StoreValidationError(
                f"{path}: array neurons/{a} has shape {values[a].shape}, expected {want} like "
                f"neurons/cell_type; {_REBUILD_HINT}"
            )
    return Neurons(**values, column_names=tuple(vocab["column_names"]))


def _recode(
    codes: npt.NDArray[Any],
    stored: list[str],
    current: tuple[str, ...],
    key: str,
    array: str,
    path: Path,
) -> npt.NDArray[Any]:
    """Map codes into the stored vocabulary onto codes into this package's vocabulary."""
    if list(stored) == list(current):
        return codes
    unknown = [s for s in stored if s not in current]
    if unknown:
        raise StoreValidationError(
            f"{path}: vocabularies.{key} holds {unknown!r}, unknown to this package "
            f"(known: {', '.join(current)}); upgrade the package"
        )
    # lookup[code + 1]: code -1 (none) stays -1; codes past the vocabulary stay invalid
    lookup = np.array([-1] + [current.index(s) for s in stored], dtype=np.int64)
    bad = (codes < -1) | (codes >= len(stored))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StoreValidationError(
            f"{path}: neurons/{array}[{i}] = {int(codes[i])} is not a valid code into "
            f"vocabularies.{key} (0..{len(stored) - 1})"
        )
    return lookup[codes.astype(np.int64) + 1].astype(codes.dtype)


# --------------------------------------------------------------------------------- dask views


def _block(counts: VoxelMajorCounts, start: int, stop: int) -> sp.csc_array:
    return counts.voxel_block(start, stop)


def to_dask(counts: VoxelMajorCounts, block_voxels: int | None = None) -> list[Any]:
    """Lazy per-block views: one ``dask.delayed`` task per voxel block of :func:`voxel_blocks`.

    Each task computes ``counts.voxel_block(start, stop)``, a ``scipy.sparse.csc_array`` of
    shape (N, stop - start), reading one contiguous range of the store.

    Returns
    -------
    list of dask.delayed.Delayed
        In voxel order; ``[(start, stop)]`` is ``voxel_blocks(counts, block_voxels)``.
    """
    import dask

    token = uuid.uuid4().hex[:8]
    return [
        dask.delayed(_block, pure=True)(
            counts, a, b, dask_key_name=f"{counts.name}-voxels-{a}-{b}-{token}"
        )
        for a, b in voxel_blocks(counts, block_voxels)
    ]


def _block_coo(counts: VoxelMajorCounts, start: int, stop: int) -> Any:
    import sparse

    return sparse.COO.from_scipy_sparse(counts.voxel_block(start, stop))


def to_dask_array(counts: VoxelMajorCounts, block_voxels: int | None = None) -> Any:
    """The N × V counts as a lazy ``dask.array.Array`` with ``sparse.COO`` chunks.

    Chunks are ``(N, block)`` for the voxel blocks of :func:`voxel_blocks`; computing one chunk
    reads one contiguous range of the store.
    """
    import dask.array as da
    import sparse

    n = counts.shape[0]
    blocks = voxel_blocks(counts, block_voxels)
    name = f"{counts.name}-voxel-blocks-{uuid.uuid4().hex[:8]}"
    graph = {(name, 0, i): (_block_coo, counts, a, b) for i, (a, b) in enumerate(blocks)}
    meta = sparse.COO.from_numpy(np.zeros((0, 0), dtype=np.float32))
    chunks = ((n,), tuple(b - a for a, b in blocks))
    return da.Array(graph, name, chunks=chunks, dtype=np.float32, meta=meta)
