"""Module paths of earlier releases, kept importable for one release with a deprecation warning.

``import wiring.simulator`` (or ``from wiring.simulator import Simulator``) finds no file: a
meta-path finder maps the old name to its new module, warns once per import with a
:class:`DeprecationWarning` naming the new path, and returns the *same* module object, so classes,
module constants and monkeypatching behave exactly as through the new path. Aliases live here
rather than as files at the old paths so the moved modules keep their history.

A module that was split (``wiring.features``) maps to the sub-package that re-exports all of its
public names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install"]

#: Old module path -> new module path.
MOVED: dict[str, str] = {
    "wiring.simulator": "wiring.simulation.simulator",
    "wiring.simstore": "wiring.simulation.store",
    "wiring.features": "wiring.simulation",
    "wiring.priors": "wiring.inference.priors",
    "wiring.selectors": "wiring.measurements.selectors",
    "wiring.sonata": "wiring.connectome.sonata",
    "wiring.plots": "wiring.connectome.plots",
    "wiring.dso": "wiring.connectome.dso",
}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new path (no new module object)."""

    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{self.old} is deprecated and will be removed in the next release; "
            f"import {self.new} instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was executed under its new name."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old module paths listed in :data:`MOVED`."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, new))


def install() -> None:
    """Put the alias finder on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
