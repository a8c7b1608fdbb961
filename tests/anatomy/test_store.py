"""Tests of the structural-model zarr store: round trips, atomic writes, validation, dask views."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anatomy.store as store
from anatomy import schema as S
from anatomy.catalogue import CELL_TYPES
from anatomy.errors import SchemaVersionError, StoreExistsError, StoreValidationError
from anatomy.grid import VoxelGrid
from anatomy.hashing import content_hash
from anatomy.model import NeuronPopulation, Neurons, StructuralModel, VoxelMajorCounts
from anatomy.store import (
    open_model,
    to_dask,
    to_dask_array,
    validate_model,
    voxel_blocks,
    write_model,
)


def make_model(
    seed: int = 0,
    *,
    n: int = 40,
    shape: tuple[int, int, int] = (3, 4, 6),
    density: float = 0.3,
    depth: bool = True,
    populations: bool = True,
) -> StructuralModel:
    """A small hand-built model with every optional part (independent of the generator)."""
    rng = np.random.default_rng(seed)
    grid = VoxelGrid(origin_um=(-100.0, 50.0, 0.0), spacing_um=50.0, shape=shape)
    v = grid.n_voxels
    neurons = Neurons(
        cell_type=rng.integers(0, len(CELL_TYPES), n).astype(np.int8),
        layer=rng.integers(-1, 8, n).astype(np.int8),
        region=rng.integers(0, 3, n).astype(np.int8),
        column=rng.integers(-1, 2, n).astype(np.int16),
        soma_um=(rng.random((n, 3)) * 1000).astype(np.float32),
        ids=(np.arange(n) * 7 + 3).astype(np.int64),
        column_names=("C2", "C3"),
    )
    pre = sp.random(n, v, density=density, rng=rng, dtype=np.float32) * 20
    post = sp.random(n, v, density=density, rng=rng, dtype=np.float32) * 50
    post_all = (np.asarray(post.sum(axis=0)).ravel() * 1.3 + 5).astype(np.float32)
    pops = (
        {
            "L4ss-L4ss": NeuronPopulation(
                pre=np.arange(5), post=np.arange(3, 12), attrs={"probability": 0.2, "n": 30}
            ),
            "VPM to L4": NeuronPopulation(
                pre=np.array([1, 2]), post=np.array([0]), attrs={"citation": {"year": 2010}}
            ),
        }
        if populations
        else {}
    )
    return StructuralModel(
        grid=grid,
        neurons=neurons,
        pre=VoxelMajorCounts.from_scipy(pre, name="pre"),
        post=VoxelMajorCounts.from_scipy(post, name="post"),
        post_all=post_all,
        attrs={"preset": "hand", "seed": seed, "source": {"kind": "test", "tags": ["a", "b"]}},
        voxel_depth_um=rng.random(v) * 2000 if depth else None,
        populations=pops,
    )


def assert_models_equal(a: StructuralModel, b: StructuralModel) -> None:
    assert a.grid == b.grid
    for name in S.NEURON_ARRAYS:
        x, y = getattr(a.neurons, name), getattr(b.neurons, name)
        np.testing.assert_array_equal(x, y, err_msg=name)
        assert np.asarray(y).dtype == S.DTYPES[S.neuron_array(name)]
    assert a.neurons.column_names == b.neurons.column_names
    for c in S.COUNTS:
        ma, mb = getattr(a, c).load(), getattr(b, c).load()
        assert ma.shape == mb.shape
        np.testing.assert_array_equal(ma.indptr, mb.indptr)
        np.testing.assert_array_equal(ma.indices, mb.indices)
        np.testing.assert_array_equal(ma.data, mb.data)
    np.testing.assert_array_equal(a.post_all, b.post_all)
    if a.voxel_depth_um is None:
        assert b.voxel_depth_um is None
    else:
        np.testing.assert_array_equal(a.voxel_depth_um, b.voxel_depth_um)
    assert list(a.populations) == list(b.populations)
    for name, pop in a.populations.items():
        np.testing.assert_array_equal(pop.pre, b.populations[name].pre)
        np.testing.assert_array_equal(pop.post, b.populations[name].post)
        assert dict(pop.attrs) == dict(b.populations[name].attrs)


@pytest.fixture()
def model() -> StructuralModel:
    return make_model()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(make_model(), tmp_path_factory.mktemp("pristine") / "m.zarr",
                       chunk_voxels=5)


@pytest.fixture()
def stored(tmp_path: Path, pristine: Path) -> Path:
    """A private copy of the store of ``make_model()`` (15 voxel blocks of 5 voxels)."""
    return Path(shutil.copytree(pristine, tmp_path / "m.zarr"))


def _unseal(stored: Path) -> None:
    """Drop the chunk seal, as in a store written before it existed (or by another writer),
    so that an in-place edit reaches the checks a test is about."""
    root = zarr.open_group(stored, mode="r+")
    attrs = root.attrs.asdict()
    attrs.pop("chunk_digests")
    root.attrs.clear()
    root.attrs.update(attrs)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("chunk_voxels", [2, 5, None, 10_000])
def test_round_trip_every_array_and_attr(
    tmp_path: Path, model: StructuralModel, chunk_voxels: int | None
) -> None:
    path = write_model(model, tmp_path / "m.zarr", chunk_voxels=chunk_voxels)
    back = open_model(path)
    assert_models_equal(model, back)
    expected_attrs = dict(model.attrs) | {"content_hash": content_hash(model)}
    assert dict(back.attrs) == expected_attrs
    assert content_hash(back) == back.attrs["content_hash"]
    root = zarr.open_group(path, mode="r")
    assert root.attrs[S.ATTR_SCHEMA_VERSION] == S.SCHEMA_VERSION
    assert root.attrs[S.ATTR_VOCABULARIES]["cell_types"] == list(CELL_TYPES)
    assert root.attrs[S.ATTR_COMPLETE] is True
    assert leftovers(tmp_path) == []


def test_store_backed_model_copies_in_slabs(stored: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A lazily backed source is copied slab by slab and rechunked as asked."""
    monkeypatch.setattr(store, "_WRITE_SLAB_ENTRIES", 100)
    src = open_model(stored)
    copy = write_model(src, tmp_path / "copy.zarr", chunk_voxels=9)
    back = open_model(copy)
    assert_models_equal(src, back)
    assert back.attrs["content_hash"] == src.attrs["content_hash"]
    assert voxel_blocks(back)[0] == (0, 9)


