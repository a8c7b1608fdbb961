"""Walltimes in each batch system's syntax, the worker lifetime derived from them, the
``[cluster] lifetime``/``lifetime_stagger`` keys (bad values: one line naming the key) and the
lifetime options in the rendered job scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.cluster import make_jobqueue_cluster
from pipelines.config import ClusterConfig, ConfigError, load_config
from pipelines.walltime import (
    WorkerLifetime,
    default_lifetime,
    parse_duration,
    walltime_seconds,
    worker_lifetime,
)


@pytest.mark.parametrize(("kind", "text", "seconds"), [
    ("slurm", "02:00:00", 7200), ("slurm", "90", 5400), ("slurm", "5:30", 330),
    ("slurm", "1-12", 129600), ("slurm", "1-0:30", 88200), ("slurm", "2-00:00:10", 172810),
    ("pbs", "3600", 3600), ("pbs", "10:00", 600), ("pbs", "01:00:00", 3600),
    ("sge", "1:30:00", 5400), ("lsf", "90", 5400), ("lsf", "2:30", 9000),
    ("lsf", "01:00:00", 3600),
])
def test_walltimes_in_each_batch_systems_syntax(kind: str, text: str, seconds: float) -> None:
    assert walltime_seconds(text, kind) == seconds


@pytest.mark.parametrize(("kind", "text"), [
    ("slurm", "2h"), ("slurm", ""), ("slurm", "00:00:00"), ("slurm", "1:2:3:4"),
    ("lsf", "1:00:00:00"), ("pbs", "1-00:00:00"), ("sge", "-5"),
])
def test_bad_walltimes_are_refused_with_the_syntax(kind: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"is not a positive {kind} walltime"):
        walltime_seconds(text, kind)


def test_unlimited_slurm_walltime_needs_no_lifetime() -> None:
    assert walltime_seconds("UNLIMITED", "slurm") is None
    assert worker_lifetime(ClusterConfig(kind="slurm", walltime="UNLIMITED")) is None
    explicit = worker_lifetime(ClusterConfig(kind="slurm", walltime="infinite", lifetime="6h"))
    assert explicit == WorkerLifetime(21600.0, 300.0)


@pytest.mark.parametrize(("text", "seconds"), [
    ("110m", 6600), ("1.5h", 5400), ("90 s", 90), ("1h50m", 6600), ("01:50:00", 6600),
    ("600", 600), ("2 minutes", 120),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5 parsecs", "1:30", "", "m5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_default_lifetime_retires_every_worker_before_the_walltime() -> None:
    # stagger = min(5 %, 5 min); margin = min(max(5 %, 1 min), 10 min, 25 %)
    assert default_lifetime(7200) == WorkerLifetime(7200 - 360 - 300, 300)  # 1h 49m ± 5m
    assert default_lifetime(3600) == WorkerLifetime(3600 - 180 - 180, 180)
    assert default_lifetime(900) == WorkerLifetime(900 - 60 - 45, 45)
    assert default_lifetime(60) == WorkerLifetime(60 - 15 - 3, 3)
    assert default_lifetime(86400) == WorkerLifetime(86400 - 600 - 300, 300)
    for wall in (60, 300, 900, 3600, 7200, 86400, 7 * 86400):
        life = default_lifetime(wall)
        assert life.seconds - life.stagger > 0
        assert life.seconds + life.stagger < wall


def test_configured_lifetime_and_stagger() -> None:
    slurm = ClusterConfig(kind="slurm", walltime="02:00:00")
    assert worker_lifetime(slurm) == WorkerLifetime(6540, 300)
    assert worker_lifetime(ClusterConfig(kind="slurm", lifetime="off")) is None
    assert worker_lifetime(ClusterConfig(kind="slurm", lifetime="100m")) == WorkerLifetime(
        6000, 300)
    # the derived stagger keeps within half the time left before the walltime
    assert worker_lifetime(ClusterConfig(kind="slurm", lifetime="118m")) == WorkerLifetime(
        7080, 60)
    # an explicit stagger with the derived lifetime keeps the time the last worker is gone
    assert worker_lifetime(ClusterConfig(kind="slurm", lifetime_stagger="1m")) == (
        WorkerLifetime(6780, 60))
    assert worker_lifetime(ClusterConfig(kind="pbs", walltime="3600", lifetime="50m",
                                         lifetime_stagger="0")) == WorkerLifetime(3000, 0)


@pytest.mark.parametrize(("section", "message"), [
    ({"lifetime": "3h"}, r"cluster\.lifetime \(3h\) plus cluster\.lifetime_stagger \(0s\) must "
     r"end before cluster\.walltime \(02:00:00 = 2h\)"),
    ({"lifetime": "2h"}, r"cluster\.lifetime \(2h\) plus .* must end before cluster\.walltime"),
    ({"lifetime": "110m", "lifetime_stagger": "10m"},
     r"cluster\.lifetime \(1h 50m\) plus cluster\.lifetime_stagger \(10m\) must end before"),
    ({"lifetime": "-5m"}, r"cluster\.lifetime '-5m' is negative"),
    ({"lifetime": "0"}, r"cluster\.lifetime must be positive"),
    ({"lifetime": "soon"}, r"cluster\.lifetime 'soon' is not a duration"),
    ({"lifetime_stagger": "lots"}, r"cluster\.lifetime_stagger 'lots' is not a duration"),
    ({"lifetime": "10m", "lifetime_stagger": "10m"},
     r"cluster\.lifetime_stagger \(10m\) must be shorter than the lifetime \(10m\)"),
    ({"walltime": "2 hours"}, r"cluster\.walltime '2 hours' is not a positive slurm walltime "
     r"\(M, M:S, H:M:S"),
    ({"kind": "lsf", "walltime": "2 hours"}, r"cluster\.walltime '2 hours' is not a positive "
     r"lsf walltime \(M, H:M"),
])
def test_bad_lifetime_settings_are_one_line_config_errors(
    section: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config("quick").replace(cluster={"kind": "slurm", **section})
    assert "\n" not in str(err.value)


def test_lifetime_keys_are_not_checked_where_no_job_runs() -> None:
    cfg = load_config("quick").replace(cluster={"kind": "local", "walltime": "whenever",
                                                "lifetime": "3h"})
    assert cfg.cluster.lifetime == "3h"


def test_cli_reports_a_bad_lifetime_in_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = load_config("quick").to_dict()
    bad["cluster"].update(kind="slurm", walltime="00:30:00", lifetime="45m")
    import tomli_w

    (tmp_path / "bad.toml").write_text(tomli_w.dumps(bad), encoding="utf-8")
    assert main(["run", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("wiring: error: ")
    assert "cluster.lifetime (45m) plus cluster.lifetime_stagger (0s) must end before " \
        "cluster.walltime (00:30:00 = 30m)" in err[0]
    assert not (tmp_path / "o").exists()


# -- the job scripts ----------------------------------------------------------------------------
def _script(cfg: ClusterConfig) -> str:
    cluster = make_jobqueue_cluster(cfg)
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()


def test_slurm_job_script_retires_workers_before_the_walltime() -> None:
    script = _script(load_config("slurm").cluster)  # walltime 02:00:00
    assert "#SBATCH -t 02:00:00" in script
    assert "--lifetime 6540s --lifetime-stagger 300s --no-lifetime-restart" in script
    off = _script(ClusterConfig(kind="slurm", lifetime="off"))
    assert "--lifetime" not in off


@pytest.mark.parametrize(("kind", "walltime", "args"), [
    ("pbs", "01:00:00", "--lifetime 3240s --lifetime-stagger 180s"),
    ("sge", "01:00:00", "--lifetime 3240s --lifetime-stagger 180s"),
    ("lsf", "01:00", "--lifetime 3240s --lifetime-stagger 180s"),
])
def test_other_job_scripts_carry_the_lifetime(kind: str, walltime: str, args: str) -> None:
    script = _script(ClusterConfig(kind=kind, queue="q", walltime=walltime))
    assert args in script


def test_lsf_job_script_takes_the_default_walltime_in_its_own_syntax() -> None:
    # bsub -W takes [hour:]minute: the default 02:00:00 (and any H:M:S) is rounded up to minutes
    script = _script(ClusterConfig(kind="lsf", queue="q"))
    assert "#BSUB -W 2:00" in script
    assert "--lifetime 6540s --lifetime-stagger 300s" in script
    assert "#BSUB -W 0:31" in _script(ClusterConfig(kind="lsf", queue="q", walltime="00:30:20"))


def test_job_script_of_a_bad_lifetime_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.lifetime \(3h\) plus"):
        make_jobqueue_cluster(ClusterConfig(kind="slurm", lifetime="3h"))
