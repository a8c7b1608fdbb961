"""The imported real structural model from every command: a folder shaped like the research
code's (89 masks) is imported with ``wiring anatomy import consbi`` and its measurements are
used by ``measurements list|show|export``, ``simulate``, ``analyze`` and ``run`` by readable
label, in the paper's order, with 50 pairs for records that do not give a sample count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# tests/ is on sys.path under pytest; mypy names the module tests.research_folder
from research_folder import (  # type: ignore[import-not-found]
    EXTRA_INVIVO,
    N_SLICE,
    PAPER,
    PAPER_LABELS,
    make_research_folder,
)

from pipelines.cli import main
from pipelines.config import ConfigError, RunConfig

N_MASKS = len(PAPER) + len(EXTRA_INVIVO) + N_SLICE


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory, tiny_model: Any) -> Path:
    root = tmp_path_factory.mktemp("real")
    folder = make_research_folder(tiny_model, root / "folder")
    assert len(list((folder / "masks").iterdir())) == N_MASKS == 89
    out = root / "real.zarr"
    assert main(["-q", "anatomy", "import", "consbi", str(folder), "--out", str(out)]) == 0
    return out


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_show_model_gives_the_paper_measurements_by_label(
    real_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _json(capsys, ["measurements", "show", "model", "--model", str(real_store), "--json"])
    ms = data["measurements"]
    assert [m["id"] for m in ms] == PAPER_LABELS
    assert [m["probability"] for m in ms] == [p[5] / 100 for p in PAPER]
    assert [m["n_pairs"] for m in ms] == [p[6] for p in PAPER]
    assert all(f"source ID {p[0]}" in m["description"] for p, m in zip(PAPER, ms, strict=True))
    assert ms[0]["citation"]["authors"] == "Randy M Bruno, Bert Sakmann"
    assert all(p["n_pre"] > 0 and p["n_eligible"] > 0 for p in data["populations"])
    # the table form names the citation by surnames and says more measurements exist
    capsys.readouterr()
    assert main(["measurements", "show", "model", "--model", str(real_store)]) == 0
    out = capsys.readouterr().out
    assert "Bruno & Sakmann 2006" in out and "Constantinople & Bruno 2013" in out
    assert "Randy" not in out and "--select all" in out


def test_select_by_label_or_id_in_the_order_given(
    real_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["measurements", "show", "model", "--model", str(real_store), "--json"]
    got = _json(capsys, [*args, "--select", f"L5PT,{PAPER[0][0]},L4SEP_Bruno2002"])
    assert [m["id"] for m in got["measurements"]] == ["L5PT", "L4", "L4SEP_Bruno2002"]
    every = _json(capsys, [*args, "--select", "all", "--n-pairs", "50"])["measurements"]
    assert len(every) == N_MASKS and len({m["id"] for m in every}) == N_MASKS
    assert [m["id"] for m in every[:7]] == PAPER_LABELS
    unknown = [m for m in every if "pairs tested unknown" in m["description"]]
    assert unknown and all(m["n_pairs"] == 50 for m in unknown)


def test_bad_selections_are_one_line_errors(
    real_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["measurements", "show", "model", "--model", str(real_store)]
    err = _error(capsys, [*args, "--select", "L4,L7"])
    assert "select names unknown measurement 'L7'" in err and "L4SEP" in err
    err = _error(capsys, [*args, "--select", "L4,L4"])
    assert "twice" in err
    # records with samples = -1 need a pair count
    err = _error(capsys, [*args, "--select", "all"])
    assert "pairs tested unknown" in err and "--n-pairs" in err
    err = _error(capsys, ["measurements", "show", "model"])
    assert "--model STORE" in err
    err = _error(capsys, ["measurements", "show", "vpm-invivo", "--select", "L4,L9"])
    assert "unknown measurement 'L9'" in err and "vpm-invivo" in err


def test_list_and_export_the_model_set(
    real_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wiring.measurements import load_measurement_set

    listed = _json(capsys, ["measurements", "list", "--json", "--model", str(real_store)])
    assert [d["name"] for d in listed][-1] == "model" and listed[-1]["n_measurements"] == 7
    out = tmp_path / "paper.toml"
    assert main(["measurements", "export", "model", "--model", str(real_store), "--select",
                 "L4,L4SEP,L6", "--out", str(out)]) == 0
    again = load_measurement_set(out)
    assert again.names == ("L4", "L4SEP", "L6")
    np.testing.assert_allclose(again.x_o, [0.43, 0.43, 0.09])
    # vpm-invivo subsets work the same way
    sub = tmp_path / "sub.csv"
    assert main(["measurements", "export", "vpm-invivo", "--select", "L6,L4", "--out",
                 str(sub)]) == 0
    assert load_measurement_set(sub).names == ("L6", "L4")


def test_simulate_and_analyze_the_model_set(
    real_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wiring.simulation.store import SimulationStore

    store = tmp_path / "sims.zarr"
    common = ["--anatomy", str(real_store), "--measurements", "model"]
    assert main(["-q", "simulate", *common, "--rule", "dso", "--select", "L4,L5PT,L4sp",
                 "--n-pairs", "50", "--n", "300", "--seed", "1", "--out", str(store),
                 "--no-progress"]) == 0
    opened = SimulationStore.open(store)
    assert list(opened.measurement_names) == ["L4", "L5PT", "L4sp"]
    _, x = opened.load()
    finite = x[np.all(np.isfinite(x), axis=1)]
    np.testing.assert_allclose(finite * 50, np.round(finite * 50), atol=1e-9)  # k / 50
    # resuming with another pair count is refused
    err = _error(capsys, ["simulate", *common, "--rule", "dso", "--select", "L4,L5PT,L4sp",
                          "--n-pairs", "40", "--n", "300", "--seed", "1", "--out", str(store)])
    assert "n_pairs 50 per measurement; this run asks for 40 per measurement" in err
    assert "--overwrite" in err
    post = tmp_path / "posterior"
    assert main(["-q", "train", "--store", str(store), "--out", str(post), "--max-epochs", "3",
                 "--hidden-features", "8", "--num-transforms", "1", "--no-progress"]) == 0
    report = tmp_path / "report"
    capsys.readouterr()
    assert main(["analyze", "--posterior", str(post), *common, "--select", "L4,L5PT,L4sp",
                 "--n-pairs", "50", "--out", str(report), "--skip", "calibration,predictions",
                 "--n-samples", "200", "--n-predictive", "50", "--n-calibration", "5"]) == 0
    summary = json.loads((report / "summary.json").read_text())
    rows = summary["sections"]["posterior_predictive_check"]["measurements"]
    assert [r["measurement"] for r in rows] == ["L4", "L5PT", "L4sp"]
    # a posterior of other measurements is refused with one line
    err = _error(capsys, ["analyze", "--posterior", str(post), *common, "--select", "L4,L6",
                          "--out", str(tmp_path / "r2")])
    assert "measurement" in err


TINY_REAL = """
[run]
name = "real"
seed = 1

