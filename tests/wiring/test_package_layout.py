"""The lazy ``wiring`` namespace and the deprecated module paths of the previous release."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import wiring
from wiring._deprecated import MOVED


def test_sub_packages_and_common_names_are_attributes() -> None:
    from wiring.simulation.simulator import Simulator

    assert wiring.simulation.Simulator is Simulator
    assert wiring.Simulator is Simulator
    assert wiring.connectome.open_connectome is wiring.open_connectome
    assert {"simulation", "measurements", "inference", "connectome", "Simulator"} <= set(dir(wiring))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = wiring.nope


def test_import_wiring_imports_no_sub_package() -> None:
    code = "import sys, wiring; print(sorted(m for m in sys.modules if m.startswith('wiring.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['wiring._deprecated']"


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_paths_warn_and_give_the_new_module(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated .* import {new} instead"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_old_names_still_import() -> None:
    for old in ("wiring.simulator", "wiring.features", "wiring.dso", "wiring.simstore"):
        sys.modules.pop(old, None)
    # the old modules exist only at run time (wiring._deprecated's import hook): mypy cannot see them
    with pytest.warns(DeprecationWarning):
        from wiring.dso import (  # type: ignore[import-not-found]  # noqa: F401
            SupportsFactors,
            dso_factors,
            rule_factors,
        )
        from wiring.features import (  # type: ignore[import-not-found]  # noqa: F401
            FeatureBundle,
            extract_feature_bundle,
        )
        from wiring.simstore import (  # type: ignore[import-not-found]  # noqa: F401
            SCHEMA_VERSION,
            SimulationStore,
        )
        from wiring.simulator import (  # type: ignore[import-not-found]  # noqa: F401
            Simulator,
            SupportsLogLinear,
        )
    from wiring.connectome import ConnectomeStore, synapse_density_by_depth  # noqa: F401
    from wiring.inference import PriorSpec, train_posterior  # noqa: F401
    from wiring.measurements import SliceConfig, load_measurement_set, population  # noqa: F401


def test_old_paths_warn_in_a_fresh_interpreter() -> None:
    code = "import warnings; warnings.simplefilter('error'); import wiring.simulator"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    assert "wiring.simulator is deprecated" in out.stderr
