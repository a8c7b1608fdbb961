"""Tests of ``wiring anatomy build|import|info``: outputs, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anatomy.store import open_model
from pipelines.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("wiring: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_build_writes_a_valid_store(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    tiny_model: Any) -> None:
    out = tmp_path / "tiny.zarr"
    code, stdout, _ = run(capsys, "anatomy", "build", "--preset", "tiny", "--seed", "0",
                          "--out", str(out))
    assert code == 0
    model = open_model(out)
    assert model.attrs["preset"] == "tiny" and model.attrs["seed"] == 0
    assert model.attrs["content_hash"] == tiny_model.attrs["content_hash"]
    assert model.attrs["content_hash"][:12] in stdout and str(out) in stdout


def test_build_refuses_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       tiny_store: Path) -> None:
    out = tmp_path / "m.zarr"
    shutil.copytree(tiny_store, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code, _, err = run(capsys, "anatomy", "build", "--preset", "tiny", "--seed", "3",
                       "--out", str(out))
    assert code == 1
    assert "already exists" in one_error_line(err) and "--overwrite" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert open_model(out).attrs["seed"] == 0


def test_build_overwrite_replaces(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  tiny_store: Path) -> None:
    out = tmp_path / "m.zarr"
    shutil.copytree(tiny_store, out)
    code, _, _ = run(capsys, "anatomy", "build", "--preset", "tiny", "--seed", "3",
                     "--out", str(out), "--overwrite")
    assert code == 0
    assert open_model(out).attrs["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["m.zarr"]


def test_build_unknown_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "anatomy", "build", "--preset", "tinyy", "--out",
                       str(tmp_path / "m.zarr"))
    assert code == 1
    line = one_error_line(err)
    assert "unknown preset 'tinyy'" in line and "tiny, small, column, field" in line
    assert "Did you mean 'tiny'?" in line
    assert not (tmp_path / "m.zarr").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["anatomy", "build", "--preset", "tiny"],  # --out missing
        ["anatomy", "build", "--preset", "tiny", "--seed", "-1", "--out", "x.zarr"],
        ["anatomy", "build", "--preset", "tiny", "--seed", "one", "--out", "x.zarr"],
        ["anatomy", "info"],
        ["anatomy", "frobnicate"],
        ["anatomy"],
        ["anatomy", "import"],
        ["anatomy", "import", "consbi", "folder"],  # --out missing
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str],
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "usage:" in err
    assert list(tmp_path.iterdir()) == []


def test_info_text_and_json(tiny_store: Path, capsys: pytest.CaptureFixture[str],
                            tiny_model: Any) -> None:
    code, out, _ = run(capsys, "anatomy", "info", str(tiny_store))
    assert code == 0
    assert tiny_model.attrs["content_hash"] in out
    assert "neurons_per_cell_type:" in out and "VPM: 20" in out
    code, out, _ = run(capsys, "anatomy", "info", str(tiny_store), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["content_hash"] == tiny_model.attrs["content_hash"]
    assert summary["n_neurons"] == tiny_model.n_neurons
    assert summary["n_voxels"] == tiny_model.n_voxels
    assert summary["nnz"] == {"pre": tiny_model.pre.nnz, "post": tiny_model.post.nnz}
    assert sum(summary["neurons_per_cell_type"].values()) == tiny_model.n_neurons
    assert sum(summary["neurons_per_region"].values()) == tiny_model.n_neurons


def test_info_plot(tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "depth.png"
    code, _, _ = run(capsys, "anatomy", "info", str(tiny_store), "--plot", str(png))
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(capsys, "anatomy", "info", str(tiny_store), "--plot", str(png))
    assert code == 1 and "already exists" in one_error_line(err)
    code, _, err = run(capsys, "anatomy", "info", str(tiny_store), "--plot",
                       str(tmp_path / "depth.xyz"))
    assert code == 1 and "unknown image format 'xyz'" in one_error_line(err)
    assert not (tmp_path / "depth.xyz").exists()


def test_info_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "anatomy", "info", str(tmp_path / "nope.zarr"))
    assert code == 1
    assert "no structural-model store at" in one_error_line(err)


def test_info_damaged_store(tiny_store: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    import zarr

    bad = tmp_path / "bad.zarr"
    shutil.copytree(tiny_store, bad)
    data = zarr.open_array(bad / "post/data", mode="r+")
    data[5] = np.nan
    code, _, err = run(capsys, "anatomy", "info", str(bad))
    assert code == 1
    line = one_error_line(err)
    assert "post/data[5] = " in line and "expected finite values >= 0" in line


def test_info_truncated_store_debug_shows_traceback(
    tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anatomy.errors import StoreValidationError

    bad = tmp_path / "bad.zarr"
    shutil.copytree(tiny_store, bad)
    shutil.rmtree(bad / "pre/indices")
    code, _, err = run(capsys, "anatomy", "info", str(bad))
    assert code == 1 and "array pre/indices is missing" in one_error_line(err)
    with pytest.raises(StoreValidationError):
        main(["--debug", "anatomy", "info", str(bad)])


def test_import_consbi_round_trip(tiny_model: Any, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from anatomy.io.consbi import write_feature_tables
    from anatomy.model import NeuronPopulation

    vpm = np.flatnonzero(np.asarray(tiny_model.neurons.cell_type_names) == "VPM")[:5]
    l4 = np.flatnonzero(np.asarray(tiny_model.neurons.cell_type_names) == "L4ss")[:10]
    folder = write_feature_tables(
        tiny_model, tmp_path / "tables",
        populations={"vpm-l4ss": NeuronPopulation(pre=vpm, post=l4)},
    )
    out = tmp_path / "imported.zarr"
    code, stdout, err = run(capsys, "anatomy", "import", "consbi", str(folder), "--out", str(out))
    assert code == 0, err
    model = open_model(out)
    assert "vpm-l4ss" in model.populations
    assert str(out) in stdout
    code, _, err = run(capsys, "anatomy", "import", "consbi", str(folder), "--out", str(out))
    assert code == 1 and "already exists" in one_error_line(err)


def test_import_consbi_bad_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "anatomy", "import", "consbi", str(tmp_path / "none"),
                       "--out", str(tmp_path / "m.zarr"))
    assert code == 1
    one_error_line(err)
    assert not (tmp_path / "m.zarr").exists()


SWC = """1 1 0 0 0 5 -1
2 2 0 -10 0 1 1
3 2 0 -130 0 1 2
4 3 10 0 0 1 1
5 3 60 0 0 1 4
"""


def test_import_swc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "n.swc").write_text(SWC)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,swc,cell_type,x,y,depth,region\n5,n.swc,L4ss,25,25,700,column\n")
    out = tmp_path / "swc.zarr"
    code, stdout, err = run(capsys, "anatomy", "import", "swc", str(manifest), "--out", str(out),
                            "--depth-axis=-y", "--background-targets-per-voxel", "100")
    assert code == 0, err
    model = open_model(out)
    assert model.n_neurons == 1 and model.pre.nnz > 0 and model.post.nnz > 0
    assert float(np.min(model.post_all)) >= 100.0
    assert str(out) in stdout


def test_import_swc_bad_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "anatomy", "import", "swc", str(tmp_path / "none.csv"),
                       "--out", str(tmp_path / "m.zarr"))
    assert code == 1
    assert "manifest file not found" in one_error_line(err)
    assert not (tmp_path / "m.zarr").exists()
