"""Exception and warning hierarchy of the anatomy layer.

Every error inherits both :class:`AnatomyError` and the matching builtin, so callers can catch
either ``AnatomyError`` or e.g. ``ValueError``.
"""

from __future__ import annotations

__all__ = [
    "AnatomyError",
    "AnatomyWarning",
    "CalibrationTargetError",
    "FormatError",
    "GeneratorArgumentError",
    "SchemaVersionError",
    "StoreExistsError",
    "StoreLockedError",
    "StoreValidationError",
    "UnknownNameError",
]


class AnatomyError(Exception):
    """Root of all errors raised by :mod:`anatomy`."""


class AnatomyWarning(UserWarning):
    """Root of all warnings issued by :mod:`anatomy`."""


class StoreValidationError(AnatomyError, ValueError):
    """A structural-model store (or in-memory model) violates the schema."""


class SchemaVersionError(StoreValidationError):
    """A store was written with a schema version this package cannot read."""


class StoreExistsError(AnatomyError, FileExistsError):
    """Refusing to write over an existing store without ``overwrite=True``."""


class StoreLockedError(AnatomyError, BlockingIOError):
    """Another live process is writing the store (it holds the store's lock)."""


class FormatError(AnatomyError, ValueError):
    """An external file (feature table, SWC, ...) is malformed; names the file and line."""


class UnknownNameError(AnatomyError, KeyError):
    """An unknown cell type, layer, region or preset name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class GeneratorArgumentError(AnatomyError, ValueError):
    """An invalid argument to :func:`build_model` (e.g. a negative seed)."""


class CalibrationTargetError(AnatomyError, ValueError):
    """A calibration target file that cannot be used (the message names the file and row)."""
