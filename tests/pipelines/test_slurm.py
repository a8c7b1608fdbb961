"""On a real SLURM: `wiring run` matches the threaded run bit for bit, runs wait for the queue and
stop with one line when it does not move (at the start, or when every worker job is lost and the
replacements stay pending; the run then resumes to the same store), cancelled or expired worker
jobs are replaced without changing the simulation store or the pair features, and workers that
reach their lifetime retire and are replaced without changing the store.

Needs ``sbatch`` on PATH (CI starts a single-node SLURM with ``.ci/slurm.sh start``). Skipped
without it, unless ``WIRING_TEST_SLURM=1`` says SLURM is expected: then these tests fail.
Every job asks for one core, so two worker jobs fit a two-core node.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anatomy.model import VoxelMajorCounts
from pipelines.cluster import ClusterLostError, connect, job_states
from pipelines.config import ClusterConfig, load_config
from wiring.inference.priors import PriorSpec
from wiring.simulation.store import SimulationStore, simulate_to_store

pytestmark = pytest.mark.slow

PRIOR = PriorSpec(kind="gaussian", names=("a", "b"), loc=(1.0, 1.0), scale=(0.2, 0.2))

#: Seconds any wait of these tests may last before it fails (a stuck queue, a lost job).
PATIENCE = 180.0


@pytest.fixture(scope="module")
def slurm() -> None:
    """Skip (or fail, with WIRING_TEST_SLURM=1) unless a SLURM answers."""
    expected = os.environ.get("WIRING_TEST_SLURM") == "1"
    missing = [c for c in ("sbatch", "squeue", "scancel", "scontrol") if shutil.which(c) is None]
    if missing:
        reason = f"{', '.join(missing)} not on PATH: no SLURM to test on (.ci/slurm.sh start)"
        if expected:
            pytest.fail(f"WIRING_TEST_SLURM=1 but {reason}")
        pytest.skip(reason)
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0 or not probe.stdout.strip():
        reason = f"sinfo gets no answer from slurmctld: {probe.stderr.strip()}"
        if expected:
            pytest.fail(f"WIRING_TEST_SLURM=1 but {reason}")
        pytest.skip(reason)


def _cluster_section(log_dir: Path, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "kind": "slurm",
        "jobs": 2,
        "cores": 1,
        "processes": 1,
        "memory": "1GB",
        "walltime": "00:15:00",
        "start_timeout": 120.0,
        "log_directory": str(log_dir),
    }
    section.update(extra)
    return section


def _squeue_ids() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         check=True).stdout
    return out.split()


def _wait(predicate: Any, what: str, timeout: float = PATIENCE) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def clean_queue(slurm: None) -> Iterator[None]:
    """No job of an earlier test is left; jobs this test leaves are cancelled."""
    _wait(lambda: not _squeue_ids(), "an empty queue before the test")
    yield
    ids = _squeue_ids()
    if ids:
        subprocess.run(["scancel", *ids], check=False)


# -- the whole pipeline -------------------------------------------------------------------------
def _wiring(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False, env={**os.environ, "MPLBACKEND": "Agg"},
    )


def test_wiring_run_on_slurm_matches_threads(tmp_path: Path, clean_queue: None) -> None:
    # the quick config; the rule comparison (a second rule fitted in this process, after the
    # jobs are released) is left out to keep CI short: it does not touch the cluster
    quick = load_config("quick").replace(analysis={"compare_rules": []})
    runs: dict[str, Path] = {}
    logs: dict[str, str] = {}
    for kind in ("threads", "slurm"):
        section = {"kind": "threads"} if kind == "threads" else _cluster_section(tmp_path / "logs")
        cfg = quick.replace(cluster=section, run={"output": str(tmp_path / kind)})
        (tmp_path / f"{kind}.toml").write_text(cfg.to_toml(), encoding="utf-8")
        proc = _wiring("run", "--config", f"{kind}.toml", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[kind] = next((tmp_path / kind).glob("quick-*"))
        logs[kind] = proc.stderr

    a = SimulationStore.open(runs["threads"] / "simulations.zarr")
    b = SimulationStore.open(runs["slurm"] / "simulations.zarr")
    assert b.is_complete
    (ta, xa), (tb, xb) = a.load(), b.load()
    assert ta.tobytes() == tb.tobytes()
    assert xa.tobytes() == xb.tobytes()
    wa = (runs["threads"] / "posterior").glob("*.pt")
    for path in sorted(wa):
        assert path.read_bytes() == (runs["slurm"] / "posterior" / path.name).read_bytes(), path
    sa = json.loads((runs["threads"] / "report" / "summary.json").read_text())
    sb = json.loads((runs["slurm"] / "report" / "summary.json").read_text())
    for summary in (sa, sb):  # only where it ran and when may differ
        del summary["created"], summary["config"]["cluster"], summary["config"]["run"]["output"]
    assert sa == sb
    # the jobs ran the distributed stages and were released before training
    log = logs["slurm"]
    assert "releasing the slurm worker jobs" in log
    assert log.index("releasing the slurm worker jobs") < log.index("trained ")
    assert list((tmp_path / "logs").glob("*.out")), "no worker job wrote a log"


# -- waiting for the queue ----------------------------------------------------------------------
def test_pending_workers_time_out_with_one_line(tmp_path: Path, clean_queue: None) -> None:
    ncpus = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True,
                           check=True).stdout.split()[0]
    # a job holding every core of the node: the worker jobs stay pending
    holder = subprocess.run(
        ["sbatch", "--parsable", "-c", ncpus, "-t", "5", "-o", str(tmp_path / "holder.out"),
         "--wrap", "sleep 300"], capture_output=True, text=True, check=True,
    ).stdout.strip().split(";")[0]
    try:
        _wait(lambda: job_states([holder]).get(holder, ("",))[0] == "RUNNING", "the holding job to run")
        cfg = load_config("quick").replace(
            cluster=_cluster_section(tmp_path / "logs", start_timeout=6.0)
        )
        (tmp_path / "pending.toml").write_text(cfg.to_toml(), encoding="utf-8")
        t0 = time.monotonic()
        proc = _wiring("connectome", "--anatomy", "tiny", "--rule", "dso", "--theta", "1,1,1",
                       "--seed", "0", "--out", "c.zarr", "--cluster", "slurm",
                       "--cluster-config", "pending.toml", cwd=tmp_path)
        elapsed = time.monotonic() - t0
    finally:
        subprocess.run(["scancel", holder], check=False)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wiring: error:")]
    assert len(errors) == 1, proc.stderr
    assert "no slurm worker job started within cluster.start_timeout = 6 s" in errors[0]
    assert "(squeue: PENDING (Resources" in errors[0]
    assert "waiting for 2 worker jobs (squeue: PENDING" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 60
    assert not (tmp_path / "c.zarr").exists()
    # the pending worker jobs were cancelled with the cluster
    _wait(lambda: _squeue_ids() == [] or _squeue_ids() == [holder], "the worker jobs to go")


# -- lost and expired jobs ----------------------------------------------------------------------
class GatedSimulator:
    """A chunk simulator whose chunks wait for the file ``gate`` once ``free`` chunks of the
    store at ``store`` are done (no gate: never waits).

    The test lets the first chunks finish, then kills the worker jobs while they hold the
    shared simulator and are stuck in gated chunks, and opens the gate afterwards.
    """

    def __init__(self, gate: str = "", store: str = "", free: int = 3) -> None:
        self.gate, self.store, self.free = gate, store, free

    def __call__(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.gate and int(np.sum(SimulationStore.open(self.store).chunk_status())) >= self.free:
            t0 = time.monotonic()
            while not os.path.exists(self.gate) and time.monotonic() - t0 < PATIENCE:
                time.sleep(0.1)
        return np.column_stack([theta.sum(1), theta[:, 0] * theta[:, 1], rng.random(len(theta))])


def _create(path: Path, chunk_size: int = 25) -> SimulationStore:
    return SimulationStore.create(
        path, n=400, chunk_size=chunk_size, prior_spec=PRIOR,
        rule_info={"name": "toy", "distribution": "wiring-sbi", "version": "0"},
        measurement_names=["x0", "x1", "x2"], measurement_hash="m", anatomy_hash="a", seed=5,
        streams="chunk",
    )


@contextlib.contextmanager
def _jobs(cfg: ClusterConfig) -> Iterator[Any]:
    """A client of SLURM worker jobs that can unpickle this module's classes, replacing a lost
    job 2 s after it is gone (dask's default: 15 s)."""
    import dask
    import distributed  # noqa: F401  (its config defaults, restored after the override)

    # the worker jobs inherit the environment (sbatch --export=ALL): they import this module
    # to unpickle the gated simulator and structural model
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(Path(__file__).parent) + (os.pathsep + path if path else "")
    try:
        with dask.config.set({"distributed.deploy.lost-worker-timeout": "2s"}), \
                connect(cfg) as client:
            assert client is not None  # a SLURM cluster always has a client
            yield client
    finally:
        if path:
            os.environ["PYTHONPATH"] = path
        else:
            del os.environ["PYTHONPATH"]


class _Background:
    """``fn()`` in a thread; :meth:`result` joins it and returns or raises what it did."""

    def __init__(self, fn: Any) -> None:
        self._out: dict[str, Any] = {}

        def run() -> None:
            try:
                self._out["value"] = fn()
            except BaseException as exc:  # reraised by result()
                self._out["error"] = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self) -> Any:
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), f"still running after {PATIENCE:g} s"
        if "error" in self._out:
            raise self._out["error"]
        return self._out["value"]