def test_round_trip_without_optional_parts_and_empty_counts(tmp_path: Path) -> None:
    m = make_model(3, density=0.0, depth=False, populations=False)
    assert m.pre.nnz == 0
    back = open_model(write_model(m, tmp_path / "empty.zarr"))
    assert_models_equal(m, back)
    assert back.voxel_depth_um is None and dict(back.populations) == {}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 25),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5)),
    density=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    chunk=st.integers(1, 30),
)
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    n: int,
    shape: tuple[int, int, int],
    density: float,
    chunk: int,
) -> None:
    m = make_model(seed, n=n, shape=shape, density=density, populations=n >= 12)
    path = write_model(m, tmp_path_factory.mktemp("prop") / "m.zarr", chunk_voxels=chunk)
    assert_models_equal(m, open_model(path))


def test_json_attrs_numpy_scalars_are_cast(tmp_path: Path) -> None:
    m = make_model()
    m = StructuralModel(**{**_fields(m), "attrs": {"seed": np.int64(4), "x": (np.float32(0.5),)}})
    back = open_model(write_model(m, tmp_path / "m.zarr"))
    assert back.attrs["seed"] == 4 and back.attrs["x"] == [0.5]
    assert type(back.attrs["seed"]) is int


def test_non_json_attrs_are_rejected_before_writing(tmp_path: Path) -> None:
    m = StructuralModel(**{**_fields(make_model()), "attrs": {"when": object()}})
    with pytest.raises(StoreValidationError, match=r"model.attrs\['when'\] = .* not JSON-native"):
        write_model(m, tmp_path / "m.zarr")
    assert list(tmp_path.iterdir()) == []


def test_bad_population_name_is_rejected(tmp_path: Path) -> None:
    pops = {"a/b": NeuronPopulation(pre=np.arange(2), post=np.arange(2))}
    m = StructuralModel(**{**_fields(make_model()), "populations": pops})
    with pytest.raises(StoreValidationError, match=r"population name 'a/b'"):
        write_model(m, tmp_path / "m.zarr")
    assert list(tmp_path.iterdir()) == []


