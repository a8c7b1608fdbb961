"""Content hash of a structural model: a sha256 digest over its arrays, independent of storage.

The digest covers the grid, the vocabularies and neuron arrays, ``pre`` and ``post`` (indptr,
indices, data), ``post_all`` and ``voxel_depth_um``, each in its canonical dtype, little-endian
and C order, so an in-memory model and the same model read back from a store (whatever its
chunking) hash equal. Caches downstream (features, simulations) are keyed by it. Provenance
``attrs`` and populations are not part of it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS

if TYPE_CHECKING:
    from anatomy.model import StructuralModel

__all__ = ["HASH_VERSION", "anatomy_hash", "content_hash"]

#: Changes whenever the bytes fed to the digest change.
HASH_VERSION = 1
_SLAB = 1 << 22
_NEURON_DTYPES = (
    ("cell_type", "<i1"),
    ("layer", "<i1"),
    ("region", "<i1"),
    ("column", "<i2"),
    ("soma_um", "<f4"),
    ("ids", "<i8"),
)


def _feed(h: Any, name: str, values: Any, dtype: str) -> None:
    arr = np.ascontiguousarray(np.asarray(values), dtype=np.dtype(dtype))
    h.update(f"{name}:{dtype}:{list(arr.shape)}\n".encode())
    h.update(arr.tobytes())


def content_hash(model: StructuralModel) -> str:
    """Sha256 hex digest of the model's arrays (see module docstring).

    Sparse arrays are read in slabs, so a store-backed model is hashed in bounded memory.

    Examples
    --------
    >>> # content_hash(build_model("tiny")) == content_hash(open_model(path))
    """
    h = hashlib.sha256()
    h.update(f"wiring-sbi structural model v{HASH_VERSION}\n".encode())
    header = {
        "grid": model.grid.to_dict(),
        "cell_types": list(CELL_TYPES),
        "layers": list(LAYERS),
        "regions": list(REGIONS),
        "column_names": list(model.neurons.column_names),
        "shape": [model.n_neurons, model.n_voxels],
    }
    h.update(json.dumps(header, sort_keys=True).encode())
    for name, dtype in _NEURON_DTYPES:
        _feed(h, f"neurons/{name}", getattr(model.neurons, name), dtype)
    for cname in ("pre", "post"):
        counts = getattr(model, cname)
        _feed(h, f"{cname}/indptr", counts.indptr[:], "<i8")
        for aname, dtype in (("indices", "<i4"), ("data", "<f4")):
            src = getattr(counts, aname)
            n = int(src.shape[0])
            h.update(f"{cname}/{aname}:{dtype}:[{n}]\n".encode())
            for lo in range(0, n, _SLAB):
                chunk = np.asarray(src[lo : min(n, lo + _SLAB)])
                h.update(np.ascontiguousarray(chunk, dtype=np.dtype(dtype)).tobytes())
    _feed(h, "post_all", model.post_all, "<f4")
    if model.voxel_depth_um is None:
        h.update(b"voxel_depth_um:none\n")
    else:
        _feed(h, "voxel_depth_um", model.voxel_depth_um, "<f8")
    return h.hexdigest()


def anatomy_hash(model: StructuralModel) -> str:
    """The anatomy hash recorded by every wiring store, cache key and posterior manifest.

    The model's ``content_hash`` attribute (set when it was written to or read from a store),
    else :func:`content_hash` computed from its arrays: the same value either way.
    """
    h = model.attrs.get("content_hash")
    if isinstance(h, str) and h:
        return h
    return str(content_hash(model))
