"""The example plugin package (examples/plugin-distance-rule) through the registry and the CLI.

CI installs it (``pip install --no-deps ./examples/plugin-distance-rule``); there a missing
plugin is a failure, elsewhere the module is skipped with the command that installs it.
"""

from __future__ import annotations

import json
import os
from importlib import metadata

import numpy as np
import pytest

from wiring.pairs import pair_rate
from wiring.rules.registry import get_rule, list_rules, rule_provenance
from wiring.testing import RuleContractTests, make_pair_table

_INSTALL = "pip install --no-deps -e examples/plugin-distance-rule"
try:
    import wiring_distance_rule
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise ImportError(
            f"the example plugin is not installed, but CI must test it: run `{_INSTALL}`"
        ) from None
    pytest.skip(f"example plugin not installed; run `{_INSTALL}`", allow_module_level=True)


class TestDSODistance(RuleContractTests):
    rule = "dso_distance"


def test_plugin_found_through_entry_point() -> None:
    rule = get_rule("dso_distance")
    assert type(rule) is wiring_distance_rule.DSODistance
    assert rule_provenance("dso_distance") == {
        "name": "dso_distance",
        "distribution": "wiring-distance-rule",
        "version": metadata.version("wiring-distance-rule"),
    }
    info = {i.name: i for i in list_rules()}["dso_distance"]
    assert info.status == "ok" and info.distribution == "wiring-distance-rule"
    assert info.target == "wiring_distance_rule:DSODistance"


def test_plugin_rate_is_dso_times_distance_decay() -> None:
    table = make_pair_table(50, seed=2)
    theta = np.array([[1.0, 1.0, 1.0, 300.0], [0.5, 1.5, 0.8, 80.0]])
    got = pair_rate(get_rule("dso_distance"), table, theta)
    dso = pair_rate(get_rule("dso"), table, theta[:, :3])
    decay = np.exp(-table.pair_features["soma_distance_um"][None, :] / theta[:, 3:])
    np.testing.assert_allclose(got, dso * decay, rtol=1e-6)


def test_plugin_through_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    assert main(["rules", "check", "dso_distance"]) == 0
    out = capsys.readouterr().out
    assert "ok: dso_distance (wiring-distance-rule" in out
    assert main(["rules", "list", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["dso_distance"]["distribution"] == "wiring-distance-rule"
    assert [p["name"] for p in listed["dso_distance"]["params"]][-1] == "theta_length"
