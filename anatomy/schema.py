"""The layout of a structural-model zarr store: array names, dimensions, dtypes and versions.

Everything the store writes and reads is named here, so a reader, a writer and the documentation
(``docs/architecture.md``, "Anatomy store schema") agree. The store itself lives in
:mod:`anatomy.store`.

Layout of schema version 1 (``N`` neurons, ``V`` voxels, ``nnz`` stored entries)::

    /                         attrs: schema_version, format, grid, vocabularies, model,
                                     counts, populations, complete (written last)
    neurons/cell_type  (N,)   int8     code into vocabularies.cell_types
    neurons/layer      (N,)   int8     code into vocabularies.layers (-1: outside the cortex)
    neurons/region     (N,)   int8     code into vocabularies.regions
    neurons/column     (N,)   int16    code into vocabularies.column_names (-1: none)
    neurons/soma_um    (N, 3) float32  (x, y, depth below pia) in µm
    neurons/ids        (N,)   int64    external neuron ids
    pre/indptr         (V+1,) int64    CSC (voxel-major) column pointers, chunked by voxel block
    pre/indices        (nnz,) int32    neuron index of each entry, sorted within a voxel
    pre/data           (nnz,) float32  bouton counts
    post/{indptr,indices,data}         the same for postsynaptic target sites
    post_all           (V,)   float32  target sites of all neurons per voxel
    voxel_depth_um     (V,)   float64  optional: voxel depth when not implied by the grid
    populations/<name>/pre   (n,) int64   neuron indices, group attrs: the population's attrs
    populations/<name>/post  (m,) int64
"""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = [
    "ATTR_COMPLETE",
    "ATTR_COUNTS",
    "ATTR_FORMAT",
    "ATTR_GRID",
    "ATTR_MODEL",
    "ATTR_POPULATIONS",
    "ATTR_SCHEMA_VERSION",
    "ATTR_VOCABULARIES",
    "COUNTS",
    "COUNT_ARRAYS",
    "DIMS",
    "DTYPES",
    "FORMAT_NAME",
    "NEURONS",
    "NEURON_ARRAYS",
    "POPULATIONS",
    "POPULATION_ARRAYS",
    "POPULATION_PAIR_ARRAYS",
    "POST_ALL",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "VOCABULARY_KEYS",
    "VOXEL_DEPTH",
    "counts_array",
    "neuron_array",
]

#: Version written by this package. Bump it on any incompatible change to the layout below.
SCHEMA_VERSION: Final[int] = 1
#: Versions this package can read.
SUPPORTED_SCHEMA_VERSIONS: Final[frozenset[int]] = frozenset({1})
#: Value of the ``format`` attribute: tells an anatomy store from other zarr groups.
FORMAT_NAME: Final[str] = "wiring-sbi structural model"

# root attributes
ATTR_SCHEMA_VERSION: Final[str] = "schema_version"
ATTR_FORMAT: Final[str] = "format"
#: ``{"origin_um": [x, y, z], "spacing_um": s, "shape": [nx, ny, nz]}``
ATTR_GRID: Final[str] = "grid"
#: ``{"cell_types": [...], "layers": [...], "regions": [...], "column_names": [...]}``
ATTR_VOCABULARIES: Final[str] = "vocabularies"
#: The model's JSON-native provenance (``StructuralModel.attrs``, incl. ``content_hash``).
ATTR_MODEL: Final[str] = "model"
#: ``{"pre": {"shape": [N, V], "nnz": n, "chunk_voxels": c, "chunk_entries": e}, "post": ...}``
ATTR_COUNTS: Final[str] = "counts"
#: Population names in model order.
ATTR_POPULATIONS: Final[str] = "populations"
#: Completion marker, written last; a store without it was not completely written.
ATTR_COMPLETE: Final[str] = "complete"

#: Keys of the vocabularies attribute, in the order of :mod:`anatomy.catalogue`.
VOCABULARY_KEYS: Final[tuple[str, ...]] = ("cell_types", "layers", "regions", "column_names")

# groups and arrays
NEURONS: Final[str] = "neurons"
NEURON_ARRAYS: Final[tuple[str, ...]] = ("cell_type", "layer", "region", "column", "soma_um", "ids")
COUNTS: Final[tuple[str, ...]] = ("pre", "post")
COUNT_ARRAYS: Final[tuple[str, ...]] = ("indptr", "indices", "data")
POST_ALL: Final[str] = "post_all"
VOXEL_DEPTH: Final[str] = "voxel_depth_um"
POPULATIONS: Final[str] = "populations"
POPULATION_ARRAYS: Final[tuple[str, ...]] = ("pre", "post")
#: Optional arrays of a population whose source lists its candidate pairs (not pre × post).
POPULATION_PAIR_ARRAYS: Final[tuple[str, ...]] = ("pair_pre", "pair_post")


def neuron_array(name: str) -> str:
    """Store path of a neuron attribute array, e.g. ``"neurons/cell_type"``."""
    return f"{NEURONS}/{name}"


def counts_array(counts: str, name: str) -> str:
    """Store path of one CSC array of ``pre`` or ``post``, e.g. ``"post/indptr"``."""
    return f"{counts}/{name}"


#: dtype of every array, by store path (population arrays: ``populations/*/pre|post``).
DTYPES: Final[dict[str, np.dtype[np.generic]]] = {
    neuron_array("cell_type"): np.dtype(np.int8),
    neuron_array("layer"): np.dtype(np.int8),
    neuron_array("region"): np.dtype(np.int8),
    neuron_array("column"): np.dtype(np.int16),
    neuron_array("soma_um"): np.dtype(np.float32),
    neuron_array("ids"): np.dtype(np.int64),
    **{counts_array(c, "indptr"): np.dtype(np.int64) for c in COUNTS},
    **{counts_array(c, "indices"): np.dtype(np.int32) for c in COUNTS},
    **{counts_array(c, "data"): np.dtype(np.float32) for c in COUNTS},
    POST_ALL: np.dtype(np.float32),
    VOXEL_DEPTH: np.dtype(np.float64),
    "populations/*/pre": np.dtype(np.int64),
    "populations/*/post": np.dtype(np.int64),
    "populations/*/pair_pre": np.dtype(np.int64),
    "populations/*/pair_post": np.dtype(np.int64),
}

#: Dimension names of every array, by store path (``V+1`` is the indptr length).
DIMS: Final[dict[str, tuple[str, ...]]] = {
    **{neuron_array(n): ("neuron",) for n in NEURON_ARRAYS if n != "soma_um"},
    neuron_array("soma_um"): ("neuron", "xyz"),
    **{counts_array(c, "indptr"): ("voxel+1",) for c in COUNTS},
    **{counts_array(c, "indices"): ("entry",) for c in COUNTS},
    **{counts_array(c, "data"): ("entry",) for c in COUNTS},
    POST_ALL: ("voxel",),
    VOXEL_DEPTH: ("voxel",),
    "populations/*/pre": ("member",),
    "populations/*/post": ("member",),
}
