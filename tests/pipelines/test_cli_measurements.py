"""Tests of ``wiring measurements list|show|export`` (in-process, exit codes and output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cli import main
from wiring.measurements import load_measurement_set


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measurements", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["name", "measurements", "protocol", "pairs"]
    assert out[1].split()[:4] == ["vpm-invivo", "7", "invivo", "127"]
    assert out[2].split()[:4] == ["rat-invitro", "7", "slice", str(94 + 146 + 64 + 500 + 3446
                                                                     + 27 + 247)]


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measurements", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["vpm-invivo", "rat-invitro"]
    assert data[0]["n_measurements"] == 7 and data[0]["total_pairs"] == 127
    assert data[0]["content_hash"] == load_measurement_set("vpm-invivo").content_hash()


def test_show_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measurements", "show", "vpm-invivo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("vpm-invivo: 7 measurements")
    assert lines[1].split() == ["id", "pre", "post", "p", "pairs", "protocol", "citation"]
    first = lines[2].split()
    assert first[:6] == ["L4", "cell_type=VPM;region=barreloid;column=C2",
                         "cell_type=L4exc;region=column;column=C2", "0.425", "40", "invivo"]
    assert "Bruno & Sakmann 2006, doi:10.1126/science.1124593" in lines[2]
    assert [ln.split()[0] for ln in lines[2:]] == list(load_measurement_set("vpm-invivo").names)


def test_show_json_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mset = load_measurement_set("rat-invitro")
    path = mset.to_csv(tmp_path / "mine.csv")
    assert main(["measurements", "show", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "mine" and data["content_hash"] == mset.content_hash()
    assert [m["id"] for m in data["measurements"]] == list(mset.names)
    assert data["measurements"][4]["n_pairs"] == 3446


def test_show_with_model(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    store = request.getfixturevalue("tiny_store")
    assert main(["measurements", "show", "vpm-invivo", "--model", str(store), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    pops = data["populations"]
    assert [p["id"] for p in pops] == list(load_measurement_set("vpm-invivo").names)
    assert all(p["n_eligible"] == p["n_pre"] * p["n_post"] > 0 for p in pops)
    assert main(["measurements", "show", "rat-invitro", "--model", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[-3:] == ["n_pre", "n_post", "eligible"]
    # a slab too thin to hold any pair is a data error, one line, exit 1
    assert main(["measurements", "show", "rat-invitro", "--model", str(store),
                 "--slice-thickness-um", "0.001"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wiring: error: measurement ") and "no eligible pair" in err


def test_export_and_refuse_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "vpm.toml"
    assert main(["measurements", "export", "vpm-invivo", "--out", str(out)]) == 0
    assert load_measurement_set(out).content_hash() == (
        load_measurement_set("vpm-invivo").content_hash()
    )
    before = out.read_bytes()
    assert main(["measurements", "export", "rat-invitro", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["measurements", "export", "rat-invitro", "--out", str(out), "--overwrite"]) == 0
    assert load_measurement_set(out).names == load_measurement_set("rat-invitro").names
    assert main(["measurements", "export", "rat-invitro", "--out", str(tmp_path / "x.txt")]) == 1
    assert "unsupported suffix" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        (["measurements", "show", "vpm-invivi"], 1, "Did you mean 'vpm-invivo'"),
        (["measurements", "show", "missing.toml"], 1, "does not exist"),
        (["measurements"], 2, "usage: wiring measurements"),
        (["measurements", "show"], 2, "the following arguments are required"),
        (["measurements", "list", "--bogus"], 2, "unrecognized arguments"),
    ],
)
def test_errors(argv: list[str], code: int, fragment: str,
                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert fragment in err
    if code == 1:
        assert err.startswith("wiring: error: ") and err.count("\n") == 1


def test_bad_file_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "id,pre,post,probability,n_pairs,protocol,species,authors,year,doi\n"
        "a,VPM,L4ss,0.5,-1,invivo,rat,Doe J,2020,\n",
        encoding="utf-8",
    )
    assert main(["measurements", "show", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: row 1 (line 2), field 'n_pairs': -1 is not positive" in err
