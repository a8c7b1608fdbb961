"""``wiring run`` end to end on the tiny model: run directory contents, no-op reruns, resume
after SIGKILL with results identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import main

TINY = """
[run]
name = "tiny"
seed = 3

[anatomy]
preset = "tiny"

[simulation]
n = 600
chunk_size = 100

[inference]
hidden_features = 10
num_transforms = 1
batch_size = 100
max_epochs = 8
stop_after_epochs = 3

[analysis]
posterior_samples = 300
predictive_samples = 50
sbc_runs = 10
sbc_posterior_samples = 50
prediction_samples = 10
compare_rules = []
sensitivity_simulations = 200

[cluster]
kind = "threads"
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, config_file: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["-q", "run", "--config", str(config_file), "--out", str(out), "--no-progress"]) == 0
    return out


def test_run_directory_contents(finished_run: Path) -> None:
    for name in ("config.toml", "run.json", "simulations.zarr", "posterior", "report"):
        assert (finished_run / name).exists(), name
    assert (finished_run / "report" / "index.html").read_text().startswith("<!DOCTYPE html>")
    record = json.loads((finished_run / "run.json").read_text())
    assert set(record["stages"]) == {"anatomy", "features", "simulate", "train", "analyze"}
    for stage in record["stages"].values():
        assert stage["status"] == "done"
        assert stage["seconds"] >= 0
    assert record["versions"]["wiring-sbi"]
    assert record["hashes"]["anatomy"] and record["hashes"]["simulations"]
    assert set(record["seeds"]) >= {"simulate", "train", "analyze"}


