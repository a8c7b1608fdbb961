"""Exceptions of the pipelines layer.

Every error inherits :class:`wiring.errors.WiringError` and the matching builtin, so the
command line reports it as one line.
"""

from __future__ import annotations

from wiring.errors import WiringError

__all__ = ["ClusterStartError", "ConfigError"]


class ConfigError(WiringError, ValueError):
    """A run configuration is invalid; the message names the key."""


class ClusterStartError(WiringError, TimeoutError):
    """No worker job of a batch-system cluster started within ``[cluster] start_timeout``."""
