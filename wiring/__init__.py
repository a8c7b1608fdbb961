"""Wiring rules, the DSO engine, experiment emulation, simulation-based inference and analysis.

Built on :mod:`anatomy`. The package is a lazy namespace: ``import wiring`` imports nothing
else, and a sub-package or a common name is imported the first time it is used
(``wiring.simulation``, ``wiring.Simulator``, ``wiring.load_measurement_set``). The sub-packages
follow the data flow:

- :mod:`wiring.rules` — the wiring-rule contract, the built-in rules and the plugin registry;
- :mod:`wiring.measurements` — selectors, measurement sets and the populations they test;
- :mod:`wiring.simulation` — pair features, the simulator and the simulation store;
- :mod:`wiring.inference` — priors and neural posterior estimation;
- :mod:`wiring.connectome` — whole connectomes for one θ, their store, summaries and SONATA;
- :mod:`wiring.analysis`, :mod:`wiring.report` — posterior analyses and their report;
- :mod:`wiring.testing` — contract tests for rule authors; :mod:`wiring.errors`.

The module paths of earlier releases (``wiring.simulator``, ``wiring.simstore``,
``wiring.features``, ``wiring.priors``, ``wiring.selectors``, ``wiring.sonata``, ``wiring.plots``,
``wiring.dso``) still import, with a :class:`DeprecationWarning` naming the new path; they will be
removed in the next release.
"""

from __future__ import annotations

import importlib
from typing import Any

from wiring import _deprecated

__version__ = "0.1.0"

#: Sub-packages and modules reachable as attributes of :mod:`wiring`.
_SUBMODULES = (
    "analysis",
    "connectome",
    "errors",
    "inference",
    "measurements",
    "pairs",
    "report",
    "rules",
    "simulation",
    "testing",
)

#: Common names: name -> module that defines it.
_NAMES = {
    "WiringError": "wiring.errors",
    "WiringRule": "wiring.rules.base",
    "get_rule": "wiring.rules.registry",
    "list_rules": "wiring.rules.registry",
    "Selector": "wiring.measurements.selectors",
    "Measurement": "wiring.measurements.sets",
    "MeasurementSet": "wiring.measurements.sets",
    "load_measurement_set": "wiring.measurements.sets",
    "Simulator": "wiring.simulation.simulator",
    "SimulationStore": "wiring.simulation.store",
    "simulate_to_store": "wiring.simulation.store",
    "PriorSpec": "wiring.inference.priors",
    "build_prior_spec": "wiring.inference.priors",
    "train_posterior": "wiring.inference.npe",
    "train_from_store": "wiring.inference.npe",
    "load_posterior": "wiring.inference.npe",
    "save_posterior": "wiring.inference.npe",
    "compute_connectome": "wiring.connectome.compute",
    "compute_connectome_to_store": "wiring.connectome.store",
    "open_connectome": "wiring.connectome.store",
}

__all__ = ["__version__", *_SUBMODULES, *sorted(_NAMES)]

_deprecated.install()


def __getattr__(name: str) -> Any:
    """Import a sub-package or a common name on first use."""
    if name in _SUBMODULES:
        return importlib.import_module(f"wiring.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'wiring' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
