"""Temporaries of the feature cache left by killed writers are removed; those of live writers
are not. Tested with real second processes that synchronise through sentinel files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from wiring.measurements import load_measurement_set
from wiring.simulation import extract_feature_bundle, open_feature_bundle
from wiring.simulation.feature_cache import remove_stale_temporaries

#: A process that writes a small bundle to cache entry argv[1]/features-test.zarr with the real
#: writer, says through argv[2] that its temporary is on disk and waits, mid-write, until argv[3]
#: exists (never, when the test kills it).
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from wiring.rules.base import VOXEL_FEATURES
    from wiring.simulation import feature_cache as fc
    from wiring.simulation.features import FeatureBundle

    cache, started, release = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    bundle = FeatureBundle(
        names=("m",), pair_offsets=np.array([0, 1]), pre=np.array([0]), post=np.array([1]),
        indptr=np.array([0, 2]), voxel=np.array([3, 4], dtype=np.int32),
        rows={k: np.full(2, 0.5, dtype=np.float32) for k in VOXEL_FEATURES},
        soma_distance_um=np.array([5.0]), key="test-key",
    )
    crc = fc._crc

    def paused(arr):
        started.write_text("writing")
        while not release.exists():
            time.sleep(0.01)
        return crc(arr)

    fc._crc = paused
    fc._write_atomic(bundle, cache / "features-test.zarr", key="test-key", desc={})
""")


def _start(cache: Path, tag: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    started, release = cache.parent / f"{tag}-started", cache.parent / f"{tag}-release"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(cache), str(started), str(release)], env=env
    )
    deadline = time.monotonic() + 120
    while not started.exists():
        if proc.poll() is not None:
            raise AssertionError(f"writer {tag} exited with {proc.returncode} before writing")
        assert time.monotonic() < deadline, f"writer {tag} did not start writing"
        time.sleep(0.01)
    return proc, started, release


def _hidden(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir() if p.name.startswith(".")}


def test_killed_writer_leftovers_go_live_writer_is_untouched(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    dead, _, _ = _start(cache, "dead")
    dead_files = _hidden(cache)
    assert len(dead_files) == 2  # the temporary and its lock file
    dead.kill()
    assert dead.wait(timeout=60) != 0
    assert _hidden(cache) == dead_files  # a killed writer leaves them behind
    live, _, release = _start(cache, "live")
    try:
        live_files = _hidden(cache) - dead_files
        assert len(live_files) == 2
        # also: a lock file whose writer died before creating its temporary, and an entry
        # whose removal was interrupted
        (cache / ".tmp-features-x.zarr-0badc0de.lock").write_text("")
        (cache / ".trash-features-y.zarr-0badc0de" / "a").mkdir(parents=True)
        removed = {p.name for p in remove_stale_temporaries(cache)}
        assert removed == dead_files | {".tmp-features-x.zarr-0badc0de.lock",
                                        ".trash-features-y.zarr-0badc0de"}
        assert _hidden(cache) == live_files  # the live writer's files are untouched
        assert remove_stale_temporaries(cache) == []
        release.touch()
        assert live.wait(timeout=60) == 0
    finally:
        release.touch()
        if live.poll() is None:
            live.kill()
        live.wait(timeout=60)
    # the live writer finished undisturbed, and cleaned up after itself
    assert _hidden(cache) == set()
    bundle = open_feature_bundle(cache / "features-test.zarr", key="test-key")
    np.testing.assert_array_equal(bundle.voxel, [3, 4])


def test_extraction_removes_leftovers_of_a_killed_writer(tmp_path: Path, tiny_model: Any) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    dead, _, _ = _start(cache, "dead")
    dead.kill()
    dead.wait(timeout=60)
    assert len(_hidden(cache)) == 2
    bundle = extract_feature_bundle(tiny_model, load_measurement_set("vpm-invivo"),
                                    cache_dir=cache)
    assert _hidden(cache) == set()
    assert bundle.path is not None and bundle.path.parent == cache


def test_live_writer_in_this_process_is_untouched(tmp_path: Path, monkeypatch: Any) -> None:
    """A writer thread of the same process keeps its temporary while another thread cleans."""
    import threading

    from wiring.rules.base import VOXEL_FEATURES
    from wiring.simulation import feature_cache as fc
    from wiring.simulation.features import FeatureBundle

    cache = tmp_path / "cache"
    cache.mkdir()
    bundle = FeatureBundle(
        names=("m",), pair_offsets=np.array([0, 1]), pre=np.array([0]), post=np.array([1]),
        indptr=np.array([0, 1]), voxel=np.array([7], dtype=np.int32),
        rows={k: np.full(1, 0.5, dtype=np.float32) for k in VOXEL_FEATURES},
        soma_distance_um=np.array([5.0]), key="k",
    )
    writing, release = threading.Event(), threading.Event()
    crc = fc._crc

    def paused(arr: Any) -> int:
        writing.set()
        assert release.wait(timeout=120)
        return crc(arr)

    monkeypatch.setattr(fc, "_crc", paused)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            fc._write_atomic(bundle, cache / "features-t.zarr", key="k", desc={})
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert writing.wait(timeout=120)
        before = _hidden(cache)
        assert len(before) == 2
        assert remove_stale_temporaries(cache) == []
        assert _hidden(cache) == before
    finally:
        release.set()
        thread.join(timeout=120)
    assert not errors
    assert _hidden(cache) == set()
    np.testing.assert_array_equal(open_feature_bundle(cache / "features-t.zarr", key="k").voxel,
                                  [7])