def test_vocabularies_are_read_from_the_store(stored: Path, model: StructuralModel) -> None:
    """A store whose vocabulary order differs from the catalogue still decodes to the same names."""
    _unseal(stored)  # a store written by another writer with its own vocabulary order
    root = zarr.open_group(stored, mode="r+")
    vocab = root.attrs[S.ATTR_VOCABULARIES]
    perm = list(reversed(vocab["cell_types"]))
    old = root["neurons/cell_type"][:]
    root["neurons/cell_type"][:] = np.array([perm.index(CELL_TYPES[c]) for c in old], np.int8)
    root.attrs[S.ATTR_VOCABULARIES] = {**vocab, "cell_types": perm}
    back = open_model(stored)
    np.testing.assert_array_equal(back.neurons.cell_type, model.neurons.cell_type)
    np.testing.assert_array_equal(back.neurons.cell_type_names, model.neurons.cell_type_names)
    root.attrs[S.ATTR_VOCABULARIES] = {**vocab, "cell_types": [*perm[:-1], "L9XX"]}
    with pytest.raises(StoreValidationError, match=r"vocabularies.cell_types holds \['L9XX'\]"):
        open_model(stored)


def _fields(m: StructuralModel) -> dict[str, Any]:
    return {
        "grid": m.grid, "neurons": m.neurons, "pre": m.pre, "post": m.post,
        "post_all": m.post_all, "attrs": m.attrs, "voxel_depth_um": m.voxel_depth_um,
        "populations": m.populations,
    }


# ------------------------------------------------------------------------- lazy and dask views


def test_open_is_lazy_and_blocks_equal_memory(stored: Path, model: StructuralModel) -> None:
    back = open_model(stored)
    assert isinstance(back.pre.data, zarr.Array) and back.pre._loaded is None
    full = model.post.load()
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = int(rng.integers(0, model.n_voxels))
        b = int(rng.integers(a, model.n_voxels + 1))
        block = back.post.voxel_block(a, b)
        assert block.shape == (model.n_neurons, b - a)
        np.testing.assert_array_equal(block.toarray(), full[:, a:b].toarray())
    assert back.pre._loaded is None


def test_store_backed_counts_pickle_for_process_workers(stored: Path,
                                                        model: StructuralModel) -> None:
    """Process-based dask workers receive the lazy counts by pickle and read from the store."""
    import pickle

    back = pickle.loads(pickle.dumps(open_model(stored).post))
    assert isinstance(back.data, zarr.Array)
    np.testing.assert_array_equal(back.voxel_block(3, 17).toarray(),
                                  model.post.load()[:, 3:17].toarray())


def test_voxel_blocks_follow_store_chunks(stored: Path) -> None:
    back = open_model(stored)
    blocks = voxel_blocks(back)
    assert blocks[0] == (0, 5) and blocks[-1][1] == back.n_voxels
    assert all(b0[1] == b1[0] for b0, b1 in itertools.pairwise(blocks))
    assert voxel_blocks(back.pre, 50) == [(0, 50), (50, 72)]
    with pytest.raises(StoreValidationError, match="block_voxels must be a positive integer"):
        voxel_blocks(back.pre, 0)


def test_to_dask_blocks_equal_memory(stored: Path, model: StructuralModel) -> None:
    import dask

    back = open_model(stored)
    parts = dask.compute(*to_dask(back.pre, 7), scheduler="threads")
    assert [p.shape[1] for p in parts] == [b - a for a, b in voxel_blocks(back.pre, 7)]
    joined = sp.hstack(parts).toarray()
    np.testing.assert_array_equal(joined, model.pre.load().toarray())


def test_to_dask_array_chunks_equal_memory(stored: Path, model: StructuralModel) -> None:
    import dask

    back = open_model(stored)
    arr = to_dask_array(back.post, 11)
    assert arr.shape == model.post.shape and arr.chunks[1][0] == 11
    full = model.post.load().toarray()
    blocks = voxel_blocks(back.post, 11)
    parts = dask.compute(*[arr.blocks[0, i] for i in range(len(blocks))], scheduler="sync")
    for (a, b), part in zip(blocks, parts, strict=True):
        np.testing.assert_array_equal(part.todense(), full[:, a:b])


