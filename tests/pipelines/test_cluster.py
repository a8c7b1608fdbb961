"""Cluster setup without a batch system: job scripts render, bad kinds and [cluster] values are
errors, the wait for worker jobs reports the queue and times out with one line, a stage left
without any worker waits start_timeout and then stops with one line (and resumes), the session
starts and releases the cluster on demand, and a worker that cannot see the store says so."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.cluster import (
    ClusterSession,
    ClusterStartError,
    connect,
    job_states,
    make_jobqueue_cluster,
    wait_for_jobs,
)
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


@pytest.mark.parametrize(("kind", "walltime"), [("pbs", "01:00:00"), ("sge", "01:00:00"),
                                              ("lsf", "01:00")])
def test_other_batch_systems_render(kind: str, walltime: str) -> None:
    cluster = make_jobqueue_cluster(ClusterConfig(kind=kind, queue="q", walltime=walltime))
    try:
        assert walltime in cluster.job_script()
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


# -- [cluster] keys of the batch systems ----------------------------------------------------
def test_job_range_defaults_to_jobs_and_bounds_are_checked() -> None:
    assert ClusterConfig(jobs=3).job_range() == (3, 3)
    assert ClusterConfig(jobs=3, minimum_jobs=1, maximum_jobs=8).job_range() == (1, 8)
    base = load_config("quick")
    with pytest.raises(ConfigError, match=r"minimum_jobs \(5\) must not exceed .*jobs \(2\)"):
        base.replace(cluster={"minimum_jobs": 5, "maximum_jobs": 2})
    with pytest.raises(ConfigError, match=r"cluster\.maximum_jobs must be >= 0"):
        base.replace(cluster={"maximum_jobs": -1})
    with pytest.raises(ConfigError, match=r"cluster\.jobs must be >= 1"):
        base.replace(cluster={"jobs": 0})
    for bad in (0, -3.0, float("inf")):
        with pytest.raises(ConfigError, match=r"cluster\.start_timeout must be a (positive|finite) number"):
            base.replace(cluster={"start_timeout": bad})
    with pytest.raises(ConfigError, match="start_timeout must be a number"):
        base.replace(cluster={"start_timeout": "10m"})


def test_job_script_carries_log_directory(tmp_path: Path) -> None:
    cfg = ClusterConfig(kind="slurm", log_directory=str(tmp_path / "logs"), walltime="00:10:00")
    cluster = make_jobqueue_cluster(cfg)
    try:
        assert str(tmp_path / "logs") in cluster.job_script()
    finally:
        cluster.close()


class _NoWorkers:
    """A client whose scheduler never sees a worker."""

    def scheduler_info(self, n_workers: int = 5) -> dict[str, Any]:
        return {"workers": {}}


class _Job:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id


class _Cluster:
    def __init__(self) -> None:
        self.workers = {"a": _Job("101"), "b": _Job("102")}


def test_wait_for_jobs_reports_queue_and_times_out_with_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pipelines.cluster as cl

    monkeypatch.setattr(cl, "WAIT_REPORT_INTERVAL", 0.2)
    monkeypatch.setattr(cl, "job_states", lambda ids: {i: ("PENDING", "Priority") for i in ids})
    cfg = ClusterConfig(kind="slurm", jobs=2, start_timeout=0.8)
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="pipelines.cluster"), pytest.raises(
        ClusterStartError
    ) as err:
        wait_for_jobs(_Cluster(), _NoWorkers(), cfg)
    assert 0.8 <= time.monotonic() - t0 < 5
    message = str(err.value)
    assert "\n" not in message
    assert "no slurm worker job started within cluster.start_timeout = 0.8 s" in message
    assert "(squeue: PENDING (Priority))" in message
    assert "waiting for 2 worker jobs (squeue: PENDING (Priority))" in caplog.text


def test_queue_states_are_summarized(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.cluster as cl

    states = {"1": ("RUNNING", ""), "2": ("PENDING", "Resources"), "3": ("PENDING", "Priority")}
    monkeypatch.setattr(cl, "job_states", lambda ids: {i: states[i] for i in ids})
    slurm = ClusterConfig(kind="slurm")
    assert cl._describe_states(slurm, ["2", "3"]) == "squeue: PENDING (Resources, Priority)"
    assert cl._describe_states(slurm, ["1", "2", "3"]) == (
        "squeue: 2 PENDING (Resources, Priority), 1 RUNNING"
    )
    assert cl._describe_states(slurm, []) == "squeue: not yet submitted"
    assert cl._describe_states(ClusterConfig(kind="pbs"), ["7"]) == "pbs job ids 7"


def test_job_states_without_squeue_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert job_states(["1"]) == {}


def test_session_starts_lazily_releases_and_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.cluster as cl

    events: list[str] = []

    class _Client:
        def submit(self) -> str:
            return "submitted"

    @contextlib.contextmanager
    def fake_connect(cfg: ClusterConfig) -> Iterator[_Client]:
        events.append("start")
        try:
            yield _Client()
        finally:
            events.append("stop")

    monkeypatch.setattr(cl, "connect", fake_connect)
    with ClusterSession(ClusterConfig(kind="slurm")) as session:
        lazy = session.lazy_client()
        assert events == [] and not session.active  # nothing submitted before first use
        assert lazy.submit() == "submitted"
        assert lazy.submit() == "submitted"
        assert events == ["start"] and session.active
        session.release()
        session.release()  # idempotent
        assert events == ["start", "stop"] and not session.active
        assert session.lazy_client().submit() == "submitted"  # needed again: started again
        assert session.starts == 2
    assert events == ["start", "stop", "start", "stop"]
    monkeypatch.undo()
    with ClusterSession(ClusterConfig(kind="threads")) as session:
        assert session.lazy_client() is None and session.client() is None


def test_worker_that_cannot_see_the_store_says_so(tmp_path: Path) -> None:
    from wiring.errors import StoreNotVisibleError
    from wiring.simulation.store import _write_chunk

    missing = tmp_path / "elsewhere" / "sims.zarr"
    with pytest.raises(StoreNotVisibleError, match=r"does not exist on worker host .*shared"):
        _write_chunk(str(missing), 0, 0, 10, {}, 0, 3, lambda t, r: t)


def test_workers_that_leave_and_join_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    import pipelines.cluster as cl

    class _Jobs:
        def __init__(self) -> None:
            self.workers = {"SLURMCluster-0": _Job("7"), "SLURMCluster-1": _Job("8")}
            self.scheduler_info = {"workers": {"a": {"name": "SLURMCluster-0"},
                                               "b": {"name": "SLURMCluster-1"}}}

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 10
        while text not in caplog.text:
            assert time.monotonic() < deadline, f"not logged: {text}"
            time.sleep(0.02)

    class _Client:  # every worker leaving is covered above; no task ever waits
        def sync(self, func: Any, *args: Any) -> int:
            return 0

    jobs = _Jobs()
    cfg = ClusterConfig(kind="slurm", lifetime="off")
    with caplog.at_level(logging.INFO, logger="pipelines.cluster"), cl._watch_jobs(
        jobs, _Client(), cfg, scaling=False, interval=0.02
    ):
        jobs.scheduler_info = {"workers": {"a": {"name": "SLURMCluster-0"}}}  # job 8 cancelled
        wait_for("left")
        jobs.workers["SLURMCluster-1"] = _Job("9")  # its replacement
        jobs.scheduler_info = {"workers": {"a": {"name": "SLURMCluster-0"},
                                           "c": {"name": "SLURMCluster-1"}}}
        wait_for("joined")
    assert "worker SLURMCluster-1 (job 8) left: its job ended (cancelled, failed or out of " \
        "walltime)" in caplog.text
    assert "worker SLURMCluster-1 (job 9) joined" in caplog.text
    assert "SLURMCluster-0" not in caplog.text


# -- no worker left mid-stage ---------------------------------------------------------------
def _negate(x: int) -> int:
    return -x


@contextlib.contextmanager
def _workerless() -> Iterator[tuple[Any, Any]]:
    """An in-process dask cluster without workers (every job lost, replacements pending)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield cluster, client


