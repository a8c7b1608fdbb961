"""The connectome engine: dense references, invariances, statistics, store and summaries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from anatomy.errors import SchemaVersionError, StoreValidationError
from wiring.connectome import (
    compute_connectome,
    open_connectome,
    synapse_density_by_depth,
    type_probability_matrix,
    write_connectome,
)
from wiring.connectome.dso import dso_factors
from wiring.errors import (
    ConnectomeStoreError,
    InvalidParameterError,
    OutputExistsError,
    SelectionError,
    ShapeMismatchError,
    StoreMismatchError,
)
from wiring.measurements.selectors import Selector
from wiring.rules.base import Level, ParamSpec, SynapseModel, WiringRule
from wiring.rules.dso import DSO


class FactorDSO(DSO):
    """``dso`` opting in to the factorized path."""

    def factors(self, theta):
        return dso_factors(theta)


class GenericDSO:
    """``dso`` without the factorized capability: exercises the generic pair-table path."""

    name: ClassVar[str] = DSO.name
    params: ClassVar[tuple[ParamSpec, ...]] = DSO.params
    level: ClassVar[Level] = DSO.level
    features: ClassVar[tuple[str, ...]] = DSO.features
    synapses: ClassVar[SynapseModel] = DSO.synapses

    def rate(self, features, theta):
        return DSO().rate(features, theta)


RULES: dict[str, WiringRule] = {"factorized": FactorDSO(), "generic": GenericDSO()}


@pytest.fixture(scope="module")
def dense(tiny_model: Any) -> dict[str, np.ndarray]:
    return {
        "pre": tiny_model.pre.load().toarray().astype(np.float64),
        "post": tiny_model.post.load().toarray().astype(np.float64),
        "post_all": np.asarray(tiny_model.post_all, dtype=np.float64),
    }


def _reference(dense: dict[str, np.ndarray], theta: tuple[float, float, float]) -> np.ndarray:
    """Dense lambda (pre x post) from full N x V arrays, without autapses."""
    a, b, c = theta
    pre, post = dense["pre"], dense["post"]
    with np.errstate(divide="ignore"):
        pa = np.where(pre > 0, np.power(np.where(pre > 0, pre, 1.0), a), 0.0)
        pb = np.where(post > 0, np.power(np.where(post > 0, post, 1.0), b), 0.0)
    lam = (pa * dense["post_all"] ** (-c)) @ pb.T
    np.fill_diagonal(lam, 0.0)
    return lam


THETAS = [(1.0, 1.0, 1.0), (0.5, 1.5, 0.7), (0.2, 0.3, 1.8), (1.8, 0.1, 0.0)]


def _every(model: Any, step: int) -> Selector:
    """Every ``step``-th neuron (keeps the slower generic path fast in tests)."""
    return Selector(ids=tuple(int(i) for i in model.neurons.ids[::step]))


@pytest.mark.parametrize("theta", THETAS)
@pytest.mark.parametrize("path", ["factorized", "generic"])
def test_lambda_equals_dense_reference(tiny_model, dense, theta, path) -> None:
    ref = _reference(dense, theta)
    overlap = (dense["pre"] > 0).astype(np.float32) @ (dense["post"] > 0).T.astype(np.float32)
    post = None if path == "factorized" else _every(tiny_model, 5)
    for block_size in (None, 37) if theta == THETAS[0] else (None,):
        conn = compute_connectome(
            tiny_model, RULES[path], theta, seed=1, block_size=block_size, post=post
        )
        assert conn.attrs["engine"]["path"] == path
        cols = np.ix_(conn.pre, conn.post)
        got = conn.expected.toarray().astype(np.float64)
        np.testing.assert_allclose(got, ref[cols], rtol=2e-6, atol=1e-30)
        # no overlap, no synapse, whatever theta (theta_pre + theta_post < theta_postall too)
        assert np.all(got[overlap[cols] == 0] == 0)
        assert np.all(conn.synapses.toarray()[overlap[cols] == 0] == 0)
        assert np.all(conn.synapses.toarray()[conn.pre[:, None] == conn.post[None, :]] == 0)


def test_counts_do_not_depend_on_partition_workers_or_path(tiny_model) -> None:
    base = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=7)
    variants: tuple[dict[str, Any], ...] = (
        {"block_size": 1000},
        {"block_size": 13, "workers": 2},
        {"workers": 2},
    )
    for kwargs in variants:
        other = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=7,
                                   **kwargs)
        assert (other.synapses != base.synapses).nnz == 0
        np.testing.assert_array_equal(other.expected.toarray(), base.expected.toarray())
    sub = _every(tiny_model, 4)
    generic = compute_connectome(tiny_model, RULES["generic"], (1.0, 1.0, 1.0), seed=7,
                                 block_size=20, workers=2, post=sub)
    factorized = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=7,
                                    post=sub)
    assert (generic.synapses != factorized.synapses).nnz == 0
    np.testing.assert_allclose(
        generic.depth_profile, factorized.depth_profile, rtol=1e-6, atol=1e-9
    )
    other_seed = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=8)
    assert (other_seed.synapses != base.synapses).nnz > 0
    # a sub-selection draws the same counts for the pairs it contains
    for part in (factorized, generic):
        full = base.synapses.toarray()[np.ix_(part.pre, part.post)]
        np.testing.assert_array_equal(part.synapses.toarray(), full)
    part = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=7,
                              pre="VPM", post="L4ss;region=column")
    full = base.synapses.toarray()[np.ix_(part.pre, part.post)]
    np.testing.assert_array_equal(part.synapses.toarray(), full)


@pytest.mark.parametrize("path", ["factorized", "generic"])
def test_depth_profile_is_bit_identical_for_any_block_plan(tiny_model, tmp_path: Path, path) -> None:
    """The depth profile is summed per neuron in neuron order: the same bits for every block
    size and number of workers (in memory, streamed to a store, on a distributed client)."""
    from distributed import Client, LocalCluster

    from wiring.connectome import compute_connectome_to_store

    rule, theta = RULES[path], (0.9, 1.2, 1.1)
    post = None if path == "factorized" else _every(tiny_model, 2)
    base = compute_connectome(tiny_model, rule, theta, seed=5, post=post, block_size=1)
    assert base.depth_profile.sum() > 0
    plans: list[dict[str, Any]] = [
        {}, {"block_size": 7}, {"block_size": 13, "workers": 2}, {"workers": 2},
        {"block_size": 10_000}, {"block_size": 3, "workers": 2},
    ]
    for kwargs in plans:
        other = compute_connectome(tiny_model, rule, theta, seed=5, post=post, **kwargs)
        np.testing.assert_array_equal(other.depth_profile, base.depth_profile, err_msg=str(kwargs))
    out = compute_connectome_to_store(tiny_model, rule, theta, tmp_path / "c.zarr", seed=5,
                                      post=post, block_size=11, workers=2)
    np.testing.assert_array_equal(open_connectome(out).depth_profile, base.depth_profile)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dist = compute_connectome(tiny_model, rule, theta, seed=5, post=post, client=client,
                                  block_size=17)
    np.testing.assert_array_equal(dist.depth_profile, base.depth_profile)


def test_per_neuron_profile_sums_each_neuron_then_neurons_in_order() -> None:
    """Golden values: per-neuron sums in entry order, then added neuron by neuron."""
    from wiring.connectome import _engine

    rows = np.array([0, 0, 0, 2, 2, 3])
    bins = np.array([1, 0, 1, 1, 1, 0])
    w = np.array([1e16, 3.0, 1.0, 1.0, -1e16, 2.0])
    post_type = np.array([0, 1, 0, 1])
    codes, values = _engine._per_neuron_profile(rows, bins, w, post_type, 2)
    # neuron 0: bin 0 -> 3, bin 1 -> 1e16 + 1 (= 1e16); neuron 2 (type 0): bin 1 -> 1 - 1e16;
    # neuron 3 (type 1): bin 0 -> 2
    np.testing.assert_array_equal(codes, [0, 1, 1, 2])
    np.testing.assert_array_equal(values, [3.0, 1e16 + 1.0, 1.0 - 1e16, 2.0])
    # unsorted rows (each row's entries in the same order) give the same, and a tiny buffer
    # (one row a slice) too
    order = np.array([3, 0, 5, 1, 4, 2])
    c2, v2 = _engine._per_neuron_profile(rows[order], bins[order], w[order], post_type, 2)
    np.testing.assert_array_equal(c2, codes)
    np.testing.assert_array_equal(v2, values)
    old = _engine.PROFILE_BUFFER
    try:
        _engine.PROFILE_BUFFER = 1
        c3, v3 = _engine._per_neuron_profile(rows, bins, w, post_type, 2)
    finally:
        _engine.PROFILE_BUFFER = old
    np.testing.assert_array_equal(c3, codes)
    np.testing.assert_array_equal(v3, values)


def test_distributed_client_gives_the_same_result(tiny_model) -> None:
    from distributed import Client, LocalCluster

    base = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=3)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        other = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=3,
                                   client=client, block_size=60)
    assert (other.synapses != base.synapses).nnz == 0


def test_streamed_from_store_equals_in_memory(tiny_store: Path, tiny_model) -> None:
    from anatomy.store import open_model

    lazy = open_model(tiny_store)
    for path, rule in RULES.items():
        base = compute_connectome(tiny_model, rule, (0.8, 1.1, 0.9), seed=2, pre="L4exc")
        streamed = compute_connectome(lazy, rule, (0.8, 1.1, 0.9), seed=2, pre="L4exc",
                                      in_memory=False, block_size=90)
        assert (streamed.synapses != base.synapses).nnz == 0, path
        np.testing.assert_allclose(streamed.expected.toarray(), base.expected.toarray(),
                                   rtol=1e-6)
        np.testing.assert_allclose(streamed.depth_profile, base.depth_profile, rtol=1e-6)


def test_poisson_counts_have_the_right_mean_and_variance(tiny_model) -> None:
    """Many seeds on a few pairs of known lambda: mean and variance within 4 MC errors."""
    theta = (1.0, 1.0, 1.0)
    full = compute_connectome(tiny_model, RULES["factorized"], theta, seed=0)
    lam = full.expected.toarray().astype(np.float64)
    targets = [0.05, 0.5, 2.0]
    picks = [np.unravel_index(np.argmin(np.abs(lam - t)), lam.shape) for t in targets]
    pre = Selector(ids=tuple(int(tiny_model.neurons.ids[full.pre[i]]) for i, _ in picks))
    post = Selector(ids=tuple(int(tiny_model.neurons.ids[full.post[j]]) for _, j in picks))
    n = 200
    draws = []
    for seed in range(n):
        c = compute_connectome(tiny_model, RULES["factorized"], theta, seed=seed, pre=pre,
                               post=post)
        draws.append(c.synapses.toarray())
    d = np.stack(draws).astype(np.float64)
    sub_lam = c.expected.toarray().astype(np.float64)
    for k in range(d.shape[1]):
        for m in range(d.shape[2]):
            lm = sub_lam[k, m]
            x = d[:, k, m]
            if lm == 0:
                assert np.all(x == 0)
                continue
            assert abs(x.mean() - lm) < 4 * np.sqrt(lm / n) + 1e-12
            assert abs(x.var(ddof=1) - lm) < 4 * np.sqrt((lm + 2 * lm**2) / n) + 1e-12
    # the whole connectome: total count and connected fraction match lambda
    total_lam = float(lam.sum())
    assert abs(full.n_synapses - total_lam) < 4 * np.sqrt(total_lam)
    p = -np.expm1(-lam[lam > 0])
    assert abs(full.n_connections - p.sum()) < 4 * np.sqrt(np.sum(p * (1 - p)))


def test_pair_level_and_binomial_rules(tiny_model, dense) -> None:
    shared = (dense["pre"] > 0).astype(np.float32) @ (dense["post"] > 0).T.astype(np.float32)
    np.fill_diagonal(shared, 0)
    post = _every(tiny_model, 3)
    conn = compute_connectome(tiny_model, "peters_neuron", [20.0], seed=1, post=post)
    shared = shared[:, conn.post]
    expect = np.where(shared >= 20, shared, 0)  # one synapse per shared voxel if connected
    np.testing.assert_array_equal(conn.synapses.toarray(), expect)
    conn = compute_connectome(tiny_model, "peters_synapse", [0.3], seed=1, post=post)
    n = shared.sum()
    assert abs(conn.n_synapses - 0.3 * n) < 4 * np.sqrt(n * 0.3 * 0.7)
    assert np.all(conn.synapses.toarray() <= shared)
    np.testing.assert_allclose(conn.expected.toarray(), shared * -np.log(0.7), rtol=1e-5)
    assert conn.depth_profile.sum() == pytest.approx(0.3 * n, rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"theta": [1.0, 1.0]}, ShapeMismatchError, "takes 3 parameter"),
        ({"theta": [1.0, np.nan, 1.0]}, InvalidParameterError, "not a finite number"),
        ({"theta": [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]}, ShapeMismatchError, "one parameter"),
        ({"rule": "dso_linear", "theta": [1.0, 1.0, 0.0]}, InvalidParameterError, "domain"),
        ({"pre": "L4xx"}, SelectionError, "L4xx"),
        ({"post": "L4ss;region=barreloid"}, SelectionError, "selects no neuron"),
        ({"seed": -1}, InvalidParameterError, "seed"),
        ({"block_size": 0}, InvalidParameterError, "block_size"),
        ({"workers": 0}, InvalidParameterError, "workers"),
        ({"rule": "dsoo"}, Exception, "dso"),
    ],
)
def test_bad_input_fails_before_any_work(tiny_model, monkeypatch, kwargs, error, match) -> None:
    import wiring.connectome._engine as engine

    def no_work(*_: Any, **__: Any) -> None:
        raise AssertionError("the engine ran on bad input")

    monkeypatch.setattr(engine, "run_engine", no_work)
    args = {"rule": "dso", "theta": [1.0, 1.0, 1.0], "seed": 1, **kwargs}
    with pytest.raises(error, match=match):
        compute_connectome(tiny_model, args.pop("rule"), args.pop("theta"), **args)


def test_store_round_trip_and_refusals(tiny_model, tmp_path: Path) -> None:
    conn = compute_connectome(tiny_model, RULES["factorized"], (0.9, 1.1, 1.0), seed=5,
                              pre="VPM", post="L4exc")
    out = write_connectome(conn, tmp_path / "c.zarr")
    back = open_connectome(out)
    assert (back.synapses != conn.synapses).nnz == 0
    assert back.synapses.dtype == np.int32 and back.expected.dtype == np.float32
    np.testing.assert_array_equal(back.expected.toarray(), conn.expected.toarray())
    np.testing.assert_array_equal(back.pre, conn.pre)
    np.testing.assert_array_equal(back.post, conn.post)
    np.testing.assert_array_equal(back.theta, conn.theta)
    np.testing.assert_array_equal(back.depth_profile, conn.depth_profile)
    assert back.seed == 5 and back.anatomy_hash == tiny_model.attrs["content_hash"]
    assert back.rule["name"] == "dso" and {"distribution", "version"} <= set(back.rule)
    assert back.attrs["pre_selector"] == Selector(cell_types=("VPM",)).to_dict()
    before = (out / "zarr.json").read_text()
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_connectome(conn, out)
    assert (out / "zarr.json").read_text() == before
    write_connectome(back, out, overwrite=True)
    assert open_connectome(out).n_synapses == conn.n_synapses
    other = tmp_path / "not-a-store"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="not a connectome store"):
        write_connectome(conn, other, overwrite=True)
    assert (other / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr", "not-a-store"]


def test_open_rejects_incomplete_or_foreign_stores(tiny_model, tmp_path: Path) -> None:
    conn = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=5,
                              pre="VPM", post="L4ss")
    good = write_connectome(conn, tmp_path / "good.zarr")

    def variant(name: str, edit: Any) -> Path:
        p = tmp_path / name
        shutil.copytree(good, p)
        meta = json.loads((p / "zarr.json").read_text())
        edit(meta["attributes"])
        (p / "zarr.json").write_text(json.dumps(meta))
        return p

    with pytest.raises(ConnectomeStoreError, match="not completely written"):
        open_connectome(variant("inc.zarr", lambda a: a.pop("complete")))
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        open_connectome(variant("v99.zarr", lambda a: a.update(schema_version=99)))
    with pytest.raises(ConnectomeStoreError, match="not a connectome store"):
        open_connectome(variant("other.zarr", lambda a: a.update(format="something")))
    broken = tmp_path / "broken.zarr"
    shutil.copytree(good, broken)
    shutil.rmtree(broken / "expected" / "indices")
    with pytest.raises(ConnectomeStoreError, match="indices"):
        open_connectome(broken)
    with pytest.raises(FileNotFoundError):
        open_connectome(tmp_path / "missing.zarr")


def test_type_probability_matrix_matches_brute_force(tiny_model) -> None:
    conn = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=4,
                              post="exc")
    tp = type_probability_matrix(conn, tiny_model, by="cell_type")
    names = np.asarray(tiny_model.neurons.cell_type_names)
    syn = conn.synapses.toarray()
    lam = conn.expected.toarray().astype(np.float64)
    for a, pl in enumerate(tp.pre_labels):
        for b, ql in enumerate(tp.post_labels):
            rows = names[conn.pre] == pl
            cols = names[conn.post] == ql
            not_self = conn.pre[rows][:, None] != conn.post[cols][None, :]
            block = syn[np.ix_(rows, cols)][not_self]
            assert tp.n_pairs[a, b] == not_self.sum()
            assert tp.n_connected[a, b] == np.count_nonzero(block)
            assert tp.observed[a, b] == pytest.approx(np.count_nonzero(block) / block.size)
            p = -np.expm1(-lam[np.ix_(rows, cols)][not_self])
            assert tp.expected[a, b] == pytest.approx(p.mean(), rel=1e-6)
    assert "VPM" in tp.pre_labels and "VPM" not in tp.post_labels
    data = json.loads(tp.to_json())
    assert data["n_pairs"] == tp.n_pairs.tolist()
    lines = tp.to_csv().splitlines()
    assert lines[0].startswith("pre,post,n_pairs")
    assert len(lines) == 1 + len(tp.pre_labels) * len(tp.post_labels)
    by_layer = type_probability_matrix(conn, tiny_model, by="layer")
    assert "barreloid" in by_layer.pre_labels
    assert by_layer.n_pairs.sum() == tp.n_pairs.sum()
    assert by_layer.n_connected.sum() == tp.n_connected.sum() == conn.n_connections
    with pytest.raises(InvalidParameterError, match="'cell_type' or 'layer'"):
        type_probability_matrix(conn, tiny_model, by="region")  # type: ignore[arg-type]


def test_type_probability_refuses_another_anatomy(tiny_model, small_model) -> None:
    conn = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=4,
                              pre="VPM", post="L4ss")
    with pytest.raises(StoreMismatchError, match="anatomy"):
        type_probability_matrix(conn, small_model)


def test_synapse_density_by_depth(tiny_model) -> None:
    conn = compute_connectome(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), seed=4)
    dens = synapse_density_by_depth(conn)
    # for a Poisson rule the expected synapses over all depths sum to sum(lambda)
    total = float(conn.expected.data.astype(np.float64).sum())
    assert dens.expected_synapses.sum() == pytest.approx(total, rel=1e-5)
    assert set(dens.cell_types) == set(tiny_model.neurons.cell_type_names) - {"VPM"} or set(
        dens.cell_types) == set(tiny_model.neurons.cell_type_names)
    spacing = tiny_model.grid.spacing_um
    np.testing.assert_allclose(np.diff(dens.depth_um), spacing)
    vol = conn.voxels_per_bin * spacing**3 * 1e-9
    np.testing.assert_allclose(dens.density_per_mm3 * vol, dens.expected_synapses)
    # L4 cells receive their synapses around L4, not at the pia
    l4 = dens.expected_synapses[list(dens.cell_types).index("L4ss")]
    assert 500 < dens.depth_um[np.argmax(l4)] < 1000
    with pytest.raises(InvalidParameterError, match="unknown cell type"):
        synapse_density_by_depth(conn, cell_types=["L9"])
    assert sp.issparse(conn.synapses)


@pytest.mark.parametrize("chunk", [1 << 22, 4099])
def test_streaming_to_store_equals_in_memory_write(tiny_model, tmp_path: Path, monkeypatch, chunk) -> None:
    from wiring.connectome import compute as connectome_module
    from wiring.connectome import compute_connectome_to_store

    monkeypatch.setattr(connectome_module, "_APPEND_CHUNK", chunk)  # 4099: many aligned flushes
    for path, rule in RULES.items():
        post = _every(tiny_model, 3)
        conn = compute_connectome(tiny_model, rule, (0.9, 1.2, 1.1), seed=6, post=post)
        ref = open_connectome(write_connectome(conn, tmp_path / f"ref-{path}.zarr"))
        out = compute_connectome_to_store(tiny_model, rule, (0.9, 1.2, 1.1),
                                          tmp_path / f"s-{path}.zarr", seed=6, post=post,
                                          block_size=9, workers=2)
        got = open_connectome(out)
        assert (got.synapses != ref.synapses).nnz == 0
        np.testing.assert_array_equal(got.expected.toarray(), ref.expected.toarray())
        np.testing.assert_array_equal(got.synapses.indptr, ref.synapses.indptr)
        np.testing.assert_allclose(got.depth_profile, ref.depth_profile, rtol=1e-12)
        assert got.rule == ref.rule
        assert {k: v for k, v in got.attrs.items() if k != "engine"} == {
            k: v for k, v in ref.attrs.items() if k != "engine"}
    with pytest.raises(OutputExistsError, match="overwrite"):
        compute_connectome_to_store(tiny_model, RULES["factorized"], (1.0, 1.0, 1.0), out,
                                    seed=1)
    with pytest.raises(ShapeMismatchError):
        compute_connectome_to_store(tiny_model, "dso", (1.0, 1.0), tmp_path / "x.zarr", seed=1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.name == "x.zarr"]


def test_streaming_writer_failure_leaves_nothing(tiny_model, tmp_path: Path, monkeypatch) -> None:
    """A failing write (e.g. a full disk) surfaces as the error and leaves no store behind."""
    from wiring.connectome import compute as connectome_module
    from wiring.connectome import compute_connectome_to_store

    def broken(self, block):
        raise OSError("No space left on device")

    monkeypatch.setattr(connectome_module._BlockAppender, "append", broken)
    with pytest.raises(OSError, match="No space left"):
        compute_connectome_to_store(tiny_model, "dso", (1.0, 1.0, 1.0), tmp_path / "c.zarr",
                                    seed=1, block_size=5, workers=2)
    assert list(tmp_path.iterdir()) == []


def test_lazy_store_blocks_and_summaries_equal_the_loaded_connectome(tiny_model, tmp_path: Path) -> None:
    from wiring.connectome import ConnectomeStore

    conn = compute_connectome(tiny_model, "dso", (1.0, 1.1, 0.9), seed=3)
    store = open_connectome(write_connectome(conn, tmp_path / "c.zarr"), lazy=True)
    assert isinstance(store, ConnectomeStore)
    assert (store.n_pre, store.n_post, store.n_pairs, store.n_connections, store.n_synapses) == (
        conn.n_pre, conn.n_post, conn.n_pairs, conn.n_connections, conn.n_synapses)
    store.block_entries = 2000
    blocks = list(store.iter_blocks())
    assert len(blocks) > 3
    assert [b.start for b in blocks[1:]] == [b.stop for b in blocks[:-1]]
    assert blocks[0].start == 0 and blocks[-1].stop == conn.n_post
    assert all(b.expected.nnz <= 2000 or b.stop - b.start == 1 for b in blocks)
    got = sp.hstack([b.expected for b in blocks]).tocsc()
    np.testing.assert_array_equal(got.toarray(), conn.expected.toarray())
    for by in ("cell_type", "layer"):
        ref = type_probability_matrix(conn, tiny_model, by=by)
        lazy = type_probability_matrix(store, tiny_model, by=by)
        np.testing.assert_array_equal(lazy.n_connected, ref.n_connected)
        # one accumulator filled in column order: the same bits whatever the block size
        np.testing.assert_array_equal(lazy.expected, ref.expected)
        np.testing.assert_array_equal(lazy.mean_synapses, ref.mean_synapses)
    np.testing.assert_array_equal(synapse_density_by_depth(store).density_per_mm3,
                                  synapse_density_by_depth(conn).density_per_mm3)


def test_lazy_store_reports_a_damaged_chunk_when_read(tiny_model, tmp_path: Path) -> None:
    conn = compute_connectome(tiny_model, "dso", (1.0, 1.0, 1.0), seed=3)
    path = write_connectome(conn, tmp_path / "c.zarr")
    chunk = next((path / "expected" / "data" / "c").iterdir())
    chunk.write_bytes(chunk.read_bytes()[:10])  # truncated
    store = open_connectome(path, lazy=True)
    with pytest.raises(ConnectomeStoreError, match="damaged"):
        list(store.iter_blocks())
    with pytest.raises(ConnectomeStoreError, match="damaged"):
        open_connectome(path)


def test_connectome_store_errors_are_wiring_errors_that_old_handlers_still_catch(
    tmp_path: Path,
) -> None:
    from wiring.errors import StoreFormatError, WiringError

    with pytest.raises(ConnectomeStoreError) as info:
        open_connectome(tmp_path)
    assert isinstance(info.value, WiringError)
    assert isinstance(info.value, StoreFormatError)
    assert isinstance(info.value, StoreValidationError)  # what connectome stores raised before
