"""One writer per store (an OS lock that a kill releases), leftovers of killed writers cleaned,
foreign directories refused: ``anatomy.storeguard``, tested with real second processes that
synchronise through sentinel files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anatomy.errors import StoreExistsError, StoreLockedError
from anatomy.storeguard import lock_file, remove_leftovers, store_lock

#: A process that takes the lock of argv[1], says so through argv[2] and holds the lock until
#: argv[3] exists.
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from anatomy.storeguard import store_lock
    with store_lock(sys.argv[1], what="test store"):
        Path(sys.argv[2]).write_text("held")
        while not Path(sys.argv[3]).exists():
            time.sleep(0.01)
""")


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Wait until ``path`` exists (the sentinel), failing early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"holder exited with {proc.returncode} before {path.name}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {path.name} after {timeout} s")
        time.sleep(0.01)


@pytest.fixture()
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    store = tmp_path / "s.zarr"
    held, release = tmp_path / "held", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store), str(held), str(release)],
                            env=env)
    try:
        wait_for(held, proc)
        yield proc, store, release
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def test_second_writer_is_refused_naming_the_holder(
    holder: tuple[subprocess.Popen[bytes], Path, Path]
) -> None:
    proc, store, release = holder
    with pytest.raises(StoreLockedError) as info, store_lock(store):
        pass
    message = str(info.value)
    assert "\n" not in message
    assert f"process {proc.pid} on host {socket.gethostname()}" in message
    assert "never takes over" in message
    release.touch()
    assert proc.wait(timeout=60) == 0
    with store_lock(store):  # free again once the holder is done
        pass
    assert not lock_file(store).exists()  # the lock file goes with its holder


def test_kill_minus_9_releases_the_lock(
    holder: tuple[subprocess.Popen[bytes], Path, Path]
) -> None:
    proc, store, _ = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert lock_file(store).exists()  # left by the killed writer, but no longer locked
    with store_lock(store) as lock:
        assert str(os.getpid()) in lock.read_text()


def test_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    with store_lock(store), store_lock(store):
        assert lock_file(store).exists()
    assert not lock_file(store).exists()


def test_missing_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"), \
            store_lock(tmp_path / "nope" / "s.zarr"):
        pass


def test_leftovers_are_removed(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    (tmp_path / ".s.zarr.tmp-0123abcd").mkdir()
    (tmp_path / ".s.zarr.tmp-0123abcd" / "zarr.json").write_text("{}")
    (tmp_path / ".s.zarr.old-0123abcd").mkdir()
    (tmp_path / ".other.zarr.tmp-0123abcd").mkdir()  # another store's: kept
    with store_lock(store):
        removed = remove_leftovers(store)
    assert sorted(p.name for p in removed) == [".s.zarr.old-0123abcd", ".s.zarr.tmp-0123abcd"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.zarr.tmp-0123abcd"]


def test_write_model_cleans_leftovers_and_refuses_foreign_dirs(tmp_path: Path,
                                                                tiny_model: object) -> None:
    from anatomy.store import write_model

    (tmp_path / ".m.zarr.tmp-deadbeef0000").mkdir()  # a writer killed mid-write
    write_model(tiny_model, tmp_path / "m.zarr")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zarr"]
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\chapter{Results}")
    (thesis / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    with pytest.raises(StoreExistsError, match="not a structural-model store written by this"):
        write_model(tiny_model, thesis, overwrite=True)  # type: ignore[arg-type]
    assert (thesis / "thesis.tex").read_text() == "\\chapter{Results}"
