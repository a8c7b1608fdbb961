"""Kernels of the connectome engine: factors, the sparse product, pair tables, block plans."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from wiring.connectome import dso as dso_module
from wiring.connectome._engine import plan_blocks
from wiring.connectome.dso import (
    SupportsFactors,
    dso_factors,
    dso_linear_factors,
    expected_row_synapses,
    factorized_block,
    factorized_draw_block,
    kernel_arrays,
    pair_table_block,
    products_per_row,
    rule_factors,
)
from wiring.errors import InvalidParameterError
from wiring.pairs import PairTable, pair_rate
from wiring.rules.draw import keyed_uniforms, poisson_quantile
from wiring.rules.dso import DSO
from wiring.rules.dso_linear import DSOLinear
from wiring.rules.peters_neuron import PetersNeuron
from wiring.rules.peters_synapse import PetersSynapse


class FactorDSO(DSO):
    """``dso`` with the factorized capability (the way a rule opts in)."""

    def factors(self, theta):
        return dso_factors(theta)


def _random_counts(n: int, v: int, density: float, seed: int) -> sp.csr_array:
    rng = np.random.default_rng(seed)
    mask = rng.random((n, v)) < density
    vals = rng.integers(1, 20, size=(n, v)).astype(np.float64)
    return sp.csr_array(np.where(mask, vals, 0.0))


@pytest.fixture(scope="module")
def toy() -> dict[str, object]:
    """Dense toy counts: 6 pre, 5 post neurons (model indices overlap), 30 voxels."""
    pre = _random_counts(6, 30, 0.3, 1)
    post = _random_counts(5, 30, 0.4, 2)
    post_all = (np.asarray(post.sum(axis=0)).ravel() + np.random.default_rng(3).integers(
        1, 50, 30)).astype(np.float64)
    return {
        "pre": pre,
        "post": post,
        "post_all": post_all,
        "pre_ids": np.arange(6, dtype=np.int64),
        "post_ids": np.array([2, 3, 6, 7, 8], dtype=np.int64),  # 2, 3 are also pre neurons
        "depth": np.linspace(0, 1500, 30),
        "soma": np.random.default_rng(4).random((9, 3)) * 500,
    }


def _dense_lambda(pre, post, post_all, theta):
    """Triple loop over pre, post and voxel (independent reference)."""
    a, b, c = theta
    pre, post = pre.toarray(), post.toarray()
    out = np.zeros((post.shape[0], pre.shape[0]))
    for j in range(post.shape[0]):
        for i in range(pre.shape[0]):
            for k in range(pre.shape[1]):
                if pre[i, k] > 0 and post[j, k] > 0:
                    out[j, i] += pre[i, k] ** a * post[j, k] ** b / post_all[k] ** c
    return out


@pytest.mark.parametrize("theta", [(1.0, 1.0, 1.0), (0.3, 0.4, 1.9), (2.0, 0.0, 0.5)])
def test_factors_match_the_rule_rates(theta: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(0)
    pre, post, allv = rng.integers(1, 30, (3, 50)).astype(np.float64)
    allv = allv + pre + post
    feats = {"log_pre": np.log(pre), "log_post": np.log(post), "log_post_all": np.log(allv)}
    cols = [np.array([[t]]) for t in theta]
    for rule, fac in ((DSO(), dso_factors(theta)), (DSOLinear(), dso_linear_factors(theta))):
        if isinstance(rule, DSOLinear) and theta[2] == 0.0:
            continue
        expect = rule.rate(feats, cols)[0]
        got = fac.pre(pre) * fac.post(post) * fac.voxel(allv)
        np.testing.assert_allclose(got, expect, rtol=1e-12)


def test_rule_factors_needs_the_capability() -> None:
    assert isinstance(FactorDSO(), SupportsFactors)
    assert rule_factors(FactorDSO(), [1.0, 1.0, 1.0]) is not None
    assert rule_factors(PetersSynapse(), [0.5]) is None
    if not isinstance(DSO(), SupportsFactors):
        assert rule_factors(DSO(), [1.0, 1.0, 1.0]) is None


@pytest.mark.parametrize("theta", [(1.0, 1.0, 1.0), (0.2, 0.3, 1.8), (1.5, 0.5, 0.0)])
def test_factorized_block_equals_triple_loop(toy, theta) -> None:
    f = dso_factors(theta)
    a = sp.csc_array(toy["pre"])
    a_t = sp.csr_array((f.pre(a.data), a.indices, a.indptr), shape=(30, 6))
    lam = factorized_block(a_t, toy["post"], toy["post_all"], f)
    ref = _dense_lambda(toy["pre"], toy["post"], toy["post_all"], theta)
    np.testing.assert_allclose(lam.toarray(), ref, rtol=1e-12)
    overlap = (toy["post"].toarray() > 0).astype(int) @ (toy["pre"].toarray() > 0).T.astype(int)
    # no overlap, no synapse: even for theta_pre + theta_post < theta_postall
    assert np.all(lam.toarray()[overlap == 0] == 0)


def _draw_block(toy, theta, *, seed=5, autapses=False):
    f = dso_factors(theta)
    a = sp.csc_array(toy["pre"])
    a_t = sp.csr_array((f.pre(a.data), a.indices, a.indptr), shape=(30, 6))
    return factorized_draw_block(
        kernel_arrays(a_t), 6, toy["post"], toy["post_all"], f, pre_ids=toy["pre_ids"],
        post_ids=toy["post_ids"], seed=seed, autapses=autapses, rule_name="dso", theta=theta,
    )


@pytest.mark.parametrize("theta", [(1.0, 1.0, 1.0), (3.0, 3.0, 1.0), (0.2, 0.3, 1.8)])
@pytest.mark.parametrize("autapses", [False, True])
@pytest.mark.parametrize("capacity", [1 << 20, 1])
def test_fused_draw_equals_the_keyed_numpy_draw(toy, theta, autapses, capacity, monkeypatch) -> None:
    """The compiled block draws exactly what keyed_uniforms + poisson_quantile draw."""
    monkeypatch.setattr(dso_module, "_INITIAL_CAPACITY", capacity)  # buffers must grow
    out = _draw_block(toy, theta, autapses=autapses)
    ref = _dense_lambda(toy["pre"], toy["post"], toy["post_all"], theta)
    pre_m = np.broadcast_to(toy["pre_ids"], ref.shape)
    post_m = np.broadcast_to(toy["post_ids"][:, None], ref.shape)
    if not autapses:
        ref[pre_m == post_m] = 0.0
    np.testing.assert_allclose(out.expected.toarray(), ref, rtol=1e-6)
    assert out.expected.dtype == np.float32 and out.synapses.dtype == np.int32
    nz = ref > 0
    counts = np.zeros(ref.shape, dtype=np.int64)
    lam = out.expected.toarray().astype(np.float64)
    lam64 = factorized_block(
        sp.csr_array((dso_factors(theta).pre(sp.csc_array(toy["pre"]).data),
                      sp.csc_array(toy["pre"]).indices, sp.csc_array(toy["pre"]).indptr),
                     shape=(30, 6)),
        toy["post"], toy["post_all"], dso_factors(theta)).toarray()
    counts[nz] = poisson_quantile(keyed_uniforms(5, pre_m[nz], post_m[nz]), lam64[nz])
    np.testing.assert_array_equal(out.synapses.toarray(), counts)
    assert np.all(out.synapses.data > 0)
    if theta == (3.0, 3.0, 1.0):  # means far above the compiled search: scipy finishes them
        assert lam.max() > 64
    assert out.expected.has_sorted_indices and out.synapses.has_sorted_indices


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_fused_draw_refuses_overflowing_means(toy) -> None:
    with pytest.raises(InvalidParameterError, match=r"expected synapse count of inf for pair"):
        _draw_block(toy, (400.0, 400.0, 0.0))


def test_pair_table_block_rows_and_rates(toy) -> None:
    a = sp.csc_array(toy["pre"])
    a_t = sp.csr_array((a.data, a.indices, a.indptr), shape=(30, 6))
    table = pair_table_block(
        a_t, toy["post"], pre_ids=toy["pre_ids"], post_ids=toy["post_ids"],
        post_all=toy["post_all"], depth_um=toy["depth"], soma_um=toy["soma"],
    )
    pre_d, post_d = toy["pre"].toarray(), toy["post"].toarray()
    overlap = (post_d > 0).astype(int) @ (pre_d > 0).T.astype(int)
    expect_pairs = {
        (int(toy["pre_ids"][i]), int(toy["post_ids"][j]))
        for j, i in zip(*np.nonzero(overlap), strict=True)
        if toy["pre_ids"][i] != toy["post_ids"][j]
    }
    assert set(zip(table.pre.tolist(), table.post.tolist(), strict=True)) == expect_pairs
    # ordered by (post, pre); rows by voxel; features are the counts of that voxel
    key = table.post * 100 + table.pre
    assert np.all(np.diff(key) > 0)
    for p in range(table.n_pairs):
        rows = slice(table.indptr[p], table.indptr[p + 1])
        i = int(np.flatnonzero(toy["pre_ids"] == table.pre[p])[0])
        j = int(np.flatnonzero(toy["post_ids"] == table.post[p])[0])
        vox = np.flatnonzero((pre_d[i] > 0) & (post_d[j] > 0))
        np.testing.assert_array_equal(table.voxel[rows], vox)
        np.testing.assert_allclose(np.exp(table.rows["log_pre"][rows]), pre_d[i, vox], rtol=1e-6)
        np.testing.assert_allclose(np.exp(table.rows["log_post"][rows]), post_d[j, vox], rtol=1e-6)
        dist = np.linalg.norm(toy["soma"][table.pre[p]] - toy["soma"][table.post[p]])
        assert table.pair_features["soma_distance_um"][p] == pytest.approx(dist)
    # the generic and the factorized path agree
    theta = (0.7, 1.2, 0.9)
    lam_pairs = pair_rate(DSO(), table, theta)[0]
    ref = _dense_lambda(toy["pre"], toy["post"], toy["post_all"], theta)
    for p in range(table.n_pairs):
        i = int(np.flatnonzero(toy["pre_ids"] == table.pre[p])[0])
        j = int(np.flatnonzero(toy["post_ids"] == table.post[p])[0])
        assert lam_pairs[p] == pytest.approx(ref[j, i], rel=1e-5)


def test_pair_table_block_keeps_autapses_on_request(toy) -> None:
    a = sp.csc_array(toy["pre"])
    a_t = sp.csr_array((a.data, a.indices, a.indptr), shape=(30, 6))
    kw = dict(pre_ids=toy["pre_ids"], post_ids=toy["post_ids"], post_all=toy["post_all"],
              depth_um=toy["depth"], soma_um=toy["soma"])
    without = pair_table_block(a_t, toy["post"], **kw)
    with_self = pair_table_block(a_t, toy["post"], autapses=True, **kw)
    assert not np.any(without.pre == without.post)
    assert np.any(with_self.pre == with_self.post)


def test_products_per_row_counts_pair_voxel_products(toy) -> None:
    n_pre = np.asarray((toy["pre"] > 0).sum(axis=0)).ravel()
    got = products_per_row(toy["post"], n_pre)
    dense = (toy["post"].toarray() > 0).astype(int) @ n_pre
    np.testing.assert_array_equal(got, dense)


def test_expected_row_synapses_per_synapse_model() -> None:
    table = PairTable(
        pre=np.array([0, 1]), post=np.array([2, 2]), indptr=np.array([0, 2, 3]),
        voxel=np.array([4, 5, 4], dtype=np.int32),
        rows={"log_pre": np.zeros(3, np.float32), "log_post": np.zeros(3, np.float32),
              "log_post_all": np.zeros(3, np.float32), "depth_um": np.zeros(3, np.float32)},
    )
    lam, rows = expected_row_synapses(PetersSynapse(), table, [0.5])
    np.testing.assert_allclose(rows, 0.5)  # binomial: 1 - exp(-rate) = theta per voxel
    np.testing.assert_allclose(lam, [2 * np.log(2), np.log(2)])
    lam, rows = expected_row_synapses(PetersNeuron(), table, [2.0])
    np.testing.assert_array_equal(rows, [1.0, 1.0, 0.0])  # connected pair: a synapse per voxel
    lam, rows = expected_row_synapses(DSO(), table, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(rows, 1.0)
    np.testing.assert_allclose(lam, [2.0, 1.0])


def test_plan_blocks_cover_every_neuron_once() -> None:
    rng = np.random.default_rng(5)
    products = rng.integers(0, 1000, 97)
    for kwargs in ({"target": 5000}, {"target": 10**9, "min_blocks": 8}, {"target": 1,
                                                                          "block_size": 10}):
        blocks = plan_blocks(products, **kwargs)
        assert blocks[0][0] == 0 and blocks[-1][1] == 97
        assert all(a < z for a, z in blocks)
        assert all(z == a2 for (_, z), (a2, _) in itertools.pairwise(blocks))
    assert len(plan_blocks(products, target=10**9, min_blocks=8)) == 8
    sizes = [int(products[a:z].sum()) for a, z in plan_blocks(products, target=5000)]
    assert max(sizes) <= 5000 + products.max()
    assert plan_blocks(np.zeros(0, np.int64), target=10) == []
