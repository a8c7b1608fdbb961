"""The batched simulator: exact mean against a dense recomputation, binomial spread, invalid θ,
determinism across batch splits, and pairs without overlap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from wiring.errors import InvalidParameterError, MeasurementError, ShapeMismatchError
from wiring.measurements import load_measurement_set, population
from wiring.pairs import PairTable
from wiring.rules.base import ParamSpec
from wiring.rules.dso import DSO
from wiring.simulation import _kernels as kern
from wiring.simulation.features import FeatureBundle
from wiring.simulation.simulator import Simulator

MSET = load_measurement_set("vpm-invivo")


@pytest.fixture(scope="module")
def tiny_sims(tiny_model: Any) -> dict[str, Simulator]:
    table = Simulator(tiny_model, "dso", MSET, representation="table")
    fac = Simulator(tiny_model, "dso", MSET, representation="factored")
    return {"table": table, "factored": fac}


def dense_expected(model: Any, rule: str, theta: np.ndarray) -> np.ndarray:
    """Mean over each population's pairs of 1 - exp(-lambda), from whole-model sparse products
    (the connectome route: Lambda = pre^a diag(postAll^-c) (post^b)^T on the nonzeros)."""
    pre = model.pre.load().tocsr().astype(np.float64)
    post = model.post.load().tocsr().astype(np.float64)
    pre.eliminate_zeros()
    post.eliminate_zeros()
    post_all = np.asarray(model.post_all, np.float64)
    pops = [population(model, meas) for meas in MSET.measurements]
    ones_pre, ones_post = pre.copy(), post.copy()
    ones_pre.data[:] = 1.0
    ones_post.data[:] = 1.0
    shared = (ones_pre @ ones_post.T).toarray()
    out = np.zeros((len(theta), len(MSET.measurements)))
    for b, th in enumerate(theta):
        if rule in ("dso", "dso_linear"):
            a, q = pre.copy(), post.copy()
            if rule == "dso":
                a.data **= th[0]
                q.data **= th[1]
                with np.errstate(divide="ignore"):
                    w = post_all ** -th[2]
            else:
                w = th[0] * th[1] / th[2] / post_all
            lam_all = (a @ sp.diags(w) @ q.T).toarray()
        elif rule == "peters_synapse":
            with np.errstate(divide="ignore"):
                lam_all = np.where(shared > 0, -np.log1p(-th[0]) * np.maximum(shared, 1), 0.0)
        else:  # peters_neuron
            lam_all = np.where((shared >= th[0]) & (shared >= 1), np.inf, 0.0)
        for m, pop in enumerate(pops):
            out[b, m] = np.mean(-np.expm1(-lam_all[pop.pair_pre, pop.pair_post]))
    return out


THETAS = {
    "dso": np.array([[1.0, 1.0, 1.0], [0.5, 1.2, 0.8], [1.5, 0.3, 1.9], [0.0, 0.0, 0.2]]),
    "dso_linear": np.array([[1.0, 1.0, 1.0], [0.2, 0.5, 1.7]]),
    "peters_synapse": np.array([[0.01], [0.2], [1.0]]),
    "peters_neuron": np.array([[1.0], [25.0], [80.0]]),
}


@pytest.mark.parametrize("rule", sorted(THETAS))
def test_expected_equals_dense_computation_tiny(tiny_model: Any, rule: str) -> None:
    theta = THETAS[rule]
    want = dense_expected(tiny_model, rule, theta)
    sim = Simulator(tiny_model, rule, MSET, representation="table")
    np.testing.assert_allclose(sim.population_mean(theta), want, rtol=2e-5, atol=1e-9)
    # the factored form of the same model gives the same expectations, for every rule
    fac = Simulator(tiny_model, rule, MSET, representation="factored")
    assert fac.representation == "factored"
    np.testing.assert_allclose(fac.population_mean(theta), want, rtol=2e-5, atol=1e-9)


def test_expected_equals_dense_computation_small(small_model: Any) -> None:
    theta = THETAS["dso"][:3]
    want = dense_expected(small_model, "dso", theta)
    sim = Simulator(small_model, "dso", MSET, representation="factored")
    np.testing.assert_allclose(sim.population_mean(theta), want, rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize("theta", [[1.0, 1.0, 1.0], [0.9, 1.1, 1.05], [1.3, 0.7, 1.2]])
def test_binomial_spread(tiny_sims: dict[str, Simulator], theta: list[float]) -> None:
    sim = tiny_sims["table"]
    n_sims = 4000
    x = sim.simulate(np.tile(theta, (n_sims, 1)), seed=11)
    p = sim.expected([theta])[0]
    n = sim.n_sample.astype(np.float64)
    # x * n ~ Binomial(n, p): mean p, variance p (1 - p) / n
    var = p * (1 - p) / n
    se_mean = np.sqrt(var / n_sims)
    assert np.all(np.abs(x.mean(axis=0) - p) <= 4.5 * se_mean + 1e-12)
    # standard error of the sample variance from the binomial fourth central moment
    mu4 = p * (1 - p) * (1 + 3 * (n - 2) * p * (1 - p)) / n**3
    se_var = np.sqrt(np.maximum(mu4 - var**2 * (n_sims - 3) / (n_sims - 1), 0) / n_sims)
    assert np.all(np.abs(x.var(axis=0, ddof=1) - var) <= 4.5 * se_var + 1e-12)
    # values are multiples of 1/n
    np.testing.assert_allclose(x * n, np.round(x * n), atol=1e-9)


def test_table_and_factored_forms_give_identical_x(tiny_sims: dict[str, Simulator]) -> None:
    theta = np.random.default_rng(0).normal(1.0, 0.2, (300, 3))
    a = tiny_sims["table"].simulate(theta, seed=5, start_index=17)
    b = tiny_sims["factored"].simulate(theta, seed=5, start_index=17)
    np.testing.assert_array_equal(a, b)


def test_batch_split_determinism(tiny_sims: dict[str, Simulator]) -> None:
    sim = tiny_sims["table"]
    theta = np.random.default_rng(1).normal(1.0, 0.2, (1000, 3))
    whole = sim.simulate(theta, seed=123)
    parts = np.concatenate(
        [sim.simulate(theta[k : k + 100], seed=123, start_index=k) for k in range(0, 1000, 100)]
    )
    np.testing.assert_array_equal(whole, parts)
    assert not np.array_equal(whole, sim.simulate(theta, seed=124))
    np.testing.assert_array_equal(sim(theta[:50], 123), whole[:50])
    np.testing.assert_array_equal(
        sim(theta[:50], np.random.default_rng(4)), sim(theta[:50], np.random.default_rng(4))
    )
    import torch

    f = sim.to_sbi(seed=123)
    got = torch.cat([f(torch.as_tensor(theta[:300])), f(torch.as_tensor(theta[300:1000]))])
    np.testing.assert_allclose(got.numpy(), whole.astype(np.float32))


def test_invalid_theta_gives_nan_rows(tiny_model: Any, tiny_sims: dict[str, Simulator]) -> None:
    sim = tiny_sims["table"]
    theta = np.array([[1.0, 1.0, 1.0], [np.nan, 1.0, 1.0], [1.0, np.inf, 1.0], [0.8, 1.2, 1.1]])
    before = sim.n_invalid
    x = sim.simulate(theta, seed=3)
    assert np.all(np.isnan(x[1:3])) and np.all(np.isfinite(x[[0, 3]]))
    assert sim.n_invalid == before + 2
    np.testing.assert_array_equal(x[3], sim.simulate(theta[3], seed=3, start_index=3)[0])
    assert np.all(np.isnan(sim.expected(theta)[1:3]))
    lin = Simulator(sim.source, "dso_linear", MSET)
    x = lin.simulate([[1.0, 1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], seed=0)
    assert np.isfinite(x[0]).all() and np.isnan(x[1:]).all() and lin.n_invalid == 2
    with pytest.raises(ShapeMismatchError, match="3 parameter"):
        sim.simulate(np.ones((2, 2)), seed=0)
    with pytest.raises(InvalidParameterError, match="non-negative"):
        sim.simulate(np.ones((2, 3)), seed=-1)


class _SlowDSO:
    """DSO through its rate only (no known log-linear form): exercises the generic path."""

    name: ClassVar[str] = "slow_dso"
    params: ClassVar[tuple[ParamSpec, ...]] = DSO.params
    level: ClassVar[str] = "voxel"
    features: ClassVar[tuple[str, ...]] = DSO.features
    synapses: ClassVar[str] = "poisson"

    def rate(self, features: Mapping[str, Any], theta: Sequence[Any]) -> Any:
        return DSO().rate(features, theta)


def test_generic_path_matches_compiled_kernel(tiny_sims: dict[str, Simulator]) -> None:
    fast = tiny_sims["table"]
    slow = Simulator(fast.source, _SlowDSO(), MSET)  # type: ignore[arg-type]
    assert fast.uses_compiled_kernel and not slow.uses_compiled_kernel
    theta = np.random.default_rng(2).normal(1.0, 0.2, (200, 3))
    a, b = fast.simulate(theta, seed=9), slow.simulate(theta, seed=9)
    assert np.mean(a == b) > 0.999
    np.testing.assert_allclose(slow.expected(theta[:3]), fast.expected(theta[:3]), rtol=1e-9)
    slow_f = Simulator(tiny_sims["factored"].source, _SlowDSO(), MSET)  # type: ignore[arg-type]
    assert np.mean(slow_f.simulate(theta, seed=9) == a) > 0.999


def _toy_tables() -> list[PairTable]:
    """Two measurements: one of pairs that share nothing, one mixed."""
    empty = PairTable(
        pre=np.arange(4), post=np.arange(4, 8), indptr=np.zeros(5, np.int64),
        voxel=np.zeros(0, np.int32),
        rows={k: np.zeros(0, np.float32)
              for k in ("log_pre", "log_post", "log_post_all", "depth_um")},
    )
    mixed = PairTable(
        pre=np.array([0, 1]), post=np.array([5, 6]), indptr=np.array([0, 0, 2]),
        voxel=np.array([3, 4], np.int32),
        rows={"log_pre": np.log([2.0, 3.0]).astype(np.float32),
              "log_post": np.log([5.0, 1.0]).astype(np.float32),
              "log_post_all": np.log([10.0, 4.0]).astype(np.float32),
              "depth_um": np.array([100.0, 150.0], np.float32)},
    )
    return [empty, mixed]


def test_pairs_without_overlap_never_connect() -> None:
    mset = MSET.subset(["L4", "L6"])
    for rule, theta in (("dso", [[8.0, 8.0, -5.0]]), ("peters_synapse", [[1.0]]),
                        ("peters_neuron", [[0.0]]), ("dso_linear", [[50.0, 50.0, 1e-3]])):
        sim = Simulator(_toy_tables(), rule, mset, n_pairs=200, replace=True)
        x = sim.simulate(np.repeat(theta, 50, axis=0), seed=0)
        assert np.all(x[:, 0] == 0.0), rule
        # in the mixed measurement exactly the overlapping half connects (rates are huge)
        assert abs(x[:, 1].mean() - 0.5) < 0.05, rule
        np.testing.assert_allclose(sim.expected(theta)[0], [0.0, 0.5], atol=1e-12)


def test_expected_on_toy_table_closed_form() -> None:
    sim = Simulator(_toy_tables(), "dso", MSET.subset(["L4", "L6"]), n_pairs=[3, 4],
                    replace=True)
    lam = 2 * 5 / 10 + 3 * 1 / 4
    np.testing.assert_allclose(sim.expected([[1.0, 1.0, 1.0]])[0], [0.0, 0.5 * -np.expm1(-lam)])
    assert list(sim.n_sample) == [3, 4]


def test_bad_arguments(tiny_model: Any, tiny_sims: dict[str, Simulator]) -> None:
    src = tiny_sims["table"].source
    with pytest.raises(InvalidParameterError, match="n_pairs"):
        Simulator(src, "dso", MSET, n_pairs="all")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="positive"):
        Simulator(src, "dso", MSET, n_pairs=0)
    with pytest.raises(ShapeMismatchError, match="one per measurement"):
        Simulator(src, "dso", MSET, n_pairs=[1, 2])
    with pytest.raises(ShapeMismatchError, match="measurement set of 2"):
        Simulator(src, "dso", MSET.subset(["L4", "L6"]))
    with pytest.raises(InvalidParameterError, match="representation"):
        Simulator(tiny_model, "dso", MSET, representation="dense")  # type: ignore[arg-type]
    empty = FeatureBundle.from_tables(["a"], [_toy_tables()[0]])
    sub = MSET.subset(["L4"])
    sim = Simulator(empty, "dso", sub, replace=True)
    assert np.all(sim.simulate(np.ones((3, 3)), seed=0) == 0)
    with pytest.raises(MeasurementError, match="no eligible pair"):
        Simulator(FeatureBundle.from_tables(["a"], [_toy_tables()[0].__class__(
            pre=np.zeros(0, np.int64), post=np.zeros(0, np.int64),
            indptr=np.zeros(1, np.int64), voxel=np.zeros(0, np.int32), rows={})]), "dso", sub)


def test_random_streams_are_uniform_and_independent() -> None:
    keys = kern.stream_keys(7, 0, 2000)
    u = kern.uniforms(keys, 50)
    assert u.min() > 0 and u.max() <= 1
    # mean and variance of U(0, 1), and no correlation between neighbouring streams/draws
    assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / u.size)
    assert abs(u.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 4 / np.sqrt(2000)
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 4 / np.sqrt(2000)
    np.testing.assert_array_equal(kern.stream_keys(7, 10, 5), keys[10:15])


def test_provenance_and_repr(tiny_sims: dict[str, Simulator]) -> None:
    sim = tiny_sims["table"]
    prov = sim.provenance()
    assert prov["measurements"] == list(MSET.names) and prov["rule"]["name"] == "dso"
    assert prov["measurement_set_hash"] == MSET.content_hash()
    assert sim.names == MSET.names
    np.testing.assert_array_equal(sim.x_o, MSET.x_o)
    assert "dso" in repr(sim)


def test_pickle_round_trip_gives_same_x(tiny_sims: dict[str, Simulator]) -> None:
    import pickle

    theta = np.random.default_rng(3).normal(1.0, 0.2, (50, 3))
    for sim in tiny_sims.values():
        if hasattr(sim.source, "tables"):
            sim.source.tables()  # cached views must not travel
        clone = pickle.loads(pickle.dumps(sim))
        np.testing.assert_array_equal(clone.simulate(theta, seed=8), sim.simulate(theta, seed=8))


def test_factored_form_for_large_tables(tiny_model: Any) -> None:
    sim = Simulator(tiny_model, "dso", MSET, max_table_bytes=1000)
    assert sim.representation == "factored"
    ref = Simulator(tiny_model, "dso", MSET)
    assert ref.representation == "table"
    theta = [[1.0, 1.0, 1.0], [0.7, 1.3, 0.9]]
    np.testing.assert_allclose(sim.expected(theta), ref.expected(theta), rtol=1e-9)


def test_feature_table_folder_agrees_with_rows(tmp_path: Any, tiny_model: Any) -> None:
    """Import a folder in the research code's feature-table format and compare the simulator
    with a computation straight from the table rows and masks."""
    from anatomy.io.consbi import import_feature_tables, write_feature_tables
    from anatomy.model import NeuronPopulation
    from wiring.measurements import measurement_set_from_model

    ct = tiny_model.neurons.cell_type_names
    vpm = np.flatnonzero(ct == "VPM")[:6]
    pops = {"A": NeuronPopulation(pre=vpm, post=np.flatnonzero(ct == "L4ss")[:9]),
            "B": NeuronPopulation(pre=vpm, post=np.flatnonzero(ct == "L5PT")[:7])}
    recs = [{"ID": k, "type": "connection_probability_invivo", "cp_empirical": 30,
             "samples": 25, "authors": "A. Author", "year": 2000, "DOI": "10.1000/182"}
            for k in pops]
    folder = write_feature_tables(tiny_model, tmp_path / "tables", populations=pops, records=recs)
    model = import_feature_tables(folder)
    mset = measurement_set_from_model(model)
    ints = np.loadtxt(next((folder / "features").glob("*_int.tsv")), dtype=np.int64, ndmin=2)
    floats = np.loadtxt(next((folder / "features").glob("*_float.tsv")), ndmin=2)
    theta = np.array([[1.0, 1.0, 1.0], [0.6, 1.4, 0.9]])
    want = np.zeros((len(theta), len(mset.names)))
    for m, name in enumerate(mset.names):
        mask = np.loadtxt(folder / "masks" / f"mask_set-3_{name}.txt", dtype=np.int64)
        rows_i, rows_f = ints[mask], floats[mask]
        pre_ids, post_ids = np.unique(rows_i[:, 1]), np.unique(rows_i[:, 2])
        real = rows_i[:, 3] >= 0
        for b, (a, q, c) in enumerate(theta):
            lam: dict[tuple[int, int], float] = {}
            for (i, j), (fp, fq, fa) in zip(rows_i[real][:, 1:3], rows_f[real][:, :3],
                                            strict=True):
                lam[(i, j)] = lam.get((i, j), 0.0) + fp**a * fq**q / fa**c
            p = [1 - np.exp(-lam.get((i, j), 0.0)) for i in pre_ids for j in post_ids]
            want[b, m] = np.mean(p)
    sim = Simulator(model, "dso", mset)
    np.testing.assert_allclose(sim.expected(theta), want, rtol=1e-5)
    x = sim.simulate(np.tile(theta[1], (3000, 1)), seed=4)
    se = np.sqrt(want[1] * (1 - want[1]) / (sim.n_sample * 3000))
    assert np.all(np.abs(x.mean(axis=0) - want[1]) < 4.5 * se)


def test_fast_exponential_accuracy() -> None:
    x = np.concatenate([np.linspace(-707.0, 709.0, 200_001), [-np.inf, -800.0, 710.0, np.inf]])
    out = np.empty_like(x)
    kern.kernels("table", 0)  # compiles the shared helpers
    kern._base()["fexp_array"](x, out)
    ref = np.exp(x[:-4])
    np.testing.assert_allclose(out[:-4], ref, rtol=1e-11, atol=0)
    assert out[-4] == 0.0 and out[-3] == 0.0 and np.isinf(out[-2]) and np.isinf(out[-1])