def _run_and_kill(tmp_path: Path, kill: Any) -> tuple[SimulationStore, list[str]]:
    """Simulate on 2 SLURM jobs; once 3 chunks are done, ``kill(job_ids)`` every worker job,
    wait until they are gone, open the gate; return the store and the killed ids."""
    reference = simulate_to_store(_create(tmp_path / "ref.zarr"), GatedSimulator(),
                                  progress=False)
    store = _create(tmp_path / "sims.zarr")
    gate = tmp_path / "gate"
    sim = GatedSimulator(str(gate), str(store.path), free=3)
    cfg = ClusterConfig(**_cluster_section(tmp_path / "logs"))
    with _jobs(cfg) as client:
        work = _Background(lambda: simulate_to_store(store, sim, client=client, progress=False))
        try:
            _wait(lambda: int(np.sum(store.chunk_status())) >= 3, "3 finished chunks")
            _wait(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) == 2,
                  "both workers")
            victims = _squeue_ids()
            assert len(victims) == 2, victims
            kill(victims)
            _wait(lambda: not set(victims) & set(_squeue_ids()), "the killed jobs to end")
            assert not store.is_complete, "the run finished before the jobs were killed"
        finally:
            gate.touch()
        done: SimulationStore = work.result()
    assert done.is_complete
    (t_ref, x_ref), (t, x) = reference.load(), done.load()
    assert t.tobytes() == t_ref.tobytes()
    assert x.tobytes() == x_ref.tobytes()
    return done, victims


