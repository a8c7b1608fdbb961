"""Tests of wiring.measurements: built-in sets, file formats and their errors, populations."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES, LAYERS, REGIONS
from anatomy.grid import VoxelGrid
from anatomy.model import NeuronPopulation, Neurons, StructuralModel, VoxelMajorCounts
from wiring.errors import MeasurementError, OutputExistsError, SelectionError
from wiring.measurements import (
    Citation,
    Measurement,
    MeasurementSet,
    SliceConfig,
    list_measurement_sets,
    load_measurement_set,
    measurement_set_from_model,
    population,
    populations,
)
from wiring.measurements.selectors import Selector, parse_selector, select

# -- helpers -----------------------------------------------------------------------------------


def hand_model(
    seed: int = 5,
    n: int = 160,
    pops: dict[str, NeuronPopulation] | None = None,
    soma_um: np.ndarray | None = None,
) -> StructuralModel:
    """Random neurons (all types, one column C2) with somata uniform in a 400 µm cube."""
    rng = np.random.default_rng(seed)
    cell_type = rng.integers(0, len(CELL_TYPES), n).astype(np.int8)
    vpm = cell_type == CELL_TYPES.index("VPM")
    layer = rng.integers(0, len(LAYERS), n).astype(np.int8)
    layer[vpm] = -1
    region = rng.integers(0, 2, n).astype(np.int8)
    region[vpm] = REGIONS.index("barreloid")
    neurons = Neurons(
        cell_type=cell_type,
        layer=layer,
        region=region,
        column=np.zeros(n, dtype=np.int16),
        soma_um=(rng.uniform(0, 400, (n, 3)) if soma_um is None else soma_um).astype(np.float32),
        ids=500 + 3 * np.arange(n, dtype=np.int64),
    )
    grid = VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=100.0, shape=(4, 4, 4))
    counts = sp.random(n, grid.n_voxels, density=0.05, random_state=seed, format="csc")
    return StructuralModel(
        grid=grid,
        neurons=neurons,
        pre=VoxelMajorCounts.from_scipy(counts, name="pre"),
        post=VoxelMajorCounts.from_scipy(counts, name="post"),
        post_all=np.asarray(counts.sum(axis=0)).ravel().astype(np.float32) + 1.0,
        attrs={"name": "hand"},
        populations=pops or {},
    )


@pytest.fixture(scope="module")
def model() -> StructuralModel:
    return hand_model()


def make_measurement(**overrides: Any) -> Measurement:
    kwargs: dict[str, Any] = {
        "id": "m1",
        "pre": parse_selector("L4exc"),
        "post": parse_selector("L4ss"),
        "probability": 0.3,
        "n_pairs": 20,
        "protocol": "invivo",
        "species": "rat",
        "citation": Citation(authors="Doe J, Roe R", year=2001, doi="10.1000/xyz"),
    }
    kwargs.update(overrides)
    return Measurement(**kwargs)


# -- built-in sets -----------------------------------------------------------------------------

VPM_EXPECTED = [
    # id, post selector, k / n, pairs, doi (counts as published: 17/40, 6/14, ...)
    ("L4", "L4PY,L4sp,L4ss;column=C2;region=column", 17 / 40, 40, "10.1126/science.1124593"),
    ("L4-septum", "L4PY,L4sp,L4ss;column=C2;region=septum", 6 / 14, 14,
     "10.1126/science.1124593"),
    ("L4sp", "L4sp;column=C2;region=column", 10 / 24, 24, "10.1126/science.1124593"),
    ("L4ss", "L4ss;column=C2;region=column", 7 / 11, 11, "10.1126/science.1124593"),
    ("L5IT", "L5IT;column=C2;region=column", 3 / 18, 18, "10.1126/science.1236425"),
    ("L5PT", "L5PT;column=C2;region=column", 4 / 9, 9, "10.1126/science.1236425"),
    ("L6", "L6CC,L6INV,L6CT;column=C2;region=column", 1 / 11, 11, "10.1126/science.1236425"),
]

INVITRO_EXPECTED = [
    # pre types, post types, p, pairs, first author, year, doi
    ("L4ss", "L4ss", 0.26, 94, "Feldmeyer", 1999, "10.1111/j.1469-7793.1999.00169.x"),
    ("L4ss", "L4ss", 0.36, 146, "Petersen", 2000, "10.1523/JNEUROSCI.20-20-07579.2000"),
    ("L4PY,L4sp,L4ss", "L2PY,L3PY", 0.15, 64, "Feldmeyer", 2002, "10.1113/jphysiol.2001.012959"),
    ("L5IT,L5PT", "L5IT,L5PT", 0.10, 500, "Markram", 1997, "10.1113/jphysiol.1997.sp022031"),
    ("L5PT", "L5PT", 0.13, 3446, "Perin", 2011, "10.1073/pnas.1016051108"),
    ("L6CC,L6INV,L6CT", "L6CC,L6INV,L6CT", 0.04, 27, "Mercer", 2005, "10.1093/cercor/bhi027"),
    ("L2PY,L3PY", "L2PY,L3PY", 0.26, 247, "Thomson", 2002, "10.1093/cercor/12.9.936"),
]


def test_list_builtins() -> None:
    assert list_measurement_sets() == ["vpm-invivo", "rat-invitro"]


def test_vpm_invivo_content() -> None:
    mset = load_measurement_set("vpm-invivo")
    assert mset.name == "vpm-invivo" and mset.source == "builtin:vpm-invivo"
    assert mset.names == tuple(e[0] for e in VPM_EXPECTED)
    np.testing.assert_array_equal(mset.x_o, [e[2] for e in VPM_EXPECTED])
    assert mset.x_o.dtype == np.float64
    np.testing.assert_array_equal(mset.n_pairs, [e[3] for e in VPM_EXPECTED])
    assert mset.n_pairs.dtype == np.int64
    vpm_c2 = Selector(cell_types=("VPM",), columns=("C2",), regions=("barreloid",))
    for m, (mid, post, p, n, doi) in zip(mset, VPM_EXPECTED, strict=True):
        assert (m.id, m.probability, m.n_pairs, m.citation.doi) == (mid, p, n, doi)
        assert m.pre == vpm_c2
        assert m.post == parse_selector(post), m.id
        assert m.protocol == "invivo" and m.species == "rat" and m.eligibility == "protocol"
    assert mset["L4"].citation.short == "Bruno & Sakmann 2006"
    assert mset["L6"].citation.short == "Constantinople & Bruno 2013"
    assert mset["L4"].citation.year == 2006 and mset["L5PT"].citation.year == 2013
    assert [m.connected for m in mset] == [17, 6, 10, 7, 3, 4, 1]
    # the published percentages are these fractions rounded
    assert np.floor(100 * mset.x_o + 0.5).tolist() == [43, 43, 42, 64, 17, 44, 9]
    assert mset["L4"].includes == ("L4sp", "L4ss")
    assert "inferred" in mset["L4"].description
    assert all(m.includes == () for m in mset if m.id != "L4")


def test_rat_invitro_content() -> None:
    mset = load_measurement_set("rat-invitro")
    assert len(mset) == 7
    in_c2 = Selector(columns=("C2",), regions=("column",))
    for m, (pre, post, p, n, author, year, doi) in zip(mset, INVITRO_EXPECTED, strict=True):
        assert m.pre.cell_types == parse_selector(pre).cell_types, m.id
        assert m.post.cell_types == parse_selector(post).cell_types, m.id
        for sel in (m.pre, m.post):
            assert (sel.columns, sel.regions) == (in_c2.columns, in_c2.regions)
        assert (m.probability, m.n_pairs, m.citation.year, m.citation.doi) == (p, n, year, doi)
        assert m.citation.authors.split()[0] == author
        assert m.protocol == "slice" and m.species == "rat"


def test_builtin_hash_is_stable_and_independent() -> None:
    mset = load_measurement_set("vpm-invivo")
    payload = json.dumps(
        [m.to_dict() for m in mset], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    assert mset.content_hash() == hashlib.sha256(payload.encode()).hexdigest()
    assert mset.content_hash() == load_measurement_set("vpm-invivo").content_hash()
    assert mset.content_hash() != load_measurement_set("rat-invitro").content_hash()


def test_unknown_set_name() -> None:
    with pytest.raises(MeasurementError) as info:
        load_measurement_set("vpm-invivi")
    msg = str(info.value)
    assert "unknown measurement set 'vpm-invivi'" in msg
    assert "vpm-invivo, rat-invitro" in msg and "Did you mean 'vpm-invivo'" in msg


def test_load_missing_file_and_bad_suffix(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match="does not exist"):
        load_measurement_set(tmp_path / "nope.toml")
    bad = tmp_path / "set.json"
    bad.write_text("{}")
    with pytest.raises(MeasurementError, match=r"unsupported file type '\.json'"):
        load_measurement_set(bad)


def test_load_passes_sets_through() -> None:
    mset = load_measurement_set("rat-invitro")
    assert load_measurement_set(mset) is mset


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vpm-invivo", "rat-invitro"])
def test_toml_and_csv_round_trip(tmp_path: Path, name: str) -> None:
    mset = load_measurement_set(name)
    t = mset.to_toml(tmp_path / "s.toml")
    tomllib.loads(t.read_text(encoding="utf-8"))
    back = MeasurementSet.from_toml(t)
    assert back.measurements == mset.measurements
    assert back.name == name and back.description == mset.description
    assert back.content_hash() == mset.content_hash()
    c = mset.to_csv(tmp_path / "s.csv")
    back_csv = load_measurement_set(c)
    assert back_csv.measurements == mset.measurements
    assert back_csv.name == "s"
    assert back_csv.content_hash() == mset.content_hash()


def test_round_trip_odd_values(tmp_path: Path) -> None:
    """Quotes, commas, non-ASCII text, ids selectors, tiny floats and eligibility survive."""
    m = make_measurement(
        id="odd/1",
        pre=Selector(ids=(3, 1, 2)),
        post=parse_selector("excitatory=false;layer=L5"),
        probability=1e-5,
        description='quote " backslash \\ comma, tab\tand ü',
        eligibility="all",
        citation=Citation(authors="Ünal Ö", year=1999, doi="", title="A, B", journal="J"),
    )
    mset = MeasurementSet(name="odd", measurements=(m, make_measurement(id="m2")))
    for suffix in ("toml", "csv"):
        back = load_measurement_set(mset.to_toml(tmp_path / "o.toml") if suffix == "toml"
                                    else mset.to_csv(tmp_path / "o.csv"))
        assert back.measurements == mset.measurements, suffix


def test_dict_round_trip() -> None:
    for m in load_measurement_set("vpm-invivo"):
        assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_set_dict_round_trip() -> None:
    mset = load_measurement_set("rat-invitro")
    back = MeasurementSet.from_dict(json.loads(json.dumps(mset.to_dict())))
    assert back == mset
    bad = mset.to_dict()
    bad["measurements"][2]["n_pairs"] = 0
    with pytest.raises(MeasurementError, match=r"measurements\[3\], field 'n_pairs': 0 is not"):
        MeasurementSet.from_dict(bad)
    with pytest.raises(MeasurementError, match="needs 'name' and 'measurements'"):
        MeasurementSet.from_dict({"name": "x"})


def test_handwritten_csv(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "id,pre,post,probability,n_pairs,protocol,species,authors,year,doi,title\n"
        'a,VPM,"L4ss;region=column",0.5,10,invivo,rat,"Doe J, Roe R",2020,10.1000/a,\n'
        '\n'
        'b,"L5exc","L5PT",0.25,8,slice,mouse,Doe J,2021,,Some title\n',
        encoding="utf-8",
    )
    mset = load_measurement_set(path)
    assert mset.name == "mine" and mset.names == ("a", "b")
    assert mset["a"].post == Selector(cell_types=("L4ss",), regions=("column",))
    assert mset["a"].citation.title == "" and mset["b"].citation.title == "Some title"
    assert mset["b"].citation.doi == "" and mset["b"].species == "mouse"
    assert mset["b"].citation.short == "Doe 2021"


def test_write_refuses_existing(tmp_path: Path) -> None:
    mset = load_measurement_set("vpm-invivo")
    target = tmp_path / "s.toml"
    target.write_text("keep me")
    with pytest.raises(OutputExistsError, match="already exists"):
        mset.to_toml(target)
    with pytest.raises(OutputExistsError):
        mset.to_csv(target)
    assert target.read_text() == "keep me"
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind
    mset.to_toml(target, overwrite=True)
    assert MeasurementSet.from_toml(target).measurements == mset.measurements


# -- bad files ---------------------------------------------------------------------------------

GOOD_ROW = {
    "id": '"L4"',
    "pre": '"VPM"',
    "post": '"L4exc"',
    "probability": "0.43",
    "n_pairs": "40",
    "protocol": '"invivo"',
    "species": '"rat"',
    "authors": '"Bruno RM, Sakmann B"',
    "year": "2006",
    "doi": '"10.1126/science.1124593"',
}


def toml_text(rows: list[dict[str, str]]) -> str:
    out = ['name = "bad"']
    for r in rows:
        out.append("[[measurement]]")
        out += [f"{k} = {v}" for k, v in r.items()]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"probability": "1.3"}, "probability", "1.3 is outside [0, 1]"),
        ({"probability": "-0.1"}, "probability", "outside [0, 1]"),
        ({"probability": "43"}, "probability", "not a percentage"),
        ({"probability": '"0.4"'}, "probability", "must be a number in [0, 1], got '0.4' (str)"),
        ({"n_pairs": "0"}, "n_pairs", "0 is not positive"),
        ({"n_pairs": "-3"}, "n_pairs", "-3 is not positive"),
        ({"n_pairs": "40.5"}, "n_pairs", "must be a positive integer, got 40.5 (float)"),
        ({"n_pairs": "true"}, "n_pairs", "must be a positive integer"),
        ({"post": '"L4sx"'}, "post", "unknown cell type 'L4sx'"),
        ({"post": '"L4ss;regoin=column"'}, "post", "unknown selector key 'regoin'"),
        ({"pre": "3"}, "pre", "must be selector text or a table"),
        ({"post": '{ cell_types = ["L4ss"], colour = "red" }'}, "post", "unknown selector key"),
        ({"protocol": '"vitro"'}, "protocol", "'vitro' is not a protocol; allowed are"),
        ({"year": '"2006"'}, "year", "must be an integer year"),
        ({"doi": '"doi:10.1126/science.1124593"'}, "doi", "without a 'doi:'"),
        ({"species": '""'}, "species", "must not be empty"),
        ({"id": '"L 4"'}, "id", "without spaces"),
        ({"probabilty": "0.4"}, "probabilty", "Did you mean 'probability'"),
    ],
)
def test_toml_field_errors(
    tmp_path: Path, change: dict[str, str], field: str, fragment: str
) -> None:
    second = {**GOOD_ROW, "id": '"x"', **change}
    path = tmp_path / "bad.toml"
    path.write_text(toml_text([GOOD_ROW, second]), encoding="utf-8")
    with pytest.raises(MeasurementError) as info:
        load_measurement_set(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: [[measurement]] 2"), msg
    assert f"field {field!r}" in msg, msg
    assert fragment in msg, msg


def test_toml_unknown_cell_type_suggests(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml_text([{**GOOD_ROW, "post": '"L4sx;region=column"'}]), encoding="utf-8")
    with pytest.raises(MeasurementError, match=r"Did you mean 'L4s[sp]'"):
        load_measurement_set(path)


def test_toml_missing_field(tmp_path: Path) -> None:
    row = {k: v for k, v in GOOD_ROW.items() if k != "n_pairs"}
    path = tmp_path / "bad.toml"
    path.write_text(toml_text([row]), encoding="utf-8")
    with pytest.raises(MeasurementError) as info:
        load_measurement_set(path)
    assert "[[measurement]] 1 (id 'L4'), field 'n_pairs': is missing" in str(info.value)


def test_toml_duplicate_id(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml_text([GOOD_ROW, {**GOOD_ROW, "id": '"x"'}, GOOD_ROW]), encoding="utf-8")
    with pytest.raises(MeasurementError) as info:
        load_measurement_set(path)
    msg = str(info.value)
    assert "[[measurement]] 3 (id 'L4'), field 'id': duplicate id 'L4'" in msg
    assert "first in [[measurement]] 1" in msg


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name = 'x'\n[[measurement]]\nid = \n", "not valid TOML"),
        ("name = 'x'\n", "no [[measurement]] tables"),
        ("name = 'x'\nmeasurement = 3\n", "array of tables"),
        ("name = 'x'\nmeasurments = []\n", "unknown top-level key 'measurments'"),
        ("schema_version = 7\n[[measurement]]\nid='a'\n", "schema_version = 7 is not supported"),
        ("name = 3\n[[measurement]]\nid='a'\n", "top-level 'name' must be a string"),
    ],
)
def test_toml_file_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MeasurementError) as info:
        MeasurementSet.from_toml(path)
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)


CSV_HEADER = "id,pre,post,probability,n_pairs,protocol,species,authors,year,doi"
CSV_GOOD = 'L4,VPM,L4exc,0.43,40,invivo,rat,"Bruno RM, Sakmann B",2006,10.1126/science.1124593'


@pytest.mark.parametrize(
    ("row", "field", "fragment"),
    [
        ('x,VPM,L4exc,1.5,40,invivo,rat,Doe J,2006,', "probability", "outside [0, 1]"),
        ('x,VPM,L4exc,abc,40,invivo,rat,Doe J,2006,', "probability", "'abc' is not a number"),
        ('x,VPM,L4exc,0.4,0,invivo,rat,Doe J,2006,', "n_pairs", "0 is not positive"),
        ('x,VPM,L4exc,0.4,-2,invivo,rat,Doe J,2006,', "n_pairs", "-2 is not positive"),
        ('x,VPM,L4exc,0.4,12.5,invivo,rat,Doe J,2006,', "n_pairs", "12.5 is not an integer"),
        ('x,VPM,L4exc,0.4,ten,invivo,rat,Doe J,2006,', "n_pairs", "'ten' is not an integer"),
        ('x,VPM,"L4ss,L4sx",0.4,4,invivo,rat,Doe J,2006,', "post", "Did you mean 'L4s"),
        ('x,VMP,L4ss,0.4,4,invivo,rat,Doe J,2006,', "pre", "Did you mean 'VPM'"),
        ('x,VPM,L4ss,0.4,4,invivo,,Doe J,2006,', "species", "is missing"),
        ('x,VPM,L4ss,0.4,4,in vivo,rat,Doe J,2006,', "protocol", "is not a protocol"),
        ('L4,VPM,L4ss,0.4,4,invivo,rat,Doe J,2006,', "id", "duplicate id 'L4' (first in row 1"),
    ],
)
def test_csv_field_errors(tmp_path: Path, row: str, field: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"{CSV_HEADER}\n{CSV_GOOD}\n{row}\n", encoding="utf-8")
    with pytest.raises(MeasurementError) as info:
        load_measurement_set(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: row 2 (line 3), field {field!r}"), msg
    assert fragment in msg, msg


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty file"),
        (f"{CSV_HEADER}\n", "no measurement rows"),
        (f"{CSV_HEADER},colour\n", "line 1 (header): unknown field 'colour'"),
        (f"{CSV_HEADER},id\n", "column 'id' appears twice"),
        ("id,pre,post,probability\n", "missing required column(s) 'n_pairs', 'protocol'"),
        (f"{CSV_HEADER}\n{CSV_GOOD}\nx,VPM,L4ss;region=column,0.4\n", "row 2 (line 3): 4 cells"),
    ],
)
def test_csv_file_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MeasurementError) as info:
        MeasurementSet.from_csv(path)
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)


# -- Python-level validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"probability": float("nan")}, "outside [0, 1]"),
        ({"probability": None}, "must be a number"),
        ({"n_pairs": np.int64(0)}, "not positive"),
        ({"pre": "VPM"}, "must be a Selector"),
        ({"citation": "Doe 2001"}, "must be a Citation"),
        ({"eligibility": "some"}, "'some' is not allowed"),
        ({"id": ""}, "field 'id'"),
        ({"connected": 21}, "'connected': 21 connected pairs is outside 0..20"),
        ({"connected": -1}, "'connected': -1 connected pairs is outside 0..20"),
        ({"connected": 6.5}, "'connected': must be a whole number"),
        ({"connected": 6.0}, "'connected': must be a whole number"),
        ({"connected": True}, "'connected': must be a whole number"),
        ({"connected": 7, "probability": 0.3}, "0.3 disagrees with connected / n_pairs = 7/20"),
        ({"includes": "L4sp"}, "field 'includes': must be a list"),
        ({"includes": ("a b",)}, "field 'includes': must be a list"),
        ({"includes": ("m1",)}, "cannot include itself"),
        ({"includes": ("a", "a")}, "names a measurement twice"),
    ],
)
def test_measurement_errors(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MeasurementError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        make_measurement(**overrides)


def test_counts_give_the_exact_fraction() -> None:
    m = make_measurement(connected=np.int64(6), probability=math.nan)
    assert m.connected == 6 and m.probability == 6 / 20 and type(m.connected) is int
    # a probability given beside the counts must be the rounded percentage (or finer)
    assert make_measurement(connected=17, n_pairs=40, probability=0.43).probability == 17 / 40
    assert make_measurement(connected=17, n_pairs=40, probability=0.425).probability == 0.425
    with pytest.raises(MeasurementError, match="disagrees"):
        make_measurement(connected=17, n_pairs=40, probability=0.44)
    # a probability alone is still accepted (imported and other sets)
    assert make_measurement(probability=0.31).connected is None


def test_counts_and_pools_in_files(tmp_path: Path) -> None:
    base = ('id,pre,post,{col}n_pairs,protocol,species,authors,year,doi{inc}\n'
            'P,VPM,L4sp,{p}24,invivo,rat,"Bruno RM, Sakmann B",2006,10.1126/science.1124593{pi}\n'
            'L4,VPM,L4exc,{q}40,invivo,rat,"Bruno RM, Sakmann B",2006,10.1126/science.1124593'
            '{li}\n')
    good = base.format(col="connected,", inc=",includes", p="10,", pi=",", q="17,", li=",P")
    path = tmp_path / "counts.csv"
    path.write_text(good, encoding="utf-8")
    mset = MeasurementSet.from_csv(path)
    assert mset.x_o.tolist() == [10 / 24, 17 / 40] and mset["L4"].includes == ("P",)
    for fmt in ("toml", "csv"):
        out = tmp_path / f"again.{fmt}"
        getattr(mset, f"to_{fmt}")(out)
        again = load_measurement_set(out)
        assert again.content_hash() == mset.content_hash()
        assert [m.connected for m in again] == [10, 17] and again["L4"].includes == ("P",)
    for bad, fragment in (
        (base.format(col="connected,", inc="", p="25,", pi="", q="17,", li=""),
         "row 1 (line 2), field 'connected': 25 connected pairs is outside 0..24"),
        (base.format(col="connected,", inc="", p="2.5,", pi="", q="17,", li=""),
         "row 1 (line 2), field 'connected': 2.5 is not an integer"),
        (base.format(col="connected,", inc=",includes", p="10,", pi=",", q="17,", li=",Q"),
         "measurement 'L4', field 'includes': unknown measurement 'Q'"),
        (base.format(col="", inc="", p="", pi="", q="", li=""),
         "field 'probability': is missing"),
    ):
        path.write_text(bad, encoding="utf-8")
        with pytest.raises(MeasurementError) as info:
            MeasurementSet.from_csv(path)
        assert fragment in str(info.value) and "\n" not in str(info.value)


def test_measurement_normalises_numbers() -> None:
    m = make_measurement(probability=np.float32(0.5), n_pairs=np.int32(7))
    assert type(m.probability) is float and type(m.n_pairs) is int


def test_citation_errors_and_short() -> None:
    with pytest.raises(MeasurementError, match="field 'authors'"):
        Citation(authors=" ", year=2000, doi="")
    with pytest.raises(MeasurementError, match="field 'year'"):
        Citation(authors="A", year=True, doi="")
    with pytest.raises(MeasurementError, match="not a DOI"):
        Citation(authors="A", year=2000, doi="https://doi.org/10.1000/x")
    assert Citation("Doe J", 2000, "") == Citation(authors="Doe J", year=2000, doi="")
    c = Citation(authors="Feldmeyer D, Egger V, Lübke J, Sakmann B", year=1999, doi="10.1000/x")
    assert c.short == "Feldmeyer et al. 1999" and str(c) == "Feldmeyer et al. 1999, doi:10.1000/x"


def test_set_errors_and_access() -> None:
    a, b = make_measurement(id="a"), make_measurement(id="b", probability=0.7)
    with pytest.raises(MeasurementError, match="is empty"):
        MeasurementSet(name="e", measurements=())
    with pytest.raises(MeasurementError, match="duplicate id 'a' \\(items 1 and 2\\)"):
        MeasurementSet(name="d", measurements=(a, a))
    mset = MeasurementSet(name="s", measurements=(a, b))
    assert mset[1] is b and mset["b"] is b
    with pytest.raises(MeasurementError, match=r"no measurement 'c'.*ids are a, b"):
        mset["c"]
    sub = mset.subset(["b", "a"])
    assert sub.names == ("b", "a") and sub.x_o.tolist() == [0.7, 0.3]
    renamed = MeasurementSet(name="other", measurements=(a, b), source="x")
    assert renamed.content_hash() == mset.content_hash()
    assert sub.content_hash() != mset.content_hash()  # order matters
    changed = MeasurementSet(name="s", measurements=(a, make_measurement(id="b", n_pairs=21)))
    assert changed.content_hash() != mset.content_hash()


# -- populations and slice emulation ----------------------------------------------------------


def test_invivo_population_is_product_without_autapses(model: StructuralModel) -> None:
    m = make_measurement(pre=parse_selector("L4exc"), post=parse_selector("L4ss;region=septum"))
    pop = population(model, m, slice_config=SliceConfig(thickness_um=1.0))  # ignored in vivo
    pre, post = select(model, m.pre), select(model, m.post)
    np.testing.assert_array_equal(pop.pre, pre)
    np.testing.assert_array_equal(pop.post, post)
    expected = [(i, j) for i in pre for j in post if i != j]
    assert list(zip(pop.pair_pre.tolist(), pop.pair_post.tolist(), strict=True)) == expected
    assert pop.n_eligible == pre.size * post.size - np.intersect1d(pre, post).size
    assert pop.n_eligible < pre.size * post.size  # the overlap was removed
    pp, qq = pop.pairs()
    assert pp is pop.pair_pre and qq is pop.pair_post
    with pytest.raises(ValueError):
        pop.pair_pre[0] = 1  # read-only


def brute_slice(
    model: StructuralModel, pre: np.ndarray, post: np.ndarray, cfg: SliceConfig
) -> list[tuple[int, int]]:
    pos = model.neurons.soma_um.astype(np.float64)
    a = {"x": 0, "y": 1}[cfg.axis]
    members = sorted(set(pre.tolist()) | set(post.tolist()))
    center = cfg.center_um if cfg.center_um is not None else float(
        np.median([pos[k, a] for k in members])
    )
    lo, hi = cfg.soma_depth_um if cfg.soma_depth_um is not None else (0.0, math.inf)

    def patched(k: int) -> bool:  # in the slab, at a patchable depth from the nearer surface
        from_surface = cfg.thickness_um / 2 - abs(pos[k, a] - center)
        return bool(from_surface >= 0 and lo <= from_surface <= hi)

    out = []
    for i in pre:
        for j in post:
            if i == j or not patched(i) or not patched(j):
                continue
            d = pos[i] - pos[j]
            if cfg.distance == "lateral":
                d = d[:2]
            if math.sqrt(float(np.sum(d * d))) <= cfg.max_distance_um:
                out.append((int(i), int(j)))
    return out


@pytest.mark.parametrize(
    "cfg",
    [
        SliceConfig(),
        SliceConfig(thickness_um=120.0, max_distance_um=150.0, axis="y"),
        SliceConfig(max_distance_um=math.inf),
        SliceConfig(distance="lateral", max_distance_um=80.0),
        SliceConfig(center_um=50.0, thickness_um=200.0),
        SliceConfig(soma_depth_um=None),
        SliceConfig(soma_depth_um=(10.0, 60.0), max_distance_um=150.0),
    ],
)
def test_slice_population_matches_brute_force(model: StructuralModel, cfg: SliceConfig) -> None:
    m = make_measurement(protocol="slice", pre=parse_selector("exc"), post=parse_selector("exc"))
    pop = population(model, m, slice_config=cfg)
    got = list(zip(pop.pair_pre.tolist(), pop.pair_post.tolist(), strict=True))
    assert got == brute_slice(model, pop.pre, pop.post, cfg)  # same set, row-major order
    assert 0 < len(got) < pop.pre.size * pop.post.size


def test_slice_boundaries_are_inclusive() -> None:
    """On a 50 µm lattice many distances and slab offsets equal the limits exactly."""
    lattice = np.stack(np.meshgrid(*[np.arange(0.0, 300.0, 50.0)] * 3, indexing="ij"), -1)
    soma = lattice.reshape(-1, 3)
    lat = hand_model(n=soma.shape[0], soma_um=soma)
    m = make_measurement(protocol="slice", pre=Selector(), post=Selector())
    for cfg in (SliceConfig(thickness_um=100.0, center_um=100.0, soma_depth_um=None),
                SliceConfig(thickness_um=100.0, center_um=100.0, max_distance_um=50.0 * 2**0.5,
                            soma_depth_um=None),
                SliceConfig(distance="lateral", max_distance_um=50.0, axis="y", center_um=75.0,
                            soma_depth_um=None),
                SliceConfig(thickness_um=300.0, center_um=125.0, soma_depth_um=(25.0, 125.0))):
        pop = population(lat, m, slice_config=cfg)
        got = list(zip(pop.pair_pre.tolist(), pop.pair_post.tolist(), strict=True))
        assert got == brute_slice(lat, pop.pre, pop.post, cfg)
    # slab |x - 100| <= 50 holds x in {50, 100, 150}; distance 100 is eligible
    pop = population(lat, m, slice_config=SliceConfig(thickness_um=100.0, center_um=100.0,
                                                      soma_depth_um=None))
    xs = soma[np.union1d(pop.pair_pre, pop.pair_post), 0]
    assert set(xs.tolist()) == {50.0, 100.0, 150.0}
    d = np.linalg.norm(soma[pop.pair_pre] - soma[pop.pair_post], axis=1)
    assert d.max() == 100.0


def test_slice_default_config_and_eligibility_all(model: StructuralModel) -> None:
    m = make_measurement(protocol="slice", pre=parse_selector("L4exc"), post=parse_selector("exc"))
    default = population(model, m)
    explicit = population(model, m, slice_config=SliceConfig())
    np.testing.assert_array_equal(default.pair_pre, explicit.pair_pre)
    np.testing.assert_array_equal(default.pair_post, explicit.pair_post)
    allpairs = population(model, make_measurement(
        protocol="slice", pre=m.pre, post=m.post, eligibility="all"))
    invivo = population(model, make_measurement(pre=m.pre, post=m.post))
    np.testing.assert_array_equal(allpairs.pair_pre, invivo.pair_pre)
    assert allpairs.n_eligible > default.n_eligible


def test_population_errors(model: StructuralModel) -> None:
    m = make_measurement(protocol="slice", pre=parse_selector("exc"), post=parse_selector("exc"))
    with pytest.raises(SelectionError) as info:
        population(model, m, slice_config=SliceConfig(thickness_um=1e-3, center_um=-50.0))
    assert "measurement 'm1': no eligible pair in the slice" in str(info.value)
    assert "thicker slab" in str(info.value)
    with pytest.raises(SelectionError, match=r"measurement 'm1': selector .* selects no neuron"):
        population(model, make_measurement(post=parse_selector("VPM;region=septum")))
    one = int(select(model, "L4ss")[0])
    single = Selector(ids=(int(model.neurons.ids[one]),))
    with pytest.raises(SelectionError, match="autapses are never eligible"):
        population(model, make_measurement(pre=single, post=single))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"thickness_um": 0.0}, "thickness_um must be a positive"),
        ({"thickness_um": math.inf}, "thickness_um must be a positive"),
        ({"max_distance_um": -1.0}, "max_distance_um must be > 0"),
        ({"max_distance_um": math.nan}, "max_distance_um must be > 0"),
        ({"axis": "z"}, "axis must be 'x' or 'y'"),
        ({"center_um": math.nan}, "center_um must be a finite"),
        ({"distance": "manhattan"}, "distance must be"),
        ({"soma_depth_um": (50.0, 40.0)}, "soma_depth_um must be None or"),
        ({"soma_depth_um": (-1.0, 40.0)}, "soma_depth_um must be None or"),
        ({"soma_depth_um": 31.0}, "soma_depth_um must be None or"),
        ({"cut_arbors": "yes"}, "cut_arbors must be True or False"),
    ],
)
def test_slice_config_errors(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MeasurementError, match=fragment):
        SliceConfig(**kwargs)


def test_slice_config_to_dict() -> None:
    d = SliceConfig(max_distance_um=math.inf).to_dict()
    assert json.loads(json.dumps(d)) == d and d["max_distance_um"] is None


def test_builtin_sets_on_tiny(request: pytest.FixtureRequest) -> None:
    tiny = request.getfixturevalue("tiny_model")
    vpm = populations(tiny, load_measurement_set("vpm-invivo"))
    n_vpm_c2 = select(tiny, "VPM;column=C2;region=barreloid").size
    assert n_vpm_c2 > 0
    for pop in vpm:
        assert pop.pre.size == n_vpm_c2
        assert pop.n_eligible == pop.pre.size * pop.post.size
    septum = select(tiny, "L4exc;region=septum")
    np.testing.assert_array_equal(vpm[1].post, septum)
    assert np.intersect1d(vpm[0].post, septum).size == 0
    for pop in populations(tiny, load_measurement_set("rat-invitro")):
        assert pop.n_eligible > 0
        assert not np.any(pop.pair_pre == pop.pair_post)


# -- sets defined by a model's source populations ---------------------------------------------


def imported_model(extra: dict[str, Any] | None = None) -> StructuralModel:
    base = hand_model()
    rng = np.random.default_rng(0)
    n = base.n_neurons
    pops = {
        "first": NeuronPopulation(
            pre=np.sort(rng.choice(n, 10, replace=False)),
            post=np.sort(rng.choice(n, 30, replace=False)),
            attrs={"probability": 0.43, "n_pairs": 40, "protocol": "invivo", "species": "rat",
                   "authors": "Bruno RM, Sakmann B", "year": 2006,
                   "doi": "doi:10.1126/science.1124593", "title": "T", "pre_type": "VPM",
                   "post_type": "L4ss", "only_septum": "yes", "mask_rows": 9},
        ),
        "no-data": NeuronPopulation(pre=np.arange(3), post=np.arange(3, 6), attrs={}),
        "second": NeuronPopulation(
            pre=np.arange(5, 25), post=np.arange(20, 40),
            attrs={"probability": 0.1, "protocol": "invitro", "species": "rat",
                   "authors": "Markram H", "year": "1997", "doi": "10.1113/x", **(extra or {})},
        ),
    }
    return hand_model(pops=pops)


def test_measurement_set_from_model() -> None:
    model = imported_model({"n_pairs": 500})
    mset = measurement_set_from_model(model)
    assert mset.names == ("first", "second") and mset.name == "hand"
    first, second = mset
    assert first.citation.doi == "10.1126/science.1124593" and second.citation.year == 1997
    assert first.description == "VPM -> L4ss (septum only)"
    assert (second.protocol, second.n_pairs, second.eligibility) == ("slice", 500, "all")
    for m in mset:
        pop = population(model, m)
        src = model.populations[m.id]
        np.testing.assert_array_equal(pop.pre, src.pre)
        np.testing.assert_array_equal(pop.post, src.post)
        assert pop.n_eligible == src.pre.size * src.post.size - np.intersect1d(
            src.pre, src.post).size


def test_measurement_set_from_model_errors() -> None:
    with pytest.raises(MeasurementError, match=r"n_pairs.*default_n_pairs"):
        measurement_set_from_model(imported_model())
    assert measurement_set_from_model(imported_model(), default_n_pairs=50)["second"].n_pairs == 50
    with pytest.raises(MeasurementError, match="model population 'second', attrs\\['probability'\\]"):
        measurement_set_from_model(imported_model({"n_pairs": 5, "probability": 12.0}))
    with pytest.raises(MeasurementError, match="'protocol'"):
        measurement_set_from_model(imported_model({"n_pairs": 5, "protocol": "ex vivo"}))
    with pytest.raises(MeasurementError, match="no source-defined populations"):
        measurement_set_from_model(hand_model())


def test_set_from_imported_feature_tables(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """tiny -> feature-table folder (some vpm-invivo populations) -> import -> same measurements."""
    from anatomy.io import consbi
    tiny = request.getfixturevalue("tiny_model")
    vpm = load_measurement_set("vpm-invivo").subset(["L4-septum", "L4ss", "L5PT"])
    pops = {}
    records = []
    for k, (m, pop) in enumerate(zip(vpm, populations(tiny, vpm), strict=True)):
        mid = f"id-{k}-{m.id}"
        pops[mid] = NeuronPopulation(pre=pop.pre, post=pop.post, attrs={"protocol": "invivo"})
        records.append({
            "ID": mid, "type": "connection_probability_invivo", "authors": m.citation.authors,
            "title": m.citation.title, "year": m.citation.year, "DOI": f"doi:{m.citation.doi}",
            "cp_empirical": round(100 * m.probability, 6), "species": "rat",
            "samples": m.n_pairs, "pre_type": "VPM", "post_type": m.id, "only_septum": "no",
        })
    folder = consbi.write_feature_tables(tiny, tmp_path / "tables", populations=pops,
                                         records=records)
    imported = consbi.import_feature_tables(folder)
    mset = measurement_set_from_model(imported, name="imported")
    # named by readable labels from the metadata (here the post types), source IDs kept
    assert mset.names == vpm.names
    assert all(f"source ID {mid}" in m.description for mid, m in zip(pops, mset, strict=True))
    np.testing.assert_allclose(mset.x_o, vpm.x_o, rtol=0, atol=1e-8)  # percent, 6 decimals
    np.testing.assert_array_equal(mset.n_pairs, vpm.n_pairs)
    for m, ref, src in zip(mset, vpm, populations(tiny, vpm), strict=True):
        assert m.citation.doi == ref.citation.doi and m.citation.year == ref.citation.year
        assert m.protocol == "invivo" and m.eligibility == "all"
        pop = population(imported, m)
        ids = imported.neurons.ids
        got = set(zip(ids[pop.pair_pre].tolist(), ids[pop.pair_post].tolist(), strict=True))
        want = set(zip(tiny.neurons.ids[src.pair_pre].tolist(),
                       tiny.neurons.ids[src.pair_post].tolist(), strict=True))
        assert got == want


@pytest.mark.parametrize(
    ("authors", "short"),
    [
        ("Randy M Bruno, Bert Sakmann", "Bruno & Sakmann 2006"),
        ("Bruno RM, Sakmann B", "Bruno & Sakmann 2006"),
        ("Christine M Constantinople, Randy M Bruno", "Constantinople & Bruno 2006"),
        ("Carl C H Petersen", "Petersen 2006"),
        ("Petersen CCH", "Petersen 2006"),
        ("D Feldmeyer, V Egger, J Lubke, B Sakmann", "Feldmeyer et al. 2006"),
        ("Bruno", "Bruno 2006"),
    ],
)
def test_citation_surnames_in_either_order(authors: str, short: str) -> None:
    assert Citation(authors=authors, year=2006, doi="").short == short


def test_select_model_measurements_by_label_or_name() -> None:
    model = imported_model({"n_pairs": 500, "label": "L5-L5"})
    assert measurement_set_from_model(model).names == ("first", "L5-L5")
    got = measurement_set_from_model(model, select=["L5-L5", "first"])
    assert got.names == ("L5-L5", "first")
    # the population name (the source ID) selects too, and is kept in the description
    by_id = measurement_set_from_model(model, select=["second"])
    assert by_id.names == ("L5-L5",) and "source ID second" in by_id["L5-L5"].description
    with pytest.raises(MeasurementError, match="select names unknown measurement 'L6'"):
        measurement_set_from_model(model, select=["first", "L6"])
    with pytest.raises(MeasurementError, match="twice"):
        measurement_set_from_model(model, select=["first", "first"])
    # only selected populations need complete attributes
    partial = imported_model({"label": "L5-L5"})
    assert measurement_set_from_model(partial, select=["first"]).names == ("first",)
    with pytest.raises(MeasurementError, match=r"'second' \(L5-L5\): pairs tested unknown"):
        measurement_set_from_model(partial, select=["all"])
    assumed = measurement_set_from_model(partial, select=["all"], default_n_pairs=50)
    assert assumed["L5-L5"].n_pairs == 50
    assert "pairs tested unknown in the source; 50 assumed" in assumed["L5-L5"].description


def test_resolve_measurement_set() -> None:
    from wiring.measurements import resolve_measurement_set

    assert resolve_measurement_set("vpm-invivo", select=["L6", "L4"]).names == ("L6", "L4")
    assert len(resolve_measurement_set("vpm-invivo", select=["all"])) == 7
    with pytest.raises(MeasurementError, match="select names unknown measurement 'L9'"):
        resolve_measurement_set("vpm-invivo", select=["L9"])
    with pytest.raises(MeasurementError, match="name its store"):
        resolve_measurement_set("model")
    model = imported_model({"n_pairs": 5})
    assert resolve_measurement_set("model", model=model).names == ("first", "second")


def test_imported_slice_mask_lists_candidates_and_averages_per_pre(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A slice mask listing each presynaptic neuron's candidates (not pre x post) survives the
    feature-table round trip and the anatomy store, and becomes a 'listed', 'per_pre'
    measurement whose eligible pairs are exactly the listed ones."""
    from anatomy.io import consbi
    from anatomy.store import open_model, write_model
    from wiring.simulation.simulator import Simulator

    tiny = request.getfixturevalue("tiny_model")
    pre = select(tiny, "L4ss")[:6]
    post = select(tiny, "L23exc")[:8]
    rng = np.random.default_rng(0)
    listed = sorted({(int(i), int(j)) for i in pre
                     for j in rng.choice(post, rng.integers(1, 5), replace=False)})
    pp = np.array([a for a, _ in listed])
    qq = np.array([b for _, b in listed])
    pops = {"slice-mask": NeuronPopulation(
        pre=np.unique(pp), post=np.unique(qq), attrs={"protocol": "slice"},
        pair_pre=pp, pair_post=qq)}
    record = {"ID": "slice-mask", "type": "connection_probability_invitro",
              "authors": "Feldmeyer D, Lübke J, Silver RA, Sakmann B", "title": "t",
              "year": 2002, "DOI": "doi:10.1113/jphysiol.2001.012959", "cp_empirical": 15.0,
              "species": "rat", "samples": len(listed), "pre_type": "L4ss",
              "post_type": "L23exc", "only_septum": "no"}
    folder = consbi.write_feature_tables(tiny, tmp_path / "tables", populations=pops,
                                         records=[record])
    imported = consbi.import_feature_tables(folder)
    src = imported.populations["slice-mask"]
    assert src.pair_pre is not None and len(src.pair_pre) == len(listed)
    write_model(imported, tmp_path / "real.zarr")
    reopened = open_model(tmp_path / "real.zarr")
    np.testing.assert_array_equal(reopened.populations["slice-mask"].pair_pre, src.pair_pre)
    np.testing.assert_array_equal(reopened.populations["slice-mask"].pair_post, src.pair_post)
    mset = measurement_set_from_model(reopened, name="imported")
    m = mset["L4ss-L23exc"]  # labelled from the record; the source population keeps its ID
    assert (m.eligibility, m.statistic, m.source_population) == ("listed", "per_pre",
                                                                 "slice-mask")
    pop = population(reopened, m)
    ids = reopened.neurons.ids
    got = sorted(zip(ids[pop.pair_pre].tolist(), ids[pop.pair_post].tolist(), strict=True))
    want = sorted(zip(tiny.neurons.ids[pp].tolist(), tiny.neurons.ids[qq].tolist(),
                      strict=True))
    assert got == want
    sim = Simulator(reopened, "dso", mset)
    x = sim.simulate(np.ones((4, 3)), seed=0)
    assert np.isfinite(x).all()
    with pytest.raises(SelectionError, match="has no population 'nope'"):
        population(reopened, dataclasses.replace(m, source_population="nope"))
    # the feature cache key follows the listed pairs (not part of the anatomy hash)
    from wiring.simulation.features import feature_cache_key

    assert src.pair_pre is not None and src.pair_post is not None
    fewer = dataclasses.replace(src, pair_pre=src.pair_pre[1:], pair_post=src.pair_post[1:])
    other = dataclasses.replace(reopened, populations={"slice-mask": fewer})
    assert feature_cache_key(other, mset)[0] != feature_cache_key(reopened, mset)[0]


