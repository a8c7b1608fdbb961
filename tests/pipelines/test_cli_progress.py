"""``--no-progress`` in every long-running command: accepted the same way everywhere, and the
bars (on stderr) are shown without it and hidden with it or with ``-q``. The analyze bars are
tested with the anatomy sensitivity (tests/pipelines/test_cli_nuisance.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import build_parser, main

A = ["--anatomy", "tiny"]
LONG_RUNNING = [
    ["run"],
    ["simulate", *A, "--rule", "dso", "--measurements", "vpm-invivo", "--n", "10", "--seed",
     "0", "--out", "s.zarr"],
    ["train", "--store", "s.zarr", "--out", "p"],
    ["analyze", *A, "--posterior", "p", "--measurements", "vpm-invivo", "--out", "r"],
    ["connectome", *A, "--rule", "dso", "--theta", "1,1,1", "--seed", "0", "--out", "c.zarr"],
    ["anatomy", "build", "--preset", "tiny", "--out", "m.zarr"],
]


@pytest.mark.parametrize("argv", LONG_RUNNING, ids=lambda a: a[0] if a[0] != "anatomy" else "anatomy build")
def test_every_long_running_command_has_no_progress(argv: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(argv).no_progress is False
    assert parser.parse_args([*argv, "--no-progress"]).no_progress is True


def simulate_args(anatomy: Path, out: Path, *extra: str) -> list[str]:
    return ["simulate", "--anatomy", str(anatomy), "--rule", "dso", "--measurements",
            "vpm-invivo", "--n", "60", "--chunk-size", "30", "--seed", "1", "--out", str(out),
            *extra]


def test_simulate_and_train_bars(tiny_store: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.zarr"
    assert main(simulate_args(tiny_store, store, "--no-progress")) == 0
    assert "simulating:" not in capsys.readouterr().err
    assert main(simulate_args(tiny_store, tmp_path / "t.zarr")) == 0
    assert "simulating:" in capsys.readouterr().err
    assert main(["-q", *simulate_args(tiny_store, tmp_path / "u.zarr")]) == 0
    assert "simulating:" not in capsys.readouterr().err
    train = ["train", "--store", str(store), "--max-epochs", "2", "--num-transforms", "1",
             "--hidden-features", "8", "--threads", "1", "--estimator", "maf"]
    assert main([*train, "--out", str(tmp_path / "p1"), "--no-progress"]) == 0
    assert "val=" not in capsys.readouterr().err
    assert main([*train, "--out", str(tmp_path / "p2")]) == 0
    err = capsys.readouterr().err
    assert "training maf" in err and "val=" in err and "lr=" in err


def test_connectome_bars_are_on_unless_hidden(tiny_store: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["connectome", "--anatomy", str(tiny_store), "--rule", "dso", "--theta", "1,1,1",
            "--seed", "4"]
    assert main([*argv, "--out", str(tmp_path / "a.zarr")]) == 0
    err = capsys.readouterr().err
    assert "connectome blocks" in err and "reading" in err
    assert main([*argv, "--out", str(tmp_path / "b.zarr"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "connectome blocks" not in err and "reading" not in err


def test_anatomy_build_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["anatomy", "build", "--preset", "tiny"]
    assert main([*argv, "--out", str(tmp_path / "a.zarr"), "--no-progress"]) == 0
    quiet = capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "b.zarr")]) == 0
    shown = capsys.readouterr().err
    assert "anatomy tiny:" in shown and "anatomy tiny:" not in quiet