def test_cancelled_worker_jobs_are_replaced_and_store_identical(
    tmp_path: Path, clean_queue: None
) -> None:
    def cancel(ids: list[str]) -> None:
        subprocess.run(["scancel", *ids], check=True)

    _, victims = _run_and_kill(tmp_path, cancel)
    # the replacements are other jobs
    assert len(list((tmp_path / "logs").glob("*.out"))) >= len(victims) + 1


def test_worker_jobs_killed_by_walltime_are_replaced_and_store_identical(
    tmp_path: Path, clean_queue: None
) -> None:
    states: dict[str, str] = {}

    def expire(ids: list[str]) -> None:
        for job in ids:  # the time limit falls below the time the job has run: SLURM ends it
            subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=0:01"], check=True)
        for job in ids:
            _wait(lambda job=job: _slurm_state(job) not in ("RUNNING", "COMPLETING"),
                  f"job {job} to reach its time limit")
            states[job] = _slurm_state(job)

    _run_and_kill(tmp_path, expire)
    assert set(states.values()) == {"TIMEOUT"}, states


def _slurm_state(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                         check=False).stdout
    for field in out.split():
        if field.startswith("JobState="):
            return field.split("=", 1)[1]
    return "GONE"


# -- the connectome engine on the same path -----------------------------------------------------
def test_wiring_connectome_on_slurm_matches_threads(tmp_path: Path, clean_queue: None) -> None:
    from wiring.connectome import open_connectome

    cfg = load_config("quick").replace(cluster=_cluster_section(tmp_path / "logs"))
    (tmp_path / "cluster.toml").write_text(cfg.to_toml(), encoding="utf-8")
    # the same block plan on both: the depth profile sums the blocks' parts in block order
    common = ("connectome", "--anatomy", "tiny", "--rule", "dso", "--theta", "1,1.2,0.9",
              "--seed", "4", "--block-size", "40")
    proc = _wiring(*common, "--out", "threads.zarr", "--workers", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _wiring(*common, "--out", "slurm.zarr", "--cluster", "slurm",
                   "--cluster-config", "cluster.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = open_connectome(tmp_path / "threads.zarr"), open_connectome(tmp_path / "slurm.zarr")
    for name in ("expected", "synapses"):
        ma, mb = getattr(a, name), getattr(b, name)
        assert ma.shape == mb.shape
        assert (ma != mb).nnz == 0, name
        assert ma.nnz > 0
    assert np.array_equal(a.depth_profile, b.depth_profile)
    summary_a = (tmp_path / "threads_summary" / "probability_cell_type.json").read_bytes()
    assert summary_a == (tmp_path / "slurm_summary" / "probability_cell_type.json").read_bytes()
    assert list((tmp_path / "logs").glob("*.out")), "no worker job ran"


# -- a lost job during the feature extraction ----------------------------------------------------
class GatedCounts(VoxelMajorCounts):
    """Presynaptic counts whose voxel blocks, read on a dask worker, record their start in the
    folder ``markers`` and, once ``free`` blocks have started, wait for the file ``gate``."""

    def __init__(self, counts: VoxelMajorCounts, markers: str, gate: str, free: int) -> None:
        super().__init__(counts.indptr, counts.indices, counts.data, shape=counts.shape,
                         name=counts.name)
        self.markers, self.gate, self.free = markers, gate, free

    def voxel_block(self, start: int, stop: int) -> Any:
        from distributed import get_worker

        try:
            get_worker()
        except ValueError:  # the submitting process (threads, or planning the blocks)
            return super().voxel_block(start, stop)
        started = len(os.listdir(self.markers))
        Path(self.markers, f"{start}-{stop}-{uuid.uuid4().hex}").touch()
        if started >= self.free:
            t0 = time.monotonic()
            while not os.path.exists(self.gate) and time.monotonic() - t0 < PATIENCE:
                time.sleep(0.1)
        return super().voxel_block(start, stop)


def test_cancelled_worker_job_during_feature_extraction_gives_the_same_features(
    tmp_path: Path, clean_queue: None, tiny_model: Any
) -> None:
    import dataclasses

    from wiring.measurements import load_measurement_set
    from wiring.simulation import extract_feature_bundle

    mset = load_measurement_set("vpm-invivo")
    block = max(1, tiny_model.n_voxels // 12)
    reference = extract_feature_bundle(tiny_model, mset, block_voxels=block)
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    markers.mkdir()
    gated = dataclasses.replace(
        tiny_model, pre=GatedCounts(tiny_model.pre, str(markers), str(gate), free=2)
    )
    cfg = ClusterConfig(**_cluster_section(tmp_path / "logs"))
    with _jobs(cfg) as client:
        work = _Background(lambda: extract_feature_bundle(gated, mset, client=client,
                                                          block_voxels=block))
        try:
            # two blocks done or running freely, then one gated block on each worker
            _wait(lambda: len(os.listdir(markers)) >= 4, "both workers in a gated block")
            assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
            victims = _squeue_ids()
            assert len(victims) == 2, victims
            subprocess.run(["scancel", victims[0]], check=True)
            _wait(lambda: victims[0] not in _squeue_ids(), "the cancelled job to end")
            assert not work.done(), "the extraction finished before the job was cancelled"
        finally:
            gate.touch()
        got = work.result()
    started = [name.rsplit("-", 1)[0] for name in os.listdir(markers)]
    # the cancelled worker's block was started again elsewhere
    assert len(started) > len(set(started)), "no block was redone"
    assert got.names == reference.names
    for name in ("pair_offsets", "pre", "post", "indptr", "voxel", "soma_distance_um"):
        assert getattr(got, name).tobytes() == getattr(reference, name).tobytes(), name
    for name, rows in reference.rows.items():
        assert got.rows[name].tobytes() == rows.tobytes(), name


# -- every job lost, replacements pending ------------------------------------------------------
def test_all_jobs_lost_and_replacements_pending_stop_with_one_line_then_resume(
    tmp_path: Path, clean_queue: None
) -> None:
    reference = simulate_to_store(_create(tmp_path / "ref.zarr"), GatedSimulator(),
                                  progress=False)
    store = _create(tmp_path / "sims.zarr")
    gate = tmp_path / "gate"
    sim = GatedSimulator(str(gate), str(store.path), free=3)
    ncpus = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True,
                           check=True).stdout.split()[0]
    cfg = ClusterConfig(**_cluster_section(tmp_path / "logs", start_timeout=8.0))
    holder = ""
    try:
        with _jobs(cfg) as client:
            work = _Background(lambda: simulate_to_store(store, sim, client=client,
                                                         progress=False))
            _wait(lambda: int(np.sum(store.chunk_status())) >= 3, "3 finished chunks")
            _wait(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) == 2,
                  "both workers")
            victims = _squeue_ids()
            # a job wanting the whole node, queued before the replacements: it runs once the
            # workers are gone, and the replacement jobs stay pending behind it
            holder = subprocess.run(
                ["sbatch", "--parsable", "-c", ncpus, "-t", "5", "-o",
                 str(tmp_path / "holder.out"), "--wrap", "sleep 300"],
                capture_output=True, text=True, check=True,
            ).stdout.strip().split(";")[0]
            subprocess.run(["scancel", *victims], check=True)
            t0 = time.monotonic()
            with pytest.raises(ClusterLostError) as err:
                work.result()
            waited = time.monotonic() - t0
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith("no slurm worker for cluster.start_timeout = 8 s while ")
        assert "(squeue: PENDING" in message, message
        assert "run the same command again to resume" in message
        assert 8 <= waited < 60
        kept = int(np.sum(SimulationStore.open(store.path).chunk_status()))
        assert 3 <= kept < store.n_chunks
    finally:
        if holder:
            subprocess.run(["scancel", holder], check=False)
    gate.touch()
    _wait(lambda: _squeue_ids() == [], "the holding job to go")
    # the same call again: the finished chunks are kept, the rest is simulated
    with _jobs(cfg) as client:
        done = simulate_to_store(store, sim, client=client, progress=False)
    (t_ref, x_ref), (t, x) = reference.load(), done.load()
    assert t.tobytes() == t_ref.tobytes()
    assert x.tobytes() == x_ref.tobytes()


# -- worker lifetime ----------------------------------------------------------------------------
class SlowSimulator:
    """:class:`GatedSimulator`'s numbers, ``seconds`` per chunk."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        time.sleep(self.seconds)
        return GatedSimulator()(theta, rng)


def test_workers_retire_at_their_lifetime_and_are_replaced_store_identical(
    tmp_path: Path, clean_queue: None, caplog: pytest.LogCaptureFixture
) -> None:
    # 40 chunks of 2 s: about a minute on two workers
    reference = simulate_to_store(_create(tmp_path / "ref.zarr", 10), GatedSimulator(),
                                  progress=False)
    store = _create(tmp_path / "sims.zarr", 10)
    logs = tmp_path / "logs"
    cfg = ClusterConfig(**_cluster_section(logs, lifetime="20s", lifetime_stagger="4s"))
    with caplog.at_level(logging.INFO, logger="pipelines.cluster"), _jobs(cfg) as client:
        done = simulate_to_store(store, SlowSimulator(2.0), client=client, progress=False)
    (t_ref, x_ref), (t, x) = reference.load(), done.load()
    assert t.tobytes() == t_ref.tobytes()
    assert x.tobytes() == x_ref.tobytes()
    worker_logs = [p.read_text(errors="replace") for p in logs.iterdir() if p.is_file()]
    retired = [text for text in worker_logs if "worker-lifetime-reached" in text]
    assert len(retired) >= 2, "\n----\n".join(worker_logs)[-4000:]
    jobs = {p.stem for p in logs.glob("*.out")}
    assert len(jobs) >= 4, jobs  # the first two jobs and at least one replacement each
    assert "retired after" in caplog.text
    assert "KilledWorker" not in caplog.text
