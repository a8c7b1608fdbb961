"""Every built-in rule passes the public contract suite."""

from __future__ import annotations

from wiring.rules.dso import DSO
from wiring.testing import RuleContractTests


class TestDSO(RuleContractTests):
    rule = "dso"


class TestDSOLinear(RuleContractTests):
    rule = "dso_linear"


class TestPetersNeuron(RuleContractTests):
    rule = "peters_neuron"


class TestPetersSynapse(RuleContractTests):
    rule = "peters_synapse"


class TestDSOByClass(RuleContractTests):
    """The suite also accepts a class (the notebook path of get_rule)."""

    rule = DSO
