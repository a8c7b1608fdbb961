"""Wiring rules: the contract, the registry and the built-in rules."""

from __future__ import annotations

from wiring.rules.base import PAIR_FEATURES, VOXEL_FEATURES, ParamSpec, WiringRule

__all__ = ["PAIR_FEATURES", "VOXEL_FEATURES", "ParamSpec", "WiringRule"]
