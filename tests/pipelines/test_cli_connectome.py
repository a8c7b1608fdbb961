"""``wiring connectome`` in-process: outputs, refusals and bad input (exit 1, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import main
from pipelines.commands.connectome import summary_dir
from wiring.connectome import open_connectome


def _argv(store: Path, out: Path, *extra: str) -> list[str]:
    return ["connectome", "--anatomy", str(store), "--rule", "dso", "--theta", "1,1,1",
            "--seed", "4", "--out", str(out), *extra]


def test_writes_store_summary_and_sonata(tiny_store: Path, tiny_model, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "conn.zarr"
    code = main(_argv(tiny_store, out, "--pre", "VPM;region=barreloid", "--post", "L4exc",
                      "--sonata", str(tmp_path / "sonata"), "--workers", "2"))
    assert code == 0, capsys.readouterr().err
    assert "connections" in capsys.readouterr().out
    conn = open_connectome(out)
    assert conn.rule["name"] == "dso" and conn.seed == 4
    assert conn.anatomy_hash == tiny_model.attrs["content_hash"]
    summary = summary_dir(out)
    assert summary == tmp_path / "conn_summary"
    names = sorted(p.name for p in summary.iterdir())
    assert names == [*sorted(f"probability_{by}.{ext}" for by in ("cell_type", "layer") for ext in ("json", "csv", "png")), "synapse_density.csv", "synapse_density.png"]
    tp = json.loads((summary / "probability_cell_type.json").read_text())
    assert tp["pre_labels"] == ["VPM"] and tp["post_labels"] == ["L4PY", "L4sp", "L4ss"]
    assert int(np.sum(tp["n_connected"])) == conn.n_connections
    assert (tmp_path / "sonata" / "edges.h5").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # same command, same result: refused without --overwrite, identical with it
    code = main(_argv(tiny_store, out, "--pre", "VPM", "--post", "L4exc"))
    assert code == 1 and "--overwrite" in capsys.readouterr().err
    code = main(_argv(tiny_store, out, "--pre", "VPM", "--post", "L4exc", "--overwrite",
                      "--block-size", "7"))
    assert code == 0
    again = open_connectome(out)
    assert (again.synapses != conn.synapses).nnz == 0


def test_preset_anatomy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.zarr"
    assert main(["connectome", "--anatomy", "tiny", "--rule", "peters_synapse", "--theta", "0.2",
                 "--seed", "1", "--out", str(out), "--post", "L4ss"]) == 0
    assert open_connectome(out).rule["name"] == "peters_synapse"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--theta": "1,1"}, "takes 3 parameter"),
        ({"--theta": "1,nan,1"}, "not a finite number"),
        ({"--theta": "1,x,1"}, "comma-separated"),
        ({"--rule": "dsx"}, "dso"),
        ({"--pre": "L4zz"}, "L4zz"),
        ({"--post": "L4ss;region=barreloid"}, "selects no neuron"),
        ({"--anatomy": "colum"}, "column"),
    ],
)
def test_bad_input_exits_1_and_writes_nothing(tiny_store: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str], change,
                                              message) -> None:
    argv = _argv(tiny_store, tmp_path / "c.zarr", "--sonata", str(tmp_path / "s"))
    for key, value in change.items():
        if key in argv:
            argv[argv.index(key) + 1] = value
        else:
            argv += [key, value]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("wiring: error:") and message in err
    assert list(tmp_path.iterdir()) == []


def test_corrupt_anatomy_store(tiny_store: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.zarr"
    shutil.copytree(tiny_store, broken)
    shutil.rmtree(broken / "post" / "indices")
    assert main(_argv(broken, tmp_path / "c.zarr")) == 1
    err = capsys.readouterr().err
    assert "wiring: error:" in err and "post/indices is missing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.zarr"]


def test_failure_during_the_work_keeps_the_existing_outputs(tiny_store: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch) -> None:
    """--overwrite replaces the old store only once the new one and its summary are complete."""
    from wiring.connectome import compute as connectome_module

    out = tmp_path / "conn.zarr"
    assert main(_argv(tiny_store, out)) == 0
    before = open_connectome(out)
    summary = sorted(p.name for p in summary_dir(out).iterdir())

    def unwritable(self, block):
        raise PermissionError("Permission denied: the output folder became read-only")

    monkeypatch.setattr(connectome_module._BlockAppender, "append", unwritable)
    argv = _argv(tiny_store, out, "--overwrite")
    argv[argv.index("--seed") + 1] = "5"
    assert main(argv) == 1
    assert "Permission denied" in capsys.readouterr().err
    after = open_connectome(out)
    assert after.seed == before.seed
    assert (after.synapses != before.synapses).nnz == 0
    assert sorted(p.name for p in summary_dir(out).iterdir()) == summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conn.zarr", "conn_summary"]


def test_existing_outputs_refused_before_work(tiny_store: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    sonata = tmp_path / "s"
    sonata.mkdir()
    (sonata / "mine.txt").write_text("keep")
    assert main(_argv(tiny_store, tmp_path / "c.zarr", "--sonata", str(sonata))) == 1
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    assert (sonata / "mine.txt").read_text() == "keep"


def test_overwrite_never_replaces_foreign_folders(tiny_store: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.zarr"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(_argv(tiny_store, out, "--overwrite")) == 1
    assert "not a connectome store" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]


def test_progress_shows_the_blocks_computed_and_read(tiny_store: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "conn.zarr"
    assert main(_argv(tiny_store, out, "--progress")) == 0
    err = capsys.readouterr().err
    assert "connectome blocks" in err and "reading" in err
