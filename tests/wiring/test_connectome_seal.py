"""A connectome store seals its attributes: the ``pre`` array's ``attrs_digest`` holds a sha256
of each root attribute, so an attribute edited after writing (θ, seed, rule, anatomy hash, ...)
is refused on opening with one line naming it, and ``wiring connectome info`` reports it.
Stores written before the seal open unchecked and say so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from wiring._seal import field_digests
from wiring.connectome import (
    compute_connectome,
    compute_connectome_to_store,
    open_connectome,
    write_connectome,
)
from wiring.connectome.compute import ATTRS_SEAL
from wiring.errors import ConnectomeStoreError


@pytest.fixture(scope="module")
def good(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    conn = compute_connectome(tiny_model, "dso", (1.0, 1.0, 1.0), seed=5, pre="VPM",
                              post="L4exc")
    return write_connectome(conn, tmp_path_factory.mktemp("sealed") / "c.zarr")


def _copy(good: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "c.zarr"))


def _edit_root_attrs(path: Path, edit: Any) -> None:
    """What a text editor does to the group's zarr.json."""
    meta = json.loads((path / "zarr.json").read_text())
    edit(meta["attributes"])
    (path / "zarr.json").write_text(json.dumps(meta, indent=2))


def _pre_attrs(path: Path) -> dict[str, Any]:
    meta = json.loads((path / "pre" / "zarr.json").read_text())
    return dict(meta.get("attributes", {}))


def _set_pre_attrs(path: Path, attrs: dict[str, Any]) -> None:
    meta = json.loads((path / "pre" / "zarr.json").read_text())
    meta["attributes"] = attrs
    (path / "pre" / "zarr.json").write_text(json.dumps(meta, indent=2))


def test_written_stores_are_sealed(good: Path, tiny_model: Any, tmp_path: Path) -> None:
    store = open_connectome(good, lazy=True)
    assert store.sealed
    root = json.loads((good / "zarr.json").read_text())["attributes"]
    # the seal is the shared sealing function's digest of every root attribute but the completion marker
    assert _pre_attrs(good)[ATTRS_SEAL] == field_digests(
        {k: v for k, v in root.items() if k != "complete"})
    # the block-by-block writer seals the same way
    streamed = compute_connectome_to_store(tiny_model, "dso", (1.0, 1.0, 1.0), tmp_path / "s.zarr",
                                           seed=5, pre="VPM", post="L4exc")
    assert open_connectome(streamed, lazy=True).sealed


@pytest.mark.parametrize(("field", "edit"), [
    ("theta", lambda a: a.update(theta=[2.0, 1.0, 1.0])),
    ("seed", lambda a: a.update(seed=6)),
    ("anatomy_hash", lambda a: a.update(anatomy_hash="0" * 64)),
    ("rule", lambda a: a["rule"].update(name="dso_linear")),
    ("post_selector", lambda a: a.update(post_selector={"cell_types": ["L5PT"]})),
    ("engine", lambda a: a.pop("engine")),
    ("note", lambda a: a.update(note="added later")),
])
def test_an_edited_attribute_is_refused_naming_it(good: Path, tmp_path: Path, field: str,
                                                  edit: Any) -> None:
    path = _copy(good, tmp_path)
    _edit_root_attrs(path, edit)
    for lazy in (True, False):
        with pytest.raises(ConnectomeStoreError) as info:
            open_connectome(path, lazy=lazy)
        msg = str(info.value)
        assert "\n" not in msg
        assert msg == (
            f"{path}: attribute {field!r} changed after the store was written (no longer "
            f"matching the seal in array 'pre'); the matrices were not computed with the "
            f"edited values: restore the original attributes or recompute the connectome")


def test_several_edited_attributes_are_all_named(good: Path, tmp_path: Path) -> None:
    path = _copy(good, tmp_path)
    _edit_root_attrs(path, lambda a: a.update(seed=7, theta=[1.0, 1.0, 2.0]))
    with pytest.raises(ConnectomeStoreError, match=r"attributes 'seed', 'theta' changed after"):
        open_connectome(path)


