"""Posterior analysis: summaries and pairplot, predictive checks, calibration, predictions for
unmeasured cell-type pairs, and rule comparison.

Every analysis function returns a frozen result dataclass with the numbers, a JSON-native
``to_dict()``, a ``table()`` of rows, and its matplotlib figure(s) (``.figure``; all of them by
file stem from ``figures()``), ready for :func:`wiring.report.write_report`.
"""

from __future__ import annotations

from wiring.analysis._plots import (
    plot_connectivity_heatmap,
    plot_coverage,
    plot_pairplot,
    plot_predictive_check,
    plot_rule_comparison,
    plot_sbc_ranks,
)
from wiring.analysis.calibration import (
    Calibration,
    calibration,
    coverage_from_ranks,
    min_sbc_runs,
)
from wiring.analysis.comparison import RuleComparison, RuleFit, compare_rules, fit_rule
from wiring.analysis.predictions import (
    ConnectivityPrediction,
    connection_probability,
    predict_connectivity,
)
from wiring.analysis.predictive import (
    PredictiveCheck,
    posterior_predictive_check,
    predictive_p_value,
)
from wiring.analysis.standard import ANALYSES, StandardAnalysis, run_standard_analysis
from wiring.analysis.summary import PosteriorSummary, partial_correlation, summarize_posterior

__all__ = [
    "ANALYSES",
    "Calibration",
    "ConnectivityPrediction",
    "PosteriorSummary",
    "PredictiveCheck",
    "RuleComparison",
    "RuleFit",
    "StandardAnalysis",
    "calibration",
    "compare_rules",
    "connection_probability",
    "coverage_from_ranks",
    "fit_rule",
    "min_sbc_runs",
    "partial_correlation",
    "plot_connectivity_heatmap",
    "plot_coverage",
    "plot_pairplot",
    "plot_predictive_check",
    "plot_rule_comparison",
    "plot_sbc_ranks",
    "posterior_predictive_check",
    "predict_connectivity",
    "predictive_p_value",
    "run_standard_analysis",
    "summarize_posterior",
]
