"""Every exception class lives in the errors module of its layer, and the common messages are pinned."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anatomy.errors
import pipelines.errors
import wiring.errors
from anatomy.errors import StoreValidationError
from anatomy.generate import build_model
from pipelines.config import ConfigError, load_config
from wiring.connectome import open_connectome
from wiring.errors import (
    ConnectomeStoreError,
    MeasurementError,
    PosteriorFileError,
    RuleNotFoundError,
    SelectionError,
    StoreFormatError,
    WiringError,
)
from wiring.inference import load_posterior
from wiring.measurements import load_measurement_set
from wiring.measurements.selectors import parse_selector
from wiring.rules.registry import get_rule
from wiring.simulation import SimulationStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["anatomy", "wiring", "pipelines"])
def test_exception_classes_live_in_errors_py(package: str) -> None:
    elsewhere = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception", "Warning"))
                for b in node.bases
            ):
                elsewhere.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not elsewhere, f"exception classes outside {package}/errors.py: {elsewhere}"


def test_moved_classes_are_the_same_objects_under_their_old_modules() -> None:
    from anatomy.generate import GeneratorArgumentError
    from wiring.inference.npe import TrainingDataError
    from wiring.measurements.io import FieldProblem
    from wiring.simulation.store import StoreFormatError as OldStoreFormatError

    assert GeneratorArgumentError is anatomy.errors.GeneratorArgumentError
    assert TrainingDataError is wiring.errors.TrainingDataError
    assert FieldProblem is wiring.errors.FieldProblem
    assert OldStoreFormatError is StoreFormatError
    assert ConfigError is pipelines.errors.ConfigError
    assert issubclass(ConfigError, WiringError)


def test_connectome_store(tmp_path: Path) -> None:
    with pytest.raises(ConnectomeStoreError, match=r"^.* is not a zarr v3 group: ") as info:
        open_connectome(tmp_path)
    assert isinstance(info.value, StoreValidationError)
    with pytest.raises(FileNotFoundError, match=r"^no connectome store at "):
        open_connectome(tmp_path / "missing")


def test_simulation_store(tmp_path: Path) -> None:
    with pytest.raises(
        StoreFormatError, match=r"is not a zarr store \(.*\); create it with `wiring simulate`$"
    ):
        SimulationStore.open(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"^no simulation store at "):
        SimulationStore.open(tmp_path / "missing")


def test_posterior_file(tmp_path: Path) -> None:
    with pytest.raises(PosteriorFileError, match=r"^posterior '.*': cannot read manifest\.json "):
        load_posterior(tmp_path)


def test_unknown_rule() -> None:
    with pytest.raises(
        RuleNotFoundError, match=r"^no wiring rule named 'dsoo' \(did you mean 'dso'\?\)\. Installed rules: "
    ):
        get_rule("dsoo")


def test_unknown_measurement_set() -> None:
    with pytest.raises(
        MeasurementError,
        match=r"^unknown measurement set 'vpm-invivoo'; built-in sets are .*Did you mean 'vpm-invivo'\?$",
    ):
        load_measurement_set("vpm-invivoo")


def test_unknown_cell_type() -> None:
    with pytest.raises(
        SelectionError,
        match=r"^in selector 'cell_type=XX': unknown cell type 'XX'; known cell types are L2PY, ",
    ):
        parse_selector("cell_type=XX")


def test_unknown_config_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[run]\nnmae = "x"\n')
    with pytest.raises(
        ConfigError, match=r"c\.toml: unknown key run\.'nmae'; did you mean run\.'name'\? \(known keys: "
    ):
        load_config(path)


def test_generator_seed() -> None:
    with pytest.raises(
        anatomy.errors.GeneratorArgumentError,
        match=r"^seed must be a non-negative integer, got -1; pass e\.g\. seed=0$",
    ):
        build_model("tiny", seed=-1)
