"""Run-config validation: built-ins load, round trips, unknown keys and wrong types name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pipelines.config import ConfigError, RunConfig, builtin_configs, load_config


@pytest.mark.parametrize("name", ["default", "paper", "comparison", "slurm", "quick"])
def test_builtin_configs_load(name: str) -> None:
    assert name in builtin_configs()
    cfg = load_config(name)
    assert cfg.run.name == name


def test_defaults_equal_default_toml() -> None:
    assert load_config(None).science_hash() == load_config("default").science_hash()


def test_toml_round_trip(tmp_path: Path) -> None:
    cfg = load_config("quick")
    path = tmp_path / "run.toml"
    path.write_text(cfg.to_toml())
    again = load_config(path)
    assert again == cfg
    assert tomllib.loads(path.read_text())["simulation"]["n"] == 2000


def test_unknown_key_names_key_and_suggests(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[simulation]\nnn = 5\n")
    with pytest.raises(ConfigError, match=r"unknown key simulation\.'nn'.*did you mean simulation\.'n'"):
        load_config(path)


def test_unknown_section(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[simulations]\nn = 5\n")
    with pytest.raises(ConfigError, match="unknown key 'simulations'"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[simulation]\nn = "many"\n', "simulation.n must be an integer, got 'many'"),
        ("[simulation]\nn = 1.5\n", "simulation.n must be an integer"),
        ("[simulation]\nn = true\n", "simulation.n must be an integer"),
        ('[rule]\nprior = "cauchy"\n', "rule.prior must be one of 'gaussian', 'uniform'"),
        ('[rule]\nprior_loc = [1, "a"]\n', r"rule.prior_loc\[1\] must be a number"),
        ("[analysis]\npredictions = 1\n", "analysis.predictions must be true or false"),
        ("[simulation]\nn = -5\n", "simulation.n must be positive"),
        ("simulation = 3\n", "simulation must be a table"),
        ('[inference]\nlr_schedule = "cosine"\n',
         "inference.lr_schedule must be one of 'plateau', 'constant'"),
        ("[inference]\nlr_decay = 1.0\n", r"inference.lr_decay must lie in \(0, 1\)"),
        ("[inference]\nlr_patience = 0\n", "inference.lr_patience must be positive"),
        ("[inference]\nlearning_rate = 0\n", "inference.learning_rate must be > 0"),
        ('[inference]\ndevice = "gpu"\n', "inference.device must be 'cpu', 'cuda'"),
    ],
)
def test_wrong_types_name_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[simulation\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_config() -> None:
    with pytest.raises(ConfigError, match="neither a file nor a built-in config"):
        load_config("no-such-config")


def test_science_hash_ignores_cluster_and_output() -> None:
    base = RunConfig()
    moved = base.replace(cluster={"kind": "threads"}, run={"output": "elsewhere"})
    assert moved.science_hash() == base.science_hash()
    assert base.replace(run={"seed": 1}).science_hash() != base.science_hash()
    assert base.replace(simulation={"n": 100}).science_hash() != base.science_hash()
    assert base.replace(simulation={"replace": True}).science_hash() != base.science_hash()
    assert base.replace(simulation={"pooling": False}).science_hash() != base.science_hash()


def test_anatomy_nuisance_is_validated_and_hashed(tmp_path: Path) -> None:
    base = RunConfig()
    assert base.anatomy.nuisance == ["vpm_boutons", "target_sites"]
    assert load_config("quick").anatomy.nuisance == []
    assert base.replace(anatomy={"nuisance": []}).science_hash() != base.science_hash()
    assert (base.replace(anatomy={"nuisance": ["vpm_boutons"]}).science_hash()
            != base.science_hash())
    assert (base.replace(analysis={"sensitivity_simulations": 10}).science_hash()
            != base.science_hash())
    path = tmp_path / "bad.toml"
    path.write_text('[anatomy]\nnuisance = ["vpm_bouton"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert "anatomy.nuisance" in message and "'vpm_bouton'" in message
    assert "vpm_boutons, target_sites" in message
    path.write_text('[anatomy]\nnuisance = "vpm_boutons"\n')
    with pytest.raises(ConfigError, match=r"anatomy\.nuisance must be a list"):
        load_config(path)
    path.write_text('[analysis]\nsensitivity_simulations = -1\n')
    with pytest.raises(ConfigError, match="sensitivity_simulations must be >= 0"):
        load_config(path)


def test_science_hash_covers_the_generator_version(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    # a new calibration of the synthetic anatomy gives new results: a new run directory
    import anatomy.generate

    generated = load_config("default")
    imported = RunConfig.from_dict({"anatomy": {"path": str(tmp_path / "m.zarr")}})
    before = generated.science_hash(), imported.science_hash()
    monkeypatch.setattr(anatomy.generate, "GENERATOR_VERSION", "999")
    assert generated.science_hash() != before[0]
    assert imported.science_hash() == before[1]  # an imported store has its own content hash


def test_training_schedule_settings_are_part_of_the_science_hash() -> None:
    base = RunConfig()
    for section in ({"lr_schedule": "constant"}, {"lr_patience": 5}, {"lr_decay": 0.3},
                    {"min_learning_rate": 1e-6}, {"device": "cuda"}, {"learning_rate": 5e-4}):
        assert base.replace(inference=section).science_hash() != base.science_hash()


def test_previous_training_defaults_are_one_setting_away() -> None:
    """The loop before 0.1.0: constant step size 5e-4, patience 20 (see the CHANGELOG)."""
    inf = RunConfig().inference
    assert (inf.learning_rate, inf.stop_after_epochs, inf.lr_schedule) == (2e-3, 10, "plateau")
    old = RunConfig().replace(inference={"learning_rate": 5e-4, "stop_after_epochs": 20,
                                         "lr_schedule": "constant"}).inference
    assert (old.learning_rate, old.stop_after_epochs, old.lr_schedule) == (5e-4, 20, "constant")
