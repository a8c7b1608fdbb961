"""Known answers of the built-in rules, computed independently with plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from wiring.errors import StoreMismatchError
from wiring.pairs import PairTable, pair_rate, rule_features
from wiring.rules.registry import get_rule


def _table(counts: list[int], seed: int = 0) -> tuple[PairTable, dict[str, np.ndarray]]:
    """A float64 table with random positive counts; returns it and the raw counts per row."""
    rng = np.random.default_rng(seed)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    r = int(indptr[-1])
    raw = {
        "pre": rng.uniform(0.1, 40.0, r),
        "post": rng.uniform(0.1, 60.0, r),
    }
    raw["post_all"] = raw["post"] + rng.uniform(0.0, 3000.0, r)
    p = len(counts)
    table = PairTable(
        pre=np.arange(p, dtype=np.int64),
        post=np.arange(p, dtype=np.int64) + 1000,
        indptr=indptr,
        voxel=np.arange(r, dtype=np.int32),
        rows={
            "log_pre": np.log(raw["pre"]),
            "log_post": np.log(raw["post"]),
            "log_post_all": np.log(raw["post_all"]),
            "depth_um": rng.uniform(0, 2000, r),
        },
        pair_features={"soma_distance_um": rng.uniform(0, 1000, p)},
    )
    return table, raw


def _per_pair(values: np.ndarray, counts: list[int]) -> np.ndarray:
    out, start = [], 0
    for c in counts:
        out.append(values[start : start + c].sum())
        start += c
    return np.array(out)


COUNTS = [3, 0, 1, 7, 0, 2, 12, 5]
THETAS = [(1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.5, 1.7, 0.3), (2.0, 0.1, 1.9), (-0.5, 1.2, 2.5)]


@pytest.mark.parametrize("theta", THETAS)
def test_dso_matches_direct_power_law(theta: tuple[float, float, float]) -> None:
    table, raw = _table(COUNTS)
    a, b, c = theta
    direct = raw["pre"] ** a * raw["post"] ** b / raw["post_all"] ** c
    expected = _per_pair(direct, COUNTS)
    got = pair_rate(get_rule("dso"), table, theta)
    np.testing.assert_allclose(got[0], expected, rtol=1e-12)
    assert got[0][1] == 0 and got[0][4] == 0  # no shared voxel: exactly zero


def test_dso_batch_of_thetas() -> None:
    table, raw = _table(COUNTS, seed=3)
    got = pair_rate(get_rule("dso"), table, np.array(THETAS))
    for k, (a, b, c) in enumerate(THETAS):
        direct = raw["pre"] ** a * raw["post"] ** b / raw["post_all"] ** c
        np.testing.assert_allclose(got[k], _per_pair(direct, COUNTS), rtol=1e-12)


def test_dso_no_overlap_never_connects_even_where_research_code_would() -> None:
    # θ_pre + θ_post < θ_postAll: the 1e-10 encoding of the paper's research code would give
    # such pairs rates (1e-10)^(a + b - c) >> 1; here they have no rows, hence exactly 0.
    table, _ = _table([0, 0, 0])
    lam = pair_rate(get_rule("dso"), table, [0.0, 0.0, 2.0])
    assert np.all(lam == 0)


def test_dso_overflow_gives_inf_not_nan() -> None:
    table, _ = _table([2])
    with np.errstate(all="raise"):
        lam = pair_rate(get_rule("dso"), table, [500.0, 500.0, -500.0])
    assert np.isinf(lam).all()


@pytest.mark.parametrize("theta", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.25), (0.0, 1.0, 1.0)])
def test_dso_linear_matches_direct(theta: tuple[float, float, float]) -> None:
    table, raw = _table(COUNTS, seed=1)
    a, b, c = theta
    direct = (a * raw["pre"]) * (b * raw["post"]) / (c * raw["post_all"])
    got = pair_rate(get_rule("dso_linear"), table, theta)
    np.testing.assert_allclose(got[0], _per_pair(direct, COUNTS), rtol=1e-12)


def test_dso_linear_equals_dso_at_ones_and_depends_on_product_only() -> None:
    table, _ = _table(COUNTS, seed=2)
    ref = pair_rate(get_rule("dso"), table, [1, 1, 1])
    np.testing.assert_allclose(pair_rate(get_rule("dso_linear"), table, [1, 1, 1]), ref)
    np.testing.assert_allclose(pair_rate(get_rule("dso_linear"), table, [2, 0.5, 1]), ref)


@pytest.mark.parametrize(
    ("theta", "connected"),
    [
        (3.0, [False, False, False, True, True]),
        (2.5, [False, False, False, True, True]),
        (1.0, [False, True, True, True, True]),
        (0.0, [False, True, True, True, True]),  # never without overlap
        (6.0, [False, False, False, False, False]),
    ],
)
def test_peters_neuron_step(theta: float, connected: list[bool]) -> None:
    counts = [0, 1, 2, 3, 5]
    table, _ = _table(counts)
    lam = pair_rate(get_rule("peters_neuron"), table, [theta])[0]
    np.testing.assert_array_equal(np.isinf(lam), connected)
    np.testing.assert_array_equal(lam[~np.array(connected)], 0.0)


@pytest.mark.parametrize("theta", [0.0, 0.05, 0.3, 0.9, 1.0])
def test_peters_synapse_connection_probability(theta: float) -> None:
    counts = [0, 1, 2, 5, 12]
    table, _ = _table(counts)
    lam = pair_rate(get_rule("peters_synapse"), table, [theta])[0]
    expected = 1.0 - (1.0 - theta) ** np.array(counts, dtype=float)
    np.testing.assert_allclose(-np.expm1(-lam), expected, rtol=1e-12, atol=0)
    assert lam[0] == 0


def test_voxel_rule_receives_pair_features_on_rows() -> None:
    class Distance:
        name = "distance_probe"
        params = ()
        level = "voxel"
        features = ("log_pre", "soma_distance_um")
        synapses = "poisson"

    table, _ = _table([2, 0, 3])
    feats = rule_features(Distance(), table)  # type: ignore[arg-type]
    d = table.pair_features["soma_distance_um"]
    np.testing.assert_array_equal(feats["soma_distance_um"], [d[0], d[0], d[2], d[2], d[2]])
    Distance.features = ("log_pre", "no_such_feature")
    with pytest.raises(StoreMismatchError, match="'no_such_feature'"):
        rule_features(Distance(), table)  # type: ignore[arg-type]
