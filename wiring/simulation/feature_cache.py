"""Cached feature extraction: the zarr cache entry of a feature bundle, written atomically and
memory-mapped when read back (see :mod:`wiring.simulation.features` for the layout).

Concurrent writers of one entry are allowed ("first one wins"): each writes a temporary
sibling ``.tmp-features-<key>.zarr-<random>`` and renames it into place. While it writes, it
holds an OS lock (``fcntl.flock``) on ``<temporary>.lock``; the kernel releases the lock when
the writer exits however it exits, so a temporary whose lock can be taken belongs to a writer
that is gone (killed, out of memory) and is removed by the next extraction into the cache.
Temporaries of live writers are never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from anatomy.model import StructuralModel
from anatomy.storeguard import try_lock
from wiring.errors import ShapeMismatchError, WiringError
from wiring.pairs import PairTable
from wiring.rules.base import VOXEL_FEATURES
from wiring.simulation.features import (
    _FORMAT,
    _ROW_ARRAYS,
    FEATURES_SCHEMA_VERSION,
    FeatureBundle,
    _checked_pairs,
    _extract,
    feature_cache_key,
)

__all__ = [
    "extract_feature_bundle",
    "extract_features",
    "open_feature_bundle",
    "remove_stale_temporaries",
]

logger = logging.getLogger(__name__)


def extract_feature_bundle(
    model: StructuralModel,
    mset: Any,
    *,
    slice_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    client: Any = None,
    progress: bool = False,
    block_voxels: int | None = None,
    max_bytes: int | None = 4 * 2**30,
) -> FeatureBundle:
    """Pair features of every measurement of ``mset`` as one concatenated, cached table.

    Parameters
    ----------
    model
        The structural model.
    mset
        A :class:`wiring.measurements.MeasurementSet`.
    slice_config
        :class:`wiring.measurements.SliceConfig` for slice-protocol measurements (None: default).
    cache_dir
        Directory of the feature cache (created if missing); None computes without caching.
    client
        A ``distributed.Client`` to run the voxel-block tasks on; None uses dask's threads.
    progress
        Show a progress bar over voxel blocks.
    block_voxels
        Voxels per dask task (default: chosen for a few million rows per task).
    max_bytes
        Refuse to build a table larger than this (counted first, in one pass over the voxel
        indices); None for no limit. Extraction holds about 2.5 times the table in memory.

    Returns
    -------
    FeatureBundle
        Memory-mapped from the cache when ``cache_dir`` is given.

    Raises
    ------
    WiringError
        The table would exceed ``max_bytes`` (use :class:`FactoredFeatures` through
        ``Simulator(..., representation="factored")`` instead).
    """
    if cache_dir is None:
        return _extract(
            model, _checked_pairs(model, mset, slice_config, max_bytes),
            client=client, progress=progress, block_voxels=block_voxels,
        )
    key, desc = feature_cache_key(model, mset, slice_config=slice_config)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(cache)
    path = cache / f"features-{key[:32]}.zarr"
    if path.exists():
        try:
            bundle = open_feature_bundle(path, key=key)
            logger.info("pair features: reusing cache entry %s", path)
            return bundle
        except WiringError as err:
            logger.warning("pair features: cache entry %s is corrupt (%s); rebuilding", path, err)
            _remove(path)
    bundle = _extract(
        model, _checked_pairs(model, mset, slice_config, max_bytes),
        client=client, progress=progress, block_voxels=block_voxels,
    )
    _write_atomic(bundle, path, key=key, desc=desc)
    return open_feature_bundle(path, key=key)


def extract_features(
    model: StructuralModel,
    mset: Any,
    *,
    slice_config: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    client: Any = None,
    progress: bool = False,
    max_bytes: int | None = 4 * 2**30,
    rule_features: Sequence[str] | None = None,
) -> list[PairTable]:
    """Pair table of every eligible pair of each measurement of ``mset``, in set order.

    See :func:`extract_feature_bundle` for the parameters; every table's row arrays are views
    into one (possibly memory-mapped) bundle. Pairs sharing no voxel have zero rows. All row
    features (:data:`~wiring.rules.base.VOXEL_FEATURES`) and pair features (``n_shared``,
    ``soma_distance_um``) are always extracted; ``rule_features`` only checks that the features
    a rule needs are among them.

    Raises
    ------
    WiringError
        ``rule_features`` names a feature that is not extracted.
    """
    if rule_features is not None:
        known = (*VOXEL_FEATURES, "n_shared", "soma_distance_um")
        unknown = [f for f in rule_features if f not in known]
        if unknown:
            raise WiringError(
                f"feature(s) {unknown} are not extracted; pair tables provide {list(known)}"
            )
    return extract_feature_bundle(
        model, mset, slice_config=slice_config, cache_dir=cache_dir, client=client,
        progress=progress, max_bytes=max_bytes,
    ).tables()


# --------------------------------------------------------------------------------------------
# the zarr cache entry
# --------------------------------------------------------------------------------------------
def _remove(path: Path) -> None:
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        path.rename(trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _crc(arr: npt.NDArray[Any]) -> int:
    buf: Any = np.ascontiguousarray(arr)
    return zlib.crc32(memoryview(buf).cast("B")) & 0xFFFFFFFF


def _arrays_of(bundle: FeatureBundle) -> dict[str, npt.NDArray[Any]]:
    return {
        "pair_offsets": bundle.pair_offsets,
        "pre": bundle.pre,
        "post": bundle.post,
        "indptr": bundle.indptr,
        "voxel": bundle.voxel,
        "soma_distance_um": bundle.soma_distance_um,
        **{name: bundle.rows[name] for name in VOXEL_FEATURES},
    }


#: Prefixes of the temporaries of the feature cache (written entries, entries being removed).
_TMP_PREFIX = ".tmp-features-"
_TRASH_PREFIX = ".trash-features-"
_LOCK_SUFFIX = ".lock"
#: Names of the temporaries this process is writing. flock conflicts between open files of one
#: process too, but on NFS it is emulated with POSIX locks, which do not: these are skipped.
_OWN: set[str] = set()
_OWN_GUARD = threading.Lock()


def _release(lock: Path, fd: int) -> None:
    """Remove ``lock`` while still holding it, then release it (see :func:`anatomy.storeguard.try_lock`)."""
    with contextlib.suppress(OSError):
        os.unlink(lock)
    os.close(fd)


@contextlib.contextmanager
def _writing(tmp: Path) -> Iterator[None]:
    """Hold the lock of the temporary ``tmp`` while it is written, and remove it afterwards."""
    lock = tmp.with_name(tmp.name + _LOCK_SUFFIX)
    fd = try_lock(lock, create=True)
    if fd is None:  # pragma: no cover - the name is random and new
        raise WiringError(f"pair features: temporary {tmp} is locked by another writer")
    with _OWN_GUARD:
        _OWN.add(tmp.name)
    try:
        yield
    finally:
        try:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            _release(lock, fd)
            with _OWN_GUARD:
                _OWN.discard(tmp.name)


def remove_stale_temporaries(cache_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries in ``cache_dir`` left by writers that are gone; returns them.

    A temporary ``.tmp-features-*`` is removed only when its lock file can be locked (or is
    missing: its writer released it), so temporaries of live writers, in this process or
    another, are left alone. Lock files left without a temporary and ``.trash-features-*``
    folders (entries whose removal was interrupted) are removed as well.
    """
    cache = Path(cache_dir)
    removed: list[Path] = []
    if not cache.is_dir():
        return removed
    for entry in sorted(cache.glob(_TMP_PREFIX + "*")):
        if entry.name.endswith(_LOCK_SUFFIX):
            tmp, lock = entry.with_name(entry.name[: -len(_LOCK_SUFFIX)]), entry
            if os.path.lexists(tmp):
                continue  # handled with its temporary
        else:
            tmp, lock = entry, entry.with_name(entry.name + _LOCK_SUFFIX)
        with _OWN_GUARD:
            if tmp.name in _OWN:
                continue
        # a writer creates and locks the lock file before its temporary and removes it last,
        # so a temporary without a locked lock file has no live writer
        fd = try_lock(lock, create=False)
        if fd is None and os.path.lexists(lock):
            continue  # a live writer holds it: leave it alone
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
            elif os.path.lexists(tmp):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        finally:
            if fd is not None:
                _release(lock, fd)
                removed.append(lock)
    for trash in cache.glob(_TRASH_PREFIX + "*"):  # only ever renamed here to be deleted
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(trash)
    if removed:
        logger.info("pair features: removed %d leftover(s) of interrupted writes in %s: %s",
                    len(removed), cache, ", ".join(p.name for p in removed))
    return removed


