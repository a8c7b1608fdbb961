"""Public testing helpers for wiring rules: contract tests, toy tables, hypothesis strategies.

- :class:`RuleContractTests` (pytest; subclass it and set ``rule``),
- :func:`make_pair_table` (a toy :class:`~wiring.pairs.PairTable`) and :func:`take_pairs`,
- :func:`self_check` (the numeric checks behind ``wiring rules check``),
- :mod:`wiring.testing.strategies` (hypothesis).

``RuleContractTests`` is imported lazily, so that ``wiring.testing`` works without pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wiring.testing.selfcheck import self_check
from wiring.testing.tables import make_pair_table, take_pairs

if TYPE_CHECKING:
    from wiring.testing.contract import RuleContractTests

__all__ = ["RuleContractTests", "make_pair_table", "self_check", "take_pairs"]


def __getattr__(name: str) -> Any:
    if name == "RuleContractTests":
        from wiring.testing.contract import RuleContractTests

        return RuleContractTests
    raise AttributeError(f"module 'wiring.testing' has no attribute {name!r}")
