"""The feature-table importer: exact reconstruction of rows, populations, and errors that name the
file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anatomy.catalogue import CELL_TYPES
from anatomy.errors import FormatError, StoreExistsError
from anatomy.io.consbi import import_feature_tables, read_feature_tables, write_feature_tables
from anatomy.model import NeuronPopulation

# pre id, post id, voxel id, pre, post, postAll, depth, post type code
ROWS = [
    (100, 7, 11, 2.0, 3.0, 10.0, 700.0, 4),
    (100, 7, 12, 1.0, 5.0, 20.0, 750.0, 4),
    (100, 8, 12, 1.0, 4.0, 20.0, 750.0, 3),
    (101, 7, 11, 6.0, 3.0, 10.0, 700.0, 4),
    (101, 8, -1, 0.0, 0.0, 0.0, -1.0, 3),
    (102, 9, 13, 3.0, 2.0, 9.0, 1200.0, 6),
]


def make_folder(tmp_path: Path, rows: list[tuple[Any, ...]] = ROWS, *, masks: dict[str, Any] | None = None) -> Path:
    folder = tmp_path / "model"
    (folder / "features").mkdir(parents=True)
    (folder / "masks").mkdir()
    with (folder / "features" / "features_set-3_int.tsv").open("w") as fi, (
        folder / "features" / "features_set-3_float.tsv"
    ).open("w") as ff:
        for pre, post, vox, a, b, c, d, code in rows:
            layer = 2 if 576 <= d < 855 else 1
            fi.write(f"0\t{pre}\t{post}\t{vox}\t{layer}\t11\t{code}\n")
            ff.write(f"{a}\t{b}\t{c}\t{d}\n")
    masks = masks if masks is not None else {"L4": [0, 1, 2, 3, 4], "L5PT": [5]}
    for mid, idx in masks.items():
        (folder / "masks" / f"mask_set-3_{mid}.txt").write_text("".join(f"{i}\n" for i in idx))
    (folder / "empirical_data_2020-07-13.json").write_text(
        json.dumps(
            [
                {"ID": "L4", "type": "connection_probability_invivo", "authors": "Bruno, Sakmann",
                 "year": 2006, "DOI": "10.1126/science.1124593", "cp_empirical": 43,
                 "samples": 40, "species": "rat"},
                {"ID": "L5PT", "type": "connection_probability_invivo", "cp_empirical": 44,
                 "samples": 9, "species": "rat"},
            ]
        )
    )
    (folder / "inference_experiments_local.json").write_text(
        json.dumps([{"identifier": "default_rule_invivo", "feature-set": "set-3"}])
    )
    return folder


def test_import_reproduces_every_row(tmp_path: Path) -> None:
    model = import_feature_tables(make_folder(tmp_path))
    ids = model.neurons.ids.tolist()
    assert ids == [7, 8, 9, 100, 101, 102]
    types = [CELL_TYPES[c] for c in model.neurons.cell_type]
    assert types == ["L4ss", "L4sp", "L5PT", "VPM", "VPM", "VPM"]
    pre = model.pre.load().toarray()
    post = model.post.load().toarray()
    vox = {11: 0, 12: 1, 13: 2}
    for pre_id, post_id, v, a, b, c, d, _ in ROWS:
        if v < 0:
            continue
        i, j, k = ids.index(pre_id), ids.index(post_id), vox[v]
        assert pre[i, k] == a
        assert post[j, k] == b
        assert model.post_all[k] == c
        assert model.depth_um()[k] == d
    assert pre.sum() == 2 + 1 + 6 + 3
    assert model.attrs["content_hash"]


def test_populations_are_full_products_with_metadata(tmp_path: Path) -> None:
    model = import_feature_tables(make_folder(tmp_path))
    ids = model.neurons.ids
    l4 = model.populations["L4"]
    assert ids[l4.pre].tolist() == [100, 101]
    assert ids[l4.post].tolist() == [7, 8]  # (101, 8) shares no voxel but is in the population
    assert l4.attrs["probability"] == pytest.approx(0.43)
    assert l4.attrs["n_pairs"] == 40
    assert l4.attrs["protocol"] == "invivo"
    assert l4.attrs["doi"] == "10.1126/science.1124593"
    assert ids[model.populations["L5PT"].post].tolist() == [9]


def test_export_import_round_trip(tmp_path: Path) -> None:
    model = import_feature_tables(make_folder(tmp_path))
    out = write_feature_tables(model, tmp_path / "export")
    again = import_feature_tables(out)
    assert again.neurons.ids.tolist() == model.neurons.ids.tolist()
    np.testing.assert_array_equal(again.pre.load().toarray(), model.pre.load().toarray())
    np.testing.assert_array_equal(again.post.load().toarray(), model.post.load().toarray())
    np.testing.assert_array_equal(again.post_all, model.post_all)
    for name, pop in model.populations.items():
        np.testing.assert_array_equal(again.populations[name].pre, pop.pre)
        np.testing.assert_array_equal(again.populations[name].post, pop.post)


def test_export_refuses_existing_folder(tmp_path: Path) -> None:
    model = import_feature_tables(make_folder(tmp_path))
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "keep.txt").write_text("mine")
    with pytest.raises(StoreExistsError):
        write_feature_tables(model, tmp_path / "export")
    assert (tmp_path / "export" / "keep.txt").read_text() == "mine"


def _corrupt(folder: Path, which: str, line: int, text: str) -> None:
    path = folder / "features" / f"features_set-3_{which}.tsv"
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("which", "line", "text", "message"),
    [
        ("int", 3, "0\t100\t8\t12\t2\t11", r"features_set-3_int.tsv.*line 3"),
        ("int", 2, "0\t100\tseven\t12\t2\t11\t4", r"features_set-3_int.tsv.*line 2"),
        ("float", 4, "-6.0\t3.0\t10.0\t700.0", r"features_set-3_float.tsv, line 4: negative"),
        ("float", 1, "2.0\t3.0\tnan\t700.0", r"line 1: pre, post and postAll must be finite"),
        ("int", 6, "0\t102\t9\t13\t1\t11\t42", r"line 6: post cell-type code 42 is unknown"),
        ("float", 2, "7.0\t5.0\t20.0\t750.0", r"line \d: pre boutons of a \(pre, voxel\) differs"),
        ("float", 3, "1.0\t4.0\t25.0\t750.0", r"line \d: postAll of a voxel differs"),
    ],
)
def test_malformed_rows_name_file_and_line(
    tmp_path: Path, which: str, line: int, text: str, message: str
) -> None:
    folder = make_folder(tmp_path)
    _corrupt(folder, which, line, text)
    with pytest.raises(FormatError, match=message):
        import_feature_tables(folder)


def test_row_count_mismatch(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    path = folder / "features" / "features_set-3_float.tsv"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(FormatError, match=r"5 rows, but features_set-3_int\.tsv has 6"):
        import_feature_tables(folder)


def test_mask_past_the_table(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, masks={"L4": [0, 1, 99]})
    with pytest.raises(FormatError, match=r"mask_set-3_L4.txt, line 3: row index 99 points past"):
        read_feature_tables(folder)


def test_post_all_below_sum_of_post(tmp_path: Path) -> None:
    rows = [r if r[2] != 12 else (*r[:5], 6.0, *r[6:]) for r in ROWS]
    with pytest.raises(FormatError, match="less than the sum of post"):
        import_feature_tables(make_folder(tmp_path, rows))


def test_missing_folder_and_tables(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="not a directory"):
        import_feature_tables(tmp_path / "nothing")
    (tmp_path / "empty" / "features").mkdir(parents=True)
    with pytest.raises(FormatError, match=r"no features/features_<set>_int\.tsv"):
        import_feature_tables(tmp_path / "empty")


def test_populations_survive_model_validation(tmp_path: Path) -> None:
    model = import_feature_tables(make_folder(tmp_path))
    assert isinstance(model.populations["L4"], NeuronPopulation)


def test_labels_follow_the_metadata() -> None:
    from anatomy.io.consbi import first_author_surname, measurement_labels

    def rec(pre: tuple[str, str], post: tuple[str, str], septum: str = "no",
            authors: str = "Randy M Bruno, Bert Sakmann", year: str = "2006") -> dict[str, Any]:
        return {"pre_layer": pre[0], "pre_type": pre[1], "post_layer": post[0],
                "post_type": post[1], "only_septum": septum, "authors": authors, "year": year}

    vpm = ("VPM", "VPM")
    entries = [
        ("a", rec(vpm, ("L4", "EXC"))),
        ("b", rec(vpm, ("L4", "EXC"), "yes")),
        ("c", rec(vpm, ("L5", "L5PT"), authors="Christine M Constantinople, Randy M Bruno")),
        ("d", rec(vpm, ("L4", "EXC"), authors="Randy M Bruno, Daniel J Simons", year="2002")),
        ("e", rec(("L23", "EXC"), ("L23", "INH"), authors="Carl C H Petersen")),
        ("f", rec(("L5", "L5IT"), ("L5", "L5PT"), authors="Solange P Brown, Shaul Hestrin")),
        ("g", rec(("L5", "L5IT"), ("L5", "L5PT"), authors="Solange P Brown, Shaul Hestrin")),
        ("h", {}),
    ]
    labels = measurement_labels(entries, preferred=["a", "b", "c"])
    assert labels == {
        "a": "L4", "b": "L4SEP", "c": "L5PT", "d": "L4_Bruno2002", "e": "L23-L23INH",
        "f": "L5IT-L5PT_Brown2006", "g": "L5IT-L5PT_Brown2006_2", "h": "h",
    }
    # without a preference every member of an ambiguous group is qualified
    assert measurement_labels(entries[:1] + entries[3:4]) == {
        "a": "L4_Bruno2006", "d": "L4_Bruno2002"}
    assert first_author_surname("Randy M Bruno, Bert Sakmann") == "Bruno"
    assert first_author_surname("D Feldmeyer, V Egger") == "Feldmeyer"


def test_import_orders_and_labels_like_the_paper(tmp_path: Path, tiny_model) -> None:
    """The research-code-shaped folder: the default experiment's measurements first, in the
    paper's order, with the paper's labels; the experiment spec is kept."""
    # tests/ is on sys.path under pytest; mypy names the module tests.research_folder
    from research_folder import (  # type: ignore[import-not-found]
        PAPER,
        PAPER_LABELS,
        make_research_folder,
    )

    model = import_feature_tables(make_research_folder(tiny_model, tmp_path / "f"))
    names = list(model.populations)
    assert names[:7] == [p[0] for p in PAPER]
    assert [model.populations[n].attrs["label"] for n in names[:7]] == PAPER_LABELS
    assert model.attrs["default_measurements"] == [p[0] for p in PAPER]
    assert model.attrs["experiments"]["default_rule_invivo"] == [p[0] for p in PAPER]
    assert all(model.populations[n].attrs["source_id"] == n for n in names)
    assert len({p.attrs["label"] for p in model.populations.values()}) == len(names) == 89
