"""The standard analysis's memory estimates, and the refusal of counts that cannot fit."""

from __future__ import annotations

import pytest

from anatomy.catalogue import CELL_TYPES
from wiring.analysis.resources import AnalysisCounts, analysis_memory_bytes, check_analysis_size
from wiring.errors import InsufficientResourcesError, InvalidParameterError

OPTIONS = {"n_samples": "--n-samples", "n_sbc": "--n-sbc", "n_sbc_samples": "--n-sbc-samples",
           "n_predictive": "--n-predictive", "n_calibration": "--n-calibration",
           "n_prediction_samples": "--n-prediction-samples"}


def test_estimates_count_the_arrays_each_analysis_holds() -> None:
    counts = AnalysisCounts(n_samples=1000, n_predictive=500, n_calibration=10,
                            n_calibration_samples=200, n_sbc=200, n_sbc_samples=100,
                            n_prediction_samples=50)
    d, m, h = 3, 6, 20
    est = analysis_memory_bytes(counts, d=d, m=m, hidden_features=h)
    # by hand: bytes per value of each array (module docstring), times the values held at once
    assert est["summary"] == 1000 * (3 * 20 + 8 + 12 * 20 + 32 * 3 * 10)
    assert est["predictive"] == 500 * (3 * 12 + 6 * 16)
    assert est["predictive_calibration"] == 10 * 200 * (3 * 16 + 6 * 8 + 8)
    assert est["calibration"] == 200 * 100 * (3 * 17 + 8)
    assert est["predictions"] == 50 * (3 * 8 + len(CELL_TYPES) ** 2 * 32)
    # linear in the counts: doubling the SBC runs doubles that estimate only
    twice = analysis_memory_bytes(AnalysisCounts(n_sbc=400, n_sbc_samples=100), d=d, m=m)
    assert twice["calibration"] == 2 * est["calibration"] and twice["summary"] == 0
    # estimators without splines: no spline term
    flat = analysis_memory_bytes(counts, d=d, m=m, hidden_features=h, num_bins=0)
    assert flat["summary"] == 1000 * (3 * 20 + 8 + 12 * 20)


def test_a_request_that_fits_passes_and_returns_the_estimates() -> None:
    counts = AnalysisCounts(n_samples=2000, n_sbc=200, n_sbc_samples=1000)
    est = check_analysis_size(counts, OPTIONS, d=3, m=6, memory_bytes=1 << 30)
    assert est == analysis_memory_bytes(counts, d=3, m=6)


@pytest.mark.parametrize(("counts", "start", "what"), [
    (AnalysisCounts(n_sbc=10**6, n_sbc_samples=10**6),
     "--n-sbc 1,000,000 × --n-sbc-samples 1,000,000: ", "the calibration's posterior samples"),
    (AnalysisCounts(n_samples=10**10), "--n-samples 10,000,000,000: ",
     "the posterior summary's samples and their densities"),
    (AnalysisCounts(n_calibration=10**9), "--n-calibration 1,000,000,000 × 200 calibration "
     "samples: ", "the predictive check's replicate posterior samples"),
    (AnalysisCounts(n_prediction_samples=10**9), "--n-prediction-samples 1,000,000,000: ",
     "the connectivity predictions' samples"),
])
def test_too_large_a_request_is_one_line_naming_the_option_and_the_size(
        counts: AnalysisCounts, start: str, what: str) -> None:
    with pytest.raises(InsufficientResourcesError) as info:
        check_analysis_size(counts, OPTIONS, d=3, m=6, memory_bytes=24 << 30)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(start), msg
    assert f"{what} would need about " in msg and "this machine has 24 GiB" in msg
    need = max(analysis_memory_bytes(counts, d=3, m=6).values())
    from wiring.simulation.resources import format_bytes

    assert f"about {format_bytes(need)} of memory" in msg


def test_the_limit_is_the_memory_with_headroom() -> None:
    counts = AnalysisCounts(n_sbc=1000, n_sbc_samples=1000)
    need = analysis_memory_bytes(counts, d=3, m=6)["calibration"]
    check_analysis_size(counts, OPTIONS, d=3, m=6, memory_bytes=int(need * 1.1) + 1)
    with pytest.raises(InsufficientResourcesError, match="--n-sbc 1,000"):
        check_analysis_size(counts, OPTIONS, d=3, m=6, memory_bytes=int(need * 1.1) - 1)


def test_unknown_memory_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from wiring.simulation import resources

    monkeypatch.setattr(resources, "physical_memory_bytes", lambda: None)
    check_analysis_size(AnalysisCounts(n_samples=10**15), OPTIONS, d=3, m=6)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="n_sbc=-1"):
        analysis_memory_bytes(AnalysisCounts(n_sbc=-1), d=3, m=6)
