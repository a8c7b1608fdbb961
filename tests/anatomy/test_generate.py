"""Tests of the synthetic barrel-cortex generator against the published facts it must match.

The published statistics are checked on ``small`` (default suite) and on the full ``column``
model (``--run-slow``; built once per module). Counts per layer are exact on ``column``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from anatomy._generate_somata import split_counts
from anatomy.calibration import check_anatomy
from anatomy.catalogue import CELL_TYPES, LAYER_BOUNDS_UM, LAYERS, REGIONS, layer_of_depth
from anatomy.describe import column_voxel_mask, describe_model
from anatomy.errors import AnatomyError, UnknownNameError
from anatomy.generate import (
    PRESETS,
    GeneratorArgumentError,
    build_model,
    preset_spec,
    site_density_profile,
)
from anatomy.hashing import content_hash
from anatomy.model import StructuralModel
from anatomy.parameters import LAYER_COMPOSITION

MEYER_2010 = {"L1": 63, "L2": 2039, "L3": 3735, "L4": 4447, "L5A": 1737, "L5B": 2235,
              "L6A": 3786, "L6B": 1066}


def _code(name: str) -> int:
    return CELL_TYPES.index(name)


def _post_by_voxel_layer(model: StructuralModel, rows: np.ndarray) -> np.ndarray:
    """Target sites of ``rows`` summed per voxel-centre layer code (index 8 = outside cortex)."""
    post = model.post.load()[rows]
    per_voxel = np.asarray(post.sum(axis=0)).ravel()
    layer = layer_of_depth(model.depth_um()).astype(np.int64)
    layer[layer < 0] = len(LAYERS)
    return np.bincount(layer, weights=per_voxel, minlength=len(LAYERS) + 1)


# ------------------------------------------------------------------------------------------
# API, errors, provenance, determinism
# ------------------------------------------------------------------------------------------
def test_presets() -> None:
    assert PRESETS == ("tiny", "small", "column", "field")


@pytest.mark.parametrize("bad", ["huge", "Column", ""])
def test_unknown_preset_lists_the_presets(bad: str) -> None:
    with pytest.raises(UnknownNameError) as err:
        build_model(bad)
    msg = str(err.value)
    assert repr(bad) in msg
    for name in PRESETS:
        assert name in msg
    assert isinstance(err.value, AnatomyError) and isinstance(err.value, KeyError)
    if bad == "Column":
        assert "Did you mean 'column'?" in msg


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(bad: Any) -> None:
    with pytest.raises(GeneratorArgumentError, match="seed must be a non-negative integer"):
        build_model("tiny", seed=bad)


def test_attrs_and_hash(tiny_model: StructuralModel) -> None:
    a = tiny_model.attrs
    assert a["source"] == "synthetic"
    assert a["preset"] == "tiny"
    assert a["seed"] == 0
    assert isinstance(a["generator_version"], str)
    assert a["content_hash"] == content_hash(tiny_model)
    assert len(a["content_hash"]) == 64
    json.dumps(dict(a))  # JSON-native


def test_same_seed_same_arrays_different_seed_differs(tiny_model: StructuralModel) -> None:
    again = build_model("tiny", seed=0)
    for name in ("cell_type", "layer", "region", "column", "soma_um", "ids"):
        np.testing.assert_array_equal(getattr(again.neurons, name),
                                      getattr(tiny_model.neurons, name))
    for which in ("pre", "post"):
        for arr in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(getattr(again, which), arr),
                                          getattr(getattr(tiny_model, which), arr))
    np.testing.assert_array_equal(again.post_all, tiny_model.post_all)
    assert again.attrs["content_hash"] == tiny_model.attrs["content_hash"]
    other = build_model("tiny", seed=1)
    assert other.attrs["content_hash"] != tiny_model.attrs["content_hash"]
    assert not np.array_equal(other.neurons.soma_um, tiny_model.neurons.soma_um)
    assert other.pre.nnz != tiny_model.pre.nnz or not np.array_equal(
        other.pre.data, tiny_model.pre.data)


def test_progress_bar_does_not_change_the_model(tiny_model: StructuralModel,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    m = build_model("tiny", seed=0, progress=True)
    assert m.attrs["content_hash"] == tiny_model.attrs["content_hash"]
    assert "anatomy tiny" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# structure (tiny)
# ------------------------------------------------------------------------------------------
def test_tiny_structure(tiny_model: StructuralModel) -> None:
    m = tiny_model
    assert m.grid.shape == (8, 8, 40)
    assert m.grid.spacing_um == 50.0
    depth = m.depth_um()
    assert depth.min() < 50 and depth.max() > 1950  # whole cortical depth 0-2000 µm
    nrn = m.neurons
    vpm = nrn.cell_type == _code("VPM")
    assert vpm.sum() == 20
    assert np.all(nrn.region[vpm] == REGIONS.index("barreloid"))
    assert np.all(nrn.layer[vpm] == -1)
    assert np.all(nrn.depth_um[vpm] > 2000)
    assert 200 <= (~vpm).sum() <= 600
    assert m.post.load()[np.flatnonzero(vpm)].nnz == 0  # thalamic dendrites are not in cortex
    l4_exc = np.isin(nrn.cell_type, [_code(t) for t in ("L4PY", "L4sp", "L4ss")])
    for region in ("column", "septum"):
        assert (l4_exc & (nrn.region == REGIONS.index(region))).sum() >= 5


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_somata_in_their_layers_and_regions(preset: str, tiny_model: StructuralModel,
                                            small_model: StructuralModel) -> None:
    m = tiny_model if preset == "tiny" else small_model
    spec = preset_spec(preset)
    nrn = m.neurons
    cortical = nrn.layer >= 0
    d = nrn.depth_um[cortical].astype(np.float64)
    np.testing.assert_array_equal(layer_of_depth(d), nrn.layer[cortical])
    cx, cy = spec.column_centers_um[0]
    r = np.hypot(nrn.soma_um[:, 0] - cx, nrn.soma_um[:, 1] - cy)
    radius = spec.column_diameter_um / 2
    in_col = nrn.region == REGIONS.index("column")
    in_sep = nrn.region == REGIONS.index("septum")
    assert np.all(r[in_col] <= radius + 1e-3)
    assert np.all((r[in_sep] > radius - 1e-3) & (r[in_sep] <= radius + spec.septum_width_um + 1e-3))
    assert in_col.sum() > in_sep.sum() > 0


def test_counts_are_canonical_csc(small_model: StructuralModel) -> None:
    m = small_model
    for counts in (m.pre, m.post):
        assert counts.indices.dtype == np.int32
        assert counts.data.dtype == np.float32
        assert counts.indptr[0] == 0 and counts.indptr[-1] == len(counts.indices)
        assert np.all(np.diff(counts.indptr) >= 0)
        assert np.all(counts.data >= 1) and np.all(counts.data == np.round(counts.data))
        # neurons strictly increasing within each voxel: sorted, no duplicates
        d = np.diff(counts.indices.astype(np.int64))
        starts = counts.indptr[1:-1]
        boundary = np.zeros(len(d), dtype=bool)
        boundary[starts[(starts > 0) & (starts < len(counts.indices))] - 1] = True
        assert np.all((d > 0) | boundary)
    assert m.post_all.dtype == np.float32
    listed = np.asarray(m.post.load().sum(axis=0)).ravel()
    assert np.all(m.post_all >= listed)


def test_store_validation_accepts_generated_models(tiny_model: StructuralModel) -> None:
    from anatomy.store import validate_model

    validate_model(tiny_model)


def test_layer_counts_scale_with_the_preset(small_model: StructuralModel) -> None:
    spec = preset_spec("small")
    published = [MEYER_2010[name] for name in LAYERS]
    expected = split_counts(sum(published) * spec.column_fraction, published)
    d = describe_model(small_model)
    assert [d["column_neurons_per_layer"][name] for name in LAYERS] == expected.tolist()


def test_cell_type_split_follows_the_documented_fractions(small_model: StructuralModel) -> None:
    nrn = small_model.neurons
    for comp in LAYER_COMPOSITION:
        li = LAYERS.index(comp.layer)
        for region in ("column", "septum"):
            sel = (nrn.layer == li) & (nrn.region == REGIONS.index(region))
            n = int(sel.sum())
            for t, f in comp.type_fractions.items():
                got = int((nrn.cell_type[sel] == _code(t)).sum())
                assert abs(got - f * n) <= 1.0, (comp.layer, region, t, got, f * n)


def test_describe_is_json_native_and_matches(tiny_model: StructuralModel) -> None:
    d = describe_model(tiny_model)
    again = json.loads(json.dumps(d))
    assert again == d
    assert d["neurons_per_cell_type"]["VPM"] == 20
    assert sum(d["neurons_per_region"].values()) == tiny_model.n_neurons
    assert d["nnz"] == {"pre": tiny_model.pre.nnz, "post": tiny_model.post.nnz}
    assert d["post_all_in_column"]["basis"].startswith("column footprint")


def test_describe_store_backed_equals_in_memory(tiny_model: StructuralModel,
                                                tiny_store: Any) -> None:
    from anatomy.store import open_model

    stored = describe_model(open_model(tiny_store))
    mem = describe_model(tiny_model)
    stored.pop("attrs")
    mem.pop("attrs")
    assert stored == mem


# ------------------------------------------------------------------------------------------
# published statistics: small (default) and column (slow, built once)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["small", pytest.param("column", marks=pytest.mark.slow)])
def realistic(request: pytest.FixtureRequest) -> tuple[StructuralModel, dict[str, Any]]:
    if request.param == "small":
        model = request.getfixturevalue("small_model")
    else:
        model = build_model("column", seed=0)
    return model, describe_model(model)


def test_inhibitory_fraction(realistic: tuple[StructuralModel, dict[str, Any]]) -> None:
    _, d = realistic
    assert 0.10 <= d["inhibitory_fraction"] <= 0.12


def test_vpm_bouton_depth_profile(realistic: tuple[StructuralModel, dict[str, Any]]) -> None:
    # the dense model (anatomy/data/calibration/vpm-boutons-by-depth.csv): peak at 700-750 µm,
    # second peak at 1200-1250 µm with 0.30 of the peak, trough at 1000 µm with 0.14 of it,
    # 0.6 % of the boutons above 250 µm and 1.5 % below 1750 µm
    model, d = realistic
    v = d["vpm_boutons"]
    assert 650 <= v["peak_depth_um"] <= 800
    assert 1150 <= v["secondary_peak_depth_um"] <= 1375
    assert 0.18 <= v["secondary_to_peak_ratio"] <= 0.42
    assert 900 <= v["trough_depth_um"] <= 1100
    assert 0.07 <= v["trough_to_peak_ratio"] <= 0.21
    assert v["fraction_above_250_um"] < 0.02
    assert v["fraction_below_1750_um"] < 0.03
    # per layer group within the calibration tolerance (0.04) of the dense model
    for r in check_anatomy(model):
        if r.target.kind == "vpm_bouton_fraction":
            assert r.passed, (r.target.key, r.model_value, r.target.value)


def test_vpm_boutons_per_voxel_one_branch_crossing(
    realistic: tuple[StructuralModel, dict[str, Any]],
) -> None:
    # a segment is the piece of axon crossing one voxel: 1 + Poisson(14) boutons, so most
    # occupied voxels hold 10-25 boutons and a few (several crossings) up to about a hundred
    _, d = realistic
    e = d["vpm_boutons"]["per_entry"]
    assert e["p5"] >= 5
    assert 12 <= e["median"] <= 22
    assert 25 <= e["p95"] <= 60
    assert e["max"] < 250


def test_post_all_in_column(realistic: tuple[StructuralModel, dict[str, Any]]) -> None:
    model, d = realistic
    s = d["post_all_in_column"]
    mask = column_voxel_mask(model)
    assert mask is not None and mask.sum() == s["n"]
    listed = np.asarray(model.post.load().sum(axis=0)).ravel()
    assert np.all(model.post_all >= listed)
    # post_all follows the target-site density by depth (no noise term): within the column,
    # each depth's median is the density profile (exact where the listed sum is below it,
    # i.e. everywhere on small; on column the fully listed dendrites exceed it in places)
    prof = site_density_profile(model.grid)
    by_depth = np.median(model.post_all.reshape(model.grid.shape)[
        mask.reshape(model.grid.shape)[:, :, 0]], axis=0)
    cortex = model.grid.depth_um()[: model.grid.shape[2]] < 1973
    assert np.all(by_depth[cortex] >= prof[cortex] - 0.5)  # post_all is the rounded profile
    rel = by_depth[cortex] / prof[cortex]
    assert np.median(rel) <= (1.15 if model.attrs["preset"] == "column" else 1.0 + 1e-4)
    # it varies with depth like the densities do: L2 densest, L6B sparsest, L4 below L3
    assert prof.max() / prof[cortex].min() > 3
    # listed neurons account for a large part of the target sites in the column (on column
    # about 3/4: the rest belongs to dendrites of septal and neighbouring neurons not listed)
    assert np.median(listed[mask] / model.post_all[mask]) > (0.6 if model.attrs["preset"] == "column" else 0.02)


def test_target_sites_per_neuron(realistic: tuple[StructuralModel, dict[str, Any]]) -> None:
    model, d = realistic
    per = d["target_sites_per_neuron"]
    for t in CELL_TYPES:
        if t == "VPM":
            continue
        assert 1_000 <= per[t]["mean"] <= 25_000, t
    nrn = model.neurons
    pt = np.flatnonzero((nrn.cell_type == _code("L5PT")) &
                        (nrn.region == REGIONS.index("column")))
    sites = np.asarray(model.post.load()[pt].sum(axis=1)).ravel()
    assert 21_000 <= sites.mean() <= 26_000  # one L5PT has about 24,000 spines
    assert per["L5PT"]["max"] > 24_000


def test_dendrites_by_cell_type(realistic: tuple[StructuralModel, dict[str, Any]]) -> None:
    model, _ = realistic
    nrn = model.neurons
    col = nrn.region == REGIONS.index("column")
    L = {name: i for i, name in enumerate(LAYERS)}

    # L4ss: every target site in a voxel overlapping L4; voxels centred in L4 cover 250 of its
    # 279 µm, so a dendrite filling L4 has ~90 % of its sites there
    ss = np.flatnonzero(nrn.cell_type == _code("L4ss"))
    post = model.post.load()[ss]
    depth = model.depth_um()
    lo, hi = LAYER_BOUNDS_UM["L4"]
    overlaps = (depth + 25 > lo) & (depth - 25 < hi)
    per_voxel = np.asarray(post.sum(axis=0)).ravel()
    assert per_voxel[~overlaps].sum() == 0
    assert _post_by_voxel_layer(model, ss)[L["L4"]] / per_voxel.sum() >= 0.85

    # L5PT in L5B: dendrites from the L1 tuft down to L5B
    pt = np.flatnonzero((nrn.cell_type == _code("L5PT")) & (nrn.layer == L["L5B"]) & col)
    layer_code = layer_of_depth(depth)
    p = model.post.load()[pt]
    in_l1 = np.asarray(p[:, np.flatnonzero(layer_code == L["L1"])].sum(axis=1)).ravel()
    in_l5b = np.asarray(p[:, np.flatnonzero(layer_code == L["L5B"])].sum(axis=1)).ravel()
    assert np.mean(in_l1 > 0) >= 0.95
    assert np.mean(in_l5b > 0) >= 0.99
    prof = _post_by_voxel_layer(model, pt)
    assert prof[L["L1"]] / prof.sum() >= 0.05
    assert np.all(prof[: L["L5B"] + 1] > 0)

    # L2/3 pyramids: >= 90 % in L1-L3
    for t in ("L2PY", "L3PY"):
        prof = _post_by_voxel_layer(model, np.flatnonzero(nrn.cell_type == _code(t)))
        assert prof[: L["L3"] + 1].sum() / prof.sum() >= 0.9, t
        assert prof[L["L1"]] > 0, t
    # L6CT / L6CC: mostly L5B-L6
    for t in ("L6CT", "L6CC"):
        prof = _post_by_voxel_layer(model, np.flatnonzero(nrn.cell_type == _code(t)))
        assert prof[L["L5B"]: L["L6B"] + 1].sum() / prof.sum() >= 0.7, t


def _pre_fraction_in(model: StructuralModel, cell_types: tuple[str, ...],
                     lo_um: float, hi_um: float) -> float:
    rows = np.flatnonzero(np.isin(model.neurons.cell_type, [_code(t) for t in cell_types]))
    per_voxel = np.asarray(model.pre.load()[rows].sum(axis=0)).ravel()
    d = model.depth_um()
    return float(per_voxel[(d >= lo_um) & (d < hi_um)].sum() / per_voxel.sum())


def test_cortical_axons_local_and_translaminar(
    realistic: tuple[StructuralModel, dict[str, Any]],
) -> None:
    model, d = realistic
    for t in CELL_TYPES:
        if t != "VPM":
            assert 2_000 <= d["boutons_per_neuron"][t]["mean"] <= 12_000, t
    # VPM: 36,000 boutons per axon, of which about 80 % fall inside the 1 mm grid
    assert 25_000 <= d["boutons_per_neuron"]["VPM"]["mean"] <= 33_000
    # local: L4ss boutons in L4 and translaminar: to L2/3
    assert _pre_fraction_in(model, ("L4ss",), 576, 855) >= 0.3
    assert _pre_fraction_in(model, ("L4ss",), 157, 576) >= 0.3
    # L2/3 pyramids project to L5
    assert 0.15 <= _pre_fraction_in(model, ("L2PY", "L3PY"), 855, 1349) <= 0.6
    # L6CT collaterals reach L4
    assert _pre_fraction_in(model, ("L6CT",), 576, 855) >= 0.25
    # cortical axons spread over hundreds of voxels
    nrn = model.neurons
    pre = model.pre.load()
    for t in ("L2PY", "L5IT", "INH"):
        rows = np.flatnonzero((nrn.cell_type == _code(t)) & (nrn.region == REGIONS.index("column")))
        nnz_per_neuron = np.diff(pre.tocsr()[rows].indptr)
        assert np.median(nnz_per_neuron) >= 200, t


# ------------------------------------------------------------------------------------------
# the full column (slow)
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_column_counts_are_exact(realistic: tuple[StructuralModel, dict[str, Any]]) -> None:
    model, d = realistic
    if model.attrs["preset"] != "column":
        pytest.skip("exact counts are a property of the full-density column")
    assert d["column_neurons_per_layer"] == MEYER_2010
    # the published per-layer means sum to 19,108; the published total, 19,109, differs by
    # the rounding of the per-layer means
    assert abs(sum(d["column_neurons_per_layer"].values()) - 19_109) <= 1
    assert 250 <= d["neurons_per_cell_type"]["VPM"] <= 300
    assert d["neurons_per_region"]["barreloid"] == d["neurons_per_cell_type"]["VPM"]
    nrn = model.neurons
    for i in range(len(LAYERS)):
        assert ((nrn.layer == i) & (nrn.region == REGIONS.index("septum"))).sum() > 0
    assert d["nnz"]["pre"] < 1e8 and d["nnz"]["post"] < 5e7


def test_docs_parameter_tables_are_current() -> None:
    from pathlib import Path

    from anatomy.parameters import render_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "anatomy-model.md"
    assert render_markdown() in doc.read_text(encoding="utf-8"), (
        "docs/anatomy-model.md is out of date: replace everything below the 'generated by' "
        "marker with the output of anatomy.parameters.render_markdown()"
    )


def test_every_cell_type_has_a_documented_arbor() -> None:
    from anatomy.parameters import AXONS, DENDRITES

    assert set(AXONS) == set(CELL_TYPES)
    assert set(DENDRITES) == set(CELL_TYPES) - {"VPM"}
    for spec in (*AXONS.values(), *DENDRITES.values()):
        assert abs(sum(c.fraction for c in spec.compartments) - 1.0) < 1e-9, spec.cell_type
    for comp in LAYER_COMPOSITION:
        assert abs(sum(comp.type_fractions.values()) - 1.0) < 1e-9, comp.layer
        assert comp.n_neurons == MEYER_2010[comp.layer]


# ------------------------------------------------------------------------------------------
# building blocks: the CSC assembler and the arbor sampler
# ------------------------------------------------------------------------------------------
def test_csc_builder_equals_scipy() -> None:
    import scipy.sparse as sp

    from anatomy._generate_arbors import CscBuilder

    rng = np.random.default_rng(7)
    n, v = 50, 30
    dense = np.where(rng.random((n, v)) < 0.2, rng.integers(1, 9, (n, v)), 0).astype(np.float32)
    builder = CscBuilder(n, v)
    for a, b in ((0, 13), (13, 14), (14, 40), (40, 50)):
        block = sp.csc_array(dense[a:b])
        voxel = np.repeat(np.arange(v, dtype=np.int32), np.diff(block.indptr))
        builder.add(voxel, block.indices.astype(np.int32) + np.int32(a), block.data)
    indptr, indices, data = builder.build()
    expected = sp.csc_array(dense)
    np.testing.assert_array_equal(indptr, expected.indptr)
    np.testing.assert_array_equal(indices, expected.indices)
    np.testing.assert_array_equal(data, expected.data)


def test_sample_batch_mean_sites_and_confinement() -> None:
    from anatomy._generate_arbors import sample_batch
    from anatomy.grid import VoxelGrid
    from anatomy.parameters import ArborSpec, Compartment

    grid = VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=50.0, shape=(40, 40, 40))
    spec = ArborSpec(
        cell_type="L4ss", mean_count=2000.0, cv=0.2, source="test", sites_per_segment=5.0,
        compartments=(
            Compartment(name="a", fraction=0.7, sigma_xy_um=60.0, sigma_z_um=80.0,
                        confine_um=(600.0, 800.0)),
            Compartment(name="b", fraction=0.3, sigma_xy_um=40.0, kind="uniform",
                        lo_um=100.0, hi_um=None),
        ),
    )
    n = 400
    xy = np.full((n, 2), 1000.0, dtype=np.float32)
    z = np.full(n, 700.0, dtype=np.float32)
    voxel, local, count = sample_batch(spec, xy, z, grid, np.random.default_rng(3))
    per_neuron = np.bincount(local, weights=count, minlength=n)
    # mean 2000 sites; sd of the mean ~ 2000 * sqrt(0.2^2 + small) / sqrt(400) ~ 21
    assert abs(per_neuron.mean() - 2000.0) < 4 * 2000.0 * 0.22 / np.sqrt(n)
    depth = grid.voxel_center_um(voxel)[:, 2]
    in_band = (depth >= 575) & (depth <= 825)
    in_apical = (depth >= 75) & (depth <= 725)
    assert np.all(in_band | in_apical)  # reflected into 600-800 µm, or uniform 100-700 µm
    # only the uniform compartment (30 %) reaches above 550 µm: 0.3 * 450 / 600 = 0.225
    above = count[depth < 575].sum() / count.sum()
    assert 0.19 < above < 0.26
    # segments make counts overdispersed relative to Poisson (clustered like real arbors)
    assert np.all(count >= 1)
    # entries are sorted by voxel, then neuron
    key = voxel.astype(np.int64) * n + local
    assert np.all(np.diff(key) > 0)


@pytest.mark.slow
def test_field_has_three_full_columns() -> None:
    model = build_model("field", seed=0)
    nrn = model.neurons
    assert nrn.column_names == ("C1", "C2", "C3")
    for ci in range(3):
        for li, name in enumerate(LAYERS):
            sel = (nrn.column == ci) & (nrn.layer == li) & (nrn.region == REGIONS.index("column"))
            assert sel.sum() == MEYER_2010[name]
        vpm = (nrn.column == ci) & (nrn.cell_type == _code("VPM"))
        assert 250 <= vpm.sum() <= 300
    d = describe_model(model)
    # post_all is the target-site density by depth (about 21,000-128,000 per voxel), or the
    # listed sum where that is larger
    prof = site_density_profile(model.grid)
    cortex = prof[model.grid.depth_um()[: model.grid.shape[2]] < 1973]
    assert cortex.min() - 0.5 <= d["post_all_in_column"]["min"]
    assert d["post_all_in_column"]["median"] <= 1.15 * float(np.median(cortex))
    assert 650 <= d["vpm_boutons"]["peak_depth_um"] <= 800