def _write_atomic(bundle: FeatureBundle, path: Path, *, key: str, desc: Mapping[str, Any]) -> None:
    """Write the bundle to a temporary group next to ``path`` and rename it into place.

    The temporary's lock is held throughout (see :func:`remove_stale_temporaries`).
    """
    import zarr

    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    with _writing(tmp):
        group = zarr.open_group(str(tmp), mode="w-")
        checksums = {}
        for name, arr in _arrays_of(bundle).items():
            a = np.ascontiguousarray(arr)
            z = group.create_array(
                name,
                shape=a.shape,
                chunks=(max(a.shape[0], 1),),
                dtype=a.dtype,
                compressors=None,
                filters=None,
                fill_value=0,
                config={"write_empty_chunks": True},
            )
            if a.size:
                z[:] = a
            checksums[name] = _crc(a)
        group.attrs.update(
            {
                "format": _FORMAT,
                "schema_version": FEATURES_SCHEMA_VERSION,
                "key": key,
                "key_description": dict(desc),
                "measurements": list(bundle.names),
                "n_pairs": [int(v) for v in bundle.n_pairs],
                "n_rows": int(bundle.n_rows),
                "checksums": checksums,
                "complete": True,
            }
        )
        try:
            tmp.rename(path)
        except OSError:
            if path.exists():  # another process finished first: keep its entry
                logger.info("pair features: %s was written concurrently; keeping it", path)
            else:
                raise


