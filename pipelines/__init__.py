"""Run configs, the stage runner, cluster setup and the ``wiring`` command line."""

from __future__ import annotations

__all__: list[str] = []
