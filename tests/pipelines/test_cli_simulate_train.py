"""``wiring simulate`` and ``wiring train`` end to end on the tiny model, and their bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import main


def simulate_args(anatomy: str | Path, out: Path, *extra: str) -> list[str]:
    return ["simulate", "--anatomy", str(anatomy), "--rule", "dso", "--measurements",
            "vpm-invivo", "--n", "400", "--chunk-size", "200", "--seed", "5", "--out", str(out),
            "--no-progress", *extra]


TRAIN_FAST = ["--max-epochs", "2", "--num-transforms", "1", "--hidden-features", "16",
              "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory, tiny_store: Path) -> Path:
    out = tmp_path_factory.mktemp("cli") / "sims.zarr"
    assert main(simulate_args(tiny_store, out)) == 0
    return out


def test_simulate_creates_a_complete_store(sims: Path) -> None:
    from wiring.measurements import load_measurement_set
    from wiring.simulation.store import SimulationStore

    store = SimulationStore.open(sims)
    assert store.is_complete and store.n == 400
    assert store.rule_info["name"] == "dso"
    assert store.measurement_names == load_measurement_set("vpm-invivo").names
    theta, x = store.load()
    assert theta.shape == (400, 3) and np.isfinite(x).all()
    assert np.all((x >= 0) & (x <= 1))


def test_simulate_resumes_and_is_deterministic(
    sims: Path, tiny_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wiring.simulation.store import SimulationStore

    out = tmp_path / "again.zarr"
    assert main(simulate_args(tiny_store, out, "--workers", "0")) == 0
    # Mark the second chunk unfinished (as a killed run leaves it) and rerun: it is redone.
    import zarr

    zarr.open_group(str(out), mode="r+")["chunk_status"][1] = 0
    assert main(simulate_args(tiny_store, out)) == 0
    assert SimulationStore.open(out).content_hash() == SimulationStore.open(sims).content_hash()
    assert "400 simulations" in capsys.readouterr().out


def test_simulate_refuses_another_configuration(
    sims: Path, tiny_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wiring.simulation.store import SimulationStore

    before = SimulationStore.open(sims).content_hash()
    args = simulate_args(tiny_store, sims)
    args[args.index("--seed") + 1] = "6"
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "seed = 5" in err and "seed = 6" in err and "--overwrite" in err
    # Another anatomy (a preset with another seed) is refused too.
    args = simulate_args("tiny", sims, "--anatomy-seed", "1")
    assert main(args) == 1
    assert "anatomy_hash" in capsys.readouterr().err
    args = simulate_args(tiny_store, sims)
    args[args.index("--rule") + 1] = "dso_linear"
    assert main(args) == 1
    assert "rule" in capsys.readouterr().err
    # another sampling protocol (with replacement, pooled measurements independent)
    for flag in ("--replace", "--no-pooling"):
        assert main(simulate_args(tiny_store, sims, flag)) == 1
        err = capsys.readouterr().err
        assert "protocol" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert SimulationStore.open(sims).content_hash() == before
    assert SimulationStore.open(sims).attrs["protocol"]["replace"] is False


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--rule", "no_such_rule", "no_such_rule"),
        ("--anatomy", "nowhere.zarr", "neither an existing store nor a preset"),
        ("--measurements", "no-such-set", "no-such-set"),
        ("--prior", "beta", "neither a prior kind"),
    ],
)
def test_simulate_bad_arguments(tmp_path: Path, tiny_store: Path, flag: str, value: str,
                                message: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = simulate_args(tiny_store, tmp_path / "s.zarr")
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    assert main(args) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()


def test_simulate_prior_file(tmp_path: Path, tiny_store: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "prior.toml"
    bad.write_text('kind = "uniform"\nnames = ["theta_pre", "theta_post"]\n'
                   "low = [0.0, 0.0]\nhigh = [2.0, 2.0]\n")
    assert main(simulate_args(tiny_store, tmp_path / "s.zarr", "--prior", str(bad))) == 1
    assert "the prior has 2 parameter(s)" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text('[prior]\nkind = "uniform"\nnames = ["theta_pre", "theta_post", '
                    '"theta_postall"]\nlow = [0.5, 0.5, 0.5]\nhigh = [1.5, 1.5, 1.5]\n')
    assert main(simulate_args(tiny_store, tmp_path / "s.zarr", "--prior", str(good),
                              "--n", "50")) == 0


def test_train_writes_a_loadable_posterior(sims: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from wiring.inference import load_posterior
    from wiring.measurements import load_measurement_set
    from wiring.rules.registry import get_rule

    out = tmp_path / "posterior"
    assert main(["train", "--store", str(sims), "--out", str(out), *TRAIN_FAST]) == 0
    assert "nsf posterior of rule 'dso'" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["name"] for p in manifest["param_specs"]] == list(manifest["param_names"])
    mset = load_measurement_set("vpm-invivo")
    post = load_posterior(out, rule=get_rule("dso"), measurement_names=mset.names)
    assert post.sample(20, mset.x_o, seed=0).shape == (20, 3)
    # The output exists now: refused without --overwrite, and left untouched.
    before = (out / "weights.pt").read_bytes()
    assert main(["train", "--store", str(sims), "--out", str(out), *TRAIN_FAST]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "weights.pt").read_bytes() == before
    assert main(["train", "--store", str(sims), "--out", str(out), "--overwrite",
                 "--seed", "1", *TRAIN_FAST]) == 0


def test_train_bad_stores(tmp_path: Path, tiny_store: Path, sims: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p"
    assert main(["train", "--store", str(tmp_path / "none.zarr"), "--out", str(out)]) == 1
    assert "no simulation store" in capsys.readouterr().err
    assert main(["train", "--store", str(tiny_store), "--out", str(out)]) == 1
    assert "not a simulation store" in capsys.readouterr().err
    import shutil

    import zarr

    partial = tmp_path / "partial.zarr"
    shutil.copytree(sims, partial)
    zarr.open_group(str(partial), mode="r+")["chunk_status"][0] = 0
    assert main(["train", "--store", str(partial), "--out", str(out), *TRAIN_FAST]) == 1
    assert "incomplete (200 of 400" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_simulate_with_worker_processes_matches_serial(sims: Path, tiny_store: Path,
                                                       tmp_path: Path) -> None:
    from wiring.simulation.store import SimulationStore

    out = tmp_path / "procs.zarr"
    assert main(simulate_args(tiny_store, out, "--workers", "2")) == 0
    assert SimulationStore.open(out).content_hash() == SimulationStore.open(sims).content_hash()
