"""Exceptions of the pipelines layer.

Every error inherits :class:`wiring.errors.WiringError` and the matching builtin, so the
command line reports it as one line.
"""

from __future__ import annotations

from wiring.errors import WiringError

__all__ = ["ClusterLostError", "ClusterStartError", "ConfigError"]


class ConfigError(WiringError, ValueError):
    """A run configuration is invalid; the message names the key."""


class ClusterStartError(WiringError, TimeoutError):
    """No worker job of a batch-system cluster started within ``[cluster] start_timeout``."""


class ClusterLostError(WiringError, TimeoutError):
    """Every worker job of a batch-system cluster ended while tasks waited, and no replacement
    started within ``[cluster] start_timeout``; finished work is kept and the run resumes."""
