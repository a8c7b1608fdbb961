"""``wiring analyze`` end to end on the tiny model (a quickly trained posterior), and its bad
input."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipelines.cli import main

FAST = ["--n-samples", "300", "--n-predictive", "100", "--n-calibration", "5", "--n-sbc",
        "30", "--n-sbc-samples", "60", "--n-prediction-samples", "8", "--max-pairs", "40"]


@pytest.fixture(scope="module")
def posterior_dir(tmp_path_factory: pytest.TempPathFactory, tiny_store: Path) -> Path:
    root = tmp_path_factory.mktemp("analyze")
    sims, post = root / "sims.zarr", root / "posterior"
    assert main(["simulate", "--anatomy", str(tiny_store), "--rule", "dso", "--measurements",
                 "vpm-invivo", "--n", "300", "--chunk-size", "300", "--seed", "1", "--out",
                 str(sims), "--no-progress"]) == 0
    assert main(["train", "--store", str(sims), "--out", str(post), "--seed", "0",
                 "--estimator", "maf", "--max-epochs", "2", "--num-transforms", "1",
                 "--hidden-features", "16", "--threads", "1", "--no-progress"]) == 0
    return post


def _analyze(posterior: Path, anatomy: Path | str, out: Path, *extra: str) -> list[str]:
    return ["analyze", "--posterior", str(posterior), "--anatomy", str(anatomy),
            "--measurements", "vpm-invivo", "--out", str(out), *FAST, *extra]


class _Imgs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs).get("src") or "")


def test_analyze_writes_the_report(posterior_dir: Path, tiny_store: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(_analyze(posterior_dir, tiny_store, out, "--seed", "3")) == 0
    stdout = capsys.readouterr().out
    assert str(out / "index.html") in stdout and "calibration:" in stdout
    names = {p.name for p in out.iterdir()}
    assert {"index.html", "summary.json", "posterior_pairplot.png",
            "posterior_predictive_check_predictive_check.png", "calibration_sbc_ranks.png",
            "calibration_coverage.png", "predicted_connectivity_connectivity.png",
            "predicted_connectivity.csv"} <= names
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sections"]) == {"posterior", "posterior_predictive_check",
                                        "calibration", "predicted_connectivity"}
    assert summary["config"]["rule"]["name"] == "dso"
    assert summary["config"]["seed"] == 3
    post = summary["sections"]["posterior"]
    assert post["param_names"] == ["theta_pre", "theta_post", "theta_postall"]
    assert post["reference"] == [1.0, 1.0, 1.0] and post["density_method"] == "log_prob"
    # 30 SBC runs are too few for the KS test to see a miscalibration: no pass/fail verdict
    cal = summary["sections"]["calibration"]
    assert cal["passed"] is None and cal["min_runs"] == 191
    assert cal["verdict"] == f"not judged ({cal['n_sbc']} runs; at least 191 needed)"
    assert f"calibration: {cal['verdict']}" in stdout.splitlines()
    ppc = summary["sections"]["posterior_predictive_check"]["measurements"]
    from wiring.measurements import load_measurement_set

    mset = load_measurement_set("vpm-invivo")
    assert [r["measurement"] for r in ppc] == list(mset.names)
    assert [r["measured"] for r in ppc] == pytest.approx(list(mset.x_o))
    page = _Imgs()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert len(page.srcs) == 5 and all(s.startswith("data:image/png;base64,") for s in page.srcs)


def test_analyze_with_x_o_and_skip(posterior_dir: Path, tiny_store: Path,
                                   tmp_path: Path) -> None:
    from wiring.measurements import load_measurement_set

    m = len(load_measurement_set("vpm-invivo").names)
    x_o = ",".join(["0.2"] * m)
    out = tmp_path / "r2"
    assert main(_analyze(posterior_dir, tiny_store, out, "--x-o", x_o, "--skip",
                         "calibration,predictions")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sections"]) == {"posterior", "posterior_predictive_check"}
    assert summary["config"]["x_o"] == [0.2] * m


def test_bad_input(posterior_dir: Path, tiny_store: Path, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(_analyze(posterior_dir, tiny_store, out)) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    new = tmp_path / "new"
    assert main(_analyze(posterior_dir, tiny_store, new, "--x-o", "0.1,0.2")) == 1
    assert "--x-o has 2 value(s)" in capsys.readouterr().err
    assert main(_analyze(posterior_dir, tiny_store, new, "--x-o", "a,b")) == 1
    assert "comma-separated" in capsys.readouterr().err
    assert main(_analyze(posterior_dir, tiny_store, new, "--skip", "everything")) == 1
    assert "unknown analysis" in capsys.readouterr().err
    # a posterior trained on another measurement set
    args = _analyze(posterior_dir, tiny_store, new)
    args[args.index("vpm-invivo")] = "rat-invitro"
    assert main(args) == 1
    assert "trained on measurements" in capsys.readouterr().err
    # another anatomy than the one the posterior was trained on
    assert main(_analyze(posterior_dir, "tiny", new, "--anatomy-seed", "5")) == 1
    assert "trained on anatomy" in capsys.readouterr().err
    assert main(_analyze(tmp_path / "nope", tiny_store, new)) == 1
    assert "no posterior directory" in capsys.readouterr().err
    assert not new.exists()


@pytest.mark.parametrize(("extra", "start"), [
    (["--n-sbc", "1000000", "--n-sbc-samples", "1000000"],
     "wiring: error: --n-sbc 1,000,000 × --n-sbc-samples 1,000,000: the calibration's posterior "
     "samples would need about "),
    (["--n-samples", "10000000000"],
     "wiring: error: --n-samples 10,000,000,000: the posterior summary's samples and their "
     "densities would need about "),
])
def test_sample_counts_beyond_the_memory_fail_at_once(
        posterior_dir: Path, tiny_store: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], extra: list[str], start: str) -> None:
    import time

    from wiring.simulation.resources import format_bytes, physical_memory_bytes

    out = tmp_path / "report"
    t0 = time.perf_counter()
    # the later occurrence of an option wins: FAST's counts are replaced
    assert main(_analyze(posterior_dir, tiny_store, out, *extra)) == 1
    assert time.perf_counter() - t0 < 20  # no sample drawn, no model opened
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(start), lines
    assert "TiB of memory" in lines[0]
    assert f"this machine has {format_bytes(physical_memory_bytes() or 0)}" in lines[0]
    assert not out.exists()
