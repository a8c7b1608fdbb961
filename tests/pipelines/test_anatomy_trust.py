"""An anatomy store changed after it was written is noticed (by ``info``, ``simulate`` and
``run``), ``anatomy info --verify`` recomputes the content hash, and a run directory records a
failed stage as failed and admits one process at a time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipelines.cli import main

CONFIG = """
[run]
name = "trust"
seed = 3

[anatomy]
preset = "tiny"

[simulation]
n = 200
chunk_size = 100

[analysis]
compare_rules = []

[cluster]
kind = "threads"
"""


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.startswith("wiring: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def scale_post_all(path: Path, factor: float = 50.0) -> None:
    """Multiply post_all in place through zarr (valid chunk checksums, as a script would)."""
    arr = zarr.open_group(str(path), mode="r+")["post_all"]
    arr[:] = np.asarray(arr[:]) * np.float32(factor)


@pytest.fixture()
def store(tiny_store: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_store, tmp_path / "m.zarr"))


def test_post_all_scaled_in_place_is_noticed(store: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["anatomy", "info", str(store), "--verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["content_hash_verified"] is True
    scale_post_all(store)
    assert main(["anatomy", "info", str(store)]) == 1
    message = one_line_error(capsys)
    assert "array post_all was changed after the store was written" in message
    assert main(["simulate", "--anatomy", str(store), "--rule", "dso", "--measurements",
                 "vpm-invivo", "--n", "100", "--seed", "1", "--out", str(tmp_path / "s.zarr"),
                 "--no-progress"]) == 1
    assert "post_all" in one_line_error(capsys)
    assert not (tmp_path / "s.zarr").exists()


def test_verify_catches_a_consistent_forgery(store: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Scaled in place and the cheap seal recomputed: only the full hash can tell."""
    from anatomy._store_digest import chunk_digests

    scale_post_all(store)
    root = zarr.open_group(str(store), mode="r+")
    record = root.attrs["chunk_digests"]
    record["arrays"] = chunk_digests(store, record["arrays"])
    root.attrs["chunk_digests"] = record
    assert main(["anatomy", "info", str(store)]) == 0  # the cheap check is fooled
    capsys.readouterr()
    assert main(["anatomy", "info", str(store), "--verify"]) == 1
    assert "changed after it was written" in one_line_error(capsys)


def test_edited_content_hash_is_noticed(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = zarr.open_group(str(store), mode="r+")
    model = root.attrs["model"]
    root.attrs["model"] = {**model, "content_hash": "0" * 64}
    assert main(["anatomy", "info", str(store)]) == 1
    assert "content hash in the attributes was changed" in one_line_error(capsys)


def test_run_rebuilds_a_changed_cached_anatomy(tmp_path: Path) -> None:
    from anatomy.store import open_model
    from pipelines.config import load_config
    from pipelines.stages import run_pipeline

    cfg_path = tmp_path / "trust.toml"
    cfg_path.write_text(CONFIG)
    config = load_config(cfg_path)
    first = run_pipeline(config, out=tmp_path / "run", progress=False, stop_after="anatomy")
    from anatomy.generate import GENERATOR_VERSION

    # the cache name carries the generator version (a store of an older calibration is not reused)
    cached = tmp_path / "cache" / "anatomy" / f"tiny-seed0-v{GENERATOR_VERSION}.zarr"
    original = np.asarray(open_model(cached).post_all)
    scale_post_all(cached)
    again = run_pipeline(config, out=tmp_path / "run", progress=False, stop_after="anatomy")
    assert again.record["hashes"]["anatomy"] == first.record["hashes"]["anatomy"]
    np.testing.assert_array_equal(np.asarray(open_model(cached).post_all), original)


def test_failed_stage_is_recorded_as_failed(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import stages
    from pipelines.config import load_config
    from pipelines.stages import runner

    cfg_path = tmp_path / "trust.toml"
    cfg_path.write_text(CONFIG)
    config = load_config(cfg_path)

    def broken(ctx: object) -> None:
        ctx.record.start("features")  # type: ignore[attr-defined]
        raise RuntimeError("the feature\nextraction broke")

    monkeypatch.setitem(runner._STAGE_FUNCS, "features", broken)
    with pytest.raises(RuntimeError):
        stages.run_pipeline(config, out=tmp_path / "run", progress=False, stop_after="features")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["stages"]["anatomy"]["status"] == "done"
    assert record["stages"]["features"]["status"] == "failed"
    assert record["stages"]["features"]["error"] == "RuntimeError: the feature extraction broke"
    monkeypatch.undo()
    stages.run_pipeline(config, out=tmp_path / "run", progress=False, stop_after="features")
    entry = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]["features"]
    assert entry["status"] == "done" and "error" not in entry and entry["attempts"] == 2


def test_second_run_of_one_directory_is_refused(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "trust.toml"
    cfg_path.write_text(CONFIG)
    run_dir = tmp_path / "run"
    held, release = tmp_path / "held", tmp_path / "release"
    code = ("import sys, time; from pathlib import Path; from anatomy.storeguard import "
            "store_lock\nwith store_lock(sys.argv[1]):\n    Path(sys.argv[2]).touch()\n"
            "    while not Path(sys.argv[3]).exists(): time.sleep(0.01)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir), str(held), str(release)])
    try:
        while not held.exists():
            assert proc.poll() is None
            time.sleep(0.01)
        assert main(["run", "--config", str(cfg_path), "--out", str(run_dir),
                     "--no-progress"]) == 1
        message = one_line_error(capsys)
        assert f"run directory {run_dir} is being written by process {proc.pid}" in message
        assert not run_dir.exists()
    finally:
        release.touch()
        proc.wait(timeout=60)


def test_stage_of_a_killed_run_reads_as_interrupted(tmp_path: Path) -> None:
    """A process killed with kill -9 cannot record its end; the next run (holding the lock)
    marks its stage interrupted before resuming."""
    from pipelines.runrecord import RunRecord

    first = RunRecord.open(tmp_path, config_hash="h", seed=1)
    first.start("simulate")  # ... and the process is killed here
    again = RunRecord.open(tmp_path, config_hash="h", seed=1)
    assert again.mark_abandoned() == ["simulate"]
    entry = json.loads((tmp_path / "run.json").read_text())["stages"]["simulate"]
    assert entry["status"] == "interrupted" and entry["attempts"] == 1
    again.start("simulate")
    assert "error" not in again.data["stages"]["simulate"]
