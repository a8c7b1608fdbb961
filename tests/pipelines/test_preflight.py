"""``wiring run`` checks the whole configuration before the first stage runs.

Each bad setting is refused in seconds with one line naming it, before the run directory or
the cache is created (so nothing is computed, written or lost).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from pipelines.cli import main
from pipelines.config import load_config

MEASUREMENT_C7 = """schema_version = 1
name = "c7"
[[measurement]]
id = "L4-C7"
pre = "VPM;column=C2;region=barreloid"
post = "L4exc;column=C7"
probability = 0.4
n_pairs = 20
protocol = "invivo"
species = "rat"
authors = "Nobody N"
year = 2020
title = "A column the model does not have"
journal = "None"
doi = ""
"""


def write_config(tmp_path: Path, **changes: dict[str, Any]) -> Path:
    data = load_config("quick").to_dict()
    for section, values in changes.items():
        data[section].update(values)
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def run_fails(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str],
              out: Path | None = None) -> str:
    """Run the config; assert a fast one-line exit 1 that created neither run nor cache."""
    out = out or tmp_path / "runs" / "r"
    before = sorted(p.name for p in tmp_path.iterdir())
    t0 = time.perf_counter()
    assert main(["run", "--config", str(config), "--out", str(out), "--no-progress"]) == 1
    assert time.perf_counter() - t0 < 60
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("wiring: error: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    return lines[0]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"analysis": {"compare_rules": ["peters_synapse", "no_such_rule"]}},
         ["analysis.compare_rules", "no_such_rule"]),
        ({"analysis": {"compare_rules": ["dso_linear", "dso_linear"]}},
         ["analysis.compare_rules", "more than once"]),
        ({"measurements": {"n_pairs": 10**9}}, ["one simulation chunk", "chunk_size"]),
        ({"rule": {"name": "dso_lineer"}}, ["rule.name", "dso_lineer", "dso_linear"]),
        ({"rule": {"name": "peters_synapse", "prior": "uniform", "prior_low": [-0.5],
                   "prior_high": [1.0]}},
         ["rule.prior", "outside the parameter's domain"]),
        ({"rule": {"prior_scale": [0.1, 0.1]}}, ["rule.prior", "2 value(s)"]),
        ({"measurements": {"set": "no-such-set"}}, ["measurements.set", "no-such-set"]),
        ({"anatomy": {"path": "missing-anatomy.zarr"}}, ["anatomy.path", "missing-anatomy"]),
        ({"anatomy": {"preset": "huge"}}, ["anatomy.preset", "huge"]),
        ({"cluster": {"kind": "slurmm"}}, ["cluster.kind", "slurmm"]),
        ({"simulation": {"n": 10**12}}, ["1,000,000,000,000 simulations", "free"]),
        ({"analysis": {"sbc_runs": 10**6, "sbc_posterior_samples": 10**6}},
         ["analysis.sbc_runs 1,000,000 × analysis.sbc_posterior_samples 1,000,000: the "
          "calibration's posterior samples would need about", "TiB of memory"]),
        ({"analysis": {"posterior_samples": 10**10}},
         ["analysis.posterior_samples 10,000,000,000: ", "of memory"]),
    ],
)
def test_bad_setting_fails_before_any_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            changes: dict[str, Any], words: list[str]) -> None:
    line = run_fails(tmp_path, write_config(tmp_path, **changes), capsys)
    for w in words:
        assert w in line, line


def test_selectors_are_checked_against_an_existing_anatomy(
    tmp_path: Path, tiny_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mset = tmp_path / "c7.toml"
    mset.write_text(MEASUREMENT_C7)
    cfg = write_config(tmp_path, anatomy={"path": str(tiny_store)},
                       measurements={"set": str(mset)})
    line = run_fails(tmp_path, cfg, capsys)
    assert "L4-C7" in line and "C7" in line and str(tiny_store) in line


def test_unwritable_output_fails_before_any_stage(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = run_fails(tmp_path, write_config(tmp_path), capsys, out=blocker / "run")
    assert "run directory" in line and "a-file" in line
    assert blocker.read_text() == "not a folder"


def test_non_finite_numbers_in_a_config(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[inference]\nlearning_rate = nan\n")
    line = run_fails(tmp_path, path, capsys)
    assert "inference.learning_rate must be a finite number" in line
    path.write_text("[inference]\nlearning_rate = -0.1\n")
    assert "inference.learning_rate must be > 0" in run_fails(tmp_path, path, capsys)


def test_preflight_passes_for_the_shipped_configs(tmp_path: Path) -> None:
    from pipelines.config import builtin_configs
    from pipelines.preflight import preflight

    for name in builtin_configs():
        cfg = load_config(name)
        if cfg.cluster.kind not in ("local", "threads"):
            continue  # needs a batch system's settings; checked where it runs
        preflight(cfg, tmp_path / name, tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