def test_summary_is_printed(tmp_path: Path, config_file: Path, finished_run: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(config_file), "--out", str(finished_run),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "theta_pre" in out and "95 % interval" in out
    assert "a-priori rule (1, 1, 1)" in out
    assert "L4-septum" in out
    assert "index.html" in out


def test_rerun_of_finished_run_does_nothing(finished_run: Path, config_file: Path) -> None:
    record = json.loads((finished_run / "run.json").read_text())
    weights = finished_run / "posterior" / "weights.pt"
    mtime = weights.stat().st_mtime_ns
    report_mtime = (finished_run / "report" / "index.html").stat().st_mtime_ns
    assert main(["-q", "run", "--config", str(config_file), "--out", str(finished_run),
                 "--no-progress"]) == 0
    again = json.loads((finished_run / "run.json").read_text())
    for stage in ("simulate", "train", "analyze"):
        assert again["stages"][stage]["finished"] == record["stages"][stage]["finished"]
    assert weights.stat().st_mtime_ns == mtime
    assert (finished_run / "report" / "index.html").stat().st_mtime_ns == report_mtime


def test_bad_config_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[simulation]\nn = 'lots'\n")
    assert main(["run", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "simulation.n must be an integer" in err
    assert not (tmp_path / "wiring-runs").exists()


def test_unknown_nuisance_is_a_one_line_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[anatomy]\npreset = "tiny"\nnuisance = ["boutons"]\n')
    assert main(["run", "--config", str(bad), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown anatomy nuisance parameter 'boutons'" in err
    assert not (tmp_path / "r").exists()


def test_report_has_the_anatomy_sensitivity(finished_run: Path) -> None:
    summary = json.loads((finished_run / "report" / "summary.json").read_text())
    sens = summary["sections"]["anatomy_sensitivity"]
    assert list(sens["conditions"]) == ["nominal", "marginalised", "vpm_boutons_x0.5",
                                        "vpm_boutons_x2"]
    # the marginalised row is the main posterior summary: one verdict, stated twice
    post = summary["sections"]["posterior"]
    assert sens["conditions"]["marginalised"]["a_priori_rule_plausible"] == post["reference_in_hpd"]
    assert sens["nuisance"]["names"] == ["vpm_boutons", "target_sites"]
    assert sens["training"]["n_wide_simulations"] == 200
    assert (finished_run / "report" / "anatomy_sensitivity_forest.png").stat().st_size > 0
    rows = (finished_run / "report" / "anatomy_sensitivity.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 3
    # q(theta | x, nu) trains like the posterior, capped by inference.max_epochs (8 here), and
    # the report says why it stopped
    tr = sens["training"]
    assert tr["settings"]["lr_schedule"] == "plateau" and tr["settings"]["max_epochs"] == 8
    assert tr["stop_reason"] in ("patience", "lr_floor", "max_epochs")
    assert tr["converged"] == (tr["stop_reason"] != "max_epochs") and 1 <= tr["epochs"] <= 8


def test_standalone_analyze_makes_the_runs_sensitivity_table(
        finished_run: Path, tmp_path: Path) -> None:
    """``wiring analyze --store`` runs the analyze stage's code: given the run seed, its
    fixed-anatomy rows are the run report's, number for number (the marginalised row is the
    main summary, which ``wiring analyze`` samples with its own seed)."""
    record = json.loads((finished_run / "run.json").read_text())
    out = tmp_path / "report"
    assert main(["-q", "analyze", "--posterior", str(finished_run / "posterior"),
                 "--anatomy", record["stages"]["anatomy"]["path"],
                 "--measurements", "vpm-invivo", "--out", str(out),
                 "--store", str(finished_run / "simulations.zarr"), "--seed", "3",
                 "--n-samples", "300", "--skip", "predictive,calibration,predictions",
                 "--sensitivity-simulations", "200"]) == 0
    run = json.loads((finished_run / "report" / "summary.json").read_text())
    alone = json.loads((out / "summary.json").read_text())
    a, b = (s["sections"]["anatomy_sensitivity"] for s in (run, alone))
    for key in ("nominal", "vpm_boutons_x0.5", "vpm_boutons_x2"):
        for field in ("mean", "interval", "reference_hpd_level", "a_priori_rule_plausible"):
            np.testing.assert_allclose(np.asarray(a["conditions"][key][field], dtype=float),
                                       np.asarray(b["conditions"][key][field], dtype=float),
                                       rtol=1e-9, err_msg=f"{key} {field}")
    for field in ("epochs", "best_epoch", "stop_reason", "n_run_simulations",
                  "n_wide_simulations"):
        assert a["training"][field] == b["training"][field], field


def test_unknown_stage_is_an_error(config_file: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(config_file), "--out", str(tmp_path / "r"),
                 "--stop-after", "nonsense"]) == 1
    assert "unknown stage 'nonsense'" in capsys.readouterr().err


def _summary_numbers(run: Path) -> dict[str, object]:
    summary = json.loads((run / "report" / "summary.json").read_text())
    return {k: summary["sections"][k] for k in ("posterior", "posterior_predictive_check")}


def _stages(run: Path) -> dict[str, dict[str, object]]:
    """The stage entries of ``run.json`` (rewritten atomically, so never half written)."""
    try:
        record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return dict(record.get("stages", {}))


def _attempts(run: Path, stage: str) -> int:
    return int(str(_stages(run).get(stage, {}).get("attempts", 0)))


@pytest.mark.slow
def test_kill_and_resume_gives_identical_results(
    tmp_path: Path, config_file: Path, finished_run: Path
) -> None:
    """SIGKILL the run in each stage, resume each time: same results as uninterrupted.

    Each kill waits for the run's own record to say that this invocation started the target
    stage (its attempt count in ``run.json`` went up), so the kills land in the same stages
    however loaded the machine is."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "pipelines", "-q", "run", "--config", str(config_file),
           "--out", str(out), "--no-progress"]
    env = dict(os.environ)  # same thread settings as this process, which ran the reference
    killed_in: list[str] = []
    for stage in ("features", "simulate", "train", "analyze"):
        before = _attempts(out, stage)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 300
            while _attempts(out, stage) == before and proc.poll() is None:
                assert time.monotonic() < deadline, f"the run never reached the {stage} stage"
                time.sleep(0.01)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        if proc.returncode == -signal.SIGKILL:
            # the stage the kill interrupted stays "running" in the record
            killed_in += [k for k, v in _stages(out).items() if v.get("status") == "running"]
    # a short stage may finish between two polls (the kill then lands in a later one), but
    # the run is interrupted at least three times, once in the long analyze stage
    assert len(killed_in) >= 3 and "analyze" in killed_in, killed_in
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _summary_numbers(out) == _summary_numbers(finished_run)
    a = (out / "posterior" / "weights.pt").read_bytes()
    b = (finished_run / "posterior" / "weights.pt").read_bytes()
    assert a == b


def test_run_directory_of_another_config_is_refused(
    tmp_path: Path, finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace("seed = 3", "seed = 4"))
    before = (finished_run / "config.toml").read_text()
    assert main(["run", "--config", str(other), "--out", str(finished_run)]) == 1
    assert "holds a run of another configuration" in capsys.readouterr().err
    assert (finished_run / "config.toml").read_text() == before


@pytest.mark.slow
def test_local_processes_give_the_threaded_results(
    tmp_path: Path, config_file: Path, finished_run: Path
) -> None:
    """Features and simulations on 2 worker processes (started for those stages only): the
    store, the posterior weights and the summary equal the threaded run's, bit for bit."""
    from wiring.simulation.store import SimulationStore

    out = tmp_path / "local"
    assert main(["-q", "run", "--config", str(config_file), "--out", str(out), "--no-progress",
                 "--cluster", "local", "--workers", "2"]) == 0
    (t_a, x_a), (t_b, x_b) = (
        SimulationStore.open(run / "simulations.zarr").load() for run in (finished_run, out)
    )
    assert t_a.tobytes() == t_b.tobytes() and x_a.tobytes() == x_b.tobytes()
    weights = (finished_run / "posterior" / "weights.pt").read_bytes()
    assert (out / "posterior" / "weights.pt").read_bytes() == weights
    a, b = (json.loads((run / "report" / "summary.json").read_text()) for run in (finished_run, out))
    assert a["sections"] == b["sections"]
