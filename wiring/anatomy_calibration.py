"""Calibration check of a structural model against the dense barrel-cortex model.

Combines the anatomy-only targets of :mod:`anatomy.calibration` (VPM bouton depth fractions,
neurons per layer, post_all by layer) with the targets that need the wiring rule: the
connection probabilities the DSO rule gives on the dense model (Udvary et al. 2022) for the
seven in vivo VPM measurements at θ = (1, 1, 1), and the septal innervation ratio
(``wiring/data/calibration/dso-vpm-invivo.toml``). :func:`calibration_report` is what
``wiring anatomy calibrate STORE`` prints.

Targets a model cannot answer (an imported store without VPM neurons or without a septum)
are reported as not applicable with the reason, never silently dropped.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from anatomy.calibration import (
    CalibrationTargetError,
    CheckResult,
    Target,
    check_anatomy,
    read_toml,
    verdict,
)
from anatomy.model import StructuralModel
from wiring.errors import WiringError

__all__ = [
    "ConnectivityTargets",
    "calibration_report",
    "check_connectivity",
    "load_connectivity_targets",
]

_KINDS = ("connection_probability", "probability_ratio")


class ConnectivityTargets:
    """Connection-probability targets: the measurement set, rule, θ and the targets."""

    def __init__(self, measurement_set: str, rule: str, theta: tuple[float, ...],
                 targets: list[Target]) -> None:
        self.measurement_set = measurement_set
        self.rule = rule
        self.theta = theta
        self.targets = targets


def _default_path() -> Path:
    return Path(str(resources.files("wiring") / "data" / "calibration" / "dso-vpm-invivo.toml"))


def load_connectivity_targets(path: str | Path | None = None) -> ConnectivityTargets:
    """Read and validate a connection-probability target file (default: the shipped one).

    Raises
    ------
    CalibrationTargetError
        One line naming the file and target: unknown measurement (not in the file's measurement
        set), unknown kind, missing source, a probability outside [0, 1], a bad tolerance.
    """
    from wiring.measurements import load_measurement_set
    from wiring.rules import get_rule

    p = _default_path() if path is None else Path(path)
    data = read_toml(p)
    set_name = data.get("measurement_set")
    try:
        mset = load_measurement_set(str(set_name))
        rule = get_rule(str(data.get("rule")))
    except WiringError as err:
        raise CalibrationTargetError(f"{p}: {err}") from None
    theta = data.get("theta")
    if (not isinstance(theta, list) or len(theta) != len(rule.params)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in theta)):
        raise CalibrationTargetError(
            f"{p}: theta must be a list of {len(rule.params)} numbers, got {theta!r}"
        )
    known = set(mset.names)
    out: list[Target] = []
    for row, e in enumerate(data.get("target", []), start=1):
        where = f"{p}, target {row}"
        kind = e.get("kind")
        if kind not in _KINDS:
            raise CalibrationTargetError(f"{where}: unknown kind {kind!r}; known: {', '.join(_KINDS)}")
        names = [e.get("measurement")] + ([e.get("denominator")] if kind == "probability_ratio"
                                          else [])
        for name in names:
            if name not in known:
                raise CalibrationTargetError(
                    f"{where}: unknown measurement {name!r} (not in {set_name!r}: "
                    f"{', '.join(mset.names)})"
                )
        src = e.get("source")
        if not isinstance(src, str) or not src.strip():
            raise CalibrationTargetError(
                f"{where}: missing source (every target must say where its value comes from)"
            )
        value, tol = e.get("value"), e.get("tolerance")
        for key, v in (("value", value), ("tolerance", tol)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise CalibrationTargetError(f"{where}: {key!r} must be a finite number, got {v!r}")
        assert isinstance(value, (int, float)) and isinstance(tol, (int, float))
        if not 0.0 <= value <= 1.0:
            raise CalibrationTargetError(f"{where}: value {value} is outside [0, 1]")
        if not 0.0 < tol <= 1.0:
            raise CalibrationTargetError(f"{where}: tolerance {tol} is outside (0, 1]")
        sd = e.get("sd")
        key = str(names[0]) if kind == "connection_probability" else f"{names[0]}/{names[1]}"
        out.append(Target(
            id=f"p-{key}" if kind == "connection_probability" else f"ratio-{key}", kind=kind,
            key=key, value=float(value), tolerance=float(tol), relative=False,
            source=src.strip(), sd=None if sd is None else float(sd),
            denominator=None if kind == "connection_probability" else str(names[1]),
        ))
    return ConnectivityTargets(str(set_name), str(data["rule"]), tuple(float(v) for v in theta),
                               out)


def _expected(model: StructuralModel, spec: ConnectivityTargets,
              names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Expected connection probability of each measurement; reasons for those not computable."""
    from wiring.measurements import load_measurement_set, population
    from wiring.rules import get_rule
    from wiring.simulation import Simulator

    mset = load_measurement_set(spec.measurement_set)
    ok: list[str] = []
    reasons: dict[str, str] = {}
    for name in names:
        try:
            pop = population(model, mset[name])
            if len(pop.pair_pre) == 0:
                reasons[name] = f"the model has no pairs for {name!r}"
                continue
        except WiringError as err:
            reasons[name] = str(err)
            continue
        ok.append(name)
    values: dict[str, float] = {}
    if ok:
        sim = Simulator(model, get_rule(spec.rule), mset.subset(ok))
        e = sim.expected(np.asarray([spec.theta]))[0]
        values = {n: float(v) for n, v in zip(sim.mset.names, e, strict=True)}
    return values, reasons


def check_connectivity(
    model: StructuralModel, spec: ConnectivityTargets | None = None
) -> list[CheckResult]:
    """The model's expected connection probabilities at the targets' θ against the targets."""
    spec = load_connectivity_targets() if spec is None else spec
    names: list[str] = []
    for t in spec.targets:
        for n in (t.key.split("/") if t.kind == "probability_ratio" else [t.key]):
            if n not in names:
                names.append(n)
    values, reasons = _expected(model, spec, names)
    out: list[CheckResult] = []
    for t in spec.targets:
        parts = t.key.split("/") if t.kind == "probability_ratio" else [t.key]
        missing = [reasons[n] for n in parts if n not in values]
        if missing:
            out.append(CheckResult(target=t, model_value=None, passed=None, reason=missing[0]))
            continue
        if t.kind == "probability_ratio":
            den = values[parts[1]]
            if den <= 0:
                out.append(CheckResult(target=t, model_value=None, passed=None,
                                       reason=f"{parts[1]} has probability 0"))
                continue
            value = values[parts[0]] / den
        else:
            value = values[t.key]
        out.append(CheckResult(target=t, model_value=value, passed=verdict(t, value)))
    return out


def calibration_report(model: StructuralModel) -> dict[str, Any]:
    """Every shipped calibration target against ``model``, as a JSON-native dict.

    ``{"results": [...], "n_passed", "n_failed", "n_not_applicable", "all_passed"}``; each
    result has the target's fields, ``model_value``, ``passed`` (None: not applicable) and
    ``reason``.
    """
    results = check_anatomy(model) + check_connectivity(model)
    rows = [r.to_dict() for r in results]
    n_pass = sum(r.passed is True for r in results)
    n_fail = sum(r.passed is False for r in results)
    return {"results": rows, "n_passed": n_pass, "n_failed": n_fail,
            "n_not_applicable": sum(r.passed is None for r in results),
            "all_passed": n_fail == 0}
