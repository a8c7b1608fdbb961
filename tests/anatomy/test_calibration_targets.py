"""Tests of the anatomy calibration targets: shipped data, loader, bad input and the checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anatomy.calibration import (
    BOUTON_LAYER_GROUPS,
    CalibrationTargetError,
    bouton_depth_profile,
    check_anatomy,
    layer_group_fractions,
    load_anatomy_targets,
    read_profile_csv,
    targets_path,
)
from anatomy.catalogue import LAYERS
from anatomy.generate import preset_spec, site_density_profile
from anatomy.parameters import LAYER_COMPOSITION


def test_shipped_targets_load_with_sources() -> None:
    targets = load_anatomy_targets()
    kinds = {t.kind for t in targets}
    assert kinds == {"vpm_bouton_fraction", "neuron_count", "post_all"}
    assert all(t.source for t in targets)
    assert len({t.id for t in targets}) == len(targets)


def test_bouton_fractions_from_the_dense_profile() -> None:
    # golden values: the dense model's profile with the model's layer boundaries (computed
    # independently when the targets were written: 0.1732, 0.4675, 0.1125, 0.1242, 0.1206)
    got = {t.key: t.value for t in load_anatomy_targets() if t.kind == "vpm_bouton_fraction"}
    want = {"L2/3": 0.1732, "L4": 0.4675, "L5A": 0.1125, "L5B": 0.1242, "L6": 0.1206}
    assert got == pytest.approx(want, abs=6e-4)
    assert BOUTON_LAYER_GROUPS["L2/3"] == (157.0, 576.0)
    assert BOUTON_LAYER_GROUPS["L6"] == (1349.0, 1973.0)


def test_layer_group_fractions_split_bins_uniformly() -> None:
    # one bin 550-600 µm straddles L2/3 and L4 at 576 µm: 26/50 and 24/50 of its weight
    f = layer_group_fractions([550.0], [1.0])
    assert f["L2/3"] == pytest.approx(26 / 50)
    assert f["L4"] == pytest.approx(24 / 50)
    assert sum(f.values()) == pytest.approx(1.0)


def test_count_targets_are_meyer_2010_and_match_the_generator() -> None:
    counts = {t.key: t.value for t in load_anatomy_targets() if t.kind == "neuron_count"}
    assert counts == {c.layer: c.n_neurons for c in LAYER_COMPOSITION}


def test_post_all_targets_are_the_target_site_density() -> None:
    # the shipped per-layer values (rounded to 100) are the generator's site-density profile
    g = preset_spec("column").grid()
    prof = site_density_profile(g)
    from anatomy.catalogue import layer_of_depth

    layer = layer_of_depth(g.depth_um()[: g.shape[2]])
    for t in load_anatomy_targets():
        if t.kind == "post_all":
            assert prof[layer == LAYERS.index(t.key)].mean() == pytest.approx(t.value, rel=0.01)


def _copy_targets(tmp_path: Path) -> Path:
    for name in ("anatomy-targets.toml", "vpm-boutons-by-depth.csv"):
        shutil.copy(targets_path(name), tmp_path / name)
    return tmp_path / "anatomy-targets.toml"


@pytest.mark.parametrize(("old", "new", "message"), [
    ('kind = "neuron_count"\nlayer = "L1"', 'kind = "neuron_counts"\nlayer = "L1"',
     "target 1: unknown kind 'neuron_counts'"),
    ('layer = "L1"\nvalue = 63', 'layer = "L7"\nvalue = 63', "target 1: unknown layer 'L7'"),
    ('value = 63\ntolerance = 0.05\nsource = "Meyer et al. 2010, Cereb Cortex 20:2277, neurons '
     'per layer of the C2 column"', 'value = 63\ntolerance = 0.05',
     "target 1: missing source"),
    ('value = 63', 'value = -63', "target 1: value must be >= 0"),
    ('value = 63', 'value = "many"', "target 1: 'value' must be a finite number"),
    ('tolerance = 0.04', 'tolerance = 1.5', "target 0: tolerance must be in (0, 1]"),
    ('layers = ["L2/3",', 'layers = ["L1/2",', "unknown layer group 'L1/2'"),
    ("schema_version = 1", "schema_version = 2", "schema_version must be 1"),
    ("schema_version = 1", "schema_version = 1\n[[[", "is not valid TOML"),
])
def test_bad_target_file_is_a_one_line_error(tmp_path: Path, old: str, new: str,
                                             message: str) -> None:
    path = _copy_targets(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CalibrationTargetError) as info:
        load_anatomy_targets(path)
    msg = str(info.value)
    assert message in msg and str(path) in msg and "\n" not in msg


@pytest.mark.parametrize(("content", "message"), [
    ("depth_um,boutons\n0,1\n", "no source"),
    ("# source\ndepth_um,boutons\n0,-1\n", "data row 1: boutons must be finite and >= 0"),
    ("# source\ndepth,boutons\n0,1\n", "data row 1: needs numeric depth_um and boutons"),
    ("# source\ndepth_um,boutons\n", "the profile has no boutons"),
])
def test_bad_profile_is_a_one_line_error(tmp_path: Path, content: str, message: str) -> None:
    path = _copy_targets(tmp_path)
    (tmp_path / "vpm-boutons-by-depth.csv").write_text(content, encoding="utf-8")
    with pytest.raises(CalibrationTargetError, match=r"vpm-boutons-by-depth\.csv") as info:
        load_anatomy_targets(path)
    assert message in str(info.value)


def test_missing_target_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationTargetError, match="cannot read"):
        load_anatomy_targets(tmp_path / "none.toml")
    with pytest.raises(CalibrationTargetError, match="cannot read profile"):
        read_profile_csv(tmp_path / "none.csv")


def test_small_passes_the_anatomy_targets(small_model: Any) -> None:
    results = check_anatomy(small_model)
    assert len(results) == len(load_anatomy_targets())
    failed = [(r.target.id, r.model_value) for r in results if not r.passed]
    assert not failed


def test_bouton_profile_sums_the_vpm_boutons(tiny_model: Any) -> None:
    from anatomy.catalogue import CELL_TYPES

    prof = bouton_depth_profile(tiny_model)
    vpm = np.flatnonzero(tiny_model.neurons.cell_type == CELL_TYPES.index("VPM"))
    assert prof.sum() == pytest.approx(float(tiny_model.pre.load()[vpm].sum()))
    assert prof.shape == (tiny_model.grid.shape[2],)
