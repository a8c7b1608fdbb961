"""Memory estimates of the standard analysis, checked before it starts.

The analysis holds its samples in memory: the summary's posterior samples and their densities,
the predictive draws, the SBC runs' posterior samples (runs × samples × parameters at once:
sbi samples them in one batched call), the predictions' samples per cell-type pair. A count
typed with a few zeros too many would otherwise run for minutes and then die of a
``MemoryError`` (or take the machine down with it). :func:`check_analysis_size` estimates what
each analysis holds at once and refuses a request that needs more than the machine's physical
memory, in one line naming the option and the estimated size, before any work starts
(``wiring analyze`` calls it first; ``wiring run``'s preflight checks the ``[analysis]``
section with it).

The estimates count the arrays of this package and the tensors sbi returns, in the dtype they
have, plus one pass of the network over the samples whose density is evaluated at once (the
summary's ``log_prob``): ``12 · hidden_features + 32 · d · num_bins`` bytes per sample, a lower
bound of what was measured for sbi's spline flows (peak memory per sample of sampling and
``log_prob`` over 3 × 10^5 samples, d = 3, 10 bins: 1,539, 1,959 and 2,719 bytes for 20, 50
and 100 hidden features, against estimates of 1,268, 1,628 and 2,228). They are lower bounds of
the peak (Python, torch and the model are not counted), which is what a refusal needs: a
request refused here could not have finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from anatomy.catalogue import CELL_TYPES
from wiring.errors import InsufficientResourcesError, InvalidParameterError
from wiring.simulation import resources as _resources

__all__ = ["AnalysisCounts", "analysis_memory_bytes", "check_analysis_size"]

#: Memory kept free for everything else, as for simulation stores (estimate × 1.1 must fit).
_HEADROOM = 1.1


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalysisCounts:
    """The sample counts of one standard analysis (0: that analysis does not run)."""

    n_samples: int = 0
    """Posterior samples of the summary."""
    n_predictive: int = 0
    """Posterior predictive simulations."""
    n_calibration: int = 0
    """Prior predictive replicates calibrating the predictive p-values."""
    n_calibration_samples: int = 200
    """Posterior samples per replicate (fixed by the standard analysis)."""
    n_sbc: int = 0
    """Simulation-based calibration runs."""
    n_sbc_samples: int = 0
    """Posterior samples per SBC run."""
    n_prediction_samples: int = 0
    """Posterior samples of the connectivity predictions."""


#: Per estimate: the counts it grows with (as fields of AnalysisCounts) and what it holds.
_PARTS: dict[str, tuple[tuple[str, ...], str]] = {
    "summary": (("n_samples",), "the posterior summary's samples and their densities"),
    "predictive": (("n_predictive",), "the posterior predictive simulations"),
    "predictive_calibration": (("n_calibration", "n_calibration_samples"),
                               "the predictive check's replicate posterior samples"),
    "calibration": (("n_sbc", "n_sbc_samples"), "the calibration's posterior samples"),
    "predictions": (("n_prediction_samples",), "the connectivity predictions' samples"),
}


def analysis_memory_bytes(counts: AnalysisCounts, *, d: int, m: int,
                          hidden_features: int = 50, num_bins: int = 10) -> dict[str, int]:
    """Bytes each part of the standard analysis holds at once (see the module docstring).

    ``d`` parameters, ``m`` measurements; ``hidden_features`` and ``num_bins`` of the
    posterior's network (``num_bins = 0`` for estimators without splines).
    Keys: ``summary``, ``predictive``, ``predictive_calibration``, ``calibration``,
    ``predictions``.

    Examples
    --------
    >>> est = analysis_memory_bytes(AnalysisCounts(n_sbc=200, n_sbc_samples=1000), d=3, m=6)
    >>> est["calibration"] == 200 * 1000 * (3 * 17 + 8)
    True
    """
    c = counts
    for name in ("n_samples", "n_predictive", "n_calibration", "n_calibration_samples", "n_sbc",
                 "n_sbc_samples", "n_prediction_samples"):
        if int(getattr(c, name)) < 0:
            raise InvalidParameterError(f"{name}={getattr(c, name)!r} must be >= 0")
    d, m, h = max(int(d), 1), max(int(m), 1), max(int(hidden_features), 1)
    bins = max(int(num_bins), 0)
    types = len(CELL_TYPES) ** 2
    return {
        # float32 from torch, its float64 copy, sorted copies for quantiles; log_prob of all
        # samples at once (one float64 each plus the network's activations, measured)
        "summary": int(c.n_samples) * (d * (4 + 8 + 8) + 8 + 12 * h + 32 * d * bins),
        # θ (float32 and float64) and x (float64, and the copy of the quantiles)
        "predictive": int(c.n_predictive) * (d * 12 + m * 16),
        # replicate samples (S, R, d) float64 and their transposed copy, their simulations
        # (float64) and the replicate index of each (int64)
        "predictive_calibration": (int(c.n_calibration) * int(c.n_calibration_samples)
                                   * (d * 16 + m * 8 + 8)),
        # sbi's float32 samples, the float64 copy, the float32 copy handed to run_sbc, the
        # rank comparison (1 byte per value) and TARP's distances (float64 per sample)
        "calibration": int(c.n_sbc) * int(c.n_sbc_samples) * (d * 17 + 8),
        # θ float64, one value per cell-type pair (float64) and the three quantile arrays
        "predictions": int(c.n_prediction_samples) * (d * 8 + types * 8 * 4),
    }


def check_analysis_size(counts: AnalysisCounts, options: Mapping[str, str], *, d: int, m: int,
                        hidden_features: int = 50, num_bins: int = 10,
                        memory_bytes: int | None = None) -> dict[str, int]:
    """Refuse sample counts whose analysis would need more memory than the machine has.

    Parameters
    ----------
    counts
        The requested counts.
    options
        How the user set each count, by field name of :class:`AnalysisCounts` (e.g.
        ``{"n_sbc": "--n-sbc"}`` or ``{"n_sbc": "analysis.sbc_runs"}``); counts without one
        (``n_calibration_samples``: fixed) are named by their value only.
    d, m, hidden_features, num_bins
        As for :func:`analysis_memory_bytes`.
    memory_bytes
        The memory to compare with (default: the machine's physical memory; unknown: no check).

    Returns
    -------
    dict
        The estimates (:func:`analysis_memory_bytes`).

    Raises
    ------
    InsufficientResourcesError
        One line: the options and values, what they would hold and its estimated size, and the
        machine's memory.
    """
    est = analysis_memory_bytes(counts, d=d, m=m, hidden_features=hidden_features,
                                num_bins=num_bins)
    # through the module: one memory probe for every check (and one place to stub it in tests)
    mem = _resources.physical_memory_bytes() if memory_bytes is None else int(memory_bytes)
    if mem is None:
        return est
    for key, need in est.items():
        if need * _HEADROOM <= mem:
            continue
        fields, what = _PARTS[key]
        named = " × ".join(
            f"{options[f]} {int(getattr(counts, f)):,}" if f in options
            else f"{int(getattr(counts, f)):,} {f.removeprefix('n_').replace('_', ' ')}"
            for f in fields)
        asked = [options[f] for f in fields if f in options]
        raise InsufficientResourcesError(
            f"{named}: {what} would need about {_resources.format_bytes(need)} of memory, but "
            f"this machine has {_resources.format_bytes(mem)}; use a smaller {' or '.join(asked)}"
        )
    return est
