"""The row type every benchmark returns, and a peak-memory helper."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure: what, the value, its unit, and the goal it is checked against."""

    name: str
    value: float
    unit: str
    target: str = ""
    note: str = ""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 1024**2
