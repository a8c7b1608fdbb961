"""Exception and warning hierarchy of the wiring layer.

Every error inherits :class:`WiringError` and the matching builtin, so callers can catch either.
"""

from __future__ import annotations

__all__ = [
    "InvalidParameterError",
    "MeasurementError",
    "OutputExistsError",
    "PosteriorMismatchError",
    "RuleContractError",
    "RuleLoadError",
    "RuleNotFoundError",
    "SelectionError",
    "ShapeMismatchError",
    "StoreMismatchError",
    "StoreNotVisibleError",
    "WiringError",
    "WiringWarning",
]


class WiringError(Exception):
    """Root of all errors raised by :mod:`wiring`."""


class WiringWarning(UserWarning):
    """Root of all warnings issued by :mod:`wiring`."""


class InvalidParameterError(WiringError, ValueError):
    """A rule parameter vector has the wrong length, is NaN, or lies outside the rule's domain."""


class ShapeMismatchError(WiringError, ValueError):
    """An array has the wrong shape; the message names the dimensions."""


class RuleNotFoundError(WiringError, LookupError):
    """No installed wiring rule has the requested name."""


class RuleLoadError(WiringError, ImportError):
    """A wiring-rule plugin failed to import or is registered twice."""


class RuleContractError(RuleLoadError):
    """A wiring rule breaks the contract of :mod:`wiring.rules.base` (found by ``check_rule``)."""


class SelectionError(WiringError, ValueError):
    """A neuron selector is malformed, names unknown cell types, or selects nobody."""


class MeasurementError(WiringError, ValueError):
    """A measurement set file is malformed; the message names the file, row and field."""


class StoreMismatchError(WiringError, ValueError):
    """A store or posterior was produced from another anatomy, rule or measurement set."""


class StoreNotVisibleError(WiringError, FileNotFoundError):
    """A worker cannot see a store: it is not on a filesystem shared with the workers."""


class PosteriorMismatchError(StoreMismatchError):
    """A posterior does not match the rule or measurements it is used with."""


class OutputExistsError(WiringError, FileExistsError):
    """Refusing to overwrite existing output without ``overwrite=True``."""
