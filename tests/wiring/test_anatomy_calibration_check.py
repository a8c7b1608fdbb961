"""Tests of the connection-probability calibration targets and the combined report."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anatomy.calibration import CalibrationTargetError
from anatomy.generate import build_model
from wiring.anatomy_calibration import (
    calibration_report,
    check_connectivity,
    load_connectivity_targets,
)
from wiring.measurements import load_measurement_set
from wiring.rules import get_rule
from wiring.simulation import Simulator

#: The dense model's values at θ = (1, 1, 1) (real-model predictions of Boelts et al. 2023).
DENSE = {"L4": 0.455, "L4-septum": 0.405, "L4sp": 0.466, "L4ss": 0.438, "L5IT": 0.285,
         "L5PT": 0.401, "L6": 0.178}


def test_shipped_targets() -> None:
    spec = load_connectivity_targets()
    assert spec.measurement_set == "vpm-invivo" and spec.rule == "dso"
    assert spec.theta == (1.0, 1.0, 1.0)
    probs = {t.key: t.value for t in spec.targets if t.kind == "connection_probability"}
    assert probs == DENSE
    assert all(t.tolerance == 0.05 and t.source for t in spec.targets
               if t.kind == "connection_probability")
    ratio = [t for t in spec.targets if t.kind == "probability_ratio"]
    assert len(ratio) == 1 and ratio[0].key == "L4-septum/L4"
    assert ratio[0].value == pytest.approx(DENSE["L4-septum"] / DENSE["L4"], abs=0.005)


def _copy(tmp_path: Path) -> Path:
    from wiring.anatomy_calibration import _default_path

    path = tmp_path / "targets.toml"
    shutil.copy(_default_path(), path)
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ('measurement = "L4"\n', 'measurement = "L3"\n', "target 1: unknown measurement 'L3'"),
    ('denominator = "L4"', 'denominator = "L2"', "target 8: unknown measurement 'L2'"),
    ("value = 0.455", "value = 1.455", "target 1: value 1.455 is outside [0, 1]"),
    ("value = 0.455", "value = -0.1", "target 1: value -0.1 is outside [0, 1]"),
    ('tolerance = 0.05\nsource = "the dense', 'tolerance = 0.05\nsourc = "the dense',
     "target 1: missing source"),
    ('kind = "connection_probability"', 'kind = "probability"', "target 1: unknown kind"),
    ("tolerance = 0.05", "tolerance = 0", "target 1: tolerance 0 is outside (0, 1]"),
    ("theta = [1.0, 1.0, 1.0]", "theta = [1.0, 1.0]", "theta must be a list of 3 numbers"),
    ('measurement_set = "vpm-invivo"', 'measurement_set = "vpm-invitro"', "vpm-invitro"),
    ('rule = "dso"', 'rule = "dsoo"', "dsoo"),
])
def test_bad_target_file_is_a_one_line_error(tmp_path: Path, old: str, new: str,
                                             message: str) -> None:
    path = _copy(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CalibrationTargetError) as info:
        load_connectivity_targets(path)
    msg = str(info.value)
    assert message in msg and str(path) in msg and "\n" not in msg


def test_check_matches_the_simulator(small_model: Any) -> None:
    # the check's values are Simulator.expected at θ = (1, 1, 1), computed independently here
    sim = Simulator(small_model, get_rule("dso"), load_measurement_set("vpm-invivo"))
    want = dict(zip(sim.mset.names, sim.expected(np.ones((1, 3)))[0], strict=True))
    results = {r.target.key: r for r in check_connectivity(small_model)}
    for name, v in want.items():
        assert results[name].model_value == pytest.approx(v, rel=1e-9)
    ratio = results["L4-septum/L4"].model_value
    assert ratio == pytest.approx(want["L4-septum"] / want["L4"], rel=1e-9)


def _assert_calibrated(model: Any) -> None:
    report = calibration_report(model)
    failed = [(r["id"], r["model_value"], r["value"]) for r in report["results"]
              if r["passed"] is not True]
    assert not failed
    assert report["all_passed"] and report["n_failed"] == 0
    assert report["n_passed"] == len(report["results"]) == 29


def test_small_is_calibrated(small_model: Any) -> None:
    _assert_calibrated(small_model)


@pytest.mark.slow
def test_column_is_calibrated() -> None:
    _assert_calibrated(build_model("column", seed=0))


def test_tiny_reports_what_it_can(tiny_model: Any) -> None:
    # tiny is a unit-test model (scaled-down column): the check runs and gives every value
    report = calibration_report(tiny_model)
    assert report["n_not_applicable"] == 0
    assert all(r["model_value"] is not None for r in report["results"])
