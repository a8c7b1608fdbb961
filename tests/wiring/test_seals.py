"""Files that vouch for each other: a posterior's weights seal its manifest, a simulation store's
``chunk_seed`` array seals its attributes, and every finished chunk is checksummed. Any edit of
one file without the other is refused, naming the field (or the chunk); older files without a
seal still load (posteriors with a warning)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr

from wiring.errors import WiringWarning
from wiring.inference import (
    SEAL_KEY,
    PosteriorFileError,
    load_posterior,
    save_posterior,
    train_from_store,
)
from wiring.inference.priors import PriorSpec
from wiring.simulation.store import SimulationStore, StoreFormatError, simulate_to_store

NAMES = ["p0", "p1", "p2"]
FAST = dict(hidden_features=8, num_transforms=1, num_bins=4, progress=False, num_threads=1,
            max_epochs=2)
PRIOR = PriorSpec.from_dict({"kind": "gaussian", "names": ["a", "b"], "loc": [1.0, 1.0],
                            "scale": [0.2, 0.2]})


def toy(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.column_stack([theta[:, 0], theta[:, 1], theta.sum(1)]) + 0.1 * rng.standard_normal(
        (len(theta), 3))


def make_store(path: Path, seed: int = 1) -> SimulationStore:
    s = SimulationStore.create(path, n=300, chunk_size=100, prior_spec=PRIOR,
                               rule_info={"name": "dso", "version": "1"},
                               measurement_names=NAMES, measurement_hash="mh",
                               anatomy_hash="ah", seed=seed, streams="chunk")
    return simulate_to_store(s, toy, progress=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SimulationStore:
    return make_store(tmp_path_factory.mktemp("seal") / "s.zarr")


@pytest.fixture(scope="module")
def saved(store: SimulationStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    post = train_from_store(store, seed=0, **FAST)
    return save_posterior(post, tmp_path_factory.mktemp("post") / "posterior")


def edit_manifest(path: Path, change: Any) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))


def resave_weights(path: Path, change: Any) -> None:
    """Rewrite weights.pt (changed by ``change``) with a matching checksum in the manifest."""
    state = torch.load(path / "weights.pt", weights_only=True)
    change(state)
    torch.save(state, path / "weights.pt")
    sha = hashlib.sha256((path / "weights.pt").read_bytes()).hexdigest()
    edit_manifest(path, lambda m: m.update(weights_sha256=sha))


# ------------------------------------------------------------------------------------ posterior
@pytest.mark.parametrize(("field", "change"), [
    ("rule", lambda m: m["rule"].update(name="peters_neuron")),
    ("param_names", lambda m: m.update(param_names=["b", "a"])),
    ("prior", lambda m: m["prior"].update(scale=[1.0, 1.0])),
    ("measurement_hash", lambda m: m.update(measurement_hash="0" * 64)),
    ("measurement_names", lambda m: m.update(measurement_names=["q0", "q1", "q2"])),
    ("anatomy_hash", lambda m: m.update(anatomy_hash="other")),
    ("estimator", lambda m: m["estimator"].update(hidden_features=9)),
    ("added", lambda m: m.update(added=1)),
])
def test_manifest_edit_is_refused_naming_the_field(saved: Path, tmp_path: Path, field: str,
                                                   change: Any) -> None:
    bad = Path(shutil.copytree(saved, tmp_path / "p"))
    edit_manifest(bad, change)
    with pytest.raises(PosteriorFileError) as info:
        load_posterior(bad)
    message = str(info.value)
    assert f"field {field!r} was changed after training" in message and "\n" not in message


def test_weights_of_another_posterior_are_refused(store: SimulationStore, saved: Path,
                                                  tmp_path: Path) -> None:
    other = save_posterior(train_from_store(store, seed=1, **FAST), tmp_path / "other")
    bad = Path(shutil.copytree(saved, tmp_path / "p"))
    shutil.copy(other / "weights.pt", bad / "weights.pt")
    sha = hashlib.sha256((bad / "weights.pt").read_bytes()).hexdigest()
    edit_manifest(bad, lambda m: m.update(weights_sha256=sha))  # checksum forged too
    with pytest.raises(PosteriorFileError, match="field 'training' was changed"):
        load_posterior(bad)


def test_unsealed_weights_are_refused(saved: Path, tmp_path: Path) -> None:
    bad = Path(shutil.copytree(saved, tmp_path / "p"))
    resave_weights(bad, lambda s: s.pop(SEAL_KEY))
    with pytest.raises(PosteriorFileError, match="carries no readable seal"):
        load_posterior(bad)


def test_posterior_of_format_1_loads_with_a_warning(saved: Path, tmp_path: Path) -> None:
    old = Path(shutil.copytree(saved, tmp_path / "p"))
    resave_weights(old, lambda s: s.pop(SEAL_KEY))
    edit_manifest(old, lambda m: m.update(schema_version=1))
    with pytest.warns(WiringWarning, match="not sealed"):
        post = load_posterior(old)
    assert post.sample(5, [1.0, 1.0, 2.0], seed=0).shape == (5, 2)
    # saving it again seals it
    resealed = save_posterior(post, tmp_path / "resealed")
    assert load_posterior(resealed).manifest["schema_version"] == 2


# ----------------------------------------------------------------------------- simulation store
@pytest.mark.parametrize(("field", "value"), [
    ("rule", {"name": "peters_neuron", "version": "1"}),
    ("seed", 8),
    ("prior", {**PRIOR.to_dict(), "scale": [1.0, 1.0]}),
    ("measurement_hash", "0" * 64),
    ("param_names", ["b", "a"]),
    ("anatomy_hash", "other"),
])
def test_store_attribute_edit_is_refused_naming_it(store: SimulationStore, tmp_path: Path,
                                                   field: str, value: Any) -> None:
    path = Path(shutil.copytree(store.path, tmp_path / "s.zarr"))
    zarr.open_group(str(path), mode="r+").attrs[field] = value
    with pytest.raises(StoreFormatError) as info:
        SimulationStore.open(path)
    message = str(info.value)
    assert f"attribute {field!r} was changed after the store was written" in message
    assert "\n" not in message


def test_relabelling_a_store_as_schema_1_does_not_skip_the_seal(store: SimulationStore,
                                                                 tmp_path: Path) -> None:
    path = Path(shutil.copytree(store.path, tmp_path / "s.zarr"))
    group = zarr.open_group(str(path), mode="r+")
    group.attrs.update({"schema_version": 1, "seed": 8})
    with pytest.raises(StoreFormatError, match="attribute 'schema_version' was changed"):
        SimulationStore.open(path)


def test_store_without_its_digest_is_refused(store: SimulationStore, tmp_path: Path) -> None:
    path = Path(shutil.copytree(store.path, tmp_path / "s.zarr"))
    seeds = zarr.open_group(str(path), mode="r+")["chunk_seed"]
    seeds.attrs.clear()
    with pytest.raises(StoreFormatError, match="lost the digest"):
        SimulationStore.open(path)


def test_store_of_schema_1_still_opens(store: SimulationStore, tmp_path: Path) -> None:
    path = Path(shutil.copytree(store.path, tmp_path / "s.zarr"))
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["schema_version"] = 1
    group["chunk_seed"].attrs.clear()
    old = SimulationStore.open(path)
    assert old.schema_version == 1
    np.testing.assert_array_equal(old.load()[0], store.load()[0])


@pytest.mark.parametrize("fault", ["deleted", "flipped", "status flipped"])
def test_damaged_chunk_is_named_and_redone(store: SimulationStore, tmp_path: Path,
                                           fault: str) -> None:
    path = Path(shutil.copytree(store.path, tmp_path / "s.zarr"))
    name = "chunk_status" if fault == "status flipped" else "x"
    chunk = path / name / "c" / ("2" if name == "chunk_status" else "2/0")
    if fault == "deleted":
        chunk.unlink()
    else:
        raw = bytearray(chunk.read_bytes())
        raw[0] ^= 0x01
        chunk.write_bytes(bytes(raw))
    damaged = SimulationStore.open(path)
    if fault != "status flipped":  # a damaged status element reads as "to do"
        with pytest.raises(StoreFormatError, match=r"chunk 2 \(rows 200-299\) is marked done"):
            damaged.load()
    else:
        assert damaged.todo_chunks() == [2]
    assert simulate_to_store(damaged, toy, progress=False).content_hash() == store.content_hash()


@pytest.mark.parametrize("array", ["theta", "x", "chunk_status"])
def test_damaged_array_metadata_is_one_line(store: SimulationStore, tmp_path: Path,
                                            array: str) -> None:
    path = Path(shutil.copytree(store.path, tmp_path / "s.zarr"))
    meta = path / array / "zarr.json"
    raw = bytearray(meta.read_bytes())
    raw[10] ^= 0xFF  # no longer UTF-8
    meta.write_bytes(bytes(raw))
    with pytest.raises(StoreFormatError, match=f"the metadata of array '{array}' cannot be read"):
        SimulationStore.open(path)


def test_same_training_gives_a_bit_identical_weights_file(store: SimulationStore,
                                                          tmp_path: Path) -> None:
    """The seal leaves out the training timings, which differ between identical runs."""
    a = save_posterior(train_from_store(store, seed=0, **FAST), tmp_path / "a")
    b = save_posterior(train_from_store(store, seed=0, **FAST), tmp_path / "b")
    assert (a / "weights.pt").read_bytes() == (b / "weights.pt").read_bytes()
    edit_manifest(a, lambda m: m["training"].update(wall_s=1e9))  # not sealed: loads
    load_posterior(a)
