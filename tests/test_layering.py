"""The import graph points down only: pipelines -> wiring -> anatomy, and sbi stays in one module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "anatomy": ("wiring", "pipelines"),
    "wiring": ("pipelines",),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_downwards_only(package: str) -> None:
    offenders = []
    for path in _modules(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN[package]:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "layering violated:\n" + "\n".join(offenders)


def test_only_inference_modules_import_sbi() -> None:
    allowed = (ROOT / "wiring" / "inference", ROOT / "wiring" / "analysis")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("anatomy", "wiring", "pipelines")
        for path in _modules(package)
        if any(n.split(".")[0] == "sbi" for n in _imports(path))
        and not any(path.is_relative_to(folder) for folder in allowed)
    ]
    assert not offenders, f"sbi imported outside wiring.inference / wiring.analysis: {offenders}"


def test_sub_packages_point_down_the_data_flow() -> None:
    """rules <- measurements <- simulation <- connectome, and inference needs no simulation."""
    forbidden = {
        "rules": ("measurements", "simulation", "inference", "connectome", "analysis"),
        "measurements": ("simulation", "inference", "connectome", "analysis"),
        "inference": ("simulation", "connectome", "analysis", "measurements"),
        "simulation": ("connectome", "analysis"),
        "connectome": ("simulation", "inference", "analysis"),
    }
    offenders = []
    for sub, banned in forbidden.items():
        for path in _modules(f"wiring/{sub}"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "wiring" and len(parts) > 1 and parts[1] in banned:
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "wiring sub-packages import upstream:\n" + "\n".join(offenders)


def test_no_pickle_anywhere() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("anatomy", "wiring", "pipelines")
        for path in _modules(package)
        if {"pickle", "cloudpickle", "dill", "joblib"} & {n.split(".")[0] for n in _imports(path)}
    ]
    assert not offenders, f"pickle-based modules imported in: {offenders}"
