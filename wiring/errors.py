"""Exception and warning hierarchy of the wiring layer.

Every error inherits :class:`WiringError` and the matching builtin, so callers can catch either.
"""

from __future__ import annotations

from anatomy.errors import StoreValidationError

__all__ = [
    "ConnectomeStoreError",
    "FieldProblem",
    "InsufficientResourcesError",
    "InvalidParameterError",
    "MeasurementError",
    "OutputExistsError",
    "PosteriorFileError",
    "PosteriorMismatchError",
    "RuleContractError",
    "RuleLoadError",
    "RuleNotFoundError",
    "RuleRateError",
    "SelectionError",
    "ShapeMismatchError",
    "StoreFormatError",
    "StoreMismatchError",
    "StoreNotVisibleError",
    "TrainingDataError",
    "WiringError",
    "WiringWarning",
]


class WiringError(Exception):
    """Root of all errors raised by :mod:`wiring`."""


class WiringWarning(UserWarning):
    """Root of all warnings issued by :mod:`wiring`."""


class InvalidParameterError(WiringError, ValueError):
    """A rule parameter vector has the wrong length, is NaN, or lies outside the rule's domain."""


class InsufficientResourcesError(WiringError, ValueError):
    """A job would need more disk or memory than the machine has; refused before it starts."""


class ShapeMismatchError(WiringError, ValueError):
    """An array has the wrong shape; the message names the dimensions."""


class RuleNotFoundError(WiringError, LookupError):
    """No installed wiring rule has the requested name."""


class RuleLoadError(WiringError, ImportError):
    """A wiring-rule plugin failed to import or is registered twice."""


class RuleContractError(RuleLoadError):
    """A wiring rule breaks the contract of :mod:`wiring.rules.base` (found by ``check_rule``)."""


class RuleRateError(WiringError, RuntimeError):
    """A rule's ``rate`` raised, or returned negative or NaN expected counts, during a run."""


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


class FieldProblem(MeasurementError):
    """A bad value of one field; loaders re-raise it with the file and row."""

    def __init__(self, owner: str, field_name: str, detail: str) -> None:
        super().__init__(f"{owner}, field {field_name!r}: {detail}")
        self.field_name = field_name
        self.detail = detail


class StoreFormatError(WiringError, ValueError):
    """A path is not a readable wiring store (missing, incomplete or another schema).

    Raised for simulation stores; connectome stores raise the subclass
    :class:`ConnectomeStoreError`.
    """


class ConnectomeStoreError(StoreFormatError, StoreValidationError):
    """A path is not a complete, valid connectome store (arrays missing, wrong shape or dtype).

    Also an :class:`anatomy.errors.StoreValidationError`, which connectome stores raised before
    they had an error of their own, so existing handlers keep catching it.
    """


class PosteriorFileError(WiringError, ValueError):
    """A posterior directory is missing, malformed, or its weights were modified."""


class TrainingDataError(WiringError, ValueError):
    """The training data are empty, all invalid, or inconsistent with the prior."""
