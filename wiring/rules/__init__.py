"""Wiring rules: the contract, the registry and the built-in rules."""

from __future__ import annotations

from wiring.rules.base import PAIR_FEATURES, VOXEL_FEATURES, ParamSpec, WiringRule
from wiring.rules.registry import (
    RuleInfo,
    check_rule,
    get_rule,
    list_rules,
    refresh_rules,
    rule_provenance,
)

__all__ = [
    "PAIR_FEATURES",
    "VOXEL_FEATURES",
    "ParamSpec",
    "RuleInfo",
    "WiringRule",
    "check_rule",
    "get_rule",
    "list_rules",
    "refresh_rules",
    "rule_provenance",
]
