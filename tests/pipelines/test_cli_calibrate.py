"""Tests of ``wiring anatomy calibrate``: table, JSON, plot, exit status and bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from anatomy.store import write_model
from pipelines.cli import main

SWC = """1 1 0 0 0 5 -1
2 2 0 -10 0 1 1
3 2 0 -130 0 1 2
4 3 10 0 0 1 1
5 3 60 0 0 1 4
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("wiring: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory, small_model: Any) -> Path:
    path = tmp_path_factory.mktemp("calibrate") / "small.zarr"
    write_model(small_model, path)
    return path


def test_table_json_and_plot(small_store: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "boutons.png"
    code, out, err = run(capsys, "anatomy", "calibrate", str(small_store), "--plot", str(plot))
    assert code == 0, err
    lines = out.splitlines()
    assert "generator version 2" in lines[0]
    assert lines[1].split()[:5] == ["target", "real", "model", "tolerance", "result"]
    row = next(line for line in lines if line.startswith("p-L4 "))
    assert row.split()[1:5] == ["0.455", row.split()[2], "±0.05", "pass"]
    assert "Udvary et al. 2022" in row
    assert lines[-1] == "29 passed, 0 failed, 0 not applicable"
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"

    code, out, _ = run(capsys, "anatomy", "calibrate", str(small_store), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["all_passed"] and report["n_passed"] == 29
    ids = {r["id"] for r in report["results"]}
    assert {"vpm-boutons-L5A", "neuron-count-L4", "post-all-L2", "p-L6",
            "ratio-L4-septum/L4"} <= ids
    for r in report["results"]:
        assert r["source"] and r["passed"] is True and r["model_value"] is not None


def test_failing_targets_exit_1_with_one_line(small_model: Any, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # four times the target sites per voxel: every connection probability drops far below the
    # dense model's and post_all leaves its tolerance (the uncalibrated model failed likewise)
    attrs = {k: v for k, v in small_model.attrs.items() if k != "content_hash"}
    model = dataclasses.replace(small_model, post_all=small_model.post_all * 4, attrs=attrs)
    store = tmp_path / "diluted.zarr"
    write_model(model, store)
    code, out, err = run(capsys, "anatomy", "calibrate", str(store))
    assert code == 1
    line = one_error_line(err)
    failed = [r.split()[0] for r in out.splitlines() if " FAIL " in r]
    assert "p-L4" in failed and "post-all-L4" in failed and "vpm-boutons-L4" not in failed
    assert line.startswith(f"wiring: error: {len(failed)} calibration target(s) failed: ")
    assert all(name in line for name in failed)


def test_imported_store_reports_what_it_can(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "n.swc").write_text(SWC)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,swc,cell_type,x,y,depth,region\n5,n.swc,L4ss,25,25,700,column\n")
    store = tmp_path / "swc.zarr"
    code, _, err = run(capsys, "anatomy", "import", "swc", str(manifest), "--out", str(store))
    assert code == 0, err
    code, out, err = run(capsys, "anatomy", "calibrate", str(store), "--json")
    report = json.loads(out)
    na = {r["id"]: r["reason"] for r in report["results"] if r["passed"] is None}
    assert "vpm-boutons-L4" in na and "no VPM boutons" in na["vpm-boutons-L4"]
    assert na.get("p-L4")
    assert "ratio-L4-septum/L4" in na
    assert code == (1 if report["n_failed"] else 0)
    code, out, _ = run(capsys, "anatomy", "calibrate", str(store))
    assert " n/a " in out


@pytest.mark.parametrize("argv", [
    ["anatomy", "calibrate", "none.zarr"],
])
def test_missing_store(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert "none.zarr" in one_error_line(err)


def test_plot_refuses_to_overwrite(small_store: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "b.png"
    plot.write_bytes(b"mine")
    code, _, err = run(capsys, "anatomy", "calibrate", str(small_store), "--plot", str(plot))
    assert code == 1 and "--overwrite" in one_error_line(err)
    assert plot.read_bytes() == b"mine"
    code, _, err = run(capsys, "anatomy", "calibrate", str(small_store), "--plot",
                       str(tmp_path / "b.xyz"))
    assert code == 1 and "unknown image format" in one_error_line(err)
