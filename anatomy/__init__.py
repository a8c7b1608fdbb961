"""Voxelized structural models of the rat barrel cortex: grid, cell types, stores, generators.

This layer knows nothing about wiring rules; :mod:`wiring` builds on it.
"""

from __future__ import annotations

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.errors import AnatomyError
from anatomy.grid import VoxelGrid
from anatomy.model import NeuronPopulation, Neurons, StructuralModel, VoxelMajorCounts

__all__ = [
    "CELL_TYPES",
    "LAYERS",
    "REGIONS",
    "AnatomyError",
    "NeuronPopulation",
    "Neurons",
    "StructuralModel",
    "VoxelGrid",
    "VoxelMajorCounts",
]
__version__ = "0.1.0"