@pytest.mark.slow
def test_to_dask_array_equals_memory(stored: Path, model: StructuralModel) -> None:
    back = open_model(stored)
    arr = to_dask_array(back.post, 11)
    np.testing.assert_array_equal(arr.compute().todense(), model.post.load().toarray())
    # a column slice touches only the blocks it needs
    np.testing.assert_array_equal(
        arr[:, 12:30].compute().todense(), model.post.load()[:, 12:30].toarray()
    )


def test_validation_streams_bounded_blocks(model: StructuralModel) -> None:
    """validate_model reads pre/post one voxel block at a time, never the whole matrix."""
    reads: list[int] = []

    class Recording:
        def __init__(self, values: np.ndarray) -> None:
            self.values, self.shape, self.dtype = values, values.shape, values.dtype

        def __getitem__(self, sl: slice) -> np.ndarray:
            out = self.values[sl]
            reads.append(out.size)
            return out

    post = model.post.load()
    rec = VoxelMajorCounts(post.indptr.astype(np.int64), Recording(post.indices),
                           Recording(post.data), shape=post.shape, name="post")
    m = StructuralModel(**{**_fields(model), "post": rec})
    validate_model(m, block_voxels=4)
    per_block = [post.indptr[b] - post.indptr[a] for a, b in voxel_blocks(m.post, 4)]
    assert max(reads) == max(per_block) < post.nnz


# ---------------------------------------------------------------------- atomicity / overwrite


