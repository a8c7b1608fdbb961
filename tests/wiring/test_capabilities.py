"""The optional rule capabilities live in rules/base.py and the built-in rules implement them."""

from __future__ import annotations

import numpy as np
import pytest

from wiring._typing import FloatArray
from wiring.rules.base import LogLinearForm, SupportsFactors, SupportsLogLinear
from wiring.rules.dso import DSO
from wiring.rules.dso_linear import DSOLinear
from wiring.rules.peters_neuron import PetersNeuron
from wiring.rules.peters_synapse import PetersSynapse
from wiring.testing.contract import capability_mismatches
from wiring.testing.selfcheck import plausible_thetas
from wiring.testing.tables import make_pair_table


@pytest.mark.parametrize(
    ("rule", "log_linear", "factors"),
    [
        (DSO(), True, True),
        (DSOLinear(), True, True),
        (PetersSynapse(), True, False),
        (PetersNeuron(), False, False),
    ],
)
def test_built_ins_declare_their_capabilities(rule: object, log_linear: bool, factors: bool) -> None:
    assert isinstance(rule, SupportsLogLinear) is log_linear
    assert isinstance(rule, SupportsFactors) is factors


@pytest.mark.parametrize("rule", [DSO(), DSOLinear(), PetersSynapse(), PetersNeuron()])
def test_built_in_capabilities_reproduce_rate(rule: DSO) -> None:
    thetas = plausible_thetas(rule, 8, seed=3)
    assert capability_mismatches(rule, make_pair_table(40, seed=3), thetas) == []


class _WrongForm(DSO):
    def log_linear(self, theta: FloatArray) -> LogLinearForm:
        names, coef, off = super().log_linear(theta)
        return names, coef, off + 0.1


class _WrongFactors(DSO):
    def factors(self, theta: FloatArray):
        f = super().factors(theta)
        return type(f)(f.pre, f.pre, f.voxel)


def test_a_wrong_capability_is_reported() -> None:
    table = make_pair_table(40, seed=3)
    thetas = plausible_thetas(DSO(), 4, seed=3)
    assert capability_mismatches(_WrongForm(), table, thetas) == [
        "log_linear(theta) does not reproduce rate()"
    ]
    (msg,) = capability_mismatches(_WrongFactors(), table, thetas)
    assert msg.startswith("factors(theta) does not reproduce rate() at theta=")


def test_the_simulator_looks_nothing_up_by_class_name() -> None:
    import wiring.simulation.simulator as simulator

    assert not hasattr(simulator, "_KNOWN_FORMS")
    th = np.array([[1.0, 1.0, 1.0]])
    names, coef, off = simulator.log_linear_form(DSO(), th) or ((), th, th)
    assert names == ("log_pre", "log_post", "log_post_all")
    np.testing.assert_array_equal(coef, [[1.0, 1.0, -1.0]])
    np.testing.assert_array_equal(off, [0.0])
