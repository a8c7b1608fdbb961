"""Nothing a user does and no fault may lose, mix or mislabel results, through the ``wiring``
command line: foreign folders are never replaced, one writer
per store, damaged or missing simulation chunks are refused and redone, an overwrite checks every
input before it replaces anything, leftovers of killed writers are cleaned. Every error is one
line with exit status 1, and the user's files are checked to be intact afterwards."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.cli import main


def simulate_args(anatomy: str | Path, out: Path, *extra: str, seed: int = 7,
                  measurements: str | Path = "vpm-invivo") -> list[str]:
    return ["simulate", "--anatomy", str(anatomy), "--rule", "dso", "--measurements",
            str(measurements), "--n", "400", "--chunk-size", "200", "--seed", str(seed),
            "--out", str(out), "--no-progress", *extra]


TRAIN_FAST = ["--max-epochs", "2", "--num-transforms", "1", "--hidden-features", "16",
              "--threads", "1", "--no-progress"]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.startswith("wiring: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def content(path: Path) -> str:
    from wiring.simulation.store import SimulationStore

    return SimulationStore.open(path).content_hash()


@pytest.fixture(scope="module")
def sims7(tmp_path_factory: pytest.TempPathFactory, tiny_store: Path) -> Path:
    """A complete store of seed 7 (two chunks of 200), the reference for every test."""
    out = tmp_path_factory.mktemp("safety") / "sims.zarr"
    assert main(simulate_args(tiny_store, out)) == 0
    return out


@pytest.fixture()
def sims(sims7: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sims7, tmp_path / "sims.zarr"))


@pytest.fixture()
def thesis(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\chapter{Results}\n")
    return folder


# -------------------------------------------------------------- 1: overwrite only our own output
def test_analyze_overwrite_never_deletes_a_foreign_folder(
    thesis: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["analyze", "--posterior", str(tmp_path / "no-posterior"), "--anatomy", "tiny",
            "--measurements", "vpm-invivo", "--out", str(thesis), "--overwrite"]
    assert main(args) == 1
    assert "not a report directory written by this package" in one_line_error(capsys)
    assert (thesis / "thesis.tex").read_text() == "\\chapter{Results}\n"


@pytest.mark.parametrize("command", ["anatomy build", "simulate", "train", "connectome",
                                     "connectome --sonata", "run"])
def test_every_writer_refuses_a_foreign_folder(
    command: str, thesis: Path, sims7: Path, tiny_store: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = {
        "anatomy build": ["anatomy", "build", "--preset", "tiny", "--out", str(thesis)],
        "simulate": simulate_args(tiny_store, thesis),
        "train": ["train", "--store", str(sims7), "--out", str(thesis), *TRAIN_FAST],
        "connectome": ["connectome", "--anatomy", str(tiny_store), "--rule", "dso", "--theta",
                       "1,1,1", "--seed", "1", "--out", str(thesis)],
        "connectome --sonata": ["connectome", "--anatomy", str(tiny_store), "--rule", "dso",
                                "--theta", "1,1,1", "--seed", "1",
                                "--out", str(tmp_path / "c.zarr"), "--sonata", str(thesis)],
        "run": ["run", "--out", str(thesis), "--no-progress"],
    }[command]
    assert main([*args, "--overwrite"] if command != "run" else args) == 1
    message = one_line_error(capsys)
    assert "refusing" in message and str(thesis) in message
    assert sorted(p.name for p in thesis.iterdir()) == ["thesis.tex"]
    assert (thesis / "thesis.tex").read_text() == "\\chapter{Results}\n"


# ------------------------------------------------------------------------ 2: one writer per store
PAUSED_WRITER = textwrap.dedent("""
    # `wiring simulate` whose simulator waits, inside its first chunk, for a sentinel file
    import sys, time
    from pathlib import Path
    import wiring.simulation.simulator as ws
    started, go = Path(sys.argv[1]), Path(sys.argv[2])
    original = ws.Simulator.simulate
    def paused(self, *args, **kwargs):
        started.touch()
        while not go.exists():
            time.sleep(0.01)
        return original(self, *args, **kwargs)
    ws.Simulator.simulate = paused
    from pipelines.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def test_overwrite_never_steals_a_live_writers_store(
    sims7: Path, tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The race of the issue: `--seed 8 --overwrite` while a `--seed 7` writer is running."""
    out = tmp_path / "sims.zarr"
    started, go = tmp_path / "started", tmp_path / "go"
    script = tmp_path / "paused_writer.py"
    script.write_text(PAUSED_WRITER)
    first = subprocess.Popen([sys.executable, str(script), str(started), str(go),
                              *simulate_args(tiny_store, out)])
    try:
        deadline = time.monotonic() + 300
        while not started.exists():  # the first writer is inside its first chunk
            assert first.poll() is None, "the first writer exited early"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert main(simulate_args(tiny_store, out, "--overwrite", seed=8)) == 1
        message = one_line_error(capsys)
        assert f"process {first.pid} on host {socket.gethostname()}" in message
        assert "never takes over" in message
        go.touch()
        assert first.wait(timeout=300) == 0
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
            first.wait()
    from wiring.simulation.store import SimulationStore

    store = SimulationStore.open(out)
    assert store.seed == 7 and store.is_complete
    assert content(out) == content(sims7)  # nothing of seed 8 inside
    # once the first writer is done, the overwrite goes through
    assert main(simulate_args(tiny_store, out, "--overwrite", seed=8)) == 0
    assert SimulationStore.open(out).seed == 8


# ------------------------------------------------------------- 3: checksums on simulation chunks
def _flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("fault", ["flipped byte", "deleted chunk", "flipped theta byte"])
def test_damaged_chunk_is_refused_then_redone(
    fault: str, sims: Path, sims7: Path, tiny_store: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chunk = sims / ("theta" if "theta" in fault else "x") / "c" / "1" / "0"
    if fault == "deleted chunk":
        chunk.unlink()
    else:
        _flip_byte(chunk)
    assert main(["train", "--store", str(sims), "--out", str(tmp_path / "post"),
                 *TRAIN_FAST]) == 1
    message = one_line_error(capsys)
    assert "chunk 1 (rows 200-399)" in message and "wiring simulate" in message
    assert not (tmp_path / "post").exists()
    # `simulate` with the same arguments finds the damage and redoes exactly that chunk
    assert main(simulate_args(tiny_store, sims)) == 0
    assert content(sims) == content(sims7)


# -------------------------------------------------- 4: inputs checked before anything is replaced
def test_overwrite_with_bad_measurements_keeps_the_old_store(
    sims: Path, tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = content(sims)
    bad = tmp_path / "c7.toml"
    bad.write_text(textwrap.dedent("""
        schema_version = 1
        name = "c7"
        [[measurement]]
        id = "L4-C7"
        pre = "VPM;column=C7;region=barreloid"
        post = "L4exc;column=C7;region=column"
        probability = 0.4
        n_pairs = 30
        protocol = "invivo"
    """))
    assert main(simulate_args(tiny_store, sims, "--overwrite", measurements=bad)) == 1
    assert "C7" in one_line_error(capsys)
    assert content(sims) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c7.toml", "sims.zarr"]


def test_overwrite_whose_simulator_fails_keeps_the_old_store(sims: Path) -> None:
    """Library level: the new store replaces the old one only once it holds a finished chunk."""
    from wiring.simulation.store import SimulationStore

    old = SimulationStore.open(sims)
    before = old.content_hash()

    class Broken:
        def simulate(self, theta: object, *, seed: int, start_index: int = 0) -> object:
            raise RuntimeError("the simulator broke")

    config = {k: getattr(old, k) for k in ("n", "chunk_size", "seed", "anatomy_hash",
                                           "measurement_hash", "measurement_names")}
    with pytest.raises(RuntimeError, match="the simulator broke"):
        SimulationStore.create(sims, prior_spec=old.prior_spec, rule_info=old.rule_info,
                               overwrite=True, prefill=Broken(), **{**config, "seed": 8})
    assert content(sims) == before
    assert sorted(p.name for p in sims.parent.iterdir()) == ["sims.zarr"]


# ----------------------------------------------------------------------------- leftovers, logs
def test_leftovers_of_a_killed_writer_are_removed(
    sims: Path, sims7: Path, tiny_store: Path
) -> None:
    leftover = sims.parent / ".sims.zarr.tmp-1a2b3c4d"
    shutil.copytree(sims, leftover)  # what a kill between create and rename leaves
    assert main(simulate_args(tiny_store, sims)) == 0
    assert sorted(p.name for p in sims.parent.iterdir()) == ["sims.zarr"]
    assert content(sims) == content(sims7)


def test_connectome_log_names_the_final_store(
    tiny_store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "c.zarr"
    with caplog.at_level(logging.INFO):
        assert main(["connectome", "--anatomy", str(tiny_store), "--rule", "dso", "--theta",
                     "1,1,1", "--seed", "1", "--out", str(out)]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert f"wrote connectome to {out}" in messages
    assert not [m for m in messages if ".tmp-" in m]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr", "c_summary"]


def test_second_writer_of_a_posterior_dir_is_refused(tmp_path: Path) -> None:
    """The lock of a posterior directory, taken by another process, refuses `save_posterior`."""
    from anatomy.errors import StoreLockedError
    from anatomy.storeguard import lock_file
    from wiring.inference import save_posterior

    out = tmp_path / "post"
    code = ("import sys, time; from pathlib import Path; from anatomy.storeguard import "
            "store_lock\nwith store_lock(sys.argv[1]):\n    Path(sys.argv[2]).touch()\n"
            "    while not Path(sys.argv[3]).exists(): time.sleep(0.01)\n")
    held, release = tmp_path / "held", tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", code, str(out), str(held), str(release)],
                            env={**os.environ})
    try:
        while not held.exists():
            assert proc.poll() is None
            time.sleep(0.01)
        with pytest.raises(StoreLockedError, match=f"process {proc.pid}"):
            save_posterior(None, out)  # type: ignore[arg-type]  # refused before it is used
        assert lock_file(out).exists() and not out.exists()
    finally:
        release.touch()
        proc.wait(timeout=60)
