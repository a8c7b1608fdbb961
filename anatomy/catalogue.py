"""The vocabulary of the structural model: cell types, layers and regions, with their codes.

Codes are positions in the tuples below and are what the store holds; the tuples are also written
into every store so a reader never depends on this module's order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from difflib import get_close_matches

import numpy as np
import numpy.typing as npt

from anatomy.errors import UnknownNameError

__all__ = [
    "CELL_TYPES",
    "EXCITATORY_TYPES",
    "LAYERS",
    "LAYER_BOUNDS_UM",
    "REGIONS",
    "code_of",
    "codes_of",
    "is_excitatory",
    "layer_of_depth",
]

#: Cell types of the barrel-cortex model (Udvary et al. 2022 nomenclature).
CELL_TYPES: tuple[str, ...] = (
    "L2PY", "L3PY", "L4PY", "L4sp", "L4ss", "L5IT", "L5PT",
    "L6CC", "L6INV", "L6CT", "INH", "VPM",
)
#: Excitatory cell types (everything but INH).
EXCITATORY_TYPES: frozenset[str] = frozenset(CELL_TYPES) - {"INH"}

#: Cortical layers, pia to white matter.
LAYERS: tuple[str, ...] = ("L1", "L2", "L3", "L4", "L5A", "L5B", "L6A", "L6B")
#: Layer boundaries in µm below the pia (upper, lower), rat vS1.
LAYER_BOUNDS_UM: dict[str, tuple[float, float]] = {
    "L1": (0.0, 157.0),
    "L2": (157.0, 367.0),
    "L3": (367.0, 576.0),
    "L4": (576.0, 855.0),
    "L5A": (855.0, 1102.0),
    "L5B": (1102.0, 1349.0),
    "L6A": (1349.0, 1620.0),
    "L6B": (1620.0, 1973.0),
}
#: Regions a neuron (soma) or voxel can belong to.
REGIONS: tuple[str, ...] = ("column", "septum", "barreloid")


def code_of(name: str, vocabulary: Sequence[str], *, kind: str) -> int:
    """Code of ``name`` in ``vocabulary``; unknown names raise with a suggestion.

    Examples
    --------
    >>> code_of("L4ss", CELL_TYPES, kind="cell type")
    4
    """
    try:
        return list(vocabulary).index(name)
    except ValueError:
        hint = get_close_matches(name, vocabulary, n=1)
        suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
        raise UnknownNameError(
            f"unknown {kind} {name!r}; known {kind}s are {', '.join(vocabulary)}.{suggestion}"
        ) from None


def codes_of(
    names: Iterable[str], vocabulary: Sequence[str], *, kind: str
) -> npt.NDArray[np.int64]:
    """Codes of several names, see :func:`code_of`."""
    return np.array([code_of(n, vocabulary, kind=kind) for n in names], dtype=np.int64)


def is_excitatory(cell_type: str) -> bool:
    """Whether a cell type is excitatory."""
    code_of(cell_type, CELL_TYPES, kind="cell type")
    return cell_type in EXCITATORY_TYPES


def layer_of_depth(depth_um: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """Layer code of each depth below the pia; -1 outside the cortex (above 0 or below L6B).

    Examples
    --------
    >>> layer_of_depth([100.0, 700.0, 2500.0]).tolist()
    [0, 3, -1]
    """
    d = np.asarray(depth_um, dtype=np.float64)
    edges = np.array([LAYER_BOUNDS_UM[name][1] for name in LAYERS])
    code = np.searchsorted(edges, d, side="right").astype(np.int8)
    code[(d < 0) | (d >= edges[-1]) | ~np.isfinite(d)] = -1
    return code