def _read_array(group: Any, root: Path, name: str) -> npt.NDArray[Any]:
    """Memory-map a single-chunk uncompressed array, else read it with zarr."""
    z = group[name]
    n = int(z.shape[0])
    dtype = np.dtype(z.dtype)
    if n == 0:
        return np.zeros(0, dtype=dtype)
    meta = z.metadata.to_dict()
    codecs = meta.get("codecs", ())
    raw = (
        len(codecs) == 1
        and codecs[0].get("name") == "bytes"
        and tuple(z.chunks) == (n,)
        and meta.get("chunk_key_encoding", {}).get("name") == "default"
    )
    chunk = root / name / "c" / "0"
    if raw and chunk.is_file() and chunk.stat().st_size == n * dtype.itemsize:
        endian = codecs[0].get("configuration", {}).get("endian", "little")
        mm = np.memmap(chunk, dtype=dtype.newbyteorder("<" if endian == "little" else ">"),
                       mode="r", shape=(n,))
        return np.asarray(mm)
    return np.asarray(z[:])


def open_feature_bundle(path: str | os.PathLike[str], *, key: str | None = None) -> FeatureBundle:
    """Open a cached feature bundle (memory-mapped), checking completeness and checksums.

    Raises
    ------
    WiringError
        If the entry is not a complete bundle of this format, ``key`` does not match, arrays are
        missing or inconsistent, or a checksum fails.
    """
    import zarr

    root = Path(path)
    try:
        group = zarr.open_group(str(root), mode="r")
        attrs = dict(group.attrs)
    except Exception as err:  # zarr raises several types for unreadable groups
        raise WiringError(f"{root} is not a readable zarr group: {err}") from err
    if attrs.get("format") != _FORMAT or not attrs.get("complete"):
        raise WiringError(f"{root} is not a complete pair-feature bundle (format {_FORMAT!r})")
    if attrs.get("schema_version") != FEATURES_SCHEMA_VERSION:
        raise WiringError(
            f"{root} has schema version {attrs.get('schema_version')!r}; this package reads "
            f"{FEATURES_SCHEMA_VERSION}"
        )
    if key is not None and attrs.get("key") != key:
        raise WiringError(f"{root} was built for another key ({attrs.get('key')!r})")
    checksums = attrs.get("checksums", {})
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name in ("pair_offsets", "pre", "post", "indptr", *_ROW_ARRAYS, "soma_distance_um"):
        try:
            arr = _read_array(group, root, name)
        except Exception as err:
            raise WiringError(f"{root}: array {name!r} is missing or unreadable: {err}") from err
        if _crc(arr) != checksums.get(name):
            raise WiringError(f"{root}: array {name!r} fails its checksum")
        arrays[name] = arr
    names = tuple(str(n) for n in attrs.get("measurements", []))
    indptr = arrays["indptr"]
    if indptr.size == 0 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise WiringError(f"{root}: indptr is not a valid CSR row pointer")
    try:
        return FeatureBundle(
            names=names,
            pair_offsets=arrays["pair_offsets"],
            pre=arrays["pre"],
            post=arrays["post"],
            indptr=indptr,
            voxel=arrays["voxel"],
            rows={k: arrays[k] for k in VOXEL_FEATURES},
            soma_distance_um=arrays["soma_distance_um"],
            key=str(attrs.get("key")),
            path=root,
        )
    except ShapeMismatchError as err:
        raise WiringError(f"{root}: inconsistent arrays: {err}") from err


