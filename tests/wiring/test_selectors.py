"""Tests of wiring.measurements.selectors: parsing, canonical form, serialisation, selection and errors."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.grid import VoxelGrid
from anatomy.model import Neurons, StructuralModel, VoxelMajorCounts
from wiring.errors import SelectionError, WiringError
from wiring.measurements.selectors import (
    CELL_TYPE_GROUPS,
    Selector,
    parse_selector,
    select,
    selection_mask,
)


def hand_model(seed: int = 3, n: int = 120) -> StructuralModel:
    """A small hand-made model: random types/layers/regions over two columns, ids 1000 + 7k."""
    rng = np.random.default_rng(seed)
    cell_type = rng.integers(0, len(CELL_TYPES), n).astype(np.int8)
    vpm = cell_type == CELL_TYPES.index("VPM")
    layer = rng.integers(0, len(LAYERS), n).astype(np.int8)
    layer[vpm] = -1
    region = rng.integers(0, 2, n).astype(np.int8)
    region[vpm] = REGIONS.index("barreloid")
    column = rng.integers(0, 2, n).astype(np.int16)
    soma = rng.uniform(0, 400, (n, 3)).astype(np.float32)
    neurons = Neurons(
        cell_type=cell_type,
        layer=layer,
        region=region,
        column=column,
        soma_um=soma,
        ids=1000 + 7 * np.arange(n, dtype=np.int64),
        column_names=("C2", "D2"),
    )
    grid = VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=100.0, shape=(4, 4, 4))
    v = grid.n_voxels
    pre = sp.random(n, v, density=0.05, random_state=seed, format="csc", dtype=np.float32)
    post = sp.random(n, v, density=0.05, random_state=seed + 1, format="csc", dtype=np.float32)
    return StructuralModel(
        grid=grid,
        neurons=neurons,
        pre=VoxelMajorCounts.from_scipy(pre, name="pre"),
        post=VoxelMajorCounts.from_scipy(post, name="post"),
        post_all=np.asarray(post.sum(axis=0)).ravel().astype(np.float32) + 1.0,
        attrs={"name": "hand"},
    )


@pytest.fixture(scope="module")
def model() -> StructuralModel:
    return hand_model()


# -- parsing and canonical form ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VPM", Selector(cell_types=("VPM",))),
        ("L4ss,L4sp", Selector(cell_types=("L4sp", "L4ss"))),
        ("l4SS", Selector(cell_types=("L4ss",))),
        ("L4exc", Selector(cell_types=("L4PY", "L4sp", "L4ss"))),
        ("L6exc", Selector(cell_types=("L6CC", "L6INV", "L6CT"))),
        ("L23exc", Selector(cell_types=("L2PY", "L3PY"))),
        ("L2/3exc", Selector(cell_types=("L2PY", "L3PY"))),
        ("L5exc", Selector(cell_types=("L5IT", "L5PT"))),
        ("inh", Selector(cell_types=("INH",))),
        (
            "cell_type=L4PY,L4sp,L4ss;region=septum",
            Selector(cell_types=("L4PY", "L4sp", "L4ss"), regions=("septum",)),
        ),
        (" types = VPM ; column = C2 ; regions = barreloid ",
         Selector(cell_types=("VPM",), columns=("C2",), regions=("barreloid",))),
        ("layer=L5", Selector(layers=("L5A", "L5B"))),
        ("layers=L2/3,L4", Selector(layers=("L2", "L3", "L4"))),
        ("id=5,3,3", Selector(ids=(3, 5))),
        ("excitatory=false", Selector(excitatory=False)),
        ("excitatory=True;L4exc", Selector(excitatory=True, cell_types=("L4PY", "L4sp", "L4ss"))),
        ("*", Selector()),
        ("all", Selector()),
    ],
)
def test_parse(text: str, expected: Selector) -> None:
    assert parse_selector(text) == expected


def test_exc_alias_is_cortical_excitatory() -> None:
    exc = set(parse_selector("exc").cell_types or ())
    assert exc == set(CELL_TYPES) - {"INH", "VPM"}


def test_canonical_order_and_dedup() -> None:
    a = Selector(cell_types=("L4ss", "L4PY", "L4ss", "L4sp"), columns=("D2", "C2", "C2"))
    assert a.cell_types == ("L4PY", "L4sp", "L4ss")
    assert a.columns == ("C2", "D2")
    assert a == Selector(cell_types=("L4exc",), columns=("C2", "D2"))
    assert hash(a) == hash(Selector(cell_types=("L4exc",), columns=("C2", "D2")))


@pytest.mark.parametrize(
    "sel",
    [
        Selector(),
        Selector(cell_types=("VPM",)),
        Selector(cell_types=("L4sp", "L5IT")),
        Selector(cell_types=("L4exc",), regions=("septum",)),
        Selector(cell_types=("VPM",), columns=("C2",), regions=("barreloid",)),
        Selector(layers=("L6A",), excitatory=True),
        Selector(ids=(1, 2, 40)),
        Selector(excitatory=False, columns=("C2", "D2")),
    ],
)
def test_text_and_dict_round_trip(sel: Selector) -> None:
    assert parse_selector(str(sel)) == sel
    d = sel.to_dict()
    assert json.loads(json.dumps(d)) == d  # JSON-native
    assert Selector.from_dict(json.loads(json.dumps(d))) == sel


def test_str_uses_group_alias() -> None:
    assert str(parse_selector("L4PY,L4ss,L4sp")) == "L4exc"
    assert str(parse_selector("L4PY,L4ss")) == "L4PY,L4ss"
    assert str(Selector(regions=("septum",), cell_types=("L6CC", "L6CT", "L6INV"))) == (
        "cell_type=L6exc;region=septum"
    )


def test_from_dict_accepts_synonyms_and_toml() -> None:
    data = tomllib.loads('pre = { cell_type = "VPM", column = "C2", region = "barreloid" }')
    sel = Selector.from_dict(data["pre"])
    assert sel == parse_selector("VPM;column=C2;region=barreloid")
    assert Selector.from_dict({"type": "L4sp,L4ss", "excitatory": "yes"}) == Selector(
        cell_types=("L4sp", "L4ss"), excitatory=True
    )


def test_selector_is_frozen() -> None:
    s = Selector(cell_types=("VPM",))
    with pytest.raises(AttributeError):
        s.cell_types = ("L4ss",)  # type: ignore[misc]


# -- errors while parsing / constructing -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("L4s", ["unknown cell type 'L4s'", "L4ss", "Did you mean"]),
        ("cell_type=L4PY,L44ss", ["unknown cell type 'L44ss'", "Did you mean 'L4ss'"]),
        ("celltype=VPM", ["unknown selector key 'celltype'", "Did you mean 'cell_type'"]),
        ("region=septim", ["unknown region 'septim'", "column, septum, barreloid",
                           "Did you mean 'septum'"]),
        ("layer=L7", ["unknown layer 'L7'", "L1"]),
        ("", ["empty selector"]),
        ("VPM;;column=C2", ["empty clause"]),
        ("cell_type=VPM;type=L4ss", ["sets 'cell_types' twice"]),
        ("cell_type=", ["empty value"]),
        ("L4ss,", ["empty value"]),
        ("excitatory=maybe", ["excitatory must be true or false", "'maybe'"]),
        ("id=1,x", ["neuron ids must be integers", "'x'"]),
    ],
)
def test_parse_errors(text: str, fragments: list[str]) -> None:
    with pytest.raises(SelectionError) as info:
        parse_selector(text)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, WiringError)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"cell_types": "VPM"}, "must be a tuple of names"),
        ({"cell_types": ()}, "is empty"),
        ({"ids": ()}, "is empty"),
        ({"ids": (1.5,)}, "must be integers"),
        ({"ids": (True,)}, "must be integers"),
        ({"excitatory": "yes"}, "must be True, False or None"),
        ({"cell_types": (4,)}, "non-empty strings"),
    ],
)
def test_constructor_errors(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SelectionError, match=fragment):
        Selector(**kwargs)


def test_from_dict_errors() -> None:
    with pytest.raises(SelectionError, match="unknown selector key 'colour'"):
        Selector.from_dict({"colour": "red"})
    with pytest.raises(SelectionError, match="twice"):
        Selector.from_dict({"type": "VPM", "cell_types": ["VPM"]})
    with pytest.raises(SelectionError, match="needs a name or a list"):
        Selector.from_dict({"region": 3})
    with pytest.raises(SelectionError, match="table/dict"):
        Selector.from_dict(["VPM"])  # type: ignore[arg-type]


# -- selection ---------------------------------------------------------------------------------


def brute_force(model: StructuralModel, sel: Selector) -> np.ndarray:
    """Per-neuron loop over the catalogue names, independent of the vectorised implementation."""
    nr = model.neurons
    out = []
    for i in range(len(nr)):
        t = CELL_TYPES[nr.cell_type[i]]
        ok = True
        if sel.cell_types is not None:
            ok &= t in sel.cell_types
        if sel.layers is not None:
            ok &= nr.layer[i] >= 0 and LAYERS[nr.layer[i]] in sel.layers
        if sel.regions is not None:
            ok &= REGIONS[nr.region[i]] in sel.regions
        if sel.columns is not None:
            ok &= nr.column[i] >= 0 and nr.column_names[nr.column[i]] in sel.columns
        if sel.ids is not None:
            ok &= int(nr.ids[i]) in sel.ids
        if sel.excitatory is not None:
            ok &= (t != "INH") == sel.excitatory
        if ok:
            out.append(i)
    return np.asarray(out, dtype=np.int64)


@pytest.mark.parametrize(
    "text",
    [
        "VPM",
        "VPM;column=C2;region=barreloid",
        "L4exc;region=septum",
        "L4exc;region=column;column=C2",
        "exc",
        "inh",
        "excitatory=true",
        "excitatory=false;layer=L2/3",
        "layer=L5,L6;column=D2",
        "id=1000,1007,1700",
        "*",
    ],
)
def test_select_matches_brute_force(model: StructuralModel, text: str) -> None:
    sel = parse_selector(text)
    got = select(model, sel)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, brute_force(model, sel))
    assert np.all(np.diff(got) > 0)
    np.testing.assert_array_equal(np.flatnonzero(selection_mask(model, sel)), got)
    np.testing.assert_array_equal(select(model, text), got)  # text accepted directly


def test_groups_are_unions(model: StructuralModel) -> None:
    for alias, members in CELL_TYPE_GROUPS.items():
        union = np.unique(np.concatenate([brute_force(model, Selector(cell_types=(m,)))
                                          for m in members]))
        np.testing.assert_array_equal(select(model, alias), union)


def test_select_unknown_column(model: StructuralModel) -> None:
    with pytest.raises(SelectionError) as info:
        select(model, "VPM;column=C3")
    msg = str(info.value)
    assert "unknown column 'C3'" in msg and "C2, D2" in msg and "Did you mean" in msg


def test_select_unknown_ids(model: StructuralModel) -> None:
    with pytest.raises(SelectionError) as info:
        select(model, Selector(ids=(1000, 1001, 5)))
    msg = str(info.value)
    assert "2 neuron id(s) the model does not have: 5, 1001" in msg


def test_select_empty_names_counts(model: StructuralModel) -> None:
    # VPM neurons are never in the septum in this model.
    with pytest.raises(SelectionError) as info:
        select(model, "VPM;region=septum")
    msg = str(info.value)
    n_vpm = int((model.neurons.cell_type == CELL_TYPES.index("VPM")).sum())
    assert "selects no neuron in model name 'hand'" in msg
    assert f"({len(model.neurons)} neurons; counts by type:" in msg
    assert f"VPM {n_vpm}" in msg
    assert f"cell_type=VPM matches {n_vpm}" in msg


# -- on the generated tiny model ---------------------------------------------------------------


def test_tiny_model_measurement_populations(request: pytest.FixtureRequest) -> None:
    """Every population the shipped measurement sets use is non-empty on ``tiny``."""
    tiny_model = request.getfixturevalue("tiny_model")
    for text in [
        "VPM;column=C2;region=barreloid",
        "L4exc;column=C2;region=column",
        "L4exc;region=septum",
        "L4sp;column=C2;region=column",
        "L5PT",
        "L6exc",
        "L23exc",
    ]:
        sel = parse_selector(text)
        np.testing.assert_array_equal(select(tiny_model, sel), brute_force(tiny_model, sel))
