"""Cluster setup: batch-system scripts render without the batch system; bad kinds are errors."""

from __future__ import annotations

import pytest

from pipelines.cluster import connect, make_jobqueue_cluster
from pipelines.config import ClusterConfig, ConfigError, load_config


def test_slurm_job_script_renders_from_config() -> None:
    cfg = load_config("slurm").cluster
    cluster = make_jobqueue_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH" in script
    assert "-p normal" in script or "--partition=normal" in script
    assert "02:00:00" in script


@pytest.mark.parametrize("kind", ["pbs", "sge", "lsf"])
def test_other_batch_systems_render(kind: str) -> None:
    cluster = make_jobqueue_cluster(ClusterConfig(kind=kind, queue="q", walltime="01:00:00"))
    try:
        assert "01:00" in cluster.job_script()
    finally:
        cluster.close()


def test_threads_yields_no_client() -> None:
    with connect(ClusterConfig(kind="threads")) as client:
        assert client is None


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not one of local, threads"), connect(
        ClusterConfig(kind="kubernetes")
    ):
        pass
