"""The one-line refusal to mix simulations of two sampling protocols
(:func:`wiring.simulation._protocol_diff.protocol_mismatch_message`), on protocols of real
simulators and on hand-made ones."""

from __future__ import annotations

from typing import Any

import pytest

from wiring.simulation._protocol_diff import protocol_mismatch_message

ADVICE = ("; simulations of two sampling protocols cannot be mixed: write a new store (another "
          "--out), or pass --overwrite to start this one over")


@pytest.fixture(scope="module")
def protocols(tiny_model: Any) -> dict[str, dict[str, Any]]:
    from wiring.measurements import load_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    rule, mset = get_rule("dso"), load_measurement_set("vpm-invivo")
    return {
        "default": Simulator(tiny_model, rule, mset).protocol(),
        "nuisance": Simulator(tiny_model, rule, mset,
                              nuisance=["vpm_boutons", "target_sites"]).protocol(),
        "replace": Simulator(tiny_model, rule, mset, replace=True).protocol(),
        "independent": Simulator(tiny_model, rule, mset, pooling=False).protocol(),
        "n_pairs": Simulator(tiny_model, rule, mset, pooling=False, n_pairs=30).protocol(),
    }


@pytest.mark.parametrize(
    ("have", "want", "difference"),
    [
        ("default", "nuisance", "nuisance none; this run asks for vpm_boutons, target_sites"),
        ("nuisance", "default", "nuisance vpm_boutons, target_sites; this run asks for none"),
        ("default", "replace", "replace false; this run asks for true"),
        ("replace", "default", "replace true; this run asks for false"),
        # the pools follow from the pooling flag and are not named beside it
        ("default", "independent", "pooling true; this run asks for false"),
        ("independent", "n_pairs",
         "n_pairs 40, 14, 24, 11, 18, 9, 11 per measurement; this run asks for 30 per "
         "measurement"),
        ("replace", "nuisance", "nuisance none and replace true; this run asks for nuisance "
                                "vpm_boutons, target_sites and replace false"),
    ],
)
def test_only_the_differing_fields_are_named(protocols: dict[str, dict[str, Any]], have: str,
                                             want: str, difference: str) -> None:
    message = protocol_mismatch_message("s.zarr", protocols[have], protocols[want])
    assert message == f"simulation store 's.zarr' was simulated with {difference}{ADVICE}"
    assert "\n" not in message


def test_prior_widths_and_unknown_fields(protocols: dict[str, dict[str, Any]]) -> None:
    have = protocols["nuisance"]
    want = {**have, "nuisance": {**have["nuisance"], "sd": [0.5, 0.25]}}
    sd = ", ".join(f"{s:g}" for s in have["nuisance"]["sd"])
    assert protocol_mismatch_message("s.zarr", have, want) == (
        f"simulation store 's.zarr' was simulated with nuisance vpm_boutons, target_sites "
        f"(sd {sd}); this run asks for vpm_boutons, target_sites (sd 0.5, 0.25){ADVICE}")
    # a field of an older or newer simulator, and one the other side lacks
    old = {k: v for k, v in protocols["default"].items() if k != "connectome"}
    assert protocol_mismatch_message("s.zarr", {**old, "version": 1}, protocols["default"]) == (
        f"simulation store 's.zarr' was simulated with connectome unset and version 1; this run "
        f"asks for connectome one per simulation and version 2{ADVICE}")
