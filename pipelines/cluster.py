"""Dask clients from a run config: local processes, threads, a scheduler address or a batch system.

One code path from laptop to cluster. Results never depend on the choice: every task derives its
random stream from (run seed, chunk index), never from the worker that runs it.

Batch systems (dask-jobqueue) scale *adaptively* between ``[cluster] minimum_jobs`` and
``maximum_jobs``: a job that is cancelled, fails or reaches its walltime is submitted again, and
the tasks its worker held are recomputed elsewhere (the wiring layer never scatters data, see
:func:`wiring._dask.share`). Workers retire gracefully before their job's walltime (``dask
worker --lifetime``, derived from the walltime by :mod:`pipelines.walltime`) and are replaced
the same way. :func:`connect` returns only once the first worker job runs, reporting the jobs'
queue states while it waits, and stops with :class:`ClusterStartError` after ``[cluster]
start_timeout`` seconds; later, when every worker is gone while tasks wait, the stage stops
with :class:`ClusterLostError` after the same time. :class:`ClusterSession` starts the cluster
when a stage first needs it and releases the jobs between the distributed stages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from pipelines.config import ClusterConfig, ConfigError
from pipelines.errors import ClusterLostError, ClusterStartError
from pipelines.walltime import format_seconds, native_walltime, worker_lifetime

__all__ = [
    "BATCH_SYSTEMS",
    "ClusterLostError",
    "ClusterSession",
    "ClusterStartError",
    "connect",
    "job_states",
    "make_jobqueue_cluster",
    "wait_for_jobs",
]

log = logging.getLogger(__name__)

#: Batch systems supported through dask-jobqueue, by ``cluster.kind``.
BATCH_SYSTEMS: dict[str, str] = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
}


#: Seconds between two "waiting for N worker jobs" messages.
WAIT_REPORT_INTERVAL = 15.0


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def make_jobqueue_cluster(cfg: ClusterConfig) -> Any:
    """A dask-jobqueue cluster object for ``cfg.kind`` (not yet scaled: no job is submitted).

    ``cluster.job_script()`` renders the batch script, so configurations can be checked on a
    machine without the batch system.
    """
    import dask_jobqueue

    cls = getattr(dask_jobqueue, BATCH_SYSTEMS[cfg.kind])
    # on a shared login node the default dashboard port is often taken: dask then picks a free
    # one (the address is logged when the cluster starts), no warning needed
    warnings.filterwarnings("ignore", message=r"Port \d+ is already in use", category=UserWarning)
    kwargs: dict[str, Any] = {
        "cores": cfg.cores,
        "processes": cfg.processes,
        "memory": cfg.memory,
        "walltime": native_walltime(cfg.walltime, cfg.kind),
        "job_extra_directives": list(cfg.job_extra_directives),
    }
    if cfg.queue:
        kwargs["queue"] = cfg.queue
    if cfg.account:
        kwargs["account"] = cfg.account
    if cfg.local_directory:
        kwargs["local_directory"] = cfg.local_directory
    if cfg.log_directory:
        kwargs["log_directory"] = cfg.log_directory
    try:
        lifetime = worker_lifetime(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if lifetime is not None:
        import dask

        # after the site's own worker options (jobqueue.yaml), which dask-jobqueue would
        # otherwise take only when worker_extra_args is not given
        site = dask.config.get(f"jobqueue.{cfg.kind}.worker-extra-args", default=None) or []
        kwargs["worker_extra_args"] = [*site, *lifetime.worker_args()]
    return cls(**kwargs)


@contextlib.contextmanager
def connect(cfg: ClusterConfig) -> Iterator[Any | None]:
    """Yield a ``distributed.Client`` for the configured cluster (``None`` for ``threads``).

    ``threads`` runs tasks in dask's threaded scheduler inside this process; ``local`` starts a
    ``LocalCluster`` of single-threaded worker processes; any other value that is not a batch
    system is taken as the address of a running scheduler (``tcp://host:8786``).
    """
    kind = cfg.kind.strip()
    if kind == "threads":
        yield None
        return
    from distributed import Client, LocalCluster

    if kind == "local":
        n = cfg.workers or _default_workers()
        log.info("starting a local dask cluster with %d worker process(es)", n)
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,  # shutdown chatter is not the user's concern
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    if kind in BATCH_SYSTEMS:
        cluster = make_jobqueue_cluster(cfg)
        try:
            lo, hi = cfg.job_range()
            # adaptive, also with lo == hi: a lost job is submitted again to keep the minimum
            cluster.adapt(minimum_jobs=lo, maximum_jobs=hi)
            with Client(cluster) as client:
                log.info("dask dashboard of the %s jobs: %s", kind, client.dashboard_link)
                wait_for_jobs(cluster, client, cfg)
                with _watch_jobs(cluster, client, cfg, scaling=lo < hi):
                    yield client
        finally:
            cluster.close()
        return
    if "://" not in kind and ":" not in kind:
        raise ConfigError(
            f"cluster.kind {kind!r} is not one of local, threads, "
            f"{', '.join(BATCH_SYSTEMS)}, nor a scheduler address like tcp://host:8786"
        )
    log.info("connecting to the dask scheduler at %s", kind)
    with Client(kind) as client:
        yield client


def _job_ids(cluster: Any) -> list[str]:
    """Batch-system ids of the jobs a dask-jobqueue cluster has submitted so far."""
    ids = []
    for job in list(getattr(cluster, "workers", {}).values()):
        job_id = getattr(job, "job_id", None)
        if job_id:
            ids.append(str(job_id))
    return ids


def job_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """SLURM (state, reason) of ``job_ids`` from ``squeue``, e.g. ``("PENDING", "Resources")``.

    Jobs that squeue no longer lists are missing from the result; without squeue, or when it
    fails, the result is empty.
    """
    if not job_ids or shutil.which("squeue") is None:
        return {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%r"],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    states = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            job_id, state, reason = parts
            states[job_id] = (state, "" if reason in ("None", "") else reason)
    return states


def _describe_states(cfg: ClusterConfig, job_ids: list[str]) -> str:
    """``squeue: PENDING (Resources)``, ``squeue: PENDING (Resources, Priority)`` or
    ``squeue: 1 RUNNING, 1 PENDING (Resources)`` for the messages."""
    if cfg.kind != "slurm":
        return f"{cfg.kind} job ids {', '.join(job_ids) or 'not yet known'}"
    if not job_ids:
        return "squeue: not yet submitted"
    states = job_states(job_ids)
    if not states:
        return "squeue: not listed"
    counts = Counter(state for state, _ in states.values())
    reasons: dict[str, list[str]] = {}
    for state, reason in states.values():
        if reason and reason not in reasons.setdefault(state, []):
            reasons[state].append(reason)

    def label(state: str) -> str:
        why = reasons.get(state)
        return f"{state} ({', '.join(why)})" if why else state

    if len(counts) == 1:
        return f"squeue: {label(next(iter(counts)))}"
    return "squeue: " + ", ".join(f"{n} {label(state)}" for state, n in counts.most_common())


def wait_for_jobs(cluster: Any, client: Any, cfg: ClusterConfig) -> None:
    """Return once a worker has connected; report the queue while waiting.

    Raises
    ------
    ClusterStartError
        No worker connected within ``cfg.start_timeout`` seconds (the jobs are cancelled when
        the cluster closes).
    """
    t0 = time.monotonic()
    lo, _ = cfg.job_range()
    next_report = t0 + min(5.0, WAIT_REPORT_INTERVAL)
    while True:
        if client.scheduler_info(n_workers=-1).get("workers"):
            waited = time.monotonic() - t0
            if waited >= 5.0:
                log.info("first worker job started after %.0f s", waited)
            return
        now = time.monotonic()
        if now - t0 >= cfg.start_timeout:
            raise ClusterStartError(
                f"no {cfg.kind} worker job started within cluster.start_timeout = "
                f"{cfg.start_timeout:g} s ({_describe_states(cfg, _job_ids(cluster))}); the "
                f"queue is busy or the job request (queue, account, cores, memory, walltime) "
                f"cannot be met: raise start_timeout or change [cluster]"
            )
        if now >= next_report:
            log.info("waiting for %d worker job%s (%s), %.0f s of %g s", lo,
                     "" if lo == 1 else "s", _describe_states(cfg, _job_ids(cluster)),
                     now - t0, cfg.start_timeout)
            next_report = now + WAIT_REPORT_INTERVAL
        time.sleep(0.5)


def _job_of(cluster: Any, worker_name: str) -> str:
    """The batch job id of a worker (its name is the job's, plus ``-k`` with processes > 1)."""
    for job_name, job in list(getattr(cluster, "workers", {}).items()):
        if worker_name == job_name or worker_name.startswith(f"{job_name}-"):
            return str(getattr(job, "job_id", "") or "?")
    return "?"


#: Worker statuses that mean a worker is retiring (its lifetime is over, or dask scales down).
_RETIRING = ("closing_gracefully",)

#: Client-side future states a stage may be waiting on.
_WAITING = ("pending", "lost")


async def _count_waiting(client: Any) -> int:
    """Futures of ``client`` not yet finished (runs in the client's event loop)."""
    return sum(st.status in _WAITING for st in list(client.futures.values()))


async def _fail_waiting(client: Any, error: BaseException) -> int:
    """Make every unfinished future of ``client`` raise ``error`` (runs in the client's event
    loop): whatever waits on them (``result``, ``gather``, ``as_completed``) raises it."""
    states = [st for st in list(client.futures.values()) if st.status in _WAITING]
    for st in states:
        st.set_error(error, None)
    return len(states)


def _lost_error(cfg: ClusterConfig, cluster: Any, waiting: int) -> ClusterLostError:
    return ClusterLostError(
        f"no {cfg.kind} worker for cluster.start_timeout = {cfg.start_timeout:g} s while "
        f"{waiting} task{'' if waiting == 1 else 's'} waited: every worker job ended "
        f"(cancelled, failed, retired or out of walltime) and no replacement started "
        f"({_describe_states(cfg, _job_ids(cluster))}); the work already written is kept: "
        f"run the same command again to resume, or raise start_timeout"
    )


@contextlib.contextmanager
def _watch_jobs(
    cluster: Any,
    client: Any,
    cfg: ClusterConfig,
    *,
    scaling: bool,
    interval: float = 2.0,
) -> Iterator[None]:
    """While the body runs: log the workers that leave and join, and bound the time without
    any worker.

    A worker that leaves is reported as retired (its lifetime ended, see
    :mod:`pipelines.walltime`), scaled down (with ``scaling``, between minimum_jobs and
    maximum_jobs) or lost (its job was cancelled, failed or hit its walltime: a warning). The
    cluster's own shutdown is not reported.

    When no worker is left while tasks wait (every job ended and the replacements are pending),
    the wait is reported every :data:`WAIT_REPORT_INTERVAL` seconds; after ``cfg.start_timeout``
    seconds every waiting future is made to raise :class:`ClusterLostError`, so the stage stops
    with one line instead of waiting for the queue forever. Finished work stays where the stage
    put it (simulation chunks in the store), and the next run resumes from there.
    """
    try:
        lifetime = worker_lifetime(cfg) if cfg.kind in BATCH_SYSTEMS else None
    except ValueError:
        lifetime = None
    # a worker this old when it leaves has reached its lifetime (a poll may miss its status;
    # joins and departures are seen up to one poll late)
    retire_age = (None if lifetime is None
                  else lifetime.seconds - lifetime.stagger - 2 * interval - 1.0)

    def workers() -> dict[str, str]:
        info = getattr(cluster, "scheduler_info", {}) or {}
        return {str(w.get("name")): str(w.get("status", ""))
                for w in dict(info.get("workers", {})).values()}

    def waiting() -> int:
        try:
            return int(client.sync(_count_waiting, client))
        except Exception:  # the client is closing
            return 0

    stop = threading.Event()

    def watch() -> None:
        seen = workers()
        joined = dict.fromkeys(seen, time.monotonic())
        idle_since: float | None = None
        next_report = 0.0
        while not stop.wait(interval):
            now = workers()
            t = time.monotonic()
            for name in sorted(set(seen) - set(now)):
                job = _job_of(cluster, name)
                age = t - joined.pop(name, t)
                old = retire_age is not None and age >= retire_age
                # dask's scaling down retires workers gracefully too
                if old or (seen[name] in _RETIRING and not scaling):
                    log.info("worker %s (job %s) retired after %s (cluster.lifetime %s ± %s); "
                             "a replacement job is submitted", name, job, format_seconds(age),
                             format_seconds(lifetime.seconds) if lifetime else "off",
                             format_seconds(lifetime.stagger) if lifetime else "0s")
                elif scaling:  # between minimum_jobs and maximum_jobs dask also scales down
                    log.info("worker %s (job %s) left (scaled down, or its job ended); tasks it "
                             "held are redone on the other workers", name, job)
                else:
                    log.warning(
                        "worker %s (job %s) left: its job ended (cancelled, failed or out of "
                        "walltime); its tasks are redone on the other workers and a replacement "
                        "job is submitted", name, job,
                    )
            for name in sorted(set(now) - set(seen)):
                joined[name] = t
                log.info("worker %s (job %s) joined", name, _job_of(cluster, name))
            seen = now
            if now:
                if idle_since is not None:
                    log.info("a worker is back after %.0f s without any", t - idle_since)
                idle_since = None
                continue
            n = waiting()
            if not n:
                idle_since = None
                continue
            if idle_since is None:
                idle_since, next_report = t, t + min(5.0, WAIT_REPORT_INTERVAL)
                log.warning("no %s worker is left while %d task%s wait; waiting up to "
                            "cluster.start_timeout = %g s for a replacement job", cfg.kind, n,
                            "" if n == 1 else "s", cfg.start_timeout)
            elif t - idle_since >= cfg.start_timeout:
                error = _lost_error(cfg, cluster, n)
                try:
                    client.sync(_fail_waiting, client, error)
                except Exception:  # pragma: no cover - the client is closing anyway
                    pass
                idle_since = None
            elif t >= next_report:
                log.info("waiting for a replacement worker job (%s), %.0f s of %g s",
                         _describe_states(cfg, _job_ids(cluster)), t - idle_since,
                         cfg.start_timeout)
                next_report = t + WAIT_REPORT_INTERVAL

    thread = threading.Thread(target=watch, name="wiring-job-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class ClusterSession:
    """A cluster started when a stage first asks for a client and released on demand.

    The pipeline holds batch jobs only through the stages that distribute work (features,
    simulation, connectome): :meth:`release` closes the cluster (the jobs end) and a later
    :meth:`client` starts it again.
    """

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.starts = 0
        self._stack: contextlib.ExitStack | None = None
        self._client: Any = None

    @property
    def active(self) -> bool:
        """Whether a cluster is running now."""
        return self._stack is not None

    def client(self) -> Any:
        """The client of the running cluster, starting it first if needed (None: threads)."""
        if self._stack is None:
            stack = contextlib.ExitStack()
            try:
                self._client = stack.enter_context(connect(self.cfg))
            except BaseException:
                stack.close()
                raise
            self._stack = stack
            self.starts += 1
        return self._client

    def lazy_client(self) -> Any:
        """None for ``threads``; otherwise a stand-in for the client that starts the cluster at
        its first use, so a stage whose results are cached never submits a job."""
        if self.cfg.kind.strip() == "threads":
            return None
        return _LazyClient(self)

    def release(self) -> None:
        """Close the cluster, if one runs: batch jobs end and stop costing allocation."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            if self.cfg.kind in BATCH_SYSTEMS:
                log.info("releasing the %s worker jobs", self.cfg.kind)
            stack.close()

    def __enter__(self) -> ClusterSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class _LazyClient:
    """Forwards every attribute to the session's client, starting the cluster on first use."""

    def __init__(self, session: ClusterSession) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session.client(), name)
