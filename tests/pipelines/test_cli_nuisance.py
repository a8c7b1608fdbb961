"""Anatomy nuisance parameters step by step: ``wiring simulate --nuisance`` → ``wiring train`` →
``wiring analyze --store`` with the anatomy sensitivity table, and the bad input of each."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pipelines.cli import main

BOTH = "vpm_boutons,target_sites"

TRAIN_FAST = ["--estimator", "maf", "--max-epochs", "3", "--num-transforms", "1",
              "--hidden-features", "16", "--threads", "1", "--no-progress"]

# the standard analyses are tested elsewhere: keep the summary (the marginalised row) only
ANALYZE_FAST = ["--n-samples", "300", "--skip", "predictive,calibration,predictions",
                "--sensitivity-simulations", "150", "--sensitivity-max-epochs", "3"]


def simulate_args(anatomy: Path, out: Path, *extra: str, seed: str = "5") -> list[str]:
    return ["simulate", "--anatomy", str(anatomy), "--rule", "dso", "--measurements",
            "vpm-invivo", "--n", "400", "--chunk-size", "200", "--seed", seed, "--out",
            str(out), "--no-progress", *extra]


def analyze_args(posterior: Path, anatomy: Path, out: Path, *extra: str) -> list[str]:
    return ["analyze", "--posterior", str(posterior), "--anatomy", str(anatomy),
            "--measurements", "vpm-invivo", "--out", str(out), *ANALYZE_FAST, *extra]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nuisance")


@pytest.fixture(scope="module")
def sims(root: Path, tiny_store: Path) -> Path:
    out = root / "sims.zarr"
    assert main(simulate_args(tiny_store, out, "--nuisance", BOTH)) == 0
    return out


@pytest.fixture(scope="module")
def posterior(root: Path, sims: Path) -> Path:
    out = root / "posterior"
    assert main(["train", "--store", str(sims), "--out", str(out), "--seed", "0",
                 *TRAIN_FAST]) == 0
    return out


def test_simulate_records_the_nuisance_spec(sims: Path, tiny_store: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from wiring.simulation.nuisance import NuisanceSpec
    from wiring.simulation.store import SimulationStore

    store = SimulationStore.open(sims)
    assert store.is_complete
    # recorded as `wiring run` records it: the simulator's protocol, nuisance spec included
    assert store.attrs["protocol"]["nuisance"] == NuisanceSpec.from_names(
        ["vpm_boutons", "target_sites"]).to_dict()
    # the repeated form is the same spec: the store resumes (nothing to do)
    assert main(simulate_args(tiny_store, sims, "--nuisance", "vpm_boutons",
                              "--nuisance", "target_sites")) == 0
    out = capsys.readouterr().out
    assert "anatomy nuisance vpm_boutons, target_sites drawn per simulation" in out
    # the nominal anatomy (default, or `none`) records no nuisance and simulates other x
    nominal = tmp_path / "nominal.zarr"
    assert main(simulate_args(tiny_store, nominal, "--nuisance", "none")) == 0
    plain = SimulationStore.open(nominal)
    assert "nuisance" not in plain.attrs["protocol"]
    theta_n, x_n = plain.load()
    theta, x = store.load()
    np.testing.assert_array_equal(theta, theta_n)  # θ draws do not depend on the anatomy
    assert not np.array_equal(x, x_n)
    assert "nominal anatomy" in capsys.readouterr().out


def test_resume_with_another_nuisance_spec_is_refused(
        sims: Path, tiny_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wiring.simulation.store import SimulationStore

    before = SimulationStore.open(sims).content_hash()
    for extra in (["--nuisance", "vpm_boutons"], ["--nuisance", "none"], []):
        assert main(simulate_args(tiny_store, sims, *extra)) == 1
        err = capsys.readouterr().err
        assert "protocol" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert SimulationStore.open(sims).content_hash() == before


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("boutons", "unknown anatomy nuisance parameter 'boutons'; known: vpm_boutons, "
                    "target_sites"),
        ("vpm_boutons,sites", "unknown anatomy nuisance parameter 'sites'"),
        ("vpm_boutons,vpm_boutons", "repeat a name"),
        ("none,target_sites", "none cannot be combined"),
        ("vpm_boutons,", "empty name"),
    ],
)
def test_bad_nuisance_names(value: str, message: str, tmp_path: Path, tiny_store: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.zarr"
    assert main(simulate_args(tiny_store, out, "--nuisance", value)) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("wiring: error: ")
    assert not out.exists()


def test_train_records_the_protocol(posterior: Path, sims: Path) -> None:
    from wiring.simulation.store import SimulationStore

    manifest = json.loads((posterior / "manifest.json").read_text())
    store = SimulationStore.open(sims)
    assert manifest["protocol"] == store.attrs["protocol"]
    assert manifest["protocol"]["nuisance"]["names"] == ["vpm_boutons", "target_sites"]
    assert manifest["store_hash"] == store.content_hash()
    assert manifest["param_names"] == ["theta_pre", "theta_post", "theta_postall"]  # θ only
    assert manifest["estimator"]["x_dim"] == len(store.measurement_names)


def test_analyze_with_store_writes_the_sensitivity_table(
        posterior: Path, sims: Path, tiny_store: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(analyze_args(posterior, tiny_store, out, "--store", str(sims))) == 0
    stdout, stderr = capsys.readouterr()
    # the conditional estimator's training shows the bar of the main training
    assert "training maf" in stderr and "epoch" in stderr
    assert "val=" in stderr and "best=" in stderr and "lr=" in stderr
    assert "how the verdict on the a-priori rule depends on the anatomy" in stdout
    assert "VPM boutons x2" in stdout and "q(theta | x, nu) trained" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sections"]) == {"posterior", "anatomy_sensitivity"}
    sens = summary["sections"]["anatomy_sensitivity"]
    assert list(sens["conditions"]) == ["nominal", "marginalised", "vpm_boutons_x0.5",
                                        "vpm_boutons_x2"]
    post = summary["sections"]["posterior"]
    assert sens["conditions"]["marginalised"]["a_priori_rule_plausible"] == post["reference_in_hpd"]
    assert sens["nuisance"]["names"] == ["vpm_boutons", "target_sites"]
    tr = sens["training"]
    assert tr["n_run_simulations"] == 400 and tr["n_wide_simulations"] == 150
    # q(θ | x, ν) trains like the posterior (its manifest's network), with the asked cap
    assert tr["settings"]["estimator"] == "maf" and tr["settings"]["hidden_features"] == 16
    assert tr["settings"]["max_epochs"] == 3 and tr["settings"]["lr_schedule"] == "plateau"
    assert tr["stop_reason"] in ("patience", "lr_floor", "max_epochs")
    assert 1 <= tr["epochs"] <= 3 and tr["converged"] == (tr["stop_reason"] != "max_epochs")
    assert summary["config"]["store"] == str(sims)
    assert summary["config"]["timings_s"]["sensitivity"] > 0
    assert (out / "anatomy_sensitivity_forest.png").stat().st_size > 0
    rows = (out / "anatomy_sensitivity.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 3
    assert "Anatomy sensitivity" in (out / "index.html").read_text(encoding="utf-8")


def test_analyze_no_progress_hides_the_training_bar(
        posterior: Path, sims: Path, tiny_store: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name, before, after in (("plain", [], ["--no-progress"]), ("quiet", ["-q"], [])):
        out = tmp_path / name
        argv = analyze_args(posterior, tiny_store, out, "--store", str(sims))
        assert main([*before, *argv, *after]) == 0
        stderr = capsys.readouterr().err
        assert "epoch" not in stderr and "val=" not in stderr and "training maf" not in stderr
        assert (out / "anatomy_sensitivity.csv").is_file()


def test_analyze_without_store_says_why_the_table_is_left_out(
        posterior: Path, tiny_store: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "report"
    with caplog.at_level(logging.INFO):
        assert main(analyze_args(posterior, tiny_store, out)) == 0
    skipped = [r.getMessage() for r in caplog.records
               if "anatomy sensitivity" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].startswith("anatomy sensitivity skipped")
    assert "--store" in skipped[0] and "\n" not in skipped[0]
    summary = json.loads((out / "summary.json").read_text())
    assert "anatomy_sensitivity" not in summary["sections"]
    assert not (out / "anatomy_sensitivity.csv").exists()


def test_no_sensitivity_leaves_the_table_out(
        posterior: Path, sims: Path, tiny_store: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "report"
    with caplog.at_level(logging.INFO):
        assert main(analyze_args(posterior, tiny_store, out, "--store", str(sims),
                                 "--no-sensitivity")) == 0
    assert "anatomy sensitivity" not in caplog.text
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sections"]) == {"posterior"}


def test_analyze_refuses_a_store_that_does_not_match(
        posterior: Path, sims: Path, tiny_store: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    import zarr

    out = tmp_path / "report"

    def refused(store: Path, *needles: str) -> None:
        assert main(analyze_args(posterior, tiny_store, out, "--store", str(store))) == 1
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert err.count("wiring: error: ") == 1 and last.startswith("wiring: error: "), err
        for needle in needles:
            assert needle in last, err
        assert not out.exists()

    refused(tmp_path / "missing.zarr", "no simulation store")
    refused(tiny_store, "not a simulation store")
    nominal = tmp_path / "nominal.zarr"  # same seed and θ, but the nominal anatomy
    assert main(simulate_args(tiny_store, nominal)) == 0
    refused(nominal, "anatomy nuisance parameters none", "vpm_boutons", "trained on")
    only_b = tmp_path / "boutons.zarr"
    assert main(simulate_args(tiny_store, only_b, "--nuisance", "vpm_boutons")) == 0
    refused(only_b, "nuisance parameters vpm_boutons, but")
    seed6 = tmp_path / "seed6.zarr"
    assert main(simulate_args(tiny_store, seed6, "--nuisance", BOTH, seed="6")) == 0
    refused(seed6, "run seed 6", "seed 5")
    changed = tmp_path / "changed.zarr"  # the same configuration, other rows
    shutil.copytree(sims, changed)
    group = zarr.open_group(str(changed), mode="r+")
    group["chunk_status"][1] = 0
    refused(changed, "other simulations than the posterior was trained on", "content hash")
    # another anatomy is allowed for the standard analyses, but the table needs the training one
    args = analyze_args(posterior, tiny_store, out, "--store", str(sims),
                        "--allow-anatomy-mismatch")
    args[args.index("--anatomy") + 1:args.index("--anatomy") + 2] = ["tiny", "--anatomy-seed",
                                                                      "5"]
    assert main(args) == 1
    assert "simulates on the training anatomy" in capsys.readouterr().err
    assert not out.exists()


def test_sensitivity_on_an_incomplete_store_keys_nu_by_row(
        tmp_path: Path, sims: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conditional estimator sees ν of each row's own simulation index, also when the
    finished rows do not start at 0 (a posterior trained with --allow-incomplete)."""
    import shutil

    import zarr

    from wiring.analysis import sensitivity
    from wiring.simulation.nuisance import NuisanceSpec
    from wiring.simulation.store import SimulationStore

    partial = tmp_path / "partial.zarr"
    shutil.copytree(sims, partial)
    zarr.open_group(str(partial), mode="r+")["chunk_status"][0] = 0
    store = SimulationStore.open(partial)
    seen: dict[str, Any] = {}

    def capture(posterior: Any, simulator: Any, theta: Any, x: Any, x_o: Any,
                **kwargs: Any) -> str:
        seen.update(theta=theta, x=x, **kwargs)
        return "table"

    monkeypatch.setattr(sensitivity, "anatomy_sensitivity", capture)
    # only the simulator's nuisance spec is read before the capture
    sim = SimpleNamespace(nuisance=NuisanceSpec.of(["vpm_boutons", "target_sites"]))
    unused: Any = None  # the posterior is only passed on
    result: Any = sensitivity.anatomy_sensitivity_from_store(
        unused, sim, store, np.zeros(len(store.measurement_names)), param_names=["a", "b", "c"],
        reference=None, rows=150)
    assert result == "table"
    np.testing.assert_array_equal(seen["row_index"], np.arange(200, 350))
    theta_all, _ = SimulationStore.open(sims).load()
    np.testing.assert_array_equal(seen["theta"], theta_all[200:350])


def test_the_wide_simulations_must_follow_the_store_protocol(posterior: Path, sims: Path) -> None:
    """A simulator that emulates the experiments otherwise than the store (e.g. another number
    of pairs) is refused, naming the protocol field."""
    from wiring.analysis.sensitivity import check_training_store
    from wiring.errors import StoreMismatchError
    from wiring.simulation.store import SimulationStore

    store = SimulationStore.open(sims)
    manifest = json.loads((posterior / "manifest.json").read_text())
    same = dict(store.attrs["protocol"])
    check_training_store(store, manifest, SimpleNamespace(protocol=lambda: same))
    other = {**same, "n_pairs": [7] * len(same["n_pairs"])}
    with pytest.raises(StoreMismatchError, match=r"emulates the experiments differently.*n_pairs"):
        check_training_store(store, manifest, SimpleNamespace(protocol=lambda: other))