def test_failure_mid_write_leaves_nothing(tmp_path: Path, model: StructuralModel,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = store._write_counts

    def failing(root: Any, cname: str, *args: Any, **kwargs: Any) -> Any:
        if cname == "post":
            raise OSError("disk full")
        return real(root, cname, *args, **kwargs)

    monkeypatch.setattr(store, "_write_counts", failing)
    with pytest.raises(OSError, match="disk full"):
        write_model(model, tmp_path / "m.zarr")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_existing_store(stored: Path, model: StructuralModel,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = open_model(stored).attrs["content_hash"]
    files_before = sorted(p.relative_to(stored) for p in stored.rglob("*"))

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_write_counts", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_model(make_model(9), stored, overwrite=True)
    assert sorted(p.relative_to(stored) for p in stored.rglob("*")) == files_before
    assert open_model(stored).attrs["content_hash"] == before
    assert leftovers(stored.parent) == []


def test_failed_validation_keeps_existing_store(stored: Path) -> None:
    before = open_model(stored).attrs["content_hash"]
    bad = make_model(9)
    bad.post_all[3] = 0.0
    with pytest.raises(StoreValidationError, match=r"post_all\[3\]"):
        write_model(bad, stored, overwrite=True)
    assert open_model(stored).attrs["content_hash"] == before
    assert leftovers(stored.parent) == []


def test_killed_write_never_opens(tmp_path: Path, model: StructuralModel,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill skips every cleanup: what is left is a hidden directory that refuses to open."""

    def killed(root: Any, cname: str, *args: Any, **kwargs: Any) -> Any:
        raise SystemExit("killed")

    monkeypatch.setattr(store, "_write_counts", killed)
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # the module store uses
    with pytest.raises(SystemExit):
        write_model(model, tmp_path / "m.zarr")
    assert not (tmp_path / "m.zarr").exists()
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(".m.zarr.tmp-")
    with pytest.raises(StoreValidationError, match="no completion marker"):
        open_model(partial, validate=False)


_KILL_CHILD = """
import sys, time
from pathlib import Path
import numpy as np, scipy.sparse as sp
import anatomy.store as store
from anatomy.grid import VoxelGrid
from anatomy.model import Neurons, StructuralModel, VoxelMajorCounts

target, ready = Path(sys.argv[1]), Path(sys.argv[2])
n, grid = 50, VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=50.0, shape=(4, 4, 4))
z = np.zeros(n, np.int8)
neurons = Neurons(cell_type=z, layer=z, region=z, column=np.zeros(n, np.int16),
                  soma_um=np.zeros((n, 3), np.float32), ids=np.arange(n))
m = sp.random(n, 64, density=0.5, random_state=1, dtype=np.float32)
model = StructuralModel(grid=grid, neurons=neurons, pre=VoxelMajorCounts.from_scipy(m),
                        post=VoxelMajorCounts.from_scipy(m), post_all=np.full(64, 1e4, np.float32))
real = store._write_counts

def slow(root, cname, *args, **kwargs):
    out = real(root, cname, *args, **kwargs)
    ready.write_text(cname)
    time.sleep(120)
    return out

store._write_counts = slow
store.write_model(model, target, overwrite=True)
"""


def test_sigkill_mid_write_leaves_existing_store_valid(stored: Path, tmp_path: Path) -> None:
    """A real SIGKILL while the new store is half written: the old store is untouched."""
    import subprocess
    import sys
    import time

    before = open_model(stored).attrs["content_hash"]
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _KILL_CHILD, str(stored), str(ready)])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, "the writer exited before it was killed"
            assert time.monotonic() < deadline, "the writer never got half way"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert open_model(stored).attrs["content_hash"] == before
    (partial,) = [p for p in stored.parent.iterdir() if p.name.startswith(".m.zarr.tmp-")]
    with pytest.raises(StoreValidationError, match="no completion marker"):
        open_model(partial)


def test_store_without_marker_refuses_to_open(stored: Path) -> None:
    root = zarr.open_group(stored, mode="r+")
    del root.attrs[S.ATTR_COMPLETE]
    with pytest.raises(StoreValidationError, match="no completion marker"):
        open_model(stored, validate=False)


def test_existing_path_refused_without_overwrite(stored: Path) -> None:
    mtime = (stored / "zarr.json").stat().st_mtime_ns
    with pytest.raises(StoreExistsError, match=r"already exists; .*overwrite"):
        write_model(make_model(5), stored)
    assert (stored / "zarr.json").stat().st_mtime_ns == mtime
    assert open_model(stored).attrs["seed"] == 0


def test_overwrite_replaces_store(stored: Path) -> None:
    new = make_model(5, shape=(2, 2, 2), populations=False)
    write_model(new, stored, overwrite=True)
    back = open_model(stored)
    assert_models_equal(new, back)
    assert back.attrs["seed"] == 5
    assert leftovers(stored.parent) == []


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_overwrite_never_replaces_non_stores(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "precious"
    if kind == "file":
        target.write_text("keep me")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("keep me")
    with pytest.raises(StoreExistsError, match="is not a structural-model store written by this package; refusing to replace"):
        write_model(make_model(), target, overwrite=True)
    assert (target.read_text() if kind == "file" else (target / "notes.txt").read_text()) == (
        "keep me"
    )


# --------------------------------------------------------------------------------- validation


def _set(path: Path, name: str, index: int | slice, value: Any) -> None:
    arr = zarr.open_array(path / name, mode="r+")
    arr[index] = value


def _replace(path: Path, name: str, values: np.ndarray) -> None:
    root = zarr.open_group(path, mode="r+")
    del root[name]
    root.create_array(name, data=values, chunks=(max(1, len(values)),))


def _post_entry(path: Path) -> tuple[int, int, int]:
    """(entry, neuron, voxel) of some entry of post in voxel 7."""
    ptr = zarr.open_array(path / "post/indptr")[:]
    j = int(ptr[7])
    assert ptr[8] > j
    return j, int(zarr.open_array(path / "post/indices")[j]), 7


@pytest.mark.parametrize(
    ("value", "shown"), [(np.nan, "nan"), (-2.0, "-2.0"), (np.inf, "inf")]
)
def test_bad_count_is_named(stored: Path, value: float, shown: str) -> None:
    j, neuron, voxel = _post_entry(stored)
    _set(stored, "post/data", j, value)
    with pytest.raises(StoreValidationError) as info:
        open_model(stored)
    msg = str(info.value)
    assert f"post/data[{j}] = " in msg and shown in msg
    assert f"neuron {neuron}, voxel {voxel}" in msg and "expected finite values >= 0" in msg


def test_bad_count_in_memory_model_is_refused(tmp_path: Path) -> None:
    m = make_model()
    m.pre.data[4] = np.nan
    with pytest.raises(StoreValidationError, match=r"pre/data\[4\] = .*nan"):
        validate_model(m)
    with pytest.raises(StoreValidationError, match=r"pre/data\[4\]"):
        write_model(m, tmp_path / "m.zarr")
    assert list(tmp_path.iterdir()) == []


def test_post_all_below_column_sum(stored: Path, model: StructuralModel) -> None:
    col = float(model.post.load()[:, [9]].sum())
    _set(stored, "post_all", 9, col * 0.99)
    with pytest.raises(StoreValidationError, match=r"post_all\[9\] = .* smaller than the sum of "
                       r"post over the neurons in voxel 9 .*expected post_all >= column sums"):
        open_model(stored)


def test_post_all_within_float32_tolerance_is_accepted(stored: Path, model: StructuralModel) -> None:
    col = float(model.post.load()[:, [9]].sum())
    _unseal(stored)
    _set(stored, "post_all", 9, np.float32(col) * np.float32(1 - 2e-6))
    open_model(stored)


def test_post_all_negative_or_nan(stored: Path) -> None:
    _set(stored, "post_all", 2, np.nan)
    with pytest.raises(StoreValidationError, match=r"post_all\[2\] = .*nan.*expected finite"):
        open_model(stored)


@pytest.mark.parametrize("version", [99, 0, "1", None, True])
def test_bad_schema_version(stored: Path, version: Any) -> None:
    root = zarr.open_group(stored, mode="r+")
    root.attrs[S.ATTR_SCHEMA_VERSION] = version
    with pytest.raises(SchemaVersionError, match=rf"schema_version {version!r}; this package "
                       r"reads versions \[1\]"):
        open_model(stored, validate=False)


@pytest.mark.parametrize("name", ["post/indices", "neurons/soma_um", "post_all",
                                  "voxel_depth_um", "populations/L4ss-L4ss/post"])
def test_missing_array_is_named(stored: Path, name: str) -> None:
    shutil.rmtree(stored / name)
    with pytest.raises(StoreValidationError, match=rf"array {name} is missing \(the store is "
                       "truncated\\)"):
        open_model(stored)


@pytest.mark.parametrize("name", ["pre/data", "post/indptr", "neurons/ids"])
def test_deleted_chunk_file_is_named(stored: Path, name: str) -> None:
    chunks = sorted((stored / name / "c").rglob("*"))
    chunks = [c for c in chunks if c.is_file()]
    chunks[len(chunks) // 2].unlink()
    with pytest.raises(StoreValidationError, match=rf"array {name} has {len(chunks) - 1} of "
                       rf"{len(chunks)} chunk files \(the store is truncated\)"):
        open_model(stored)


def test_corrupt_chunk_file_is_named(stored: Path) -> None:
    (stored / "pre/indices/c/1").write_bytes(b"garbage")
    with pytest.raises(StoreValidationError, match=r"cannot read array pre/indices \[\d+:\d+\]"):
        open_model(stored)


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no structural-model store at"):
        open_model(tmp_path / "nothing.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreValidationError, match="is not a zarr v3 group"):
        open_model(tmp_path / "empty")
    zarr.open_group(tmp_path / "other.zarr", mode="w").attrs["x"] = 1
    with pytest.raises(StoreValidationError, match="is not a structural-model store"):
        open_model(tmp_path / "other.zarr")


def test_wrong_dtype_is_named(stored: Path) -> None:
    data = zarr.open_array(stored / "pre/data")[:].astype(np.float64)
    _replace(stored, "pre/data", data)
    with pytest.raises(StoreValidationError, match="array pre/data has dtype float64, "
                       "expected float32"):
        open_model(stored, validate=False)


def test_in_memory_lossy_dtype_is_refused(tmp_path: Path) -> None:
    m = make_model()
    bad = VoxelMajorCounts(m.pre.indptr, m.pre.indices, m.pre.data.astype(np.float64),
                           shape=m.pre.shape, name="pre")
    m2 = StructuralModel(**{**_fields(m), "pre": bad})
    with pytest.raises(StoreValidationError, match="pre/data has dtype float64, which cannot be "
                       "stored losslessly as float32"):
        write_model(m2, tmp_path / "m.zarr")
    assert list(tmp_path.iterdir()) == []


def test_wrong_shapes_are_named(stored: Path) -> None:
    ptr = zarr.open_array(stored / "post/indptr")[:]
    _replace(stored, "post/indptr", ptr[:-1])
    with pytest.raises(StoreValidationError, match=r"array post/indptr has shape \(72,\), "
                       r"expected \(voxels \+ 1,\) = \(73,\)"):
        open_model(stored)


def test_wrong_neuron_shape_is_named(stored: Path) -> None:
    ids = zarr.open_array(stored / "neurons/ids")[:]
    _replace(stored, "neurons/ids", ids[:-1])
    with pytest.raises(StoreValidationError, match=r"neurons/ids has shape \(39,\), expected "
                       r"\(40,\)"):
        open_model(stored)


def test_post_all_wrong_length(stored: Path) -> None:
    _replace(stored, "post_all", zarr.open_array(stored / "post_all")[:-2])
    with pytest.raises(StoreValidationError, match=r"post_all has shape \(70,\), expected "
                       r"\(voxels,\) = \(72,\)"):
        open_model(stored)


def test_unsorted_indices(stored: Path) -> None:
    ptr = zarr.open_array(stored / "pre/indptr")[:]
    k = int(np.flatnonzero(np.diff(ptr) >= 2)[0])
    j = int(ptr[k])
    idx = zarr.open_array(stored / "pre/indices")
    first, second = int(idx[j]), int(idx[j + 1])
    _set(stored, "pre/indices", slice(j, j + 2), np.array([second, first], np.int32))
    with pytest.raises(StoreValidationError, match=rf"pre/indices\[{j + 1}\] = {first} follows "
                       rf"{second} in voxel {k}; expected strictly increasing"):
        open_model(stored)


def test_duplicate_indices(stored: Path) -> None:
    ptr = zarr.open_array(stored / "pre/indptr")[:]
    k = int(np.flatnonzero(np.diff(ptr) >= 2)[0])
    j = int(ptr[k])
    first = int(zarr.open_array(stored / "pre/indices")[j])
    _set(stored, "pre/indices", j + 1, first)
    with pytest.raises(StoreValidationError, match=r"no duplicates"):
        open_model(stored)


def test_out_of_range_index(stored: Path) -> None:
    j, _, voxel = _post_entry(stored)
    _set(stored, "post/indices", j, 40)
    with pytest.raises(StoreValidationError, match=rf"post/indices\[{j}\] = 40 \(voxel {voxel}\) "
                       r"is out of range; expected neuron indices 0..39"):
        open_model(stored)


def test_non_monotone_indptr(stored: Path) -> None:
    ptr = zarr.open_array(stored / "post/indptr")[:]
    _set(stored, "post/indptr", 10, int(ptr[9]) - 1)
    with pytest.raises(StoreValidationError, match=r"post/indptr\[10\] = .* is smaller than "
                       r"post/indptr\[9\] = .*expected non-decreasing"):
        open_model(stored)


def test_indptr_end_mismatch(stored: Path) -> None:
    ptr = zarr.open_array(stored / "pre/indptr")[:]
    _set(stored, "pre/indptr", len(ptr) - 1, int(ptr[-1]) - 1)
    with pytest.raises(StoreValidationError, match=rf"pre/indptr\[72\] = {int(ptr[-1]) - 1}, "
                       rf"expected the number of entries {int(ptr[-1])}"):
        open_model(stored)


def test_bad_neuron_code_is_named(stored: Path) -> None:
    _set(stored, "neurons/region", 3, 7)
    with pytest.raises(StoreValidationError, match=r"neurons/region\[3\] = 7 is not a valid code"):
        open_model(stored, validate=False)


def test_validate_false_skips_data_checks_but_not_metadata(stored: Path) -> None:
    j, _, _ = _post_entry(stored)
    _unseal(stored)
    _set(stored, "post/data", j, np.nan)
    m = open_model(stored, validate=False)
    with pytest.raises(StoreValidationError, match=rf"post/data\[{j}\]"):
        validate_model(m)


def test_schema_constants_match_store(stored: Path) -> None:
    root = zarr.open_group(stored, mode="r")
    listed = root.attrs["arrays"]
    for name in listed:
        key = name if not name.startswith("populations/") else (
            "populations/*/" + name.rsplit("/", 1)[1])
        assert root[name].dtype == S.DTYPES[key], name
        assert root[name].ndim == len(S.DIMS[key]), name
    assert json.loads((stored / "zarr.json").read_text())["attributes"]["format"] == S.FORMAT_NAME


def test_tiny_store_round_trip(tiny_model: Any, tiny_store: Path) -> None:
    """The generated ``tiny`` model survives the store (uses the shared session fixtures)."""
    back = open_model(tiny_store)
    assert_models_equal(tiny_model, back)
    assert back.attrs["content_hash"] == content_hash(tiny_model)
