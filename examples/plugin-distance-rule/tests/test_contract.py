"""The plugin's own contract test: all a plugin author needs."""

from wiring.testing import RuleContractTests


class TestDSODistance(RuleContractTests):
    rule = "dso_distance"