def test_stage_without_workers_stops_after_start_timeout_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import pipelines.cluster as cl
    from pipelines.cluster import ClusterLostError

    cfg = ClusterConfig(kind="slurm", start_timeout=1.0)
    with _workerless() as (cluster, client), caplog.at_level(
        logging.INFO, logger="pipelines.cluster"
    ), cl._watch_jobs(cluster, client, cfg, scaling=False, interval=0.05):
        futures = client.map(_negate, range(3))
        t0 = time.monotonic()
        with pytest.raises(ClusterLostError) as err:
            client.gather(futures)
        waited = time.monotonic() - t0
    assert 1.0 <= waited < 10
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("no slurm worker for cluster.start_timeout = 1 s while 3 tasks "
                              "waited: every worker job ended")
    assert "(squeue: " in message and "run the same command again to resume" in message
    assert "no slurm worker is left while 3 tasks wait" in caplog.text


def test_wait_without_workers_counts_only_while_tasks_wait_and_ends_when_one_joins() -> None:
    import pipelines.cluster as cl

    cfg = ClusterConfig(kind="slurm", start_timeout=1.5)
    with _workerless() as (cluster, client), cl._watch_jobs(
        cluster, client, cfg, scaling=False, interval=0.05
    ):
        time.sleep(2.0)  # longer than start_timeout without a worker, but nothing waited
        futures = client.map(_negate, range(3))
        time.sleep(0.7)
        cluster.scale(1)  # a replacement job starts within start_timeout
        assert client.gather(futures) == [0, -1, -2]


