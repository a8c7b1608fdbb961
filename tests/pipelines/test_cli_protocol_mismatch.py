"""Resuming a simulation store with another sampling protocol: ``wiring simulate`` refuses with
one line naming only the differing fields, both values and what to do, and leaves the store
as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main

# pairs per measurement of vpm-invivo as tested (L4, L4-septum, L4sp, L4ss, L5IT, L5PT, L6)
EXPERIMENT_PAIRS = "40, 14, 24, 11, 18, 9, 11 per measurement"
ADVICE = ("simulations of two sampling protocols cannot be mixed: write a new store (another "
          "--out), or pass --overwrite to start this one over")


def simulate_args(anatomy: Path, out: Path, *extra: str) -> list[str]:
    return ["simulate", "--anatomy", str(anatomy), "--rule", "dso", "--measurements",
            "vpm-invivo", "--n", "40", "--chunk-size", "20", "--seed", "3", "--out",
            str(out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory, tiny_store: Path) -> Path:
    """A finished store of the default protocol: nominal anatomy, distinct pairs, pooled
    measurements sharing their pairs, the experiments' numbers of pairs."""
    out = tmp_path_factory.mktemp("protocol") / "sims.zarr"
    assert main(simulate_args(tiny_store, out, "--nuisance", "none")) == 0
    return out


@pytest.fixture(scope="module")
def independent(tmp_path_factory: pytest.TempPathFactory, tiny_store: Path) -> Path:
    """A finished store whose pooled measurement draws its pairs apart from its parts' (a
    fixed number of pairs per measurement needs this for vpm-invivo: L4 pools L4sp and L4ss)."""
    out = tmp_path_factory.mktemp("protocol") / "independent.zarr"
    assert main(simulate_args(tiny_store, out, "--no-pooling")) == 0
    return out


@pytest.mark.parametrize(
    ("store", "extra", "difference"),
    [
        ("sims", ["--nuisance", "vpm_boutons,target_sites"],
         "nuisance none; this run asks for vpm_boutons, target_sites"),
        ("sims", ["--nuisance", "vpm_boutons"], "nuisance none; this run asks for vpm_boutons"),
        ("sims", ["--replace"], "replace false; this run asks for true"),
        ("sims", ["--no-pooling"], "pooling true; this run asks for false"),
        ("sims", ["--no-pooling", "--n-pairs", "50"],
         f"pooling true and n_pairs {EXPERIMENT_PAIRS}; this run asks for pooling false and "
         f"n_pairs 50 per measurement"),
        ("independent", ["--no-pooling", "--n-pairs", "50"],
         f"n_pairs {EXPERIMENT_PAIRS}; this run asks for 50 per measurement"),
    ],
    ids=["nuisance-two", "nuisance-one", "replace", "pooling", "two-fields", "n_pairs"],
)
def test_resume_with_another_protocol_names_what_differs(
        store: str, extra: list[str], difference: str, tiny_store: Path,
        request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    from wiring.simulation.store import SimulationStore

    sims = request.getfixturevalue(store)
    before = SimulationStore.open(sims).content_hash()
    capsys.readouterr()
    assert main(simulate_args(tiny_store, sims, *extra)) == 1
    err = capsys.readouterr().err
    assert err == (f"wiring: error: simulation store {str(sims)!r} was simulated with "
                   f"{difference}; {ADVICE}\n")
    assert SimulationStore.open(sims).content_hash() == before


def test_resume_with_the_same_protocol_goes_on(sims: Path, tiny_store: Path) -> None:
    # the default (no --nuisance) is the nominal anatomy the store was made with
    assert main(simulate_args(tiny_store, sims)) == 0
