"""Predicted connectivity per cell-type pair on the tiny model: exact values against a dense
independent computation, credible intervals, measured-pair flags, table and heatmap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anatomy.catalogue import CELL_TYPES
from wiring.analysis import predict_connectivity
from wiring.errors import InvalidParameterError, SelectionError


def _dense_probability(model: Any, pre_type: str, post_type: str, theta: np.ndarray) -> float:
    """Mean over all pairs (pre != post) of 1 - exp(-sum_v pre^a post^b / postAll^c)."""
    pre = model.pre.load().toarray().astype(np.float64)
    post = model.post.load().toarray().astype(np.float64)
    pall = np.asarray(model.post_all, dtype=np.float64)
    a, b, c = theta
    with np.errstate(divide="ignore"):
        norm = np.where(pall > 0, pall ** (-c), 0.0)
    codes = np.asarray(model.neurons.cell_type)
    i = np.flatnonzero(codes == CELL_TYPES.index(pre_type))
    j = np.flatnonzero(codes == CELL_TYPES.index(post_type))
    lam = (pre[i] ** a * (pre[i] > 0)) @ ((post[j] ** b * (post[j] > 0)) * norm).T
    p = -np.expm1(-lam)
    mask = i[:, None] != j[None, :]
    return float(p[mask].mean())


def test_exact_against_dense_computation(tiny_model: Any) -> None:
    theta = np.array([[1.0, 1.0, 1.0], [0.9, 1.1, 0.8]])
    pre_types, post_types = ("VPM", "L4ss"), ("L4ss", "L5PT")
    res = predict_connectivity(None, tiny_model, "dso", None, theta=theta, pre_types=pre_types,
                               post_types=post_types, max_pairs=10**9, plot=False)
    assert res.samples.shape == (2, 2, 2)
    for a, pa in enumerate(pre_types):
        for b, pb in enumerate(post_types):
            for k in range(2):
                assert res.samples[k, a, b] == pytest.approx(
                    _dense_probability(tiny_model, pa, pb, theta[k]), rel=1e-4, abs=1e-7)
    # every eligible pair was used: all pre x post minus the self pairs of L4ss -> L4ss
    n = {t: int(np.sum(np.asarray(tiny_model.neurons.cell_type) == CELL_TYPES.index(t)))
         for t in ("VPM", "L4ss", "L5PT")}
    assert res.n_pairs_used[1, 0] == n["L4ss"] * (n["L4ss"] - 1) == res.n_pairs_total[1, 0]
    assert res.n_pairs_used[0, 1] == n["VPM"] * n["L5PT"]


def test_subsampling_and_intervals(tiny_model: Any) -> None:
    rng = np.random.default_rng(0)
    theta = 1.0 + 0.1 * rng.standard_normal((12, 3))
    res = predict_connectivity(None, tiny_model, "dso", None, theta=theta, max_pairs=150,
                               seed=3, plot=False)
    assert "VPM" in res.pre_types and "VPM" not in res.post_types
    assert np.all(res.n_pairs_used <= 150)
    ok = np.isfinite(res.median)
    assert ok.all()
    assert np.all(res.ci_low[ok] <= res.median[ok]) and np.all(res.median[ok] <= res.ci_high[ok])
    assert np.all((res.samples >= 0) & (res.samples <= 1))
    again = predict_connectivity(None, tiny_model, "dso", None, theta=theta, max_pairs=150,
                                 seed=3, plot=False)
    np.testing.assert_array_equal(res.samples, again.samples)  # seeded pair subsample
    # subsample error: at most 0.5 / sqrt(150) ~ 0.04 away from the exact value
    exact = predict_connectivity(None, tiny_model, "dso", None, theta=theta[:1],
                                 pre_types=["VPM"], post_types=["L4ss"], max_pairs=10**9,
                                 plot=False)
    a, b = res.pre_types.index("VPM"), res.post_types.index("L4ss")
    assert abs(res.samples[0, a, b] - exact.samples[0, 0, 0]) < 0.12


def test_posterior_samples_measured_flags_and_outputs(tiny_model: Any, tmp_path: Path) -> None:
    from wiring.measurements import load_measurement_set

    class Post:
        def sample(self, n: int, x_o: Any, *, seed: int) -> np.ndarray:
            return 1.0 + 0.05 * np.random.default_rng(seed).standard_normal((n, 3))

        def log_prob(self, theta: Any, x_o: Any) -> Any:
            raise AssertionError("predictions only sample the posterior")

    mset = load_measurement_set("vpm-invivo")
    res = predict_connectivity(Post(), tiny_model, "dso", mset.x_o, n_samples=30,
                               pre_types=["VPM", "L4ss", "INH"],
                               post_types=["L4ss", "L5PT", "INH"], max_pairs=100,
                               measurement_set=mset)
    assert res.n_theta == 30
    assert res.covered[0].any() and not res.covered[2].any()  # VPM is measured, INH -> * is not
    rows = res.table()
    assert len(rows) == 9 and rows[0]["pre_type"] == "VPM"
    assert all(r["measurements"] for r in rows if r["measured"])
    json.dumps(res.to_dict(), allow_nan=False)
    text = res.to_csv(tmp_path / "pred.csv")
    assert text.splitlines()[0].startswith("pre_type,post_type,mean,median,ci_low,ci_high")
    assert (tmp_path / "pred.csv").read_text() == text
    assert res.figure is not None
    ax = res.figure.axes[0]
    assert ax.get_xlabel() == "postsynaptic cell type"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["VPM", "L4ss", "INH"]
    assert len(ax.patches) == int(res.covered.sum())  # measured pairs are outlined


def test_out_of_domain_samples_dropped(tiny_model: Any) -> None:
    theta = np.array([[1.0, 1.0, 1.0], [np.nan, 1.0, 1.0]])
    res = predict_connectivity(None, tiny_model, "dso", None, theta=theta, pre_types=["VPM"],
                               post_types=["L4ss"], plot=False)
    assert res.n_dropped == 1 and res.n_theta == 1


def test_bad_input(tiny_model: Any) -> None:
    theta = np.ones((2, 3))
    with pytest.raises(SelectionError, match="L9XX"):
        predict_connectivity(None, tiny_model, "dso", None, theta=theta, pre_types=["L9XX"])
    with pytest.raises(InvalidParameterError, match="max_pairs"):
        predict_connectivity(None, tiny_model, "dso", None, theta=theta, max_pairs=0)
    with pytest.raises(InvalidParameterError, match="posterior and x_o"):
        predict_connectivity(None, tiny_model, "dso", None)


@pytest.mark.parametrize("rule_name", ["dso", "peters_neuron", "peters_synapse"])
def test_matches_numpy_reference(tiny_model: Any, rule_name: str) -> None:
    """The simulator-backed prediction equals the plain-numpy mean of 1 - exp(-lambda) over the
    same pairs (for pair-level rules, pairs without a shared voxel never connect)."""
    from wiring.analysis import connection_probability
    from wiring.analysis.predictions import _PairTableBuilder
    from wiring.rules.registry import get_rule

    rule = get_rule(rule_name)
    rng = np.random.default_rng(2)
    lo = np.array([p.low for p in rule.params])
    hi = np.array([p.high for p in rule.params])
    theta = lo + (hi - lo) * (0.3 + 0.4 * rng.random((4, len(rule.params))))
    posts = ("L4ss", "L2PY")
    res = predict_connectivity(None, tiny_model, rule, None, theta=theta, pre_types=["VPM"],
                               post_types=posts, max_pairs=10**9, plot=False)
    codes = np.asarray(tiny_model.neurons.cell_type)
    builder = _PairTableBuilder(tiny_model)
    i_all = np.flatnonzero(codes == CELL_TYPES.index("VPM"))
    n_isolated = 0
    for b, post in enumerate(posts):
        j_all = np.flatnonzero(codes == CELL_TYPES.index(post))
        table = builder.table(np.repeat(i_all, len(j_all)), np.tile(j_all, len(i_all)))
        assert res.n_pairs_used[0, b] == table.n_pairs
        np.testing.assert_allclose(res.samples[:, 0, b],
                                   connection_probability(rule, table, theta), rtol=1e-4)
        # pairs sharing no voxel never connect, whatever the rule
        none = table.pair_features["n_shared"] == 0
        n_isolated += int(none.sum())
        if none.any():
            iso = builder.table(table.pre[none], table.post[none])
            assert iso.n_rows == 0
            assert np.all(connection_probability(rule, iso, theta) == 0)
    assert n_isolated > 0  # the check above ran


def test_shared_voxel_rows_match_the_sparse_product(tiny_model: Any) -> None:
    """The compiled merge gives exactly the rows of the element-wise product of the selected
    pre and post rows (the previous implementation)."""
    from wiring.analysis.predictions import _PairTableBuilder

    builder = _PairTableBuilder(tiny_model)
    rng = np.random.default_rng(0)
    n = tiny_model.n_neurons
    i, j = rng.integers(0, n, 500), rng.integers(0, n, 500)
    table = builder.table(i, j)
    a, b = builder.pre[i], builder.post[j]
    pre_v = a.multiply(b.sign()).tocsr()
    post_v = b.multiply(a.sign()).tocsr()
    for mat in (pre_v, post_v):
        mat.eliminate_zeros()
        mat.sort_indices()
    assert table.n_rows == pre_v.nnz > 0
    np.testing.assert_array_equal(table.indptr, pre_v.indptr)
    np.testing.assert_array_equal(table.voxel, pre_v.indices)
    np.testing.assert_array_equal(table.rows["log_pre"],
                                  np.log(pre_v.data.astype(np.float64)).astype(np.float32))
    np.testing.assert_array_equal(table.rows["log_post"],
                                  np.log(post_v.data.astype(np.float64)).astype(np.float32))


def test_same_numbers_for_any_number_of_threads(tiny_model: Any) -> None:
    theta = np.random.default_rng(1).normal(1.0, 0.1, (9, 3))
    one = predict_connectivity(None, tiny_model, "dso", None, theta=theta, plot=False,
                               workers=1, max_pairs=300)
    two = predict_connectivity(None, tiny_model, "dso", None, theta=theta, plot=False,
                               workers=2, max_pairs=300)
    np.testing.assert_array_equal(one.samples, two.samples)