class _Toy:
    """A chunk simulator of the store tests (module level: the workers import it)."""

    def __call__(self, theta: Any, rng: Any) -> Any:
        import numpy as np

        return np.column_stack([theta.sum(1), rng.random(len(theta))])


def test_simulation_stopped_without_workers_resumes_to_the_same_store(tmp_path: Path) -> None:
    import pipelines.cluster as cl
    from pipelines.cluster import ClusterLostError
    from wiring.inference.priors import PriorSpec
    from wiring.simulation.store import SimulationStore, simulate_to_store

    def create(path: Path) -> SimulationStore:
        return SimulationStore.create(
            path, n=60, chunk_size=10,
            prior_spec=PriorSpec(kind="gaussian", names=("a", "b"), loc=(1.0, 1.0),
                                 scale=(0.2, 0.2)),
            rule_info={"name": "toy", "distribution": "wiring-sbi", "version": "0"},
            measurement_names=["x0", "x1"], measurement_hash="m", anatomy_hash="a", seed=3,
            streams="chunk",
        )

    reference = simulate_to_store(create(tmp_path / "ref.zarr"), _Toy(), progress=False)
    store = create(tmp_path / "sims.zarr")
    cfg = ClusterConfig(kind="slurm", start_timeout=0.5)
    with _workerless() as (cluster, client), cl._watch_jobs(
        cluster, client, cfg, scaling=False, interval=0.05
    ):
        with pytest.raises(ClusterLostError, match=r"while \d+ tasks waited"):
            simulate_to_store(store, _Toy(), client=client, progress=False)
        assert not SimulationStore.open(store.path).is_complete
        cluster.scale(1)
        done = simulate_to_store(store, _Toy(), client=client, progress=False)
    assert done.is_complete
    (t_ref, x_ref), (t, x) = reference.load(), done.load()
    assert t.tobytes() == t_ref.tobytes() and x.tobytes() == x_ref.tobytes()
