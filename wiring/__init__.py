"""Wiring rules, the DSO engine, experiment emulation, simulation-based inference and analysis.

Built on :mod:`anatomy`. Submodules are imported lazily so ``import wiring`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
