"""The structural model: neurons, voxel grid, sparse ``pre``/``post`` counts and ``post_all``.

``pre[i, k]`` is the number of presynaptic boutons of neuron ``i`` in voxel ``k``, ``post[j, k]``
the number of postsynaptic target sites of neuron ``j`` in voxel ``k`` and ``post_all[k]`` the
target sites of *all* neurons in voxel ``k`` (including neurons not listed individually).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.errors import StoreValidationError
from anatomy.grid import VoxelGrid

__all__ = ["NeuronPopulation", "Neurons", "StructuralModel", "VoxelMajorCounts"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, kw_only=True)
class Neurons:
    """Per-neuron attributes, one array of length N each.

    ``cell_type``, ``layer`` and ``region`` are codes into :data:`anatomy.catalogue.CELL_TYPES`,
    :data:`~anatomy.catalogue.LAYERS` and :data:`~anatomy.catalogue.REGIONS` (layer -1 means
    outside the cortex, e.g. VPM). ``column`` indexes ``column_names``. ``soma_um`` holds
    (x, y, depth) in µm. ``ids`` are external neuron ids (``arange(N)`` for generated models).
    """

    cell_type: npt.NDArray[np.int8]
    layer: npt.NDArray[np.int8]
    region: npt.NDArray[np.int8]
    column: npt.NDArray[np.int16]
    soma_um: npt.NDArray[np.float32]
    ids: IntArray
    column_names: tuple[str, ...] = ("C2",)

    def __post_init__(self) -> None:
        n = len(self.cell_type)
        for name in ("layer", "region", "column", "ids"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise StoreValidationError(
                    f"neurons/{name} has shape {arr.shape}, expected ({n},) like neurons/cell_type"
                )
        if self.soma_um.shape != (n, 3):
            raise StoreValidationError(
                f"neurons/soma_um has shape {self.soma_um.shape}, expected ({n}, 3)"
            )
        _check_codes("neurons/cell_type", self.cell_type, len(CELL_TYPES), allow_negative=False)
        _check_codes("neurons/layer", self.layer, len(LAYERS), allow_negative=True)
        _check_codes("neurons/region", self.region, len(REGIONS), allow_negative=False)
        _check_codes("neurons/column", self.column, len(self.column_names), allow_negative=True)
        if n and len(np.unique(self.ids)) != n:
            raise StoreValidationError("neurons/ids contains duplicate neuron ids")

    def __len__(self) -> int:
        return len(self.cell_type)

    @property
    def cell_type_names(self) -> npt.NDArray[np.str_]:
        """Cell-type name of every neuron."""
        return np.asarray(CELL_TYPES)[self.cell_type]

    @property
    def depth_um(self) -> npt.NDArray[np.float32]:
        """Soma depth below the pia (µm)."""
        return self.soma_um[:, 2]


def _check_codes(name: str, arr: npt.NDArray[Any], n_codes: int, *, allow_negative: bool) -> None:
    if arr.size == 0:
        return
    low = -1 if allow_negative else 0
    bad = (arr < low) | (arr >= n_codes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StoreValidationError(
            f"{name}[{i}] = {int(arr[i])} is not a valid code; expected {low}..{n_codes - 1}"
        )


class VoxelMajorCounts:
    """N × V sparse counts stored voxel-major (CSC: per voxel, the neurons present).

    The three arrays may be numpy arrays or lazily read array-likes (e.g. ``zarr.Array``);
    :meth:`voxel_block` reads one contiguous voxel block, :meth:`load` the whole matrix.
    """

    def __init__(
        self,
        indptr: Any,
        indices: Any,
        data: Any,
        *,
        shape: tuple[int, int],
        name: str = "counts",
    ) -> None:
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.shape = (int(shape[0]), int(shape[1]))
        self.name = name
        self._loaded: sp.csc_array | None = None

    @classmethod
    def from_scipy(cls, matrix: Any, *, name: str = "counts") -> VoxelMajorCounts:
        """Wrap any scipy sparse N × V matrix (converted to canonical CSC, float32)."""
        m = sp.csc_array(matrix, dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        out = cls(
            m.indptr.astype(np.int64),
            m.indices.astype(np.int32),
            m.data.astype(np.float32),
            shape=m.shape,
            name=name,
        )
        return out

    @property
    def nnz(self) -> int:
        """Number of stored (neuron, voxel) entries."""
        return int(self.indptr[-1])

    def voxel_block(self, start: int, stop: int) -> sp.csc_array:
        """Columns ``start:stop`` (voxels) as an in-memory CSC matrix of shape (N, stop - start)."""
        if self._loaded is not None:
            return self._loaded[:, start:stop]
        ptr = np.asarray(self.indptr[start : stop + 1], dtype=np.int64)
        lo, hi = int(ptr[0]), int(ptr[-1])
        indices = np.asarray(self.indices[lo:hi], dtype=np.int32)
        data = np.asarray(self.data[lo:hi], dtype=np.float32)
        ptr = ptr - lo
        if hi - lo < np.iinfo(np.int32).max and self.shape[0] < np.iinfo(np.int32).max:
            ptr = ptr.astype(np.int32)  # int64 pointers make scipy copy indices to int64
        return sp.csc_array((data, indices, ptr), shape=(self.shape[0], stop - start))

    def load(self) -> sp.csc_array:
        """The whole matrix in memory (cached)."""
        if self._loaded is None:
            self._loaded = self.voxel_block(0, self.shape[1])
        return self._loaded

    def __repr__(self) -> str:
        return f"VoxelMajorCounts({self.name}, shape={self.shape}, nnz={self.nnz})"


@dataclass(frozen=True, slots=True, kw_only=True)
class NeuronPopulation:
    """A named pre × post population defined by a data source (e.g. an imported table's mask).

    ``pre`` and ``post`` are model neuron indices; ``attrs`` is JSON-native metadata (for an
    imported measurement: probability, pairs tested, protocol, citation). ``pair_pre`` and
    ``pair_post`` (model neuron indices, equal length) list the candidate pairs when the source
    defines the population by its pairs rather than as every pre × post pair (e.g. the
    candidates of each presynaptic neuron in an emulated slice); None otherwise.
    """

    pre: IntArray
    post: IntArray
    attrs: Mapping[str, Any] = field(default_factory=dict)
    pair_pre: IntArray | None = None
    pair_post: IntArray | None = None

    def post_of(self, pre: int) -> IntArray:
        """The listed postsynaptic candidates of presynaptic neuron ``pre`` (sorted), or every
        ``post`` neuron when the population is the full pre × post product."""
        if self.pair_pre is None or self.pair_post is None:
            return self.post
        return np.sort(np.asarray(self.pair_post)[np.asarray(self.pair_pre) == pre])


@dataclass(frozen=True, kw_only=True)
class StructuralModel:
    """A voxelized structural model (see module docstring).

    Build one with :func:`anatomy.generate.build_model`, an importer, or read one with
    :func:`anatomy.store.open_model`. ``attrs`` holds JSON-native provenance (preset, seed,
    source, content hash).
    """

    grid: VoxelGrid
    neurons: Neurons
    pre: VoxelMajorCounts
    post: VoxelMajorCounts
    post_all: FloatArray
    attrs: Mapping[str, Any] = field(default_factory=dict)
    #: Depth (µm below the pia) of every voxel when it is not implied by the grid (imports).
    voxel_depth_um: npt.NDArray[np.float64] | None = None
    #: Populations defined by the data source, by name (empty for generated models).
    populations: Mapping[str, NeuronPopulation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, v = len(self.neurons), self.grid.n_voxels
        for counts in (self.pre, self.post):
            if counts.shape != (n, v):
                raise StoreValidationError(
                    f"{counts.name} has shape {counts.shape}, expected (neurons, voxels) = "
                    f"({n}, {v})"
                )
        if self.voxel_depth_um is not None and np.shape(self.voxel_depth_um) != (v,):
            raise StoreValidationError(
                f"voxel_depth_um has shape {np.shape(self.voxel_depth_um)}, expected ({v},)"
            )
        for name, pop in self.populations.items():
            for side in ("pre", "post"):
                idx = getattr(pop, side)
                if idx.size and (idx.min() < 0 or idx.max() >= n):
                    raise StoreValidationError(
                        f"population {name!r}: {side} neuron index out of range 0..{n - 1}"
                    )
        if np.shape(self.post_all) != (v,):
            raise StoreValidationError(
                f"post_all has shape {np.shape(self.post_all)}, expected (voxels,) = ({v},)"
            )

    def depth_um(self) -> npt.NDArray[np.float64]:
        """Depth below the pia of every voxel center, shape (V,)."""
        if self.voxel_depth_um is not None:
            return self.voxel_depth_um
        return self.grid.depth_um()

    @property
    def n_neurons(self) -> int:
        """Number of neurons N."""
        return len(self.neurons)

    @property
    def n_voxels(self) -> int:
        """Number of voxels V."""
        return self.grid.n_voxels
