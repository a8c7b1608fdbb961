"""The short summary ``wiring run`` prints: only what exists, and every verdict the report holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.commands.run import format_summary


def _summary() -> dict[str, Any]:
    conditions = {
        "nominal": {"label": "nominal anatomy", "reference_hpd_level": 0.005,
                    "a_priori_rule_plausible": True},
        "vpm_boutons_x2": {"label": "VPM boutons x2", "reference_hpd_level": 0.983,
                           "a_priori_rule_plausible": False},
        "odd": {"label": "no reference", "reference_hpd_level": None,
                "a_priori_rule_plausible": None},
    }
    return {"sections": {
        "posterior": {"parameters": [{"parameter": "theta_pre", "mean": 1.01,
                                      "ci_low": 0.6, "ci_high": 1.4}],
                      "reference": [1.0], "reference_in_hpd": True,
                      "reference_hpd_level": 0.05},
        "anatomy_sensitivity": {"conditions": conditions},
        "calibration": {"passed": True},
    }}


def test_sensitivity_verdicts_are_printed(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("<html></html>")
    text = format_summary(_summary(), tmp_path)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("how the verdict"))
    assert lines[start + 1].split() == ["nominal", "anatomy", "plausible", "(0", "%)"]
    assert lines[start + 2].split() == ["VPM", "boutons", "x2", "NOT", "plausible", "(98", "%)"]
    assert lines[start + 3].split() == ["no", "reference", "n/a"]
    assert text.rstrip().endswith("index.html")


def test_no_sensitivity_section_prints_no_sensitivity_lines(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("<html></html>")
    summary = _summary()
    del summary["sections"]["anatomy_sensitivity"]
    assert "how the verdict" not in format_summary(summary, tmp_path)


def test_calibration_with_too_few_runs_is_printed_as_not_judged(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("<html></html>")
    summary = _summary()
    summary["sections"]["calibration"] = {
        "passed": None, "verdict": "not judged (20 runs; at least 191 needed)"}
    lines = format_summary(summary, tmp_path).splitlines()
    assert "calibration (SBC, coverage): not judged (20 runs; at least 191 needed)" in lines
    assert not any("FAILED" in line or "passed" in line for line in lines)