def test_restoring_the_original_opens_again(good: Path, tmp_path: Path) -> None:
    path = _copy(good, tmp_path)
    seed = json.loads((path / "zarr.json").read_text())["attributes"]["seed"]
    _edit_root_attrs(path, lambda a: a.update(seed=seed + 1))
    with pytest.raises(ConnectomeStoreError):
        open_connectome(path)
    _edit_root_attrs(path, lambda a: a.update(seed=seed))
    assert open_connectome(path).seed == seed


def test_a_store_written_before_the_seal_opens_unchecked(good: Path, tmp_path: Path) -> None:
    path = _copy(good, tmp_path)
    _set_pre_attrs(path, {})
    _edit_root_attrs(path, lambda a: a.update(seed=11))  # nothing to compare it with
    store = open_connectome(path, lazy=True)
    assert not store.sealed and store.seed == 11


def test_a_damaged_seal_is_refused(good: Path, tmp_path: Path) -> None:
    path = _copy(good, tmp_path)
    _set_pre_attrs(path, {ATTRS_SEAL: "not a digest"})
    with pytest.raises(ConnectomeStoreError, match=r"the seal of its attributes .* is damaged"):
        open_connectome(path)


# -- wiring connectome info ---------------------------------------------------------------
def test_info_describes_a_sealed_store(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = open_connectome(good)
    assert main(["connectome", "info", str(good), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["attributes_sealed"] is True
    assert info["rule"]["name"] == "dso" and info["theta"] == [1.0, 1.0, 1.0]
    assert info["seed"] == 5 and info["anatomy_hash"] == conn.anatomy_hash
    assert (info["n_pre"], info["n_post"]) == (conn.n_pre, conn.n_post)
    assert info["n_connections"] == conn.n_connections and "n_synapses" not in info
    assert main(["connectome", "info", str(good), "--verify"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert "attributes_sealed: yes (checked on opening)" in text
    assert f"n_synapses: {conn.n_synapses}" in text
    assert any(line.startswith("verified: every chunk of both matrices read (") for line in text)


def test_info_refuses_an_edited_store_in_one_line(good: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(good, tmp_path)
    _edit_root_attrs(path, lambda a: a.update(theta=[0.5, 1.0, 1.0]))
    for extra in ([], ["--verify"]):
        assert main(["connectome", "info", str(path), *extra]) == 1
        captured = capsys.readouterr()
        lines = [ln for ln in captured.err.splitlines() if ln.strip()]
        assert lines == [f"wiring: error: {path}: attribute 'theta' changed after the store was "
                         f"written (no longer matching the seal in array 'pre'); the matrices "
                         f"were not computed with the edited values: restore the original "
                         f"attributes or recompute the connectome"]
        assert captured.out == ""


def test_info_says_when_a_store_has_no_seal(good: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(good, tmp_path)
    _set_pre_attrs(path, {})
    assert main(["connectome", "info", str(path)]) == 0
    assert ("attributes_sealed: no (written before attributes were sealed; edits cannot be "
            "detected)") in capsys.readouterr().out.splitlines()


def test_info_verify_reads_every_chunk(good: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(good, tmp_path)
    chunk = next((path / "synapses" / "data" / "c").iterdir())
    chunk.write_bytes(chunk.read_bytes()[:10])  # truncated
    assert main(["connectome", "info", str(path)]) == 0  # metadata only: not seen
    capsys.readouterr()
    assert main(["connectome", "info", str(path), "--verify"]) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"wiring: error: {path}: array "
                                                   f"'synapses/data' cannot be read"), lines


def test_info_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connectome", "info"]) == 2
    assert "wiring connectome info" in capsys.readouterr().err
    # the compute form still requires its options
    assert main(["connectome", "--anatomy", "tiny"]) == 2
    assert "the following arguments are required" in capsys.readouterr().err
    assert main(["connectome", "info", "--help"]) == 0
    assert "--verify" in capsys.readouterr().out
