"""Connectomes: synapse counts of every (pre, post) pair for one θ, their zarr store, summaries,
SONATA export and plots.

:mod:`~wiring.connectome.compute` runs the engine (:mod:`~wiring.connectome._engine`, kernels in
:mod:`~wiring.connectome.dso`) and writes the store; :mod:`~wiring.connectome.store` reads it back;
:mod:`~wiring.connectome.summaries`, :mod:`~wiring.connectome.sonata` and
:mod:`~wiring.connectome.plots` work on either.
"""

from __future__ import annotations

from wiring.connectome.compute import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    Connectome,
    ConnectomeBlock,
    compute_connectome,
)
from wiring.connectome.plots import (
    plot_synapse_density,
    plot_type_probability,
)
from wiring.connectome.sonata import (
    SONATA_FILES,
    export_sonata,
)
from wiring.connectome.store import (
    ConnectomeStore,
    compute_connectome_to_store,
    open_connectome,
    write_connectome,
)
from wiring.connectome.summaries import (
    DepthDensity,
    TypeProbability,
    synapse_density_by_depth,
    type_probability_matrices,
    type_probability_matrix,
)

__all__ = [
    "FORMAT_NAME",
    "SCHEMA_VERSION",
    "SONATA_FILES",
    "Connectome",
    "ConnectomeBlock",
    "ConnectomeStore",
    "DepthDensity",
    "TypeProbability",
    "compute_connectome",
    "compute_connectome_to_store",
    "export_sonata",
    "open_connectome",
    "plot_synapse_density",
    "plot_type_probability",
    "synapse_density_by_depth",
    "type_probability_matrices",
    "type_probability_matrix",
    "write_connectome",
]
