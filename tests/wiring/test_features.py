"""Population pair features: rows against a dense recomputation, caching, corruption, blocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from anatomy.grid import VoxelGrid
from anatomy.model import Neurons, StructuralModel, VoxelMajorCounts
from wiring.measurements import load_measurement_set, population
from wiring.simulation import (
    FeatureBundle,
    PopulationPairs,
    estimate_table,
    extract_factored,
    extract_feature_bundle,
    extract_features,
    feature_cache_key,
    open_feature_bundle,
)
from wiring.simulation.features import _extract


def hand_model(seed: int = 0, n: int = 12, shape: tuple[int, int, int] = (2, 2, 5)) -> Any:
    """A small random model: sparse pre/post counts with explicit zeros and empty neurons."""
    rng = np.random.default_rng(seed)
    grid = VoxelGrid(origin_um=(0.0, 0.0, 0.0), spacing_um=50.0, shape=shape)
    v = grid.n_voxels
    pre = rng.integers(1, 6, (n, v)) * (rng.random((n, v)) < 0.35)
    post = rng.integers(1, 9, (n, v)) * (rng.random((n, v)) < 0.4)
    pre[3] = 0  # a neuron without boutons: its pairs share nothing
    pre_sp = sp.csc_array(pre.astype(np.float32))
    post_all = post.sum(axis=0).astype(np.float32) + rng.integers(1, 20, v).astype(np.float32)
    neurons = Neurons(
        cell_type=np.full(n, 2, np.int8),
        layer=np.full(n, 3, np.int8),
        region=np.zeros(n, np.int8),
        column=np.zeros(n, np.int16),
        soma_um=rng.uniform(0, 100, (n, 3)).astype(np.float32),
        ids=np.arange(n, dtype=np.int64),
    )
    return StructuralModel(
        grid=grid,
        neurons=neurons,
        pre=VoxelMajorCounts.from_scipy(pre_sp, name="pre"),
        post=VoxelMajorCounts.from_scipy(sp.csc_array(post.astype(np.float32)), name="post"),
        post_all=post_all,
        attrs={"content_hash": f"hand-{seed}-{n}"},
    )


def dense_rows(model: Any, i: int, j: int) -> dict[str, np.ndarray]:
    """The expected rows of pair (i, j), computed from dense arrays."""
    pre = model.pre.load().toarray()
    post = model.post.load().toarray()
    vox = np.flatnonzero((pre[i] > 0) & (post[j] > 0))
    return {
        "voxel": vox,
        "log_pre": np.log(pre[i, vox]),
        "log_post": np.log(post[j, vox]),
        "log_post_all": np.log(model.post_all[vox].astype(np.float64)),
        "depth_um": model.depth_um()[vox],
    }


def check_table_rows(model: Any, table: Any, pairs: list[int] | None = None) -> None:
    idx = range(table.n_pairs) if pairs is None else pairs
    soma = model.neurons.soma_um.astype(np.float64)
    for p in idx:
        i, j = int(table.pre[p]), int(table.post[p])
        want = dense_rows(model, i, j)
        lo, hi = table.indptr[p], table.indptr[p + 1]
        np.testing.assert_array_equal(table.voxel[lo:hi], want["voxel"])
        for name in ("log_pre", "log_post", "log_post_all", "depth_um"):
            np.testing.assert_allclose(table.rows[name][lo:hi], want[name], rtol=1e-6, atol=1e-5)
            assert table.rows[name].dtype == np.float32
        assert table.pair_features["n_shared"][p] == len(want["voxel"])
        np.testing.assert_allclose(
            table.pair_features["soma_distance_um"][p], np.linalg.norm(soma[i] - soma[j])
        )


def test_rows_match_dense_computation_and_block_partition() -> None:
    model = hand_model()
    n = model.n_neurons
    ii, jj = np.meshgrid(np.arange(0, 6), np.arange(4, n), indexing="ij")
    keep = ii.ravel() != jj.ravel()
    prod = PopulationPairs(name="a", pair_pre=ii.ravel()[keep], pair_post=jj.ravel()[keep])
    # a non-product population (explicit pairs, given unsorted and with a duplicate)
    rng = np.random.default_rng(1)
    pp, qq = rng.integers(0, n, 30), rng.integers(0, n, 30)
    pp, qq = np.r_[pp, pp[:1]], np.r_[qq, qq[:1]]
    expl = PopulationPairs(name="b", pair_pre=pp, pair_post=qq)
    one = _extract(model, [prod, expl], block_voxels=1)
    many = _extract(model, [prod, expl])
    for name in ("pair_offsets", "pre", "post", "indptr", "voxel", "soma_distance_um"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    for name in one.rows:
        np.testing.assert_array_equal(one.rows[name], many.rows[name])
    tables = many.tables()
    assert tables[0].n_pairs == keep.sum()
    assert tables[1].n_pairs == len(set(zip(pp.tolist(), qq.tolist(), strict=True)))
    # pairs are sorted by (pre, post) and every eligible pair is present
    for t in tables:
        keys = t.pre * n + t.post
        assert np.all(np.diff(keys) > 0)
        check_table_rows(model, t)
    # neuron 3 has no boutons: its pairs are present with zero rows
    t0 = tables[0]
    assert np.all(t0.pair_features["n_shared"][t0.pre == 3] == 0)
    assert np.any(t0.pair_features["n_shared"] > 0)


def test_tiny_model_tables_cover_population(tiny_model: Any) -> None:
    mset = load_measurement_set("vpm-invivo")
    tables = extract_features(tiny_model, mset)
    assert len(tables) == len(mset.measurements)
    n = tiny_model.n_neurons
    for meas, table in zip(mset.measurements, tables, strict=True):
        pop = population(tiny_model, meas)
        want = np.sort(pop.pair_pre * n + pop.pair_post)
        np.testing.assert_array_equal(table.pre * n + table.post, want)
        rng = np.random.default_rng(0)
        check_table_rows(tiny_model, table, list(rng.choice(table.n_pairs, 15, replace=False)))
    rows, nbytes = estimate_table(
        tiny_model,
        [PopulationPairs(name=m.id, pair_pre=t.pre, pair_post=t.post)
         for m, t in zip(mset.measurements, tables, strict=True)],
    )
    np.testing.assert_array_equal(rows, [t.n_rows for t in tables])  # exact for products
    assert nbytes > 0


def test_factored_form_rows_equal_table(tiny_model: Any) -> None:
    mset = load_measurement_set("vpm-invivo")
    from wiring.simulation.features import population_pairs

    pops = population_pairs(tiny_model, mset)
    table = _extract(tiny_model, pops)
    fac = extract_factored(tiny_model, pops)
    np.testing.assert_array_equal(fac.pre, table.pre)
    np.testing.assert_array_equal(fac.post, table.post)
    np.testing.assert_array_equal(fac.pair_offsets, table.pair_offsets)
    for p in np.random.default_rng(2).choice(len(fac.pre), 40, replace=False):
        dense = fac.dense_log_pre[fac.pre_row[p]]
        q = fac.post_row[p]
        vox = fac.post_voxel[fac.post_ptr[q] : fac.post_ptr[q + 1]]
        vox = vox[~np.isnan(dense[vox])]
        np.testing.assert_array_equal(vox, table.voxel[table.indptr[p] : table.indptr[p + 1]])


def test_cache_reuse_corruption_and_key(tmp_path: Path, tiny_model: Any) -> None:
    mset = load_measurement_set("vpm-invivo")
    cache = tmp_path / "cache"
    first = extract_feature_bundle(tiny_model, mset, cache_dir=cache)
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and first.path == entries[0]
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp")]
    meta = json.loads((entries[0] / "zarr.json").read_text())
    assert meta["attributes"]["key"] == first.key
    # reuse: same entry, arrays memory-mapped from the chunk files
    again = extract_feature_bundle(tiny_model, mset, cache_dir=cache)
    assert again.path == first.path
    assert isinstance(again.rows["log_pre"].base, np.memmap) or isinstance(
        again.rows["log_pre"], np.memmap
    )
    np.testing.assert_array_equal(again.rows["log_post"], first.rows["log_post"])
    mtime = (first.path / "zarr.json").stat().st_mtime_ns
    # corrupt a chunk: detected by the checksum, rebuilt with identical content
    chunk = first.path / "log_pre" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(Exception, match="checksum"):
        open_feature_bundle(first.path)
    rebuilt = extract_feature_bundle(tiny_model, mset, cache_dir=cache)
    np.testing.assert_array_equal(rebuilt.rows["log_pre"], _extract_ref(tiny_model, mset))
    assert rebuilt.path is not None
    assert (rebuilt.path / "zarr.json").stat().st_mtime_ns >= mtime
    # a truncated chunk and a missing array are detected too
    (rebuilt.path / "voxel" / "c" / "0").write_bytes(b"\0" * 8)
    with pytest.raises(Exception, match="voxel"):
        open_feature_bundle(rebuilt.path)
    # another measurement set gives another key
    key1, _ = feature_cache_key(tiny_model, mset)
    key2, _ = feature_cache_key(tiny_model, mset.subset(["L4", "L6"]))
    assert key1 != key2
    assert key1 == first.key


def _extract_ref(model: Any, mset: Any) -> np.ndarray:
    from wiring.simulation.features import population_pairs

    return np.asarray(_extract(model, population_pairs(model, mset)).rows["log_pre"])


def test_bundle_round_trip_from_tables() -> None:
    model = hand_model(3)
    pop = PopulationPairs(name="x", pair_pre=np.array([0, 1, 2]), pair_post=np.array([5, 6, 3]))
    bundle = _extract(model, [pop, pop])
    again = FeatureBundle.from_tables(["x", "y"], bundle.tables())
    np.testing.assert_array_equal(again.indptr, bundle.indptr)
    for name in bundle.rows:
        np.testing.assert_array_equal(again.rows[name], bundle.rows[name])
    assert again.n_rows == bundle.n_rows == 2 * bundle.tables()[0].n_rows


def test_refuses_tables_over_the_size_limit(tmp_path: Path, tiny_model: Any) -> None:
    from wiring.errors import WiringError

    mset = load_measurement_set("vpm-invivo")
    with pytest.raises(WiringError, match="max_bytes") as err:
        extract_features(tiny_model, mset, cache_dir=tmp_path / "c", max_bytes=10_000)
    assert "representation='factored'" in str(err.value)
    assert not list((tmp_path / "c").glob("features-*"))  # nothing written


def test_unknown_rule_feature_is_refused(tiny_model: Any) -> None:
    from wiring.errors import WiringError

    mset = load_measurement_set("vpm-invivo")
    with pytest.raises(WiringError, match="axon_length"):
        extract_features(tiny_model, mset, rule_features=["log_pre", "axon_length"])


def test_distributed_client_gives_same_bundle(tiny_model: Any) -> None:
    from distributed import Client, LocalCluster

    mset = load_measurement_set("vpm-invivo").subset(["L4", "L5PT"])
    ref = extract_feature_bundle(tiny_model, mset, block_voxels=500, progress=True)
    with LocalCluster(n_workers=1, processes=False, threads_per_worker=2,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        got = extract_feature_bundle(tiny_model, mset, client=client, block_voxels=500)
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.voxel, ref.voxel)
    np.testing.assert_array_equal(got.rows["log_pre"], ref.rows["log_pre"])


def test_slice_measurements_cut_arbors_at_the_slab(tiny_model: Any) -> None:
    """Slice pairs keep only the shared voxels whose centre lies in the slab (brute force)."""
    from wiring.measurements import MeasurementSet, SliceConfig
    from wiring.simulation import extract_feature_bundle, population_pairs
    from wiring.simulation.simulator import Simulator

    base = load_measurement_set("rat-invitro")
    mset = MeasurementSet(name="s", measurements=(base["L4ss-L4ss-1999"],
                                                  base["L23exc-L23exc"]))
    cfg = SliceConfig(thickness_um=150.0, max_distance_um=200.0, soma_depth_um=None)
    bundle = extract_feature_bundle(tiny_model, mset, slice_config=cfg)
    uncut = extract_feature_bundle(
        tiny_model, mset, slice_config=SliceConfig(thickness_um=150.0, max_distance_um=200.0,
                                                   soma_depth_um=None, cut_arbors=False))
    pre = tiny_model.pre.load().toarray()
    post = tiny_model.post.load().toarray()
    soma = tiny_model.neurons.soma_um.astype(np.float64)
    grid = tiny_model.grid
    x_centre = grid.voxel_center_um(np.arange(grid.n_voxels))[:, 0]
    lost = 0
    for k, meas in enumerate(mset):
        pop = population(tiny_model, meas, slice_config=cfg)
        centre = float(np.median(soma[np.union1d(pop.pre, pop.post), 0]))
        in_slab = np.abs(x_centre - centre) <= 75.0
        lo_p, hi_p = bundle.pair_offsets[k], bundle.pair_offsets[k + 1]
        for p in range(lo_p, hi_p):
            i, j = int(bundle.pre[p]), int(bundle.post[p])
            want = np.flatnonzero((pre[i] > 0) & (post[j] > 0) & in_slab)
            got = bundle.voxel[bundle.indptr[p]:bundle.indptr[p + 1]]
            np.testing.assert_array_equal(got, want)
            np.testing.assert_allclose(
                bundle.rows["log_pre"][bundle.indptr[p]:bundle.indptr[p + 1]],
                np.log(pre[i, want]), rtol=1e-6)
            lost += int(uncut.indptr[p + 1] - uncut.indptr[p]) - len(want)
    assert lost > 0  # the cut removed shared voxels of some pairs
    # the factored form applies the same cut: identical means and simulations
    theta = np.array([[1.0, 1.0, 1.0], [1.4, 0.8, 1.2]])
    tab = Simulator(bundle, "dso", mset, replace=True)
    fac = Simulator(extract_factored(tiny_model, population_pairs(tiny_model, mset, cfg)),
                    "dso", mset, replace=True)
    np.testing.assert_allclose(fac.population_mean(theta), tab.population_mean(theta),
                               rtol=1e-6)
    th = np.repeat(theta, 30, axis=0)
    np.testing.assert_array_equal(fac.simulate(th, seed=1), tab.simulate(th, seed=1))
