"""Simulation: the pair features of a measurement set, the simulator that turns θ into connection
probabilities, and the store that holds many simulations.

Data flow: :mod:`~wiring.simulation.features` (extraction, with the zarr cache in
:mod:`~wiring.simulation.feature_cache` and the factored form in :mod:`~wiring.simulation.factored`)
→ :mod:`~wiring.simulation.simulator` → :mod:`~wiring.simulation.store`.
"""

from __future__ import annotations

from wiring.simulation.factored import (
    FactoredFeatures,
    extract_factored,
)
from wiring.simulation.feature_cache import (
    extract_feature_bundle,
    extract_features,
    open_feature_bundle,
)
from wiring.simulation.features import (
    FEATURES_SCHEMA_VERSION,
    FeatureBundle,
    PopulationFeatures,
    PopulationPairs,
    anatomy_hash,
    estimate_table,
    feature_cache_key,
    measurement_set_hash,
    population_pairs,
)
from wiring.simulation.simulator import (
    LogLinearForm,
    Simulator,
    SupportsLogLinear,
    log_linear_form,
)
from wiring.simulation.store import (
    STREAMS,
    SimulateChunk,
    SimulationStore,
    StoreFormatError,
    SupportsIndexedSimulation,
    chunk_rngs,
    row_keys,
    simulate_chunk_rows,
    simulate_to_store,
)

__all__ = [
    "FEATURES_SCHEMA_VERSION",
    "STREAMS",
    "FactoredFeatures",
    "FeatureBundle",
    "LogLinearForm",
    "PopulationFeatures",
    "PopulationPairs",
    "SimulateChunk",
    "SimulationStore",
    "Simulator",
    "StoreFormatError",
    "SupportsIndexedSimulation",
    "SupportsLogLinear",
    "anatomy_hash",
    "chunk_rngs",
    "estimate_table",
    "extract_factored",
    "extract_feature_bundle",
    "extract_features",
    "feature_cache_key",
    "log_linear_form",
    "measurement_set_hash",
    "open_feature_bundle",
    "population_pairs",
    "row_keys",
    "simulate_chunk_rows",
    "simulate_to_store",
]
