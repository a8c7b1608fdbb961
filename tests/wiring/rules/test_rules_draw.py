"""Synapse draws: distributions per synapse model, keyed streams, inverse CDF, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from wiring.errors import InvalidParameterError, ShapeMismatchError
from wiring.pairs import PairTable, pair_rate
from wiring.rules.draw import draw_synapse_counts, keyed_uniforms, poisson_quantile
from wiring.rules.registry import get_rule
from wiring.testing import make_pair_table, take_pairs


def _identical_pairs(n_pairs: int, n_shared: int, log_pre: float = 0.0) -> PairTable:
    """n_pairs distinct (pre, post) pairs with identical rows: every pair has the same rate."""
    r = n_pairs * n_shared
    return PairTable(
        pre=np.arange(n_pairs, dtype=np.int64),
        post=np.arange(n_pairs, dtype=np.int64) + 7,
        indptr=np.arange(0, r + 1, n_shared, dtype=np.int64),
        voxel=np.tile(np.arange(n_shared, dtype=np.int32), n_pairs),
        rows={
            "log_pre": np.full(r, log_pre),
            "log_post": np.full(r, np.log(3.0)),
            "log_post_all": np.full(r, np.log(12.0)),
            "depth_um": np.zeros(r),
        },
    )


N = 20_000


@pytest.mark.parametrize("how", ["rng", "key"])
def test_poisson_counts_have_mean_and_variance_lambda(how: str) -> None:
    # 4 voxels of pre=2 (log 2), post=3, postAll=12: lambda = 4 * 0.5 = 2
    table = _identical_pairs(N, 4, log_pre=np.log(2.0))
    lam = pair_rate(get_rule("dso"), table, [1, 1, 1])[0]
    np.testing.assert_allclose(lam, 2.0)
    kw = {"rng": 11} if how == "rng" else {"key": 11}
    c = draw_synapse_counts(get_rule("dso"), table, [1, 1, 1], **kw)  # type: ignore[arg-type]
    se_mean = np.sqrt(2.0 / N)
    assert abs(c.mean() - 2.0) < 5 * se_mean
    se_var = np.sqrt((2.0 + 2 * 2.0**2) / N)  # var of the sample variance of Poisson(2)
    assert abs(c.var(ddof=1) - 2.0) < 5 * se_var
    # the whole distribution, not just two moments: chi-square on k = 0..6+
    obs = np.bincount(np.minimum(c, 6), minlength=7)
    probs = stats.poisson.pmf(np.arange(6), 2.0)
    probs = np.append(probs, 1 - probs.sum())
    assert stats.chisquare(obs, probs * N).pvalue > 1e-4


@pytest.mark.parametrize("how", ["rng", "key"])
def test_binomial_counts_per_voxel(how: str) -> None:
    theta, n = 0.3, 5
    table = _identical_pairs(N, n)
    kw = {"rng": 5} if how == "rng" else {"key": 5}
    c = draw_synapse_counts(get_rule("peters_synapse"), table, [theta], **kw)  # type: ignore[arg-type]
    assert c.max() <= n
    mean, var = n * theta, n * theta * (1 - theta)
    assert abs(c.mean() - mean) < 5 * np.sqrt(var / N)
    p_conn = 1 - (1 - theta) ** n
    assert abs((c > 0).mean() - p_conn) < 5 * np.sqrt(p_conn * (1 - p_conn) / N)


def test_peters_synapse_theta_one_is_peters_rule() -> None:
    table = make_pair_table(50, seed=3)
    c = draw_synapse_counts(get_rule("peters_synapse"), table, [1.0], key=0)
    np.testing.assert_array_equal(c, np.diff(table.indptr))
    c0 = draw_synapse_counts(get_rule("peters_synapse"), table, [0.0], key=0)
    assert np.all(c0 == 0)


def test_deterministic_gives_one_synapse_per_shared_voxel() -> None:
    table = make_pair_table(60, seed=4)
    n = np.diff(table.indptr)
    c = draw_synapse_counts(get_rule("peters_neuron"), table, [4.0], rng=0)
    np.testing.assert_array_equal(c, np.where(n >= 4, n, 0))


def test_keyed_draws_do_not_depend_on_table_split() -> None:
    table = make_pair_table(300, seed=5)
    perm = np.random.default_rng(0).permutation(table.n_pairs)
    parts = np.array_split(perm, 4)
    for rule, theta in (("dso", [1.0, 1.2, 0.8]), ("peters_synapse", [0.4])):
        whole = draw_synapse_counts(get_rule(rule), table, theta, key=99)
        for idx in parts:
            sub = draw_synapse_counts(get_rule(rule), take_pairs(table, idx), theta, key=99)
            np.testing.assert_array_equal(sub, whole[idx])
        other = draw_synapse_counts(get_rule(rule), table, theta, key=100)
        assert not np.array_equal(other, whole)


def test_keyed_uniforms_are_uniform_and_counter_based() -> None:
    ids = np.arange(50_000)
    u = keyed_uniforms(3, ids, 17)
    assert np.all((u > 0) & (u < 1))
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    np.testing.assert_array_equal(keyed_uniforms(3, ids[::-1], 17), u[::-1])
    v = keyed_uniforms(4, ids, 17)
    assert abs(np.corrcoef(u, v)[0, 1]) < 5 / np.sqrt(len(ids))
    # swapping pre and post gives another stream
    assert not np.array_equal(keyed_uniforms(3, 17, ids), u)


@pytest.mark.parametrize("lam", [0.0, 1e-6, 0.3, 2.0, 17.0, 63.0, 64.5, 250.0, 1e4])
def test_poisson_quantile_matches_scipy(lam: float) -> None:
    u = np.linspace(1e-6, 1 - 1e-6, 301)
    got = poisson_quantile(u, np.full_like(u, lam))
    ref = stats.poisson.ppf(u, lam)
    np.testing.assert_array_equal(got, ref.astype(np.int64))


def test_draw_is_deterministic_for_rng_seed_and_generator() -> None:
    table = make_pair_table(80, seed=6)
    rule = get_rule("dso")
    a = draw_synapse_counts(rule, table, [1, 1, 1], rng=np.random.default_rng(8))
    b = draw_synapse_counts(rule, table, [1, 1, 1], rng=8)
    np.testing.assert_array_equal(a, b)


def test_explicit_uniforms() -> None:
    table = make_pair_table(30, seed=7)
    rule = get_rule("dso")
    u = keyed_uniforms(1, table.pre, table.post)
    np.testing.assert_array_equal(
        draw_synapse_counts(rule, table, [1, 1, 1], uniforms=u),
        draw_synapse_counts(rule, table, [1, 1, 1], key=1),
    )
    with pytest.raises(ShapeMismatchError, match=r"expected \(30,\): one per pair"):
        draw_synapse_counts(rule, table, [1, 1, 1], uniforms=u[:-1])
    with pytest.raises(InvalidParameterError, match=r"strictly inside \(0, 1\)"):
        draw_synapse_counts(rule, table, [1, 1, 1], uniforms=np.zeros(30))
    with pytest.raises(ShapeMismatchError, match="one per row"):
        draw_synapse_counts(get_rule("peters_synapse"), table, [0.5], uniforms=u)


def test_bad_input_is_rejected_before_drawing() -> None:
    table = make_pair_table(10, seed=8)
    rule = get_rule("dso")
    with pytest.raises(InvalidParameterError, match="exactly one source of randomness"):
        draw_synapse_counts(rule, table, [1, 1, 1])
    with pytest.raises(InvalidParameterError, match="got 2"):
        draw_synapse_counts(rule, table, [1, 1, 1], rng=1, key=1)
    with pytest.raises(ShapeMismatchError, match="takes 3 parameter"):
        draw_synapse_counts(rule, table, [1, 1], rng=1)
    with pytest.raises(ShapeMismatchError, match="one parameter vector"):
        draw_synapse_counts(rule, table, [[1, 1, 1], [1, 1, 1]], rng=1)
    with pytest.raises(InvalidParameterError, match="not a finite number"):
        draw_synapse_counts(rule, table, [np.nan, 1, 1], rng=1)
    with pytest.raises(InvalidParameterError, match=r"outside its domain \[0.0, 1.0\]"):
        draw_synapse_counts(get_rule("peters_synapse"), table, [1.5], rng=1)
    with pytest.raises(InvalidParameterError, match="Poisson means must be finite"):
        draw_synapse_counts(rule, table, [500.0, 500.0, -500.0], rng=1)


def test_expected_argument_reuses_rates() -> None:
    table = make_pair_table(40, seed=9)
    rule = get_rule("dso")
    lam = pair_rate(rule, table, [1, 1, 1])[0]
    np.testing.assert_array_equal(
        draw_synapse_counts(rule, table, [1, 1, 1], key=2, expected=lam),
        draw_synapse_counts(rule, table, [1, 1, 1], key=2),
    )
