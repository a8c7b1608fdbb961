"""Anatomy nuisance parameters: keyed draws, the factor path against the feature path, and a
changed anatomy against its nuisance value."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from anatomy.catalogue import CELL_TYPES
from anatomy.model import VoxelMajorCounts
from wiring.errors import InvalidParameterError
from wiring.measurements import load_measurement_set
from wiring.simulation.nuisance import NUISANCE_PARAMETERS, NuisanceSpec, check_nuisance_names
from wiring.simulation.simulator import Simulator

MSET = load_measurement_set("vpm-invivo")
NAMES = ["vpm_boutons", "target_sites"]
THETA = np.array([[1.0, 1.0, 1.0], [1.2, 0.8, 1.1], [0.7, 1.3, 0.9]])


def _generic(sim: Simulator) -> Simulator:
    sim._fast = False  # force the numpy path through rule.rate on shifted features
    return sim


@pytest.fixture(scope="module")
def sims(tiny_model: Any) -> dict[str, Simulator]:
    return {
        "table": Simulator(tiny_model, "dso", MSET, representation="table", nuisance=NAMES),
        "factored": Simulator(tiny_model, "dso", MSET, representation="factored",
                              nuisance=NAMES),
        "generic": _generic(Simulator(tiny_model, "dso", MSET, representation="table",
                                      nuisance=NAMES)),
    }


def _scaled(model: Any, *, vpm: float = 1.0, sites: float = 1.0) -> Any:
    """The model with VPM bouton counts × ``vpm`` and every target site (post, postAll) ×
    ``sites``, built from the anatomy's own arrays."""
    is_vpm = np.asarray(model.neurons.cell_type) == CELL_TYPES.index("VPM")
    pre = model.pre.load().tocsr().astype(np.float64)
    pre = sp.csc_array(sp.diags(np.where(is_vpm, vpm, 1.0)) @ pre)
    post = sp.csc_array(model.post.load().astype(np.float64) * sites)
    attrs = {k: v for k, v in model.attrs.items() if k != "content_hash"}
    return dataclasses.replace(
        model, pre=VoxelMajorCounts.from_scipy(pre, name="pre"),
        post=VoxelMajorCounts.from_scipy(post, name="post"),
        post_all=np.asarray(model.post_all, np.float64) * sites, attrs=attrs)


def test_draws_are_keyed_by_seed_and_index() -> None:
    spec = NuisanceSpec.from_names(NAMES)
    whole = spec.sample(7, 0, 1000)
    parts = np.vstack([spec.sample(7, 0, 123), spec.sample(7, 123, 500), spec.sample(7, 623, 377)])
    np.testing.assert_array_equal(whole, parts)
    assert not np.array_equal(whole, spec.sample(8, 0, 1000))
    # N(0, sd²) per parameter: mean within 4 standard errors, sd within 4 of its standard error
    big = spec.sample(3, 0, 20_000)
    for k, sd in enumerate(spec.sd):
        assert abs(big[:, k].mean()) < 4 * sd / math.sqrt(len(big))
        assert abs(big[:, k].std() - sd) < 4 * sd / math.sqrt(2 * len(big))
    corr = np.atleast_2d(np.corrcoef(big.T))
    assert abs(corr[0, 1]) < 4 / math.sqrt(len(big))


def test_simulations_do_not_depend_on_batching(sims: dict[str, Simulator]) -> None:
    sim = sims["table"]
    th = np.tile(THETA, (4, 1))
    whole = sim.simulate(th, seed=11, start_index=5)
    split = np.vstack([sim.simulate(th[:5], seed=11, start_index=5),
                       sim.simulate(th[5:], seed=11, start_index=10)])
    np.testing.assert_array_equal(whole, split)
    # the drawn ν are those of the spec, keyed by (seed, index)
    nu = sim.nuisance.sample(11, 5, len(th))  # type: ignore[union-attr]
    np.testing.assert_array_equal(whole, sim.simulate(th, seed=11, start_index=5, nuisance=nu))


