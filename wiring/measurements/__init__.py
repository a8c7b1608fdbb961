"""Measurements: selectors of neuron populations, paired-recording measurement sets (TOML/CSV) and
the populations a measurement tests in a model (in vivo or in a slice).
"""

from __future__ import annotations

from wiring.measurements.from_model import (
    MODEL_SET,
    measurement_set_from_model,
    resolve_measurement_set,
    select_measurements,
)
from wiring.measurements.populations import (
    Population,
    SliceConfig,
    population,
    populations,
)
from wiring.measurements.selectors import (
    CELL_TYPE_GROUPS,
    LAYER_GROUPS,
    SELECTOR_KEYS,
    Selector,
    parse_selector,
    select,
    selection_mask,
)
from wiring.measurements.sets import (
    PROTOCOLS,
    Citation,
    Measurement,
    MeasurementSet,
    list_measurement_sets,
    load_measurement_set,
    pooling_order,
)

__all__ = [
    "CELL_TYPE_GROUPS",
    "LAYER_GROUPS",
    "MODEL_SET",
    "PROTOCOLS",
    "SELECTOR_KEYS",
    "Citation",
    "Measurement",
    "MeasurementSet",
    "Population",
    "Selector",
    "SliceConfig",
    "list_measurement_sets",
    "load_measurement_set",
    "measurement_set_from_model",
    "parse_selector",
    "pooling_order",
    "population",
    "populations",
    "resolve_measurement_set",
    "select",
    "select_measurements",
    "selection_mask",
]