[anatomy]
path = "{store}"

[measurements]
set = "model"
n_pairs = 50

[simulation]
n = 400
chunk_size = 200

[inference]
hidden_features = 8
num_transforms = 1
batch_size = 100
max_epochs = 4
stop_after_epochs = 2

[analysis]
posterior_samples = 200
predictive_samples = 40
sbc_runs = 10
sbc_posterior_samples = 20
predictions = false
compare_rules = []

[cluster]
kind = "threads"
"""


def test_run_on_the_model_uses_the_seven_in_vivo_measurements(
    real_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "real.toml"
    cfg.write_text(TINY_REAL.format(store=real_store.as_posix()))
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress",
                 "--stop-after", "simulate"]) == 0
    printed = capsys.readouterr().out
    assert "index.html" not in printed and "report:" not in printed
    assert "no report yet" in printed and "simulations.zarr" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["stages"]["features"]["measurements"] == PAPER_LABELS
    assert main(["run", "--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "index.html" in printed and "conditional" in printed
    summary = json.loads((out / "report" / "summary.json").read_text())
    rows = summary["sections"]["posterior_predictive_check"]["measurements"]
    assert [r["measurement"] for r in rows] == PAPER_LABELS
    cond = summary["sections"]["posterior"]["conditional_correlation"]
    assert np.asarray(cond).shape == (3, 3)
    page = (out / "report" / "index.html").read_text()
    assert "conditional_corrcoeff" in page and "precision matrix" in page
    assert "Hjort et al. 2006" in page and "prior predictive" in page


def test_select_is_part_of_the_science_hash() -> None:
    base = RunConfig()
    chosen = base.replace(measurements={"select": ["L4", "L6"]})
    assert chosen.science_hash() != base.science_hash()
    assert chosen.replace(measurements={"select": []}).science_hash() == base.science_hash()
    with pytest.raises(ConfigError, match="twice"):
        base.replace(measurements={"select": ["L4", "L4"]})
    with pytest.raises(ConfigError, match=r"anatomy\.path"):
        base.replace(measurements={"set": "model"})
