"""``wiring rules list|check`` in-process: output, exit codes and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata

import pytest

from pipelines.cli import main
from wiring.rules.registry import BUILTIN_RULES

BAD_RULES = '''
import numpy as np
from wiring.rules.base import ParamSpec

class NegativeRule:
    """Returns negative rates: fails the numeric self-check."""
    name = "negative_rule"
    params = (ParamSpec(name="theta", default=1.0, low=0.0, high=2.0, doc="scale"),)
    level = "voxel"
    features = ("log_pre",)
    synapses = "poisson"
    def rate(self, features, theta):
        return -theta[0] * np.exp(features["log_pre"])

class LeakyRule(NegativeRule):
    """Connects pairs without overlap: fails the no-overlap check."""
    name = "leaky_rule"
    level = "pair"
    features = ("n_shared",)
    def rate(self, features, theta):
        return theta[0] + 0 * features["n_shared"]

class RaisingRule(NegativeRule):
    """Reads a feature it did not declare."""
    name = "raising_rule"
    def rate(self, features, theta):
        return theta[0] * features["log_post"]
'''


@pytest.fixture
def bad_plugins(rule_plugins: Callable[..., None]) -> None:
    rule_plugins(
        {
            "negative_rule": "cli_bad_rules:NegativeRule",
            "leaky_rule": "cli_bad_rules:LeakyRule",
            "raising_rule": "cli_bad_rules:RaisingRule",
            "broken_rule": "cli_missing_module_xyz:Rule",
        },
        {"cli_bad_rules": BAD_RULES},
    )


def test_list_shows_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN_RULES:
        assert f"{name}  (wiring-sbi {metadata.version('wiring-sbi')})" in out
    assert "theta_postall" in out and "domain [-inf, inf]" in out


MARKED_UP_RULE = '''
import numpy as np
from wiring.rules.base import ParamSpec

class MarkedUpRule:
    r"""Rate :math:`\\theta \\cdot e^{x}` of :class:`~wiring.rules.dso.DSO` (``marked_up``), *see* `docs <https://example.org>`_."""
    name = "marked_up"
    params = (ParamSpec(name="theta", default=1.0, low=0.0, high=2.0, doc="scale"),)
    level = "voxel"
    features = ("log_pre",)
    synapses = "poisson"
    def rate(self, features, theta):
        return theta[0] * np.exp(features["log_pre"])
'''


def test_list_prints_plain_text_not_rest_markup(
    rule_plugins: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    rule_plugins({"marked_up": "cli_marked_up:MarkedUpRule"}, {"cli_marked_up": MARKED_UP_RULE})
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    assert "    Rate θ · e^x of DSO (marked_up), see docs.\n" in out
    # the built-in summaries carry ``literals``: none of the markup reaches the terminal
    assert "Dense structural overlap with exponents on pre, post and postAll (dso)." in out
    assert "``" not in out and ":math:" not in out and ":class:" not in out
    # --json keeps the docstring as written
    assert main(["rules", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["marked_up"]["summary"].startswith("Rate :math:`\\theta")


@pytest.mark.parametrize(
    ("rest", "plain"),
    [
        (":func:`wiring.rules.get_rule`", "wiring.rules.get_rule"),
        (":py:meth:`!Simulator.simulate`", "Simulator.simulate"),
        (":ref:`the rule contract <rule-contract>`", "the rule contract"),
        (":math:`P = 1 - \\exp(-\\lambda)`", "P = 1 - exp(-λ)"),
        ("`interpreted` and ``x*y*z``", "interpreted and x*y*z"),
        ("**strong** and *emphasis* but 2 * 3 * 4", "strong and emphasis but 2 * 3 * 4"),
        ("plain text: unchanged", "plain text: unchanged"),
    ],
)
def test_plain_text_strips_inline_markup(rest: str, plain: str) -> None:
    from pipelines.commands._plaintext import plain_text

    assert plain_text(rest) == plain


def test_top_level_help_names_every_measurements_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "measurements list, show and export measurement sets" in help_text


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert set(BUILTIN_RULES) <= set(by_name)
    assert by_name["dso"]["status"] == "ok"
    assert by_name["dso"]["params"][0]["domain"] == [None, None]
    assert by_name["peters_neuron"]["level"] == "pair"


@pytest.mark.parametrize("name", sorted(BUILTIN_RULES))
def test_check_builtin(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", name]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {name} (wiring-sbi") and "passed 9 checks" in out


def test_check_unknown_rule_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", "peters_neurons"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no wiring rule named 'peters_neurons' (did you mean 'peters_neuron'?)" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 2
    assert main(["rules", "check"]) == 2
    assert main(["rules", "frobnicate"]) == 2
    capsys.readouterr()


@pytest.mark.usefixtures("bad_plugins")
def test_list_reports_broken_plugin_without_failing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    assert "broken_rule  (unknown distribution unknown version)  BROKEN" in out
    assert "cli_missing_module_xyz" in out
    assert main(["rules", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["broken_rule"]["status"] == "broken"
    assert rows["negative_rule"]["status"] == "ok"  # imports and meets the static contract


@pytest.mark.usefixtures("bad_plugins")
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("broken_rule", "failed to import: ModuleNotFoundError"),
        ("negative_rule", "negative or NaN value"),
        ("leaky_rule", "a pair without overlap must never connect"),
        (
            "raising_rule",
            "raised KeyError: 'log_post'; rate() may read only the features it declares",
        ),
    ],
)
def test_check_failing_rule_exits_1(
    name: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "check", name]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wiring: error: ") and message in err