@pytest.mark.parametrize("form", ["factored", "generic"])
def test_factor_path_equals_feature_path(sims: dict[str, Simulator], form: str) -> None:
    fast = sims["table"]
    other = sims[form]
    assert fast.uses_compiled_kernel and (form == "generic") != other.uses_compiled_kernel
    for nu in ({"vpm_boutons": math.log(2.0)}, {"target_sites": -0.4},
               {"vpm_boutons": -0.3, "target_sites": 0.25}):
        np.testing.assert_allclose(fast.expected(THETA, nu), other.expected(THETA, nu),
                                   rtol=1e-9, atol=0)
    th = np.tile(THETA, (20, 1))
    np.testing.assert_array_equal(fast.simulate(th, seed=3), other.simulate(th, seed=3))


def test_dso_factor_is_exp_of_theta_weighted_shift(sims: dict[str, Simulator]) -> None:
    """For dso, ν scales every VPM pair's λ by exp(θ_pre ν_b + (θ_post − θ_postAll) ν_t)."""
    sim = sims["table"]
    pairs = np.arange(0, sim.source.n_pairs.sum(), 7)
    nb, nt = 0.4, -0.3
    for th in THETA:
        base = sim._lambda_of(th, pairs)
        nu = {"vpm_boutons": np.array([nb]), "target_sites": np.array([nt])}
        got = _generic(Simulator(sim.source, "dso", MSET, nuisance=NAMES,
                                 pre_is_vpm=sim._vflag > 0))._lambda_of(th, pairs, nu)
        np.testing.assert_allclose(got, base * math.exp(th[0] * nb + (th[1] - th[2]) * nt),
                                   rtol=1e-5)


@pytest.mark.parametrize(("nu", "vpm", "sites"), [
    ({"vpm_boutons": math.log(2.0)}, 2.0, 1.0),
    ({"vpm_boutons": math.log(0.5), "target_sites": math.log(1.5)}, 0.5, 1.5),
])
def test_fixed_nuisance_equals_the_changed_anatomy(tiny_model: Any, nu: dict[str, float],
                                                   vpm: float, sites: float) -> None:
    nominal = Simulator(tiny_model, "dso", MSET, representation="table", nuisance=NAMES)
    changed = Simulator(_scaled(tiny_model, vpm=vpm, sites=sites), "dso", MSET,
                        representation="table")
    # exact means agree (features are float32 logs: log(2c) vs log(c) + log 2)
    want = changed.expected(THETA)
    np.testing.assert_allclose(nominal.expected(THETA, nu), want, rtol=2e-5)
    assert not np.allclose(nominal.expected(THETA), want, rtol=1e-3)
    # simulated fractions: the mean of n simulations within 4 standard errors of the mean
    n = 4000
    th = np.repeat(THETA[1:2], n, axis=0)
    x = nominal.simulate(th, seed=5, nuisance=nu)
    se = x.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(x.mean(axis=0) - want[1]) < 4 * se + 1e-12)
    # one connectome per simulation: the same streams on the changed anatomy give the same x
    # wherever the per-pair λ agree to float32 precision
    same = np.mean(changed.simulate(th[:500], seed=5) == x[:500])
    assert same > 0.999


def test_vpm_boutons_need_cell_types(sims: dict[str, Simulator]) -> None:
    src = sims["table"].source
    with pytest.raises(InvalidParameterError, match="presynaptic cell types"):
        Simulator(src, "dso", MSET, nuisance=["vpm_boutons"])
    plain = Simulator(src, "dso", MSET, nuisance=["target_sites"])
    with pytest.raises(InvalidParameterError, match="presynaptic cell types"):
        plain.simulate(THETA, seed=0, nuisance={"vpm_boutons": 0.1})


def test_names_are_checked() -> None:
    assert check_nuisance_names(NAMES) == tuple(NAMES)
    with pytest.raises(InvalidParameterError, match="unknown anatomy nuisance parameter 'vpm'"):
        check_nuisance_names(["vpm"])
    with pytest.raises(InvalidParameterError, match="repeat"):
        check_nuisance_names(["target_sites", "target_sites"])
    with pytest.raises(InvalidParameterError, match="list of names"):
        check_nuisance_names("vpm_boutons")
    assert set(NUISANCE_PARAMETERS) == set(NAMES)


def test_protocol_records_the_spec(sims: dict[str, Simulator], tiny_model: Any) -> None:
    proto = sims["table"].protocol()
    assert proto["nuisance"]["names"] == NAMES
    assert proto["nuisance"]["sd"] == [math.log(1.5), math.log(1.25)]
    # without nuisance parameters the protocol is unchanged (old stores keep matching)
    assert "nuisance" not in Simulator(tiny_model, "dso", MSET).protocol()