def test_vpm_septum_is_the_c2_septum_on_several_columns() -> None:
    """On a model with columns C1, C2, C3 (septal neurons assigned to their nearest column),
    L4-septum takes the L4 excitatory septal cells of C2 only, and its presynaptic VPM cells
    from the C2 barreloid only."""
    n = 90
    rng = np.random.default_rng(3)
    cell_type = np.full(n, CELL_TYPES.index("L4ss"), dtype=np.int8)
    cell_type[:15] = CELL_TYPES.index("VPM")
    column = np.tile(np.arange(3, dtype=np.int16), n // 3)
    region = np.where(np.arange(n) % 2 == 0, REGIONS.index("septum"),
                      REGIONS.index("column")).astype(np.int8)
    region[:15] = REGIONS.index("barreloid")
    layer = np.full(n, LAYERS.index("L4"), dtype=np.int8)
    layer[:15] = -1
    neurons = Neurons(
        cell_type=cell_type, layer=layer, region=region, column=column,
        soma_um=rng.uniform(0, 400, (n, 3)).astype(np.float32),
        ids=np.arange(n, dtype=np.int64), column_names=("C1", "C2", "C3"),
    )
    grid = VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=100.0, shape=(4, 4, 4))
    counts = sp.random(n, grid.n_voxels, density=0.1, random_state=3, format="csc")
    multi = StructuralModel(
        grid=grid, neurons=neurons, pre=VoxelMajorCounts.from_scipy(counts, name="pre"),
        post=VoxelMajorCounts.from_scipy(counts, name="post"),
        post_all=np.asarray(counts.sum(axis=0)).ravel().astype(np.float32) + 1.0,
    )
    sept = population(multi, load_measurement_set("vpm-invivo")["L4-septum"])
    want_post = np.flatnonzero((cell_type == CELL_TYPES.index("L4ss"))
                               & (region == REGIONS.index("septum")) & (column == 1))
    want_pre = np.flatnonzero((cell_type == CELL_TYPES.index("VPM")) & (column == 1))
    np.testing.assert_array_equal(sept.post, want_post)
    np.testing.assert_array_equal(sept.pre, want_pre)
    all_septal = np.flatnonzero((cell_type == CELL_TYPES.index("L4ss"))
                                & (region == REGIONS.index("septum")))
    assert len(all_septal) > len(want_post) > 0  # C1 and C3 septal cells are left out
