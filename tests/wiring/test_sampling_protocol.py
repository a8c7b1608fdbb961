"""The simulator's experiment protocol: one connectome per simulation, sampling without
replacement, pooled measurements (exact moments against Monte Carlo, tolerances from the
Monte-Carlo error)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from wiring.errors import MeasurementError
from wiring.measurements import Citation, Measurement, MeasurementSet, load_measurement_set
from wiring.measurements.selectors import parse_selector
from wiring.pairs import PairTable
from wiring.simulation.simulator import Simulator

THETA = np.array([1.0, 1.0, 1.0])  # dso at θ = 1: λ = pre · post / postAll


def _meas(mid: str, n: int, includes: tuple[str, ...] = ()) -> Measurement:
    return Measurement(
        id=mid, pre=parse_selector("VPM"), post=parse_selector("L4exc"), probability=0.5,
        n_pairs=n, protocol="invivo", species="rat",
        citation=Citation(authors="Doe J", year=2001, doi=""), includes=includes,
    )


def _table(pre: np.ndarray, post: np.ndarray, lam: np.ndarray) -> PairTable:
    """One shared voxel per pair with rate λ at θ = 1 (λ = 0: no shared voxel)."""
    has = lam > 0
    n_rows = int(has.sum())
    return PairTable(
        pre=np.asarray(pre, np.int64), post=np.asarray(post, np.int64),
        indptr=np.concatenate([[0], np.cumsum(has)]).astype(np.int64),
        voxel=np.zeros(n_rows, np.int32),
        rows={"log_pre": np.log(lam[has]).astype(np.float64).astype(np.float32),
              "log_post": np.zeros(n_rows, np.float32),
              "log_post_all": np.zeros(n_rows, np.float32),
              "depth_um": np.zeros(n_rows, np.float32)},
    )


def _population(n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_pairs`` distinct (pre, post) pairs and connection probabilities spread over (0, 1)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n_pairs)
    pre = np.arange(n_pairs) // 7
    post = 100 + np.arange(n_pairs) % 7 + 7 * (np.arange(n_pairs) // 7)
    return pre, post, p


def _probs_of(table: PairTable) -> np.ndarray:
    lam = np.zeros(table.n_pairs)
    cnt = np.diff(table.indptr)
    lam[cnt > 0] = np.exp(table.rows["log_pre"].astype(np.float64))
    return -np.expm1(-lam)


def _var_se(x: np.ndarray) -> float:
    """Monte-Carlo standard error of the sample variance (from the sample fourth moment)."""
    k = len(x)
    d = x - x.mean()
    m2, m4 = np.mean(d**2), np.mean(d**4)
    return float(np.sqrt(max(m4 - m2**2 * (k - 3) / (k - 1), 0.0) / k))


def exact_variance(p: np.ndarray, n: int, *, replace: bool) -> float:
    """Var(x) for n pairs sampled from one random connectome of N pairs (C_i ~ Bernoulli(p_i)).

    Given the connectome C, x is the connected fraction of a simple random sample: its mean is
    C̄ and its variance σ_C² / n (with replacement) or σ_C² (N − n) / (n (N − 1)) (without),
    where σ_C² = C̄ (1 − C̄). With v = Var(C̄) = Σ p_i (1 − p_i) / N² and
    E[σ_C²] = p̄ (1 − p̄) − v, the law of total variance gives
    Var(x) = f · (p̄ (1 − p̄) − v) + v with f = 1/n or (N − n) / (n (N − 1)).
    """
    big_n = len(p)
    v = float(np.sum(p * (1 - p))) / big_n**2
    pbar = float(p.mean())
    f = 1.0 / n if replace else (big_n - n) / (n * (big_n - 1))
    return f * (pbar * (1 - pbar) - v) + v


@pytest.mark.parametrize("replace", [False, True])
def test_variance_of_one_measurement_is_exact(replace: bool) -> None:
    pre, post, p = _population(30, seed=1)
    tab = _table(pre, post, -np.log1p(-p))
    p = _probs_of(tab)
    n = 12
    sim = Simulator([tab], "dso", MeasurementSet(name="t", measurements=(_meas("A", n),)),
                    replace=replace)
    n_sims = 40000
    x = sim.simulate(np.tile(THETA, (n_sims, 1)), seed=3)[:, 0]
    want = exact_variance(p, n, replace=replace)
    se = _var_se(x)
    assert abs(x.var(ddof=1) - want) <= 4.5 * se
    # the old protocol (a fresh connection per sampled pair: Binomial(n, p̄)) is excluded
    binomial = p.mean() * (1 - p.mean()) / n
    assert abs(binomial - want) > 8 * se
    # mean unchanged: p̄, and the values lie on the lattice k / n
    assert abs(x.mean() - p.mean()) <= 4.5 * np.sqrt(want / n_sims)
    np.testing.assert_allclose(sim.expected(THETA[None])[0, 0], p.mean(), rtol=1e-6)
    np.testing.assert_allclose(x * n, np.round(x * n), atol=1e-9)


def test_without_replacement_all_pairs_gives_the_connectome_fraction() -> None:
    pre, post, p = _population(21, seed=2)
    tab = _table(pre, post, -np.log1p(-p))
    p = _probs_of(tab)
    mset = MeasurementSet(name="t", measurements=(_meas("A", 21), _meas("B", 21)))
    sim = Simulator([tab, tab], "dso", mset)
    x = sim.simulate(np.tile(THETA, (20000, 1)), seed=5)
    # both measurements test every pair of the same connectome: identical x every simulation
    np.testing.assert_array_equal(x[:, 0], x[:, 1])
    v = np.sum(p * (1 - p)) / 21**2
    assert abs(x[:, 0].var(ddof=1) - v) <= 4.5 * _var_se(x[:, 0])


def test_a_pair_sampled_twice_has_one_outcome() -> None:
    tab = _table(np.array([0]), np.array([1]), np.array([np.log(2.0)]))  # p = 0.5
    sim = Simulator([tab], "dso", MeasurementSet(name="t", measurements=(_meas("A", 25),)),
                    replace=True)
    x = sim.simulate(np.tile(THETA, (2000, 1)), seed=0)[:, 0]
    assert set(np.unique(x)) == {0.0, 1.0}
    assert abs(x.mean() - 0.5) <= 4.5 * 0.5 / np.sqrt(2000)


def test_measurements_sharing_pairs_are_correlated_as_computed() -> None:
    pre, post, p = _population(45, seed=4)
    lam = -np.log1p(-p)
    a = _table(pre[:30], post[:30], lam[:30])  # pairs 0..29
    b = _table(pre[15:], post[15:], lam[15:])  # pairs 15..44: 15 pairs shared with a
    pa = _probs_of(a)
    mset = MeasurementSet(name="t", measurements=(_meas("A", 10), _meas("B", 8)))
    for replace in (False, True):
        sim = Simulator([a, b], "dso", mset, replace=replace)
        n_sims = 40000
        x = sim.simulate(np.tile(THETA, (n_sims, 1)), seed=7)
        # given the connectome the two samples are independent: Cov = Cov(C̄_A, C̄_B)
        shared = pa[15:]
        want = float(np.sum(shared * (1 - shared))) / (30 * 30)
        da, db = x[:, 0] - x[:, 0].mean(), x[:, 1] - x[:, 1].mean()
        prod = da * db
        cov = prod.sum() / (n_sims - 1)
        se = prod.std(ddof=1) / np.sqrt(n_sims)
        assert want > 6 * se  # the effect is resolved by this many simulations
        assert abs(cov - want) <= 4.5 * se, (replace, cov, want, se)


def test_sampling_without_replacement_is_uniform_and_distinct() -> None:
    pre, post, p = _population(12, seed=6)
    tab = _table(pre, post, -np.log1p(-p))
    sim = Simulator([tab], "dso", MeasurementSet(name="t", measurements=(_meas("A", 5),)))
    n_sims = 20000
    spre, spost = sim.sampled_pairs(n_sims, seed=9)[0]
    key = spre * 1000 + spost
    assert all(len(set(row)) == 5 for row in key.tolist())
    counts = np.unique(key, return_counts=True)[1]
    assert len(counts) == 12
    q = 5 / 12
    assert np.all(np.abs(counts - n_sims * q) <= 4.5 * np.sqrt(n_sims * q * (1 - q)))
    # deterministic per (seed, row): a row alone gives the same pairs
    alone = sim.sampled_pairs(1, seed=9, start_index=777)[0]
    np.testing.assert_array_equal(alone[0][0], spre[777])
    np.testing.assert_array_equal(alone[1][0], spost[777])


def _pool_setup(replace: bool = False) -> tuple[Simulator, np.ndarray]:
    pre, post, p = _population(70, seed=8)
    lam = -np.log1p(-p)
    whole = _table(pre, post, lam)
    part1 = _table(pre[:20], post[:20], lam[:20])
    part2 = _table(pre[20:35], post[20:35], lam[20:35])
    mset = MeasurementSet(name="t", measurements=(
        _meas("L4", 16, ("P1", "P2")), _meas("P1", 6), _meas("P2", 4)))
    return Simulator([whole, part1, part2], "dso", mset, replace=replace), _probs_of(whole)


def test_pooled_measurement_tests_its_parts_pairs() -> None:
    sim, _ = _pool_setup()
    (pw, qw), (p1, q1), (p2, q2) = sim.sampled_pairs(500, seed=2)
    np.testing.assert_array_equal(pw[:, :6], p1)
    np.testing.assert_array_equal(qw[:, :6], q1)
    np.testing.assert_array_equal(pw[:, 6:10], p2)
    np.testing.assert_array_equal(qw[:, 6:10], q2)
    key = pw * 1000 + qw
    assert all(len(set(row)) == 16 for row in key.tolist())
    x = sim.simulate(np.tile(THETA, (500, 1)), seed=2)
    # the pooled fraction counts the parts' outcomes: hits(L4) >= hits(P1) + hits(P2)
    assert np.all(np.round(x[:, 0] * 16) >= np.round(x[:, 1] * 6 + x[:, 2] * 4))
    assert sim.provenance()["sampling"]["pools"] == {"L4": ["P1", "P2"]}


@pytest.mark.parametrize("replace", [False, True])
def test_pooled_mean_is_exact(replace: bool) -> None:
    sim, p = _pool_setup(replace)
    n_sims = 40000
    x = sim.simulate(np.tile(THETA, (n_sims, 1)), seed=4)
    got = sim.expected(THETA[None])[0]
    a = 6 * p[:20].mean() + 4 * p[20:35].mean()
    extra = 6 * (p.sum() - a) / (70 - 10) if not replace else 6 * p.mean()
    np.testing.assert_allclose(got, [(a + extra) / 16, p[:20].mean(), p[20:35].mean()],
                               rtol=1e-6)
    se = x.std(axis=0, ddof=1) / np.sqrt(n_sims)
    assert np.all(np.abs(x.mean(axis=0) - got) <= 4.5 * se)
    # pooling off: L4 samples all its pairs itself, its mean is the population mean
    off = Simulator(sim.source, "dso", sim.mset, replace=replace, pooling=False)
    np.testing.assert_allclose(off.expected(THETA[None])[0, 0], p.mean(), rtol=1e-6)


def test_vpm_invivo_pools_l4_on_a_model(tiny_model: Any) -> None:
    mset = load_measurement_set("vpm-invivo")
    sim = Simulator(tiny_model, "dso", mset, representation="table")
    pairs = sim.sampled_pairs(50, seed=1)
    names = list(sim.names)
    l4, sp, ss = (pairs[names.index(k)] for k in ("L4", "L4sp", "L4ss"))
    np.testing.assert_array_equal(l4[1][:, :24], sp[1])
    np.testing.assert_array_equal(l4[1][:, 24:35], ss[1])
    fac = Simulator(tiny_model, "dso", mset, representation="factored")
    th = np.array([[1.0, 1.0, 1.0], [0.8, 1.2, 1.1]] * 20)
    np.testing.assert_array_equal(sim.simulate(th, seed=3), fac.simulate(th, seed=3))


def test_protocol_errors_name_the_record() -> None:
    pre, post, p = _population(30, seed=1)
    lam = -np.log1p(-p)
    tab = _table(pre, post, lam)
    one = MeasurementSet(name="t", measurements=(_meas("A", 31),))
    with pytest.raises(MeasurementError, match=r"measurement 'A': 31 pairs tested.*only 30"):
        Simulator([tab], "dso", one)
    Simulator([tab], "dso", one, replace=True)  # fine with replacement
    # a part outside the pooled population
    outside = _table(pre + 50, post, lam)
    mset = MeasurementSet(name="t", measurements=(_meas("W", 10, ("P",)), _meas("P", 4)))
    with pytest.raises(MeasurementError, match=r"measurement 'W' includes 'P'.*not eligible"):
        Simulator([tab, outside], "dso", mset)
    # overlapping parts
    mset = MeasurementSet(name="t", measurements=(
        _meas("W", 10, ("P", "Q")), _meas("P", 4), _meas("Q", 4)))
    part = _table(pre[:10], post[:10], lam[:10])
    with pytest.raises(MeasurementError, match=r"measurement 'W': its parts overlap"):
        Simulator([tab, part, part], "dso", mset)
    # parts test more than the pool once n_pairs is overridden
    mset = MeasurementSet(name="t", measurements=(_meas("W", 10, ("P",)), _meas("P", 4)))
    with pytest.raises(MeasurementError, match=r"measurement 'W': its parts \(P\) test 8"):
        Simulator([tab, part], "dso", mset, n_pairs=[5, 8])
    with pytest.raises(Exception, match="replace and pooling"):
        Simulator([tab], "dso", one, replace="yes")  # type: ignore[arg-type]


def test_measurement_set_checks_pools() -> None:
    with pytest.raises(MeasurementError, match=r"measurement 'W', field 'includes': unknown "
                                                r"measurement 'Px'; did you mean 'P'"):
        MeasurementSet(name="t", measurements=(_meas("W", 10, ("Px",)), _meas("P", 4)))
    with pytest.raises(MeasurementError, match=r"'W', field 'includes': its parts tested 14"):
        MeasurementSet(name="t", measurements=(_meas("W", 10, ("P", "Q")), _meas("P", 7),
                                               _meas("Q", 7)))
    with pytest.raises(MeasurementError, match=r"cycle \((W -> P -> W|P -> W -> P)\)"):
        MeasurementSet(name="t", measurements=(_meas("W", 10, ("P",)), _meas("P", 10, ("W",))))
    with pytest.raises(MeasurementError, match="cannot include itself"):
        _meas("W", 10, ("W",))
    # a subset without the parts keeps a plain measurement
    full = MeasurementSet(name="t", measurements=(_meas("W", 10, ("P",)), _meas("P", 4)))
    assert full.subset(["W"])["W"].includes == ()
    assert full.subset(["P", "W"])["W"].includes == ("P",)


def test_per_presynaptic_statistic_by_hand() -> None:
    # pre 0: posts 10, 11, 12 (only 10 connected); pre 1: post 10 (connected); pre 2: 11, 12
    pre = np.array([0, 0, 0, 1, 2, 2])
    post = np.array([10, 11, 12, 10, 11, 12])
    lam = np.array([1e9, 0, 0, 1e9, 0, 0])
    tab = _table(pre, post, lam)
    per_pre = dataclasses.replace(_meas("S", 6), statistic="per_pre")
    mset = MeasurementSet(name="t", measurements=(per_pre, _meas("A", 6)))
    sim = Simulator([tab, tab], "dso", mset)
    x = sim.simulate(np.tile(THETA, (20, 1)), seed=0)
    np.testing.assert_allclose(x[:, 0], (1 / 3 + 1 + 0) / 3)
    np.testing.assert_allclose(x[:, 1], 2 / 6)
    np.testing.assert_allclose(sim.expected(THETA[None])[0], [(1 / 3 + 1 + 0) / 3, 2 / 6])


def test_per_presynaptic_statistic_mean_is_exact_when_all_pairs_are_tested() -> None:
    pre, post, p = _population(30, seed=12)
    keep = np.ones(30, bool)
    keep[[1, 2, 3, 9, 10]] = False  # uneven candidates per presynaptic neuron
    tab = _table(pre[keep], post[keep], -np.log1p(-p[keep]))
    p = _probs_of(tab)
    meas = dataclasses.replace(_meas("S", int(keep.sum())), statistic="per_pre")
    sim = Simulator([tab], "dso", MeasurementSet(name="t", measurements=(meas,)))
    x = sim.simulate(np.tile(THETA, (20000, 1)), seed=2)[:, 0]
    pre_k = tab.pre
    want = np.mean([p[pre_k == i].mean() for i in np.unique(pre_k)])
    np.testing.assert_allclose(sim.expected(THETA[None])[0, 0], want, rtol=1e-6)
    assert abs(x.mean() - want) <= 4.5 * x.std(ddof=1) / np.sqrt(len(x))
    assert abs(want - p.mean()) > 0.005  # differs from the pooled fraction here
    with pytest.raises(MeasurementError, match="cannot pool"):
        dataclasses.replace(_meas("W", 10, ("S",)), statistic="per_pre")
